"""Do the keypoints follow real people? Scores that do not depend on whose face it is.

For every talking-head video of a folder: keypoints are extracted with our extractor
(:func:`wav2kp.extraction.landmarks.extract`), every model predicts from the video's own audio
(:class:`wav2kp.training.inference.Predictor`, exactly what ``wav2kp predict`` does), and the two are
compared where identity does not matter:

- ``mouth_corr``: Pearson correlation of the mouth opening (inner-lip gap / inter-ocular
  distance) over the frames where a face was found;
- ``offset_ms``: the lip-sync offset (lag maximising that correlation; positive = the
  prediction is late);
- ``area_corr``: correlation of the inner-lip area after Procrustes normalisation (head pose
  and scale removed, :func:`wav2kp.metrics.pose_free`).

For audio without video (wav, flac, mp3, ...) there is no face to compare with; the checks are
that the predicted mouth opening rises and falls with the speech (``envelope_corr``: its
correlation with the audio's RMS envelope) and rests in silences (``silence_open`` vs
``speech_open``: mean opening, % of IOD, in silent and in speech frames; ``silence_closed``:
the fraction of silent frames whose opening is within 2 % IOD of the model's rest).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from wav2kp import config, media, metrics
from wav2kp import corpus as corpora
from wav2kp.extraction import landmarks
from wav2kp.features import acoustic as feats
from wav2kp.training import inference

#: How far :func:`wav2kp.metrics.lipsync_offset` searches for the offset, either way (ms).
OFFSET_SEARCH_MS = 300.0
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac"}
REAL_METRICS = ("mouth_corr", "offset_ms", "area_corr")


def _predict_at(predictor, audio: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Normalised keypoints ``(T, 68, 2)`` at the given frame times (a recording shorter than
    the model's context goes through :meth:`Predictor.predict_audio`, which pads it)."""

    past, future = predictor.context_s
    if len(audio) / inference.RATE < past + future + predictor.fs.mfcc.fft_size / inference.RATE:
        pred = predictor.predict_audio(audio)
        return feats.align_to_times(pred.normalised, pred.times, times)
    pts, t = predictor.targets(audio)
    return feats.align_to_times(pts, t, times)


def at_search_edge(offset_ms: float, fps: float) -> bool:
    """Whether a lip-sync offset found by :func:`wav2kp.metrics.lipsync_offset` (searching
    :data:`OFFSET_SEARCH_MS` either way, in whole frames) is an end of its search: the
    correlation has no peak inside it, so the offset says nothing."""
    max_lag = max(1, int(round(OFFSET_SEARCH_MS * fps / 1000.0)))
    return bool(np.isfinite(offset_ms) and abs(offset_ms) >= 1000.0 * max_lag / fps - 1e-6)


def score_video(
    predictor,
    audio: np.ndarray,
    points: np.ndarray,
    found: np.ndarray,
    times: np.ndarray,
    fps: float,
) -> dict:
    """Identity-free scores of one model on one video (see the module docstring)."""
    pred = _predict_at(predictor, audio, times)
    ok = np.asarray(found, bool) & np.isfinite(points).all(axis=(1, 2))
    open_real, open_pred = metrics.opening(points), metrics.opening(pred)
    offset, _ = metrics.lipsync_offset(
        open_pred, open_real, fps, max_lag_ms=OFFSET_SEARCH_MS, masks=ok
    )
    area_real = metrics.mouth_area_series(np.where(ok[:, None, None], points, np.nan))
    area_pred = metrics.mouth_area_series(pred)
    return {
        "mouth_corr": metrics.pearson(open_pred, open_real, ok),
        "offset_ms": offset,
        # no correlation peak inside the search: the best lag is one of its ends
        "at_edge": at_search_edge(offset, fps),
        "area_corr": metrics.pearson(area_pred, area_real, ok),
        "frames": int(len(times)),
        "scored": int(ok.sum()),
        "pred_open_sd": float(np.nanstd(open_pred[ok])) * 100,
        "real_open_sd": float(np.nanstd(open_real[ok])) * 100,
        "_open_pred": open_pred,
        "_open_real": open_real,
        "_mask": ok,
    }


def envelope(
    audio: np.ndarray, times: np.ndarray, rate: int = 16000, window_s: float = 0.04
) -> np.ndarray:
    """RMS of the audio in a ``window_s`` window centred on each time."""
    x = np.asarray(audio, dtype=np.float64)
    half = int(window_s * rate / 2)
    c = np.round(np.asarray(times) * rate).astype(int)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    lo, hi = np.clip(c - half, 0, len(x)), np.clip(c + half, 0, len(x))
    return np.sqrt((csum[hi] - csum[lo]) / np.maximum(hi - lo, 1))


def score_speech_only(predictor, audio: np.ndarray, fps: float = 30000 / 1001) -> dict:
    """Checks for a recording without video (see the module docstring)."""

    pred = predictor.predict_audio(audio, fps=fps)
    times = pred.times
    open_pred = metrics.opening(pred.normalised)
    silent = metrics.silent_frames(audio, inference.RATE, times)
    rest = float(metrics.opening(predictor.rest()[None])[0])
    env = envelope(audio, times)
    speech = ~silent
    return {
        "envelope_corr": metrics.pearson(open_pred, env),
        "silence_open": float(open_pred[silent].mean() * 100) if silent.any() else math.nan,
        "speech_open": float(open_pred[speech].mean() * 100) if speech.any() else math.nan,
        "silence_closed": float(np.mean(open_pred[silent] <= rest + 0.02))
        if silent.any()
        else math.nan,
        "rest_open": rest * 100,
        "frames": int(len(times)),
        "silent_frames": int(silent.sum()),
    }


def _files(folder: Path) -> tuple[pd.DataFrame, list[Path]]:

    try:
        videos = corpora.discover(folder)
    except ValueError:  # no video in the folder
        videos = pd.DataFrame(columns=["clip", "path"])
    audio = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    return videos, audio


def evaluate_real(
    folder: str | Path | pd.DataFrame,
    runs: dict[str, str | Path],
    n_jobs: int = -1,
    progress: bool = False,
    cluster=None,
    corpus: str | None = None,
) -> dict:
    """Score every model of ``runs`` (``{label: run dir}``) on the videos and audio files of
    ``folder`` -- or on the videos of a clip table (``clip``, ``path``: some clips of a corpus,
    its held-out sentences say) extracted as ``corpus`` (``config.interim_dir(corpus)``, where
    they already are when the study extracted that corpus). Returns ``{"videos": per (file, model) DataFrame, "speech": per (file, model)
    DataFrame for audio-only files, "failures": DataFrame, "series": {(file, model): (times,
    predicted opening, real opening, mask)}}``. A file that cannot be read is a failure row;
    the others go on. ``cluster``: extract the videos on Dask (:mod:`wav2kp.parallel`)."""

    if isinstance(folder, pd.DataFrame):
        if corpus is None:
            raise ValueError("evaluate_real: a clip table needs the corpus it was extracted as.")
        videos, audio_files, name = folder, [], config.corpus_name(corpus)
    else:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of real recordings.")
        videos, audio_files = _files(folder)
        name = corpus or f"real_{config.corpus_name(folder)}"
    predictors = {label: inference.Predictor(run) for label, run in runs.items()}
    failures, rows, speech_rows, series = [], [], [], {}
    if len(videos):
        report = landmarks.extract(
            videos, corpus=name, n_jobs=n_jobs, progress=progress, cluster=cluster
        )
        for f in report.failures.itertuples():
            failures.append({"file": Path(f.path).name, "model": "*", "error": f.reason})
        interim = config.interim_dir(name)
        for clip, path in zip(videos["clip"], videos["path"]):
            wav, lm_path = landmarks.clip_paths(interim, clip)
            if not lm_path.is_file():
                continue
            lm = landmarks.load_landmarks(lm_path)
            audio, rate = media.read_wav(wav)
            for label, p in predictors.items():
                try:
                    s = score_video(
                        p,
                        audio,
                        np.asarray(lm.points, np.float64),
                        lm.found,
                        np.asarray(lm.times),
                        float(lm.fps),
                    )
                except Exception as err:  # noqa: BLE001 - one bad file never spoils the rest
                    failures.append(
                        {
                            "file": Path(path).name,
                            "model": label,
                            "error": f"{type(err).__name__}: {err}",
                        }
                    )
                    continue
                series[(Path(path).name, label)] = (
                    np.asarray(lm.times),
                    s.pop("_open_pred"),
                    s.pop("_open_real"),
                    s.pop("_mask"),
                )
                rows.append({"file": Path(path).name, "model": label, **s})
    for path in audio_files:
        try:
            audio = inference.load_speech(path)
        except inference.PredictError as err:
            failures.append({"file": path.name, "model": "*", "error": str(err)})
            continue
        for label, p in predictors.items():
            speech_rows.append({"file": path.name, "model": label, **score_speech_only(p, audio)})
    return {
        "videos": pd.DataFrame(rows),
        "speech": pd.DataFrame(speech_rows),
        "failures": pd.DataFrame(failures, columns=["file", "model", "error"]),
        "series": series,
    }


def summary(videos: pd.DataFrame) -> pd.DataFrame:
    """Mean over files per model of :data:`REAL_METRICS` (offset: mean, median and mean
    absolute; files have different frame rates, so offsets are not pooled across them), and
    ``at_edge``: files whose best lag is an end of the offset search (no peak inside it)."""
    if videos.empty:
        return pd.DataFrame()
    g = videos.groupby("model", sort=False)
    out = g[["mouth_corr", "area_corr", "offset_ms"]].mean()
    out["median_offset_ms"] = g["offset_ms"].median()
    out["abs_offset_ms"] = g["offset_ms"].apply(lambda s: s.abs().mean())
    if "at_edge" in videos:
        out["at_edge"] = g["at_edge"].sum().astype(int)
    out["files"] = g.size()
    return out


def record(result: dict, folder: str | Path) -> dict | None:
    """The real-recording section of notebook 04's record (``results.json["real"]``) from
    :func:`evaluate_real`'s ``result``: the folder, how many videos, per model the
    :func:`summary` numbers (``None`` for NaN), the audio-only checks and the failures;
    ``None`` when no video was scored."""
    videos = result["videos"]
    if not len(videos):
        return None
    return {
        "folder": str(folder),
        "files": int(videos["file"].nunique()),
        "models": {
            m: {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
            for m, row in summary(videos).to_dict("index").items()
        },
        "speech_only": result["speech"].to_dict("records"),
        "failures": result["failures"].to_dict("records"),
    }
