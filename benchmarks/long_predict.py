"""Long recordings: ``wav2kp predict`` on 1, 10 and 60 minutes of speech, side by side in one
run: wall time, real-time factor and peak memory of each whole command (the sketch video with
the recording's sound included).

    python benchmarks/long_predict.py [--minutes 1 10 60] [--rate 48000] [--channels 2]

The recording is the corpus voice (espeak-ng pt-BR, one minute of sentences) repeated to each
length and written as a 16-bit WAV at ``--rate`` Hz with ``--channels`` channels (a podcast's
format by default), block by block. Each command runs in its own process, which reports its own
peak resident memory (``ru_maxrss``). Goals (issue 25): peak memory <= 600 MB at every length
(flat in the length: the streamed path) and the whole command >= 10x faster than real time. The
last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import corpus_voice  # noqa: E402 - the benchmark folder's own helper

GOAL_MB, GOAL_SPEED = 600.0, 10.0

#: run one predict in this process and report its peak memory (kB on Linux) on the last line
CHILD = (
    "import resource, sys; from wav2kp import cli; rc = cli.main(sys.argv[1:]); "
    "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
)


def write_long_wav(path: Path, minute: np.ndarray, minutes: float, rate: int, channels: int):
    """``minute`` (16 kHz mono) resampled to ``rate``, repeated for ``minutes``, as 16-bit PCM
    with ``channels`` channels (the others a little quieter), written block by block."""
    from scipy.signal import resample_poly

    block = resample_poly(minute, rate, 16000).astype(np.float32)
    gains = np.array([1.0] + [0.7] * (channels - 1), np.float32)
    pcm = (np.clip(block[:, None] * gains, -1, 1) * 32767).astype("<i2")
    n = int(minutes * 60 * rate)
    data = n * channels * 2
    with open(path, "wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt ")
        fh.write(
            struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
        )
        fh.write(b"data" + struct.pack("<I", data))
        left = n
        while left > 0:
            part = pcm[: min(left, len(pcm))]
            fh.write(part.tobytes())
            left -= len(part)


def run_predict(wav: Path, out: Path) -> dict:
    cmd = [sys.executable, "-c", CHILD, "predict", str(wav), "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"predict failed on {wav}:\n{done.stderr[-3000:]}")
    kb = int(done.stdout.strip().splitlines()[-1].split()[1])
    model = next((line for line in done.stdout.splitlines() if line.startswith("model:")), "")
    return {"wall_s": round(wall, 1), "peak_mb": round(kb / 1024, 1), "model": model}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--channels", type=int, default=2)
    args = ap.parse_args()
    minute = corpus_voice(60.0)
    out = {"rate": args.rate, "channels": args.channels, "cores": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="wav2kp-long-") as tmp:
        for minutes in args.minutes:
            wav = Path(tmp) / f"speech_{minutes:g}min.wav"
            write_long_wav(wav, minute, minutes, args.rate, args.channels)
            got = run_predict(wav, Path(tmp) / f"out_{minutes:g}")
            video = Path(tmp) / f"out_{minutes:g}" / "sketch.mp4"
            got |= {
                "minutes": minutes,
                "x_real_time": round(60 * minutes / got["wall_s"], 2),
                "video_mb": round(video.stat().st_size / 2**20, 1),
            }
            wav.unlink()
            print(
                f"{minutes:g} min: {got['wall_s']} s ({got['x_real_time']}x real time), peak "
                f"{got['peak_mb']} MB",
                flush=True,
            )
            out["runs"].append(got)
    runs = out["runs"]
    out["goal_peak_mb"], out["goal_x_real_time"] = GOAL_MB, GOAL_SPEED
    out["meets_memory_goal"] = all(r["peak_mb"] <= GOAL_MB for r in runs)
    out["meets_speed_goal"] = all(r["x_real_time"] >= GOAL_SPEED for r in runs)
    if len(runs) > 1:  # time per audio minute, longest over shortest: 1.0 is linear
        out["time_per_minute_ratio"] = round(
            (runs[-1]["wall_s"] / runs[-1]["minutes"]) / (runs[0]["wall_s"] / runs[0]["minutes"]), 2
        )
        out["memory_ratio"] = round(runs[-1]["peak_mb"] / runs[0]["peak_mb"], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
