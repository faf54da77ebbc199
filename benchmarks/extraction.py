"""Benchmark: keypoint extraction, tracked (ours) vs per-frame full-resolution detection (the
original project's way), side by side on the same clips in one run.

    python benchmarks/extraction.py [--corpus DIR] [--subset full|quick] [--jobs N] [--clips K]

Both paths run end to end (decode + keypoints + write an .npz per clip) with the same number of
parallel workers, and both are scored against the bundled corpus' ground truth (mean error over
the 68 points and over the 20 mouth points, % of the inter-ocular distance). Then peak memory is
measured for tracking a clip and the same clip made 4 and 16 times longer, in fresh processes
(frames are streamed, so it should not grow with length).
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from wav2kp import config, media, shapes
from wav2kp.corpus import bundled
from wav2kp.extraction import landmarks


def _original_clip(video: str, out: Path) -> int:
    track = landmarks.detect_every_frame(video, upsample=1)
    landmarks.save_landmarks(out / f"{Path(video).stem}.npz", track)
    return len(track.times)


def _errors(corpus_dir: Path, names: list[str], lm_dir: Path) -> tuple[float, float, float]:
    """(mean error, mouth error, share of frames with keypoints) against the ground truth."""
    errs, mouth, have, total = [], [], 0, 0
    for name in names:
        gt = bundled.load_groundtruth(bundled.gt_path(corpus_dir, name))
        lm = landmarks.load_landmarks(lm_dir / f"{name}.npz")
        e = (
            np.linalg.norm(lm.points - gt["points"], axis=2)
            / shapes.inter_ocular(gt["points"])[:, None]
            * 100
        )
        ok = np.isfinite(e).all(axis=1)
        errs.append(e[ok].mean(axis=1))
        mouth.append(e[ok][:, shapes.MOUTH].mean(axis=1))
        have += int(ok.sum())
        total += len(ok)
    return float(np.concatenate(errs).mean()), float(np.concatenate(mouth).mean()), have / total


def _peak_rss_mb(video: Path) -> float:
    """Peak resident memory (MB) of a fresh process that tracks ``video``."""
    code = (
        "import resource, sys; from wav2kp import landmarks; "
        "landmarks.track_video(sys.argv[1]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(video)], check=True, capture_output=True, text=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def frames_of(video: Path) -> int:
    return sum(1 for _ in media.iter_frames(video))


def _longer(video: Path, times: int, out: Path) -> Path:
    """The same clip ``times`` times over (video only), for the memory check."""
    frames = [img for _, img in media.iter_frames(video)]
    info = media.probe(video)
    media.write_video(
        out,
        (f for _ in range(times) for f in frames),
        None,
        (info["width"], info["height"]),
        info["fps"],
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--corpus", help="a built bundled corpus (default data/raw/bundled, built if missing)"
    )
    ap.add_argument("--subset", default="full")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--clips", type=int, default=0, help="use every K-th clip of the subset only (0: all)"
    )
    args = ap.parse_args()

    corpus_dir = Path(args.corpus) if args.corpus else config.raw_dir("bundled")
    bundled.build(out_dir=corpus_dir, subset=args.subset, n_jobs=args.jobs, progress=False)
    names = bundled.subset_names(args.subset)
    if args.clips:
        names = names[:: args.clips]
    paths = [str(corpus_dir / f"{n}.mp4") for n in names]
    import pandas as pd

    table = pd.DataFrame({"clip": names, "path": paths})
    with tempfile.TemporaryDirectory(prefix="wav2kp-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        report = landmarks.extract(
            table,
            corpus="bench",
            out_dir=tmp / "tracked",
            n_jobs=args.jobs,
            progress=False,
            force=True,
        )
        tracked_s = time.perf_counter() - t0
        frames = int(report.qc["frames"].sum())
        orig_dir = tmp / "original"
        orig_dir.mkdir()
        t0 = time.perf_counter()
        orig_frames = sum(
            Parallel(n_jobs=args.jobs)(delayed(_original_clip)(p, orig_dir) for p in paths)
        )
        original_s = time.perf_counter() - t0
        assert orig_frames == frames, (orig_frames, frames)
        t_err, t_mouth, t_have = _errors(corpus_dir, names, tmp / "tracked" / "landmarks")
        o_err, o_mouth, o_have = _errors(corpus_dir, names, orig_dir)

        short = Path(paths[0])
        rss = {1: _peak_rss_mb(short)}
        for times in (4, 16):
            rss[times] = _peak_rss_mb(_longer(short, times, tmp / f"long{times}.mp4"))

    result = {
        "benchmark": "extraction",
        "clips": len(names),
        "frames": frames,
        "jobs": args.jobs,
        "failed": len(report.failures),
        "tracked_fps": round(frames / tracked_s, 1),
        "original_fps": round(frames / original_s, 1),
        "speedup": round(original_s / tracked_s, 2),
        "tracked_error_pct_iod": round(t_err, 3),
        "original_error_pct_iod": round(o_err, 3),
        "tracked_mouth_error_pct_iod": round(t_mouth, 3),
        "original_mouth_error_pct_iod": round(o_mouth, 3),
        "tracked_frames_with_face": round(t_have, 4),
        "original_frames_with_face": round(o_have, 4),
        "clip_seconds_for_memory": round(frames_of(short) / float(media.probe(short)["fps"]), 2),
        "peak_rss_mb_1x": round(rss[1], 1),
        "peak_rss_mb_4x": round(rss[4], 1),
        "peak_rss_mb_16x": round(rss[16], 1),
        "peak_rss_ratio_16x_vs_1x": round(rss[16] / rss[1], 3),
        "this_process_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
