"""Where a training second goes: data (loading, augmentation, batching) against the step
(forward, backward, optimiser), per model, at 1 and 2 torch threads and two batch sizes.

    python benchmarks/training_profile.py [--home DIR] [--batches 12] [--models tcn_emotion ...]

Reads the study in ``--home`` (default ``WAV2KP_HOME``): every run notebook 03 trained there,
each on the feature set it was trained on. For each model a fresh network is built exactly as
``fit`` builds it (same seed, dimensions and output head) and fed by the same training loader
(for the utterance models: audio augmented and its MFCCs recomputed on every draw); ``--batches``
batches are timed after one warm-up batch, the time to get a batch (the loader) apart from the
time to train on it (loss, backward, Adam step). Side by side in one run: 1 and 2 torch
threads, the loop's batch size and twice it (seconds per utterance or window, so the two are
comparable). One epoch's cost is estimated from them (batches per epoch x seconds per batch).
Nothing is written. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import torch

from wav2kp import config
from wav2kp.training import estimate, loop, models, runs


def _profile(model_name: str, hparams: dict, fs, cfg, batches: int) -> dict:
    model, train_loader, _ = estimate.build(model_name, fs, cfg, hparams)
    t = estimate.timed_batches(model, train_loader, cfg, batches, train=True)
    return {
        "data_s_per_item": t["data_s"] / t["items"],
        "step_s_per_item": t["step_s"] / t["items"],
        "data_share": t["data_s"] / (t["data_s"] + t["step_s"]),
        "batches_per_epoch": t["per_pass"],
        "epoch_s_estimate": (t["data_s"] + t["step_s"]) / t["timed"] * t["per_pass"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", help="the study's WAV2KP_HOME (default: the environment's)")
    ap.add_argument("--corpus", default="bundled")
    ap.add_argument("--subset", default="full")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--models", nargs="*", help="models of notebook 03 (default: the neural ones)")
    args = ap.parse_args()
    if args.home:
        os.environ[config.HOME_ENV] = str(Path(args.home).resolve())  # read at each call
    study = runs.study_training(args.corpus, args.subset)
    names = args.models or [n for n in study.models if models.MODELS[n].uses_loop]
    figures: dict = {"benchmark": "training_profile", "cores": os.cpu_count(), "models": {}}
    for name in names:
        run_dir = Path(study.runs[name])
        trained = models.load_run(run_dir)
        fs = runs.load_runs({name: run_dir})[name][1]
        hparams = {k: v for k, v in trained.hparams.items() if k != "pretrain"}
        row = {}
        for threads in (1, 2):
            for scale in (1, 2):
                cfg = dataclasses.replace(study.cfg, batch_size=study.cfg.batch_size * scale)
                # the loop's seeding sets its own thread count (half the cores): this one wins
                loop._set_threads = lambda n=threads: torch.set_num_threads(n)
                key = f"threads{threads}_batch{cfg.batch_size}"
                row[key] = _profile(name, hparams, fs, cfg, args.batches)
                r = row[key]
                print(
                    f"{name:14s} {key:18s} data {1e3 * r['data_s_per_item']:7.2f} ms/item "
                    f"step {1e3 * r['step_s_per_item']:7.2f} ms/item "
                    f"(data {100 * r['data_share']:4.1f} %) epoch ~{r['epoch_s_estimate']:6.1f} s",
                    flush=True,
                )
        figures["models"][name] = row
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
