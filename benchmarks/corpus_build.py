"""Benchmark: building the bundled corpus, and how well dlib recovers its ground truth.

    python benchmarks/corpus_build.py [--subset full|quick] [--jobs N] [--out DIR] [--every K]

Builds the corpus from scratch into a temporary folder (or reuses --out if it is already built:
then the build time printed is the cache check), then runs dlib (frontal detector at the frame's
own scale, 68-point predictor) on every K-th frame of every clip and compares with the ground
truth: detection rate, mean point error and mouth error in % of the inter-ocular distance.
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from wav2kp import face68, media, shapes
from wav2kp.corpus import bundled


def score_clip(video: Path, gt_file: Path, every: int) -> dict:
    gt = bundled.load_groundtruth(gt_file)
    found = total = 0
    errs, mouth = [], []
    for k, (_, img) in enumerate(media.iter_frames(video)):
        if k % every:
            continue
        total += 1
        det = face68.detect_68(img, 0)
        if det is None:
            continue
        found += 1
        truth = gt["points"][k]
        e = np.linalg.norm(det - truth, axis=1) / shapes.inter_ocular(truth) * 100
        errs.append(e.mean())
        mouth.append(e[shapes.MOUTH].mean())
    return {
        "clip": video.stem,
        "frames": total,
        "found": found,
        "err_sum": float(np.sum(errs)),
        "mouth_sum": float(np.sum(mouth)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subset", default="full")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", help="build into (or reuse) this folder instead of a temporary one")
    ap.add_argument("--every", type=int, default=1, help="score every K-th frame")
    args = ap.parse_args()

    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="wav2kp-bench-")
    out = Path(args.out or tmp.name)
    t0 = time.perf_counter()
    report = bundled.build(out_dir=out, subset=args.subset, n_jobs=args.jobs, progress=False)
    build_s = time.perf_counter() - t0
    print(
        f"build: {report.n_built} built, {report.n_cached} cached, "
        f"{len(report.failures)} failed in {build_s:.1f} s",
        file=sys.stderr,
    )

    names = bundled.subset_names(args.subset)
    t1 = time.perf_counter()
    rows = Parallel(n_jobs=args.jobs)(
        delayed(score_clip)(out / f"{n}.mp4", bundled.gt_path(out, n), args.every) for n in names
    )
    score_s = time.perf_counter() - t1
    frames = sum(r["frames"] for r in rows)
    found = sum(r["found"] for r in rows)
    worst = min(rows, key=lambda r: r["found"] / max(r["frames"], 1))
    result = {
        "benchmark": "corpus_build",
        "subset": args.subset,
        "clips": len(names),
        "jobs": args.jobs,
        "built": report.n_built,
        "cached": report.n_cached,
        "failed": len(report.failures),
        "build_wall_s": round(build_s, 1),
        "frames_scored": frames,
        "every": args.every,
        "detection_rate": round(found / max(frames, 1), 4),
        "worst_clip_detection_rate": round(worst["found"] / max(worst["frames"], 1), 4),
        "mean_error_pct_iod": round(sum(r["err_sum"] for r in rows) / max(found, 1), 3),
        "mouth_error_pct_iod": round(sum(r["mouth_sum"] for r in rows) / max(found, 1), 3),
        "score_wall_s": round(score_s, 1),
    }
    if tmp is not None:
        tmp.cleanup()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
