"""Prediction speed: offline real-time factor for 60 s of speech (MFCC included) and streaming
latency / real-time factor with 20 ms chunks, for the default model and the live model side by
side in one run (with their accuracy from ``reports/results.json``'s lever table).

    python benchmarks/predict.py [--run RUN] [--live-run RUN] [--seconds 60] [--chunk-ms 20]

Without --run it uses the default model of the last study (``reports/results.json``, else the
shipped model); without --live-run the study's live model (``levers.live_model``). The speech is
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


def measure(predictor, audio: np.ndarray, chunk_ms: float, repeats: int) -> dict:
    """Offline real-time factor and streaming latency of one model on ``audio``."""
    from wav2kp.training import inference

    duration = len(audio) / inference.RATE
    predictor.predict_audio(audio[:16000])  # warm-up (transforms, threads)
    offline = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pred = predictor.predict_audio(audio)
        offline.append(time.perf_counter() - t0)
    best = min(offline)
    times, pts, streamer = inference.stream(predictor, audio, chunk_ms)
    same = (
        float(np.max(np.abs(pts - pred.normalised)))
        if pts.shape == pred.normalised.shape
        else float("nan")
    )
    lat = streamer.latencies_s()
    past, future = predictor.context_s
    print(
        f"{predictor.name} ({predictor.run_dir}): offline {duration:.1f} s of audio in "
        f"{best * 1000:.1f} ms -> {duration / best:.0f}x real time; streaming ({chunk_ms:g} ms "
        f"chunks): latency mean {lat.mean() * 1000:.1f} ms, max {lat.max() * 1000:.1f} ms "
        f"(future context {future * 1000:.0f} ms), {duration / streamer.compute_s:.1f}x real "
        f"time, max difference from offline {same:.2e}",
        flush=True,
    )
    return {
        "model": predictor.name,
        "run": str(predictor.run_dir),
        "audio_s": duration,
        "offline_s": best,
        "offline_rtf": duration / best,
        "stream_chunk_ms": chunk_ms,
        "stream_latency_mean_ms": float(lat.mean() * 1000),
        "stream_latency_max_ms": float(lat.max() * 1000),
        "model_future_context_ms": future * 1000,
        "model_past_context_ms": past * 1000,
        "mfcc_lookahead_ms": predictor.fs.mfcc.fft_size / 2 / inference.RATE * 1000,
        "stream_rtf": duration / streamer.compute_s,
        "stream_max_abs_diff_vs_offline": same,
        "frames": int(len(times)),
    }


def main() -> None:
    from wav2kp import config
    from wav2kp import results as records
    from wav2kp.training import inference

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="run folder (default: the last study's default model)")
    ap.add_argument(
        "--live-run", help="the live model's run (default: the last study's levers.live_model)"
    )
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--chunk-ms", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    results = records.study() or {}
    predictor = inference.Predictor(args.run) if args.run else inference.Predictor.default()
    audio = corpus_voice(args.seconds)
    out = {"offline_model": measure(predictor, audio, args.chunk_ms, args.repeats)}
    live = records.live_run()
    live_label = live.label if live else None
    live_run = args.live_run or (live.run if live else None)
    if live_run and (config.find_run(live_run) / "config.json").is_file():
        live = inference.Predictor(config.find_run(live_run))
        out["live_model"] = measure(live, audio, args.chunk_ms, args.repeats)
        out["live_latency_goal_ms"] = 150.0
        out["live_latency_ratio"] = (
            out["live_model"]["stream_latency_max_ms"]
            / out["offline_model"]["stream_latency_max_ms"]
        )
        rows = (results.get("levers") or {}).get("rows") or {}
        default = results.get("default_model")
        if live_label in rows and default in rows:
            d, lv = rows[default], rows[live_label]
            out["accuracy"] = {
                "default": default,
                "live": live_label,
                "test_mlmd_default": d.get("test M-LMD"),
                "test_mlmd_live": lv.get("test M-LMD"),
                "test_mlmd_live_over_default": lv["test M-LMD"] / d["test M-LMD"],
                "real_corr_default": d.get("real mouth corr"),
                "real_corr_live": lv.get("real mouth corr"),
                "profile": results.get("profile"),
                "commit": results.get("commit"),
            }
            print("accuracy (results.json):", out["accuracy"], flush=True)
    try:
        out["cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        out["cores"] = os.cpu_count()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
