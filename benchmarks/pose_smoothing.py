"""Benchmark (issue 15, lever "pose"): the study's models placed with a smoothed head pose.

    WAV2KP_HOME=<home of a study> python benchmarks/pose_smoothing.py [--subset full] [--windows 0 5 9 15 25]

Every prediction is placed on the video with the head pose the extractor measured in each frame
(dlib's jitter included). For each model of the last study (``config.run_dir(corpus, subset,
model)``) and each smoothing window (frames; 0 = the measured pose, as the study scores today),
this scores the test split against the bundled ground truth with the study's own metrics
(``evaluation.score_clip``): mean M-LMD and LMD over clips. The ground truth's own mouth shape
placed with the same pose is scored too: what the pose alone costs. The networks run once per
clip; only the placement changes. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from wav2kp import config, evaluation, shapes, training
from wav2kp import corpus as corpora

MODELS = ["mean_face", "energy", "ridge", "lstm_original", "lstm", "tcn", "tcn_emotion"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="bundled")
    ap.add_argument("--subset", default="full")
    ap.add_argument("--windows", type=int, nargs="+", default=[0, 5, 9, 15, 25])
    args = ap.parse_args()

    t0 = time.perf_counter()
    runs = {m: config.run_dir(args.corpus, args.subset, m) for m in MODELS}
    loaded = training.load_runs({m: r for m, r in runs.items() if (r / "config.json").is_file()})
    table = corpora.discover(args.corpus).set_index("clip")
    fs_any = next(iter(loaded.values()))[1]
    clips = fs_any.split_clips("test")
    scores: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for clip in clips:
        ref = evaluation.load_reference(clip, args.corpus, table.loc[clip])
        preds = {label: (fs, model.predict(fs, clip)) for label, (model, fs) in loaded.items()}
        # the truth's own shape (normalised with its own pose), placed like a model's prediction
        # with the measured pose: what the pose alone costs a perfect model
        utt = fs_any.load(clip)
        pose = shapes.Similarity.from_arrays(utt, prefix="pose_")
        truth_norm, _ = shapes.normalise(ref.points, fs_any.reference)
        for window in args.windows:
            for label, (fs, pred) in preds.items():
                px = fs.to_pixels(clip, pred, pose_window=window)
                s = evaluation.score_clip(px, ref)
                scores.setdefault(label, {}).setdefault(window, []).append((s["mlmd"], s["lmd"]))
            placed = pose.smoothed(window) if window > 2 else pose
            s = evaluation.score_clip(shapes.denormalise(truth_norm, placed), ref)
            scores.setdefault("truth shape", {}).setdefault(window, []).append(
                (s["mlmd"], s["lmd"])
            )
    figures = {"benchmark": "pose_smoothing", "subset": args.subset, "clips": len(clips),
               "windows": args.windows, "mlmd": {}, "lmd": {}}  # fmt: skip
    for label, by_window in scores.items():
        figures["mlmd"][label] = {w: round(float(np.nanmean([m for m, _ in v])), 4)
                                  for w, v in by_window.items()}  # fmt: skip
        figures["lmd"][label] = {w: round(float(np.nanmean([x for _, x in v])), 4)
                                 for w, v in by_window.items()}  # fmt: skip
    mean_face = figures["mlmd"].get("mean_face", {})
    for label, by_window in figures["mlmd"].items():
        row = "  ".join(f"w{w}: {v:.3f}" for w, v in by_window.items())
        print(f"{label:14s} M-LMD % IOD  {row}")
    figures["best_to_mean_face"] = {
        w: round(min(v[w] for k, v in figures["mlmd"].items()
                     if k not in ("mean_face", "truth shape")) / mean_face[w], 4)
        for w in args.windows if w in mean_face
    }  # fmt: skip
    figures["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
