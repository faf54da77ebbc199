"""Prediction speed: offline real-time factor for 60 s of speech (MFCC included) and streaming
latency / real-time factor with 20 ms chunks, side by side in one run.

    python benchmarks/predict.py [--run data/models/<run>] [--seconds 60] [--chunk-ms 20]

Without --run it uses the best model of the last study (``reports/results.json``). The speech is
the corpus voice (espeak-ng pt-BR) reading sentences until ``--seconds`` are filled. The last
line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def corpus_voice(seconds: float) -> np.ndarray:
    """``seconds`` of pt-BR speech by the corpus voice at 16 kHz (sentences with 0.3 s pauses)."""
    from scipy.signal import resample_poly

    from wav2kp.corpus import speech as tts
    from wav2kp.corpus.bundled import sentences

    texts = [t for group in sentences().values() for t in group]
    parts, total, i = [], 0, 0
    while total < seconds * 16000:
        s = tts.synthesize(texts[i % len(texts)], variant="f3")
        x = resample_poly(s.audio.astype(np.float64), 160, 220).astype(np.float32)
        parts += [x, np.zeros(4800, np.float32)]
        total += len(x) + 4800
        i += 1
    return np.concatenate(parts)[: int(seconds * 16000)]


def main() -> None:
    from wav2kp.training import inference

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="run folder (default: the last study's best model)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--chunk-ms", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    predictor = inference.Predictor(args.run) if args.run else inference.Predictor.default()
    audio = corpus_voice(args.seconds)
    duration = len(audio) / inference.RATE
    predictor.predict_audio(audio[:16000])  # warm-up (transforms, threads)

    offline = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        pred = predictor.predict_audio(audio)
        offline.append(time.perf_counter() - t0)
    best = min(offline)
    print(
        f"offline: {duration:.1f} s of audio in {best * 1000:.1f} ms (best of {args.repeats}) "
        f"-> {duration / best:.0f}x faster than real time"
    )

    times, pts, streamer = inference.stream(predictor, audio, args.chunk_ms)
    same = (
        float(np.max(np.abs(pts - pred.normalised)))
        if pts.shape == pred.normalised.shape
        else float("nan")
    )
    lat = streamer.latencies_s()
    past, future = predictor.context_s
    print(
        f"streaming ({args.chunk_ms:g} ms chunks): latency mean {lat.mean() * 1000:.1f} ms, "
        f"max {lat.max() * 1000:.1f} ms (model future context {future * 1000:.0f} ms); "
        f"{duration / streamer.compute_s:.1f}x faster than real time; max difference from "
        f"offline {same:.2e}"
    )
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    print(
        json.dumps(
            {
                "model": predictor.name,
                "run": str(predictor.run_dir),
                "audio_s": duration,
                "offline_s": best,
                "offline_rtf": duration / best,
                "stream_chunk_ms": args.chunk_ms,
                "stream_latency_mean_ms": float(lat.mean() * 1000),
                "stream_latency_max_ms": float(lat.max() * 1000),
                "model_future_context_ms": future * 1000,
                "model_past_context_ms": past * 1000,
                "mfcc_lookahead_ms": predictor.fs.mfcc.fft_size / 2 / inference.RATE * 1000,
                "stream_rtf": duration / streamer.compute_s,
                "stream_max_abs_diff_vs_offline": same,
                "frames": int(len(times)),
                "cores": cores,
            }
        )
    )


if __name__ == "__main__":
    main()
