"""From any speech recording to keypoints: offline and streaming prediction with a trained run.

:class:`Predictor` wraps a run (``data/models/<run>/``) and its feature set: audio -> MFCCs
(the set's settings, 16 kHz) -> the model -> normalised keypoints at the feature frames ->
keypoints at any frame rate (linear interpolation in time) -> pixels, on a blank canvas or
moved onto a face photo (:class:`wav2kp.synthesis.render.FaceRenderer`).

:class:`StreamingPredictor` consumes audio in chunks and emits each frame's keypoints as soon as
the audio it depends on has arrived. For models whose features are frame-local (our MFCCs:
log-mels, no clip-wide dB floor) and a finite context, what it emits equals the offline output
on the same audio; its latency is the model's future context plus the MFCC window's look-ahead,
one feature hop (interpolation to the frame time) and the chunk.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from wav2kp import config, media, results, shapes
from wav2kp.features import acoustic as feats
from wav2kp.training import runs

RATE = 16000
DEFAULT_FPS = Fraction(30000, 1001)
#: a recording whose peak is below this (about -80 dBFS) is silence
SILENCE_PEAK = 1e-4
#: emits a streaming predictor remembers for :meth:`StreamingPredictor.latencies_s` (a live
#: session's 20 ms chunks: the last 200 s)
EMIT_LOG = 10_000


class PredictError(ValueError):
    """A recording or a run that cannot be predicted from, with the reason."""


# ------------------------------------------------------------------------------------- audio


def load_speech(path: str | Path) -> np.ndarray:
    """The first audio stream of any file FFmpeg reads (wav, flac, mp3, m4a, ogg, mp4, ...; any
    rate, mono or stereo, int or float) as float32 mono at 16 kHz. Clear errors for a missing
    file, a file without audio, an undecodable file and a silent recording."""

    path = Path(path)
    if path.is_dir():
        raise PredictError(f"{path}: is a folder, not an audio or video file.")
    if not path.is_file():
        raise PredictError(f"{path}: no such file.")
    try:
        info = media.probe(path)
    except media.MediaError as err:
        raise PredictError(str(err)) from err
    if not info.get("has_audio"):
        raise PredictError(
            f"{path}: the file has no audio stream, so there is no speech to "
            f"predict keypoints from."
        )
    try:
        audio = media.decode_audio(path, RATE)
    except media.MediaError as err:
        raise PredictError(str(err)) from err
    if audio.size == 0:
        raise PredictError(f"{path}: the audio stream decodes to no samples.")
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:
        raise PredictError(
            f"{path}: {bad} of its {audio.size} samples are NaN or infinite: the file is damaged "
            "(or was written from a computation that failed), not audio to lip-sync."
        )
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE_PEAK:
        level = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        raise PredictError(
            f"{path}: the recording is silent (peak {level} dBFS): there is no speech to lip-sync."
        )
    return audio


# ------------------------------------------------------------------------------------- frames


def frame_times(duration_s: float, fps: Fraction | float) -> np.ndarray:
    """Frame times ``k / fps`` for every frame that starts within ``duration_s``."""
    fps = Fraction(fps).limit_denominator(100000)
    n = int(math.floor(duration_s * fps + 1e-9)) + 1
    return np.arange(n, dtype=np.float64) * float(1 / fps)


def canvas_transform(reference: np.ndarray, size: int) -> shapes.Similarity:
    """The similarity placing a normalised shape on a ``size`` px square canvas: the reference
    face's bounding box centred, inter-ocular distance 0.3 x size, upright."""
    ref = np.asarray(reference, dtype=np.float64)
    scale = 0.3 * size
    centre = (ref.min(axis=0) + ref.max(axis=0)) / 2
    return shapes.Similarity.from_params(scale, 0.0, size / 2 - scale * centre)


# ---------------------------------------------------------------------------------- predictor


@dataclass
class Prediction:
    """Keypoints predicted from one recording.

    ``times (T,)`` s at ``fps``; ``normalised (T, 68, 2)`` in the feature set's normalised face
    coordinates (unit inter-ocular distance); ``audio`` the 16 kHz input; ``padded_s`` the
    silence added on each side when the recording was shorter than the model's context (cut
    from the output again); ``info`` what produced it."""

    times: np.ndarray
    normalised: np.ndarray
    fps: Fraction
    audio: np.ndarray
    padded_s: float = 0.0
    info: dict = field(default_factory=dict)


class Predictor:
    """A trained run, ready to predict from raw audio."""

    def __init__(self, run_dir: str | Path, why: str = "named") -> None:
        run_dir = Path(run_dir)
        label = run_dir.name
        try:
            ((self.model, self.fs),) = runs.load_runs({label: run_dir}).values()
        except FileNotFoundError as err:
            raise PredictError(str(err)) from err
        self.run_dir = run_dir
        #: why this run predicts (``"named"``: the caller chose it)
        self.why = why
        #: feature frames an output frame depends on (the model's own context)
        self.past, self.future = self.model.context_frames(self.fs)
        self._rest: np.ndarray | None = None

    # -- which run
    @classmethod
    def default(cls) -> Predictor:
        """The default model the last study chose (notebook 04, :func:`wav2kp.results.
        default_run`), else the model shipped with the package (:mod:`wav2kp.training.release`);
        a clear error when there is neither. :attr:`why` says which one and why; a run
        trained outside the study is used only when named (``Predictor(run_dir)``,
        ``--model``)."""
        choice = results.default_run()
        if choice is not None:
            return cls(choice.run, why=choice.reason)
        shipped = config.shipped_dir()
        if shipped is not None:
            return cls(
                shipped, why="the model shipped with the package (no study has chosen one yet)"
            )
        raise PredictError(
            "No study has chosen a default model yet and this package ships none: run the "
            "study (`make study`) or pass --model RUN_DIR."
        )

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def context_s(self) -> tuple[float, float]:
        hop = self.fs.mfcc.hop_s
        return self.past * hop, self.future * hop

    def emotion_index(self, emotion: str | int | None) -> int | None:
        """The model's index of ``emotion`` (``None``: none given, or a model without
        emotions)."""
        return None if emotion is None else self.model.emotion_index_of(emotion)

    # -- offline
    def targets(
        self, audio: np.ndarray, emotion: str | int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(normalised keypoints (N, 68, 2) at the feature frames, their times (N,))`` of
        16 kHz audio (no padding)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        x, t = feats.clip_features(audio, self.fs.mfcc, RATE)
        index = self.emotion_index(emotion)
        digest = hashlib.sha256(audio.tobytes()).hexdigest()
        out = runs.cached(
            self.model,
            f"audio-{digest[:24]}",
            (digest, index),
            lambda: self.model.predict_from_audio(self.fs, audio, x, t, emotion=index),
        )
        return self._points(out), t

    def _points(self, targets: np.ndarray) -> np.ndarray:
        pts = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1, 2)
        if len(self.fs.point_idx) < shapes.N_POINTS:
            pts = shapes.insert_points(self.fs.reference, pts, self.fs.point_idx)
        return pts

    def predict_audio(
        self,
        audio: np.ndarray,
        fps: Fraction | float = DEFAULT_FPS,
        emotion: str | int | None = None,
    ) -> Prediction:
        """Keypoints at ``fps`` for 16 kHz mono ``audio``. A recording shorter than the
        model's context (past + future + the MFCC window) is padded with silence on both sides
        first; the padding is said in ``padded_s`` and cut from the output."""
        audio = np.asarray(audio, dtype=np.float32)
        duration = len(audio) / RATE
        past_s, future_s = self.context_s
        need = past_s + future_s + self.fs.mfcc.fft_size / RATE
        pad = 0
        if duration < need:
            pad = (
                int(math.ceil((need - duration) / 2 * RATE / self.fs.mfcc.hop_length))
                * self.fs.mfcc.hop_length
            )
            audio = np.concatenate([np.zeros(pad, np.float32), audio, np.zeros(pad, np.float32)])
        pts, t = self.targets(audio, emotion)
        out_t = frame_times(duration, fps)
        at = feats.align_to_times(pts, t, out_t + pad / RATE)
        return Prediction(
            times=out_t,
            normalised=at,
            fps=Fraction(fps).limit_denominator(100000),
            audio=audio[pad : len(audio) - pad] if pad else audio,
            padded_s=pad / RATE,
            info={
                "model": self.name,
                "run": str(self.run_dir),
                "emotion": emotion,
                "context_s": list(self.context_s),
            },
        )

    def predict_file(
        self,
        path: str | Path,
        fps: Fraction | float = DEFAULT_FPS,
        emotion: str | int | None = None,
    ) -> Prediction:
        pred = self.predict_audio(load_speech(path), fps, emotion)
        pred.info["input"] = str(path)
        return pred

    def rest(self) -> np.ndarray:
        """The model's face at rest: its mean prediction over one second of silence
        (normalised ``(68, 2)``), the origin of the motion moved onto another face."""
        if self._rest is None:
            pts, _ = self.targets(np.zeros(RATE, np.float32))
            self._rest = pts.mean(axis=0)
        return self._rest


# ---------------------------------------------------------------------------------- streaming


@contextlib.contextmanager
def _one_thread():
    """Torch on one thread for the duration: the per-chunk tensors are tiny, and a thread pool
    costs more than it gives (measured 7x slower per chunk with 2 threads on a busy 2-core
    machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StreamingPredictor:
    """Causal, chunked prediction: :meth:`push` audio as it arrives, get back the frames whose
    keypoints can now be computed; :meth:`flush` at the end.

    Exactness: feature frame ``n`` is computed once the audio up to ``n * hop + n_fft / 2`` is
    in (its analysis window is complete), from the audio of the last few windows only; the model
    runs on the features from ``past`` frames before the first frame it must emit (or from the
    start) up to the newest, and a frame is emitted once ``future`` frames after it exist. Frame
    ``k`` at ``fps`` is interpolated between the two feature frames around it, so it also waits
    for the next feature frame. Requires frame-local features (``log_mels=True``)."""

    def __init__(
        self,
        predictor: Predictor,
        fps: Fraction | float = DEFAULT_FPS,
        emotion: str | int | None = None,
    ) -> None:
        cfg = predictor.fs.mfcc
        problem = predictor.model.stream_problem(predictor.fs)
        if problem is not None:
            raise PredictError(f"{predictor.run_dir}: {problem}")
        self.p, self.cfg = predictor, cfg
        self.fps = Fraction(fps).limit_denominator(100000)
        self.emotion = emotion
        self.hop, self.half = cfg.hop_length, cfg.fft_size // 2
        self.margin = -(-self.half // self.hop) + 1  # frames spoilt by a cut's padding
        # Only what the next steps need is kept (a live session can run for hours): audio from
        # sample a0, feature frames from f0, predicted frames from p0 (absolute indices), and
        # for the running normalisation the sums of the features dropped so far.
        self.audio, self.a0 = np.zeros(0, np.float32), 0
        self.features, self.f0 = np.zeros((0, cfg.n_features), np.float32), 0
        self.points, self.p0 = np.zeros((0, shapes.N_POINTS, 2)), 0  # per feature frame
        self._s1 = np.zeros(cfg.n_features)
        self._s2 = np.zeros(cfg.n_features)
        self.next_frame = 0  # next output frame index
        # (first frame, end frame, audio seconds when out) of the latest emits: bounded, a
        # live session or an hour's recording must not grow with its length
        self.emit_log: collections.deque[tuple[int, int, float]] = collections.deque(
            maxlen=EMIT_LOG
        )
        self.compute_s = 0.0

    @property
    def n_audio(self) -> int:
        """Samples received so far."""
        return self.a0 + len(self.audio)

    @property
    def n_features(self) -> int:
        """Feature frames computed so far."""
        return self.f0 + len(self.features)

    @property
    def n_points(self) -> int:
        """Feature frames predicted so far."""
        return self.p0 + len(self.points)

    # -- features
    def _features_until(self, n_end: int, final: bool) -> None:
        """Compute feature frames ``n_features .. n_end - 1``."""
        n0 = self.n_features
        if n_end <= n0:
            return
        start_frame = max(0, n0 - self.margin)
        seg = self.audio[start_frame * self.hop - self.a0 :]
        if len(seg) <= self.half:
            return
        x, _ = feats.mfcc(seg, self.cfg)
        local0 = n0 - start_frame
        self.features = np.concatenate([self.features, x[local0 : local0 + (n_end - n0)]])

    def _normalised(self, model) -> np.ndarray:
        """The kept feature frames, normalised as the model does offline."""
        norm = model.normalizer(self.p.fs)
        if isinstance(norm, feats.CausalNormalizer):
            # running statistics from the recording's start: the dropped frames' sums carry on
            return norm.transform(self.features, start=self.f0, sums=(self._s1, self._s2))
        return np.asarray(norm(self.features))

    # -- model
    def _predict_until(self, n_end: int, final: bool) -> None:
        """Predict feature frames ``n_points .. n_end - 1`` (exact ones only)."""
        m0 = self.n_points
        if n_end <= m0:
            return
        c = max(0, m0 - self.p.past)  # absolute; the features are kept from f0 <= c
        model, emotion = self.p.model, self.p.emotion_index(self.emotion)
        if model.hparams.get("feature_norm", "set") == "causal":
            normed = self._normalised(model)
            out = model.predict_normalised(normed[c - self.f0 :], emotion)
        else:
            out = model.predict_features(self.p.fs, self.features[c - self.f0 :], emotion=emotion)
        pts = self.p._points(out)
        self.points = np.concatenate([self.points, pts[m0 - c : n_end - c]])

    def _emit(self, final: bool) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``k`` not yet emitted whose time is covered: ``k / fps`` at most the newest
        predicted feature frame's time (both interpolation neighbours known), or, at the end,
        every frame within the recording (the offline rule of :func:`frame_times`)."""
        n = self.n_points
        if n == 0:
            return np.zeros(0), np.zeros((0, shapes.N_POINTS, 2))
        t_feat = self.cfg.frame_times(n, start=self.p0)  # the kept frames only
        duration = self.n_audio / RATE
        last_t = duration if final else float(t_feat[-1])
        k_end = int(math.floor(last_t * self.fps + 1e-9)) + 1
        if final:
            k_end = len(frame_times(duration, self.fps))
        if k_end <= self.next_frame:
            return np.zeros(0), np.zeros((0, shapes.N_POINTS, 2))
        ks = np.arange(self.next_frame, k_end)
        times = ks * float(1 / self.fps)
        pts = feats.align_to_times(self.points, t_feat, times)
        self.emit_log.append((int(self.next_frame), int(k_end), duration))
        self.next_frame = k_end
        return times, pts

    def _trim(self) -> None:
        """Drop what no later step reads: audio before the next feature window, features
        before the next model input (their sums kept), frames before the next interpolation."""
        keep_a = max(0, (self.n_features - self.margin) * self.hop)
        if keep_a - self.a0 > 4 * RATE:  # trim in steps, not on every chunk
            self.audio, self.a0 = self.audio[keep_a - self.a0 :], keep_a
        keep_f = max(0, min(self.n_points - self.p.past, self.n_features - self.margin))
        if keep_f - self.f0 > 400:
            drop = np.asarray(self.features[: keep_f - self.f0], np.float64)
            self._s1 += drop.sum(axis=0)
            self._s2 += (drop**2).sum(axis=0)
            self.features, self.f0 = self.features[keep_f - self.f0 :], keep_f
        next_t = self.next_frame * float(1 / self.fps)
        t_feat = self.cfg.frame_times(self.n_points, start=self.p0)
        keep_p = self.p0 + max(0, int(np.searchsorted(t_feat, next_t)) - 2)
        if keep_p - self.p0 > 400:
            self.points, self.p0 = self.points[keep_p - self.p0 :], keep_p

    def push(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add 16 kHz samples; returns ``(times (K,), normalised keypoints (K, 68, 2))`` of the
        frames that became computable (possibly none)."""
        t0 = time.perf_counter()
        self.audio = np.concatenate([self.audio, np.asarray(chunk, np.float32).ravel()])
        n_feat = max(0, (self.n_audio - self.half) // self.hop + 1)  # complete windows
        with _one_thread():
            self._features_until(n_feat, final=False)
            self._predict_until(self.n_features - self.p.future, final=False)
        out = self._emit(final=False)
        self._trim()
        self.compute_s += time.perf_counter() - t0
        return out

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """The remaining frames, the recording's end being known."""
        t0 = time.perf_counter()
        total = self.cfg.n_frames(self.n_audio)
        with _one_thread():
            if self.n_features < total:
                start_frame = max(0, self.n_features - self.margin)
                x, _ = feats.mfcc(self.audio[start_frame * self.hop - self.a0 :], self.cfg)
                self.features = np.concatenate([self.features, x[self.n_features - start_frame :]])
            self._predict_until(self.n_features, final=True)
        out = self._emit(final=True)
        self.compute_s += time.perf_counter() - t0
        return out

    def latencies_s(self) -> np.ndarray:
        """For every emitted frame (of the latest :data:`EMIT_LOG` emits): audio time when it
        came out minus the frame's time."""
        step = float(1 / self.fps)
        parts = [when - np.arange(k0, k1) * step for k0, k1, when in self.emit_log]
        return np.concatenate(parts) if parts else np.zeros(0)


def stream(
    predictor: Predictor,
    audio: np.ndarray,
    chunk_ms: float = 20.0,
    fps: Fraction | float = DEFAULT_FPS,
    emotion: str | int | None = None,
) -> tuple[np.ndarray, np.ndarray, StreamingPredictor]:
    """Run :class:`StreamingPredictor` over ``audio`` in ``chunk_ms`` chunks; returns all
    ``(times, normalised keypoints)`` and the streamer (latencies, compute time)."""
    s = StreamingPredictor(predictor, fps, emotion)
    size = max(1, int(round(chunk_ms * RATE / 1000)))
    times, pts = [], []
    for i in range(0, len(audio), size):
        t, p = s.push(audio[i : i + size])
        times.append(t)
        pts.append(p)
    t, p = s.flush()
    times.append(t)
    pts.append(p)
    return np.concatenate(times), np.concatenate(pts), s


__all__ = [
    "Prediction",
    "PredictError",
    "Predictor",
    "StreamingPredictor",
    "stream",
    "load_speech",
    "frame_times",
    "canvas_transform",
    "DEFAULT_FPS",
    "RATE",
]
