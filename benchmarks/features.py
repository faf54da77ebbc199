"""Benchmark: building a processed feature set (notebook 02) for a whole corpus.

    python benchmarks/features.py [--corpus DIR] [--interim DIR] [--subset full|quick]

Uses an extracted corpus (``--interim``; extracted from ``--corpus`` first if it is missing),
builds the default feature set (MFCC 40, timestamp alignment, whole face) from scratch into a
temporary folder, and reports the wall time, the size on disk, and the peak memory: resident
memory of the process before and after (``ru_maxrss``), and the peak of Python allocations
during the build (tracemalloc). The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from wav2kp import config
from wav2kp import corpus as corpora
from wav2kp.corpus import bundled
from wav2kp.extraction import landmarks
from wav2kp.features import acoustic as features
from wav2kp.features import dataset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", help="built bundled corpus (default data/raw/bundled)")
    ap.add_argument("--interim", help="its extraction output (default data/interim/bundled)")
    ap.add_argument("--subset", default="full")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    corpus_dir = Path(args.corpus) if args.corpus else config.raw_dir("bundled")
    interim = Path(args.interim) if args.interim else config.interim_dir("bundled")
    bundled.build(out_dir=corpus_dir, subset=args.subset, n_jobs=args.jobs, progress=False)
    clips = bundled.select(corpora.discover(corpus_dir), args.subset)
    landmarks.extract(clips, corpus="bench", out_dir=interim, n_jobs=args.jobs, progress=False)
    import torch  # noqa: F401  (imported before measuring, as any notebook has it)

    features.mfcc(features.np.zeros(1600, features.np.float32))  # warm the transform cache
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory(prefix="wav2kp-bench-") as tmp:
        tracemalloc.start()
        t0 = time.perf_counter()
        fs, stats = dataset.build_feature_set(clips, interim, Path(tmp) / "set", force=True)
        wall = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        n_frames = sum(len(fs.load(c)["feature_times"]) for c in fs.clips)
    print(
        json.dumps(
            {
                "benchmark": "features",
                "clips": stats["clips"],
                "mfcc_frames": n_frames,
                "valid_frames": stats["frames"],
                "build_wall_s": round(wall, 2),
                "bytes_on_disk": stats["bytes_on_disk"],
                "mb_on_disk": round(stats["bytes_on_disk"] / 2**20, 2),
                "python_alloc_peak_mb": round(peak / 2**20, 1),
                "rss_mb_before": round(rss_before, 1),
                "rss_mb_peak_after": round(rss_after, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
