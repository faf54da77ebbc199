"""Training runs: one model trained, saved and scored on the validation split, or every model of
the study; the run folder and how to load it back. The loop itself is :mod:`wav2kp.training.loop`.

A run lives in ``data/models/<run>/`` (:func:`wav2kp.config.models_dir`):

- ``weights.pt``: plain tensors (``torch.load(..., weights_only=True)``);
- ``config.json``: the model's name and hyper-parameters, the sizes it learned from the data,
  the :class:`TrainConfig`, the feature set's folder and parameters (its ``manifest.json``
  ``params``, enough to rebuild the features), the seed and package versions;
- ``history.csv``: one row per epoch (``epoch, train_loss, val_loss, lr, time_s``; baselines one
  row);
- ``metrics.json``: validation metrics of the *saved* model (:func:`split_metrics` after a reload,
  so :func:`wav2kp.training.models.load_run` then :func:`split_metrics` gives exactly these numbers) and the
  training wall time;
- ``predictions/<name>.npz``: what the finished run predicted, kept (:func:`cached`,
  :func:`predict_pixels`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from wav2kp import config as paths
from wav2kp import metrics, shapes
from wav2kp import results as records
from wav2kp.features import dataset
from wav2kp.manifest import (
    file_sha256,
    package_versions,
    write_json_atomic,
    write_npz_atomic,
)
from wav2kp.training import estimate, loop, models
from wav2kp.training.loop import TrainConfig, write_history

RUN_PACKAGES = ("wav2kp", "numpy", "torch", "torchaudio", "lightning", "scikit-learn")


# -------------------------------------------------------------------------------- evaluation


def _fill_invalid(targets: np.ndarray, times: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid rows replaced by linear interpolation of the valid ones (ends held)."""
    if valid.all():
        return targets
    out = np.array(targets, dtype=np.float64)
    for j in range(out.shape[1]):
        out[~valid, j] = np.interp(times[~valid], times[valid], out[valid, j])
    return out


def clip_errors(model, fs, clip: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(squared errors (n_valid, D) in normalised units, point errors (T', 68) in % of the
    inter-ocular distance at the scored video frames, scored-frame mask (T,))`` of one clip.

    The truth in pixels is the clip's stored targets mapped through :meth:`FeatureSet.to_pixels`
    exactly as the prediction is (so both go through the same inverse alignment and pose); a
    video frame is scored when its face was found and the target frames on both sides of it are
    valid.
    """
    utt = fs.load(clip)
    pred = np.asarray(model.predict(fs, clip), dtype=np.float64)
    targets = np.asarray(utt["targets"], dtype=np.float64)
    valid = np.asarray(utt.get("valid", np.isfinite(targets).all(axis=1)), dtype=bool)
    if pred.shape != targets.shape:
        raise ValueError(
            f"{model.name}.predict gave {pred.shape} for {clip!r}, expected {targets.shape}."
        )
    sq = (pred - targets)[valid] ** 2
    if not valid.any():
        return sq, np.zeros((0, shapes.N_POINTS)), np.zeros(len(utt["video_times"]), bool)
    ttimes = utt["target_times"]
    truth_px = fs.to_pixels(clip, _fill_invalid(targets, ttimes, valid))
    pred_px = fs.to_pixels(clip, pred)
    scored = np.interp(utt["video_times"], ttimes, valid.astype(np.float64)) >= 1.0 - 1e-9
    if "video_ok" in utt:
        scored &= np.asarray(utt["video_ok"], dtype=bool)
    return sq, metrics.point_errors(pred_px[scored], truth_px[scored]), scored


def split_metrics(model, fs, split: str = "val") -> dict[str, Any]:
    """Metrics of ``model`` over the clips of ``split`` against the *extracted* keypoints (what it
    trained on; the test-split scores against the ground truth are :mod:`wav2kp.evaluation`),
    frames pooled across clips:

    ``mse`` (normalised units squared, per coordinate, valid feature frames), ``mlmd_pct``
    (mean mouth-point error, % of inter-ocular distance, pixels at video frame times),
    ``lmd_pct`` (all 68 points; ``None`` when the targets are the mouth only), ``n_clips``,
    ``n_frames`` (scored video frames). NaN when the split is empty.
    """
    sq, errs = [], []
    clips = fs.split_clips(split)
    for clip in clips:
        s, e, _ = clip_errors(model, fs, clip)
        sq.append(s)
        errs.append(e)
    whole_face = len(fs.point_idx) == shapes.N_POINTS
    if not clips:
        return {
            "mse": math.nan,
            "mlmd_pct": math.nan,
            "lmd_pct": math.nan if whole_face else None,
            "n_clips": 0,
            "n_frames": 0,
        }
    err = np.concatenate(errs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "mse": float(np.concatenate(sq).mean()),
            "mlmd_pct": float(np.nanmean(err[:, shapes.MOUTH])),
            "lmd_pct": float(np.nanmean(err)) if whole_face else None,
            "n_clips": len(clips),
            "n_frames": int(len(err)),
        }


# --------------------------------------------------------------------------------- a whole run


def _feature_set_record(fs) -> dict[str, Any]:
    manifest = fs.out_dir / "manifest.json"
    params = (
        json.loads(manifest.read_text(encoding="utf-8")).get("params")
        if manifest.is_file()
        else fs.params
    )
    return {"dir": str(fs.out_dir), "name": fs.out_dir.name, "params": params}


#: The code a run's weights depend on: a change to any of these files retrains cached runs.
TRAINING_SOURCES = loop.TRAINING_SOURCES
#: TrainConfig fields that only the training loop of the neural models reads.
_LOOP_FIELDS = {
    "max_epochs", "batch_size", "lr", "weight_decay", "patience", "lr_schedule", "deterministic",
    "velocity_weight", "mouth_weight", "num_workers", "accelerator", "max_time_s", "augment",
    "augment_params", "devices", "num_nodes", "strategy", "max_windows",
}  # fmt: skip


def run_key(name: str, fs, cfg: TrainConfig, hparams: dict[str, Any]) -> str:
    """What a run's weights and metrics depend on, as one sha256: the model and its
    hyper-parameters, the training settings that model reads (the loop's only for a model
    trained by the loop, ``uses_loop``; never ``progress``), the feature set's parameters and input hashes, the training
    code (:data:`TRAINING_SOURCES`) and the versions of the packages that compute it."""
    by_loop = models.MODELS[name].uses_loop
    train = {
        k: v
        for k, v in cfg.as_dict().items()
        if k != "progress" and (by_loop or k not in _LOOP_FIELDS)
    }
    manifest = fs.out_dir / "manifest.json"
    record = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    payload = {
        "model": name,
        "hparams": hparams,
        "train": train,
        "features": {"params": record.get("params", fs.params), "inputs": record.get("inputs")},
        "code": loop.code_hash(),
        "versions": package_versions(RUN_PACKAGES),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cached_run(run_dir: Path, key: str):
    """``(model, metrics)`` of a finished run in ``run_dir`` made with ``key``, else ``None``."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file() or not (run_dir / "config.json").is_file():
        return None
    try:
        metrics_ = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if metrics_.get("run_key") != key:
        return None
    try:
        return models.load_run(run_dir), metrics_
    except (OSError, ValueError, KeyError, RuntimeError):
        return None


def train_model(
    name: str,
    fs,
    cfg: TrainConfig | None,
    run_dir: str | os.PathLike,
    force: bool = False,
    **hparams: Any,
):
    """Create, fit, save and evaluate (on ``val``) a model; returns ``(model, metrics)``.

    The returned model is the one *reloaded from* ``run_dir``, and the metrics (also written to
    ``metrics.json``) are computed on it, so loading the run later reproduces them exactly.

    A run is cached: when ``run_dir`` already holds a finished run with the same
    :func:`run_key` (same model, settings, features, code and package versions), it is loaded
    instead of trained again (``metrics["cached"]`` is then ``True``); ``force=True`` retrains.
    """
    cfg = cfg or TrainConfig()
    run_dir = Path(run_dir)
    key = run_key(name, fs, cfg, hparams)
    if not force and (hit := cached_run(run_dir, key)) is not None:
        model, out = hit
        if cfg.progress != "none":
            print(f"   up to date: {run_dir} (trained in {out.get('wall_s', 0):.1f} s)", flush=True)
        return model, {**out, "cached": True}
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", "history.csv"):
        (run_dir / stale).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "predictions", ignore_errors=True)  # an earlier run's
    model = models.create(name, **hparams)
    t0 = time.perf_counter()
    history = model.fit(fs, cfg, run_dir=run_dir)
    train_s = time.perf_counter() - t0
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    if rank != 0:  # a DDP process other than the first (torchrun, SLURM): rank 0 saves the run
        return model, {"model": name, "rank": rank, "cached": False}
    write_history(history, run_dir / "history.csv")
    model.meta = {
        "train": cfg.as_dict(),
        "feature_set": _feature_set_record(fs),
        "seed": cfg.seed,
        "versions": package_versions(RUN_PACKAGES),
        "device": str(models.device()) if model.uses_loop else "cpu",
    }
    model.save(run_dir)
    model = models.load_run(run_dir)
    val = split_metrics(model, fs, "val")
    final = history[history["stage"] == "train"] if "stage" in history else history
    out = {
        "model": name,
        "val_mse": val["mse"],
        "val_mlmd_pct": val["mlmd_pct"],
        "val_lmd_pct": val["lmd_pct"],
        "val_frames": val["n_frames"],
        "epochs": int(len(history)),
        "best_epoch": (  # of the last stage (after pre-training, of the fine-tuning)
            int(final.loc[final["val_loss"].idxmin(), "epoch"])
            if final["val_loss"].notna().any()
            else None
        ),
        "wall_s": round(train_s, 3),
        "run_key": key,
    }
    write_json_atomic(run_dir / "metrics.json", out)
    model.run_key = key  # loaded before metrics.json existed
    return model, {**out, "cached": False}


# ----------------------------------------------------------------------------- the study's runs


@dataclass
class RunJob:
    """One run to train: ``label`` (its name in the study), the model ``name`` and its
    ``hparams``, the feature set, and the run folder."""

    label: str
    name: str
    fs: Any
    run_dir: Path
    hparams: dict[str, Any] = field(default_factory=dict)


class _Prefixed(io.TextIOBase):
    """A stdout that starts every line with ``[label] ``: a worker's epochs, told apart."""

    def __init__(self, label: str, out) -> None:
        self.label, self.out, self.fresh = label, out, True

    def write(self, text: str) -> int:
        for line in text.splitlines(keepends=True):
            if self.fresh:
                self.out.write(f"[{self.label}] ")
            self.out.write(line)
            self.fresh = line.endswith(("\n", "\r"))
        self.out.flush()
        return len(text)

    def isatty(self) -> bool:
        return bool(getattr(self.out, "isatty", lambda: False)())


def _train_job(job: RunJob, cfg: TrainConfig) -> tuple[RunJob, dict[str, Any]]:
    """Train one job in a worker process; its printed epochs are prefixed with its label."""
    with contextlib.redirect_stdout(_Prefixed(job.label, sys.__stdout__)):
        _, out = train_model(job.name, job.fs, cfg, job.run_dir, **job.hparams)
    return job, out


def parallel_jobs(n: int) -> int:
    """Worker processes for ``n`` independent runs: one per core (each trains on one thread, so
    the weights are those of a run trained alone), one on a GPU."""
    if models.device().type != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(n, cores))


def _train_clips(job: RunJob) -> int:
    try:
        return len(job.fs.split_clips("train"))
    except AttributeError:  # not a feature set (a path): no size to order by
        return 0


def schedule(jobs: list[RunJob]) -> list[RunJob]:
    """The order runs start in: first one run of each pre-training (the others that share it
    wait for it: :meth:`wav2kp.training.models.NeuralModel._pretrain`), then the models that
    are ``slow``, then the rest, larger training sets first (a long run does not start last
    and leave a worker idle); the order of ``jobs`` otherwise."""
    owners, seen = set(), set()
    for job in jobs:
        how = models.pretraining(job.name, job.hparams)
        if how is not None and how not in seen:
            owners.add(job.label)
            seen.add(how)
    return sorted(
        jobs,
        key=lambda j: (j.label not in owners, not models.MODELS[j.name].slow, -_train_clips(j)),
    )


def train_runs(jobs: list[RunJob], cfg: TrainConfig, n_jobs: int | None = None) -> dict[str, dict]:
    """Train independent runs side by side, one process per core: ``{label: metrics}`` in the
    order of ``jobs``. Runs already trained with the same :func:`run_key` are loaded, not
    trained; they start in the order of :func:`schedule`. Each run trains exactly as it
    would alone (seeded, one torch thread), so the numbers do not depend on ``n_jobs``."""
    results: dict[str, dict] = {}
    todo = []
    for job in jobs:
        hit = cached_run(Path(job.run_dir), run_key(job.name, job.fs, cfg, job.hparams))
        if hit is not None:
            results[job.label] = {**hit[1], "cached": True}
            print(f"== {job.label}: up to date ({job.run_dir})", flush=True)
        else:
            todo.append(job)
    ordered = schedule(todo)
    workers = parallel_jobs(len(todo)) if n_jobs is None else max(1, min(n_jobs, len(todo) or 1))
    if cfg.devices * cfg.num_nodes > 1:  # each run is already several processes (DDP)
        workers = 1
    if todo and cfg.progress != "none" and cfg.devices * cfg.num_nodes == 1:
        # what is about to train, and how long it may take on this machine (measured)
        print(estimate.describe(estimate.plan(ordered, cfg, workers), workers), flush=True)
    if todo:
        print(f"== training {', '.join(j.label for j in ordered)} ({workers} at a time)",
              flush=True)  # fmt: skip
    if workers <= 1:
        done = ((job, train_model(job.name, job.fs, cfg, job.run_dir, **job.hparams)[1])
                for job in ordered)  # fmt: skip
    else:
        run = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
        done = run(delayed(_train_job)(job, cfg) for job in ordered)
    for job, out in done:
        results[job.label] = out
        print(
            f"== {job.label}: val M-LMD {out['val_mlmd_pct']:.3f} % IOD, "
            f"{out['epochs']} epochs in {out['wall_s']:.1f} s",
            flush=True,
        )
    return {job.label: results[job.label] for job in jobs}


def train_all(
    names: list[str],
    sets: dict,
    cfg: TrainConfig,
    corpus: str,
    subset: str,
    hidden: int | None = None,
    n_jobs: int | None = None,
) -> list[dict]:
    """Train every model of ``names`` on its feature set (``sets[model.feature_set]``: the
    original's feeding for ``lstm_original``, the default set for the others) into
    ``config.run_dir(corpus, subset, name)``, the width knob ``hidden`` set (the model's
    :meth:`~wav2kp.training.models.KeypointModel.width`), side by side (:func:`train_runs`);
    returns ``[{"name", "run", "metrics", "history"}]`` in order. Wall time is in metrics."""
    jobs = [
        RunJob(
            name,
            name,
            sets[models.MODELS[name].feature_set],
            paths.run_dir(corpus, subset, name),
            models.MODELS[name].width(hidden),
        )
        for name in names
    ]
    done = train_runs(jobs, cfg, n_jobs)
    return [
        {
            "name": job.name,
            "run": str(job.run_dir),
            "metrics": done[job.label],
            "history": pd.read_csv(job.run_dir / "history.csv"),
        }
        for job in jobs
    ]


# -------------------------------------------------------------------------- kept predictions


def cached(model, name: str, key: tuple, compute) -> np.ndarray:
    """``compute()`` once per run and ``key``: a model loaded from a finished run (it has a
    ``run_dir`` and a ``run_key``) keeps the array in ``<run>/predictions/<name>.npz``, keyed
    by the run's :func:`run_key` (model, settings, features, code, versions) and ``key``, so
    scoring the same runs again (notebook 04 re-run, the tests, real recordings) does not run
    the networks again. Anything else (a model not from a run, a wrapper) just computes."""
    run_dir, key0 = getattr(model, "run_dir", None), getattr(model, "run_key", None)
    if run_dir is None or key0 is None:
        return compute()
    digest = hashlib.sha256(json.dumps([key0, *key], default=str).encode()).hexdigest()
    path = Path(run_dir) / "predictions" / f"{name}.npz"
    if path.is_file():
        with np.load(path) as z:
            if str(z["key"]) == digest:
                return z["values"]
    values = np.asarray(compute())
    write_npz_atomic(path, values=values, key=np.array(digest))
    return values


def predict_pixels(model, fs, clip: str) -> np.ndarray:
    """``model.predict_pixels(fs, clip)``: pixel keypoints ``(T, 68, 2)`` at the clip's video
    frame times, kept in a finished run (:func:`cached`, keyed by the clip's stored
    features)."""
    utterance = dataset.utterance_path(fs.out_dir, clip)
    stored = file_sha256(utterance) if utterance.is_file() else "missing"
    return cached(
        model, f"clip-{clip}", (str(fs.out_dir), stored), lambda: model.predict_pixels(fs, clip)
    )


# ------------------------------------------------------------------------------ loading runs


def _resolve_feature_set(record: dict):
    path = Path(record["dir"])
    if not (path / "feature_set.json").is_file():  # WAV2KP_HOME moved since training
        path = paths.processed_dir(path.parent.name, record["name"])
    return dataset.FeatureSet(path)


def load_runs(runs: dict[str, str | Path]) -> dict[str, tuple[Any, Any]]:
    """``{label: run dir}`` -> ``{label: (model, its FeatureSet)}``; a clear error for a run that
    is missing."""
    out = {}
    for label, run_dir in runs.items():
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"{run_dir}: no trained run for {label!r}; train it first "
                f"(notebook 03 or `wav2kp train --model {label}`)."
            )
        model = models.load_run(run_dir)
        carried = run_dir / "feature_set"  # a self-contained run (the shipped model)
        if (carried / "feature_set.json").is_file():
            out[label] = (model, dataset.FeatureSet(carried))
        else:
            out[label] = (model, _resolve_feature_set(model.meta["feature_set"]))
    return out


# ------------------------------------------------------------------------- notebook 03's record

#: Notebook 03, whose record names the study's runs and how they trained.
NOTEBOOK = "03_training"


@dataclass
class StudyTraining:
    """What notebook 03 trained (its record): the models in order, their run folders, and the
    training settings and width the extra runs of notebook 04 (ablations, levers) take over."""

    models: list[str]
    runs: dict[str, Path]
    cfg: TrainConfig
    hidden: int | None


def training_record(results: list[dict], cfg: TrainConfig, hidden: int | None) -> dict:
    """The part of notebook 03's record that later notebooks read: ``train`` (the
    :class:`TrainConfig`), ``hidden`` and per model its run folder (with :func:`train_all`'s
    ``results``' validation numbers)."""
    keys = ("val_mlmd_pct", "val_lmd_pct", "val_mse", "wall_s")
    return {
        "train": cfg.as_dict(),
        "hidden": hidden,
        "models": {
            r["name"]: {k: r["metrics"][k] for k in keys} | {"run": r["run"]} for r in results
        },
    }


def study_training(corpus: str | os.PathLike, subset: str | None) -> StudyTraining:
    """Notebook 03's runs of ``corpus`` and ``subset``, from its record; a clear error naming
    the notebook to run when it has not run for them (:func:`wav2kp.results.require`) or a run
    folder is gone."""
    record = records.require(NOTEBOOK, corpus, subset, need="the runs to evaluate")
    if "train" not in record:
        raise records.RecordError(
            f"Notebook 03's record ({records.record_path(NOTEBOOK)}) does not say how it "
            f"trained: it was written by an older version; re-run notebook 03."
        )
    names = list(record["models"])
    runs = {name: paths.run_dir(corpus, subset, name) for name in names}
    gone = [name for name, run in runs.items() if not (run / "metrics.json").is_file()]
    if gone:
        raise records.RecordError(
            f"Notebook 03 recorded runs that are not (or no longer) finished: "
            f"{', '.join(str(runs[g]) for g in gone)}; re-run notebook 03."
        )
    return StudyTraining(names, runs, TrainConfig(**record["train"]), record.get("hidden"))
