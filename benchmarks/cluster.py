"""Benchmark: the per-clip stages on joblib and on Dask with 1 and 2 workers, side by side.

    python benchmarks/cluster.py [--clips N] [--home DIR]

Builds the quick bundled corpus under ``--home`` (default: a new temporary folder; reused when
present), then extracts its clips (``force``: every clip computed) and builds the feature set
from them with each executor in turn: joblib with 2 processes, a Dask LocalCluster of 1 worker,
and of 2 workers (cluster start-up included, as a user of ``--cluster local:N`` waits for it);
then, when ``../shared/real_samples`` is there, runs ``evaluate-real`` on its videos the same
three ways with the shipped model (extraction on the executor, scoring on the client; both timed).

Then what the scale plan needs (``docs/scaling.md``):
- ``batch``: the extraction on 2 Dask workers with 4 clips per Dask task;
- ``split``: one process, the quick clips: video decoding alone, audio decoding alone, and the
  tracker (decode + dlib) — dlib's share is the difference;
- ``scheduler``: the client + scheduler's cost per task, from 2000 no-op tasks on 2 workers, one
  per Dask task and 50 per Dask task;
- ``storage``: bytes read (videos) and written (16 kHz WAV + keypoints) per video frame.

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
        frames = out["frames"] = int(report.qc["frames"].sum())
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
    if real.is_dir():  # evaluate-real: extraction on the executor, scoring on the client
        import shutil

        from wav2kp.evaluation import real as realeval

        runs = {"shipped": config.shipped_dir()}
        for label, (cluster, n_jobs) in executors.items():
            interim = config.interim_dir(f"real_{config.corpus_name(real)}")
            shutil.rmtree(interim, ignore_errors=True)  # every video extracted again
            t0 = time.perf_counter()
            res = realeval.evaluate_real(real, runs, n_jobs=n_jobs, cluster=cluster)
            out[label]["evaluate_real_s"] = round(time.perf_counter() - t0, 2)
            out[label]["real_videos"] = int(len(res["videos"]))
            print(label, "evaluate-real", out[label]["evaluate_real_s"], "s", flush=True)
        # the scoring part alone (everything extracted now, so extraction is a cache check)
        t0 = time.perf_counter()
        realeval.evaluate_real(real, runs, n_jobs=2)
        out["evaluate_real_scoring_s"] = round(time.perf_counter() - t0, 2)

    # clips batched per Dask task
    interim = Path(config.data_dir()) / "bench" / "dask_2_batch4" / "interim"
    t0 = time.perf_counter()
    landmarks.extract(
        clips, corpus="bench", out_dir=interim, progress=False, force=True, cluster="local:2",
        batch=4,
    )  # fmt: skip
    out["dask_2"]["extract_batch4_s"] = round(time.perf_counter() - t0, 2)
    print("dask_2 batch 4", out["dask_2"]["extract_batch4_s"], "s", flush=True)

    out["split"] = _split(clips)
    print("split", out["split"], flush=True)
    out["scheduler"] = _scheduler_overhead()
    print("scheduler", out["scheduler"], flush=True)
    interim = Path(config.data_dir()) / "bench" / "joblib_2" / "interim"
    read = sum(Path(p).stat().st_size for p in clips["path"])
    written = sum(f.stat().st_size for f in interim.rglob("*") if f.suffix in (".wav", ".npz"))
    frames = out["frames"] = int(out["frames"])
    out["storage"] = {
        "video_bytes_per_frame": round(read / frames),
        "interim_bytes_per_frame": round(written / frames),
    }
    out["extract_scaling_2_over_1"] = round(
        out["dask_1"]["extract_s"] / (2 * out["dask_2"]["extract_s"]), 3
    )
    out["extract_dask2_over_joblib2"] = round(
        out["dask_2"]["extract_s"] / out["joblib_2"]["extract_s"], 3
    )
    print(json.dumps(out))
    return 0


def _split(clips) -> dict:
    """One process: decode the video frames alone, the audio alone, then run the tracker
    (decode + dlib) on the same clips."""
    from wav2kp import media
    from wav2kp.extraction import landmarks

    paths = list(clips["path"])
    t0 = time.perf_counter()
    frames = sum(1 for p in paths for _ in media.iter_frames(p))
    video = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in paths:
        media.decode_audio_with_start(p, landmarks.AUDIO_RATE)
    audio = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in paths:
        landmarks.track_video(p)
    tracked = time.perf_counter() - t0
    return {
        "frames": frames,
        "video_decode_ms_per_frame": round(1000 * video / frames, 3),
        "audio_decode_ms_per_frame": round(1000 * audio / frames, 3),
        "tracker_ms_per_frame": round(1000 * tracked / frames, 3),
        "dlib_share_of_tracker": round((tracked - video) / tracked, 3),
    }


def _scheduler_overhead(n: int = 2000) -> dict:
    """Seconds per task of the Dask round trip for no-op tasks (2 workers, started first)."""
    import operator

    from wav2kp import parallel

    out = {"tasks": n}
    with parallel.cluster_client("local:2") as client:
        for batch in (1, 50):
            t0 = time.perf_counter()
            done = list(
                parallel.imap_unordered(
                    operator.neg, [(i,) for i in range(n)], cluster=client, batch=batch
                )
            )
            assert len(done) == n
            out[f"ms_per_task_batch{batch}"] = round(1000 * (time.perf_counter() - t0) / n, 3)
    return out


if __name__ == "__main__":
    sys.exit(main())
