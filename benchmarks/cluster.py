"""Benchmark: the per-clip stages on joblib and on Dask with 1 and 2 workers, side by side.

    python benchmarks/cluster.py [--clips N] [--home DIR]

Builds the quick bundled corpus under ``--home`` (default: a new temporary folder; reused when
present), then extracts its clips (``force``: every clip computed) and builds the feature set
from them with each executor in turn: joblib with 2 processes, a Dask LocalCluster of 1 worker,
and of 2 workers (cluster start-up included, as a user of ``--cluster local:N`` waits for it);
then, when ``../shared/real_samples`` is there, extracts its real videos the same three ways (the
per-clip part of ``wav2kp evaluate-real``).
Prints one line per run and, last, one JSON object: wall seconds, clips/s and video frames/s per
executor, and the scaling efficiency of 2 Dask workers over 1 (``t1 / (2 * t2)``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=24, help="clips of the quick corpus (<= 24)")
    parser.add_argument("--home", help="WAV2KP_HOME to use (default: a new temporary folder)")
    args = parser.parse_args()
    os.environ["WAV2KP_HOME"] = args.home or tempfile.mkdtemp(prefix="wav2kp-bench-cluster-")

    from wav2kp import config
    from wav2kp import corpus as corpora
    from wav2kp.corpus import bundled
    from wav2kp.extraction import landmarks
    from wav2kp.features import dataset

    bundled.ensure_built("quick", progress=False)
    clips = corpora.study_clips("bundled", "quick").iloc[: args.clips]
    executors = {"joblib_2": (None, 2), "dask_1": ("local:1", 1), "dask_2": ("local:2", 2)}
    out: dict = {"benchmark": "cluster", "clips": int(len(clips)), "cores": os.cpu_count()}
    for label, (cluster, n_jobs) in executors.items():
        interim = Path(config.data_dir()) / "bench" / label / "interim"
        t0 = time.perf_counter()
        report = landmarks.extract(
            clips, corpus="bench", out_dir=interim, n_jobs=n_jobs, progress=False, force=True,
            cluster=cluster,
        )  # fmt: skip
        t_extract = time.perf_counter() - t0
        frames = int(report.qc["frames"].sum())
        t0 = time.perf_counter()
        dataset.build_feature_set(
            clips, interim, interim.parent / "processed", n_jobs=n_jobs, cluster=cluster,
            force=True,
        )  # fmt: skip
        t_features = time.perf_counter() - t0
        out[label] = {
            "extract_s": round(t_extract, 2),
            "extract_clips_per_s": round(len(clips) / t_extract, 3),
            "extract_frames_per_s": round(frames / t_extract, 1),
            "features_s": round(t_features, 2),
            "failures": int(len(report.failures)),
        }
        print(label, out[label], flush=True)
    real = Path(config.REPO_ROOT).parent / "shared" / "real_samples"
    if real.is_dir():  # evaluate-real's extraction of real videos (the per-clip part of it)
        from wav2kp import corpus as corpora_

        videos = corpora_.discover(real)
        for label, (cluster, n_jobs) in executors.items():
            t0 = time.perf_counter()
            rep = landmarks.extract(
                videos, corpus=f"bench_real_{label}", n_jobs=n_jobs, progress=False, force=True,
                cluster=cluster,
            )  # fmt: skip
            out[label]["real_extract_s"] = round(time.perf_counter() - t0, 2)
            out[label]["real_videos"] = int(len(rep.qc))
            print(label, "real videos", out[label]["real_extract_s"], "s", flush=True)
    out["extract_scaling_2_over_1"] = round(
        out["dask_1"]["extract_s"] / (2 * out["dask_2"]["extract_s"]), 3
    )
    out["extract_dask2_over_joblib2"] = round(
        out["dask_2"]["extract_s"] / out["joblib_2"]["extract_s"], 3
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
