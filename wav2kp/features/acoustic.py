"""Audio features and audio/keypoint timing: MFCCs, alignment by timestamps, context windows,
normalisation.

Time is explicit everywhere in this module. Audio is mono float32 at ``cfg.sample_rate`` whose
sample ``i`` is at ``i / sample_rate`` s; every feature frame carries its time (the centre of
its analysis window); every per-video-frame array carries its presentation timestamps. Audio
frames and video frames are paired by interpolating in *time*, never by a ratio of sequence
lengths (issue 4).

Conventions
-----------
* **Frame time = window centre.** :func:`mfcc` uses torchaudio's ``center=True`` framing: the
  signal is reflect-padded by ``n_fft // 2`` samples on both sides, so frame ``n`` is centred on
  sample ``n * hop``, i.e. at ``n * hop / sample_rate`` s, and a clip of ``L`` samples gives
  ``N = 1 + L // hop`` frames (the last one may sit up to one hop before the end of the audio).
  The window that frame ``n`` sees spans ``win_length`` samples centred on that time (a window
  shorter than ``n_fft`` is zero-padded symmetrically, which keeps the centre).
* **Context windows never slide off their frame.** The window for frame ``n`` holds frames
  ``n - n_past .. n + n_future``; frames beyond the clip are padded (edge or zero), never
  replaced by shifting the window inwards.
* **What the original project did** (reproduced here only to measure it): torchaudio's MFCC
  defaults (n_fft 400, hop 200 -> 80 frames/s, dB mels with an 80 dB floor), a window of the 40
  frames *starting* at the current one (500 ms of future-only audio), video keypoints upsampled
  x3 (29.97 -> 89.91 /s) and paired index-to-index with the 80 /s audio frames after cutting both
  to the same length. :func:`align_original` and :func:`original_drift` reproduce the pairing and
  say how far it drifts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

__all__ = [
    "MFCCConfig",
    "mfcc",
    "clip_features",
    "align_to_times",
    "to_video_times",
    "inside_mask",
    "OriginalPairing",
    "align_original",
    "original_drift",
    "Context",
    "context_frames",
    "windows",
    "window_offsets_s",
    "audio_span_s",
    "ORIGINAL_CONTEXT",
    "OBAMANET_CONTEXT",
    "DEFAULT_CONTEXT",
    "FeatureNormalizer",
]


# --------------------------------------------------------------------------------------------
# MFCC
# --------------------------------------------------------------------------------------------


def _samples(ms: float, sample_rate: int, what: str) -> int:
    """``ms`` milliseconds as a whole number of samples; raises if it is not whole."""
    exact = ms * sample_rate / 1000.0
    n = int(round(exact))
    if n < 1 or abs(exact - n) > 1e-6:
        raise ValueError(
            f"MFCCConfig: {what} = {ms} ms is {exact:g} samples at {sample_rate} Hz; it must be a "
            f"positive whole number of samples (frame times are n * hop / sample_rate), so pick "
            f"a {what} that is a multiple of {1000.0 / sample_rate:g} ms."
        )
    return n


@dataclass(frozen=True)
class MFCCConfig:
    """MFCC settings (all times in milliseconds, frequencies in Hz).

    Defaults are the study's features: 40 MFCCs from 40 mel bands over 25 ms Hann windows every
    10 ms (100 frames/s), FFT of 512 points (next power of two >= 400 samples), mel bands over
    0 Hz .. Nyquist, natural-log mels.

    Attributes:
        sample_rate: rate of the input audio, Hz (the extraction stage writes 16 kHz).
        n_mfcc: cepstral coefficients kept (DCT-II, orthonormal); <= ``n_mels``.
        n_mels: mel bands (HTK mel scale, no filter normalisation: torchaudio's defaults).
        win_ms: analysis window length (Hann), ms; must be a whole number of samples.
        hop_ms: frame step, ms; must be a whole number of samples. Frames/s = 1000 / hop_ms.
        n_fft: FFT size in samples; ``None`` -> next power of two >= the window.
        f_min, f_max: mel filterbank range, Hz; ``f_max=None`` -> ``sample_rate / 2``.
        log_mels: ``True`` (ours): ``log(mel + 1e-6)``, a per-frame function, so a frame's
            value does not depend on the rest of the clip. ``False`` (torchaudio's default, the
            original's): ``10 log10(mel)`` clamped to 80 dB below the *clip's* loudest bin,
            which makes every frame depend on the whole clip (a chunk computes differently from
            the clip) and flattens silences.
        deltas: append delta and delta-delta (torchaudio ``compute_deltas``, 5-frame regression,
            edge replicated): 3 x ``n_mfcc`` features ``[c, delta c, delta-delta c]``.
    """

    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 40
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int | None = None
    f_min: float = 0.0
    f_max: float | None = None
    log_mels: bool = True
    deltas: bool = False
    #: extra channels after the MFCCs (:data:`wav2kp.features.phonetic.EXTRAS`: ``"phones"``,
    #: ``"formants"``); they need the whole recording, so a model on them does not stream
    extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"MFCCConfig: sample_rate must be positive, got {self.sample_rate}")
        win, _ = self.win_length, self.hop_length  # validates whole samples
        if self.n_fft is not None and self.n_fft < win:
            raise ValueError(
                f"MFCCConfig: n_fft = {self.n_fft} is shorter than the window "
                f"({win} samples = {self.win_ms} ms); use n_fft >= {win} or None."
            )
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(
                f"MFCCConfig: n_mfcc = {self.n_mfcc} must be in 1..n_mels ({self.n_mels})."
            )
        from wav2kp.features import phonetic

        object.__setattr__(self, "extras", tuple(self.extras))
        unknown = [e for e in self.extras if e not in phonetic.EXTRAS]
        if unknown:
            raise ValueError(
                f"MFCCConfig: unknown extras {unknown}; known: {sorted(phonetic.EXTRAS)}."
            )
        nyquist = self.sample_rate / 2
        top = nyquist if self.f_max is None else self.f_max
        if not 0.0 <= self.f_min < top <= nyquist:
            raise ValueError(
                f"MFCCConfig: need 0 <= f_min < f_max <= {nyquist:g} Hz (Nyquist), "
                f"got f_min = {self.f_min}, f_max = {self.f_max}."
            )

    @classmethod
    def original(cls) -> MFCCConfig:
        """The original project's settings: ``torchaudio.transforms.MFCC(n_mfcc=40,
        melkwargs={"n_mels": 40})`` with everything else default, i.e. n_fft = win = 400
        samples (25 ms), hop = 200 samples (12.5 ms -> 80 frames/s), dB mels (80 dB floor)."""
        return cls(
            sample_rate=16000,
            n_mfcc=40,
            n_mels=40,
            win_ms=25.0,
            hop_ms=12.5,
            n_fft=400,
            f_min=0.0,
            f_max=None,
            log_mels=False,
            deltas=False,
        )

    @property
    def win_length(self) -> int:
        """Analysis window, samples."""
        return _samples(self.win_ms, self.sample_rate, "win_ms")

    @property
    def hop_length(self) -> int:
        """Frame step, samples."""
        return _samples(self.hop_ms, self.sample_rate, "hop_ms")

    @property
    def fft_size(self) -> int:
        """FFT size actually used, samples (``n_fft`` or the next power of two >= window)."""
        return self.n_fft if self.n_fft is not None else 1 << (self.win_length - 1).bit_length()

    @property
    def hop_s(self) -> float:
        """Frame step, seconds."""
        return self.hop_length / self.sample_rate

    @property
    def frame_rate(self) -> float:
        """Feature frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def n_features(self) -> int:
        """Features per frame: ``n_mfcc`` (``3 * n_mfcc`` with deltas), then the extras'."""
        from wav2kp.features import phonetic

        return self.n_mfcc * (3 if self.deltas else 1) + phonetic.extra_dims(self.extras)

    def without_extras(self) -> MFCCConfig:
        """The same settings without the extra channels (the MFCCs alone)."""
        return dataclasses.replace(self, extras=())

    def n_frames(self, n_samples: int) -> int:
        """Frames :func:`mfcc` makes from ``n_samples`` samples: ``1 + n_samples // hop``."""
        return 1 + int(n_samples) // self.hop_length

    def frame_times(self, n_frames: int, start: int = 0) -> np.ndarray:
        """Times of frames ``start .. n_frames-1`` (window centres), seconds, float64."""
        frames = np.arange(int(start), int(n_frames), dtype=np.float64)
        return frames * self.hop_length / self.sample_rate

    def as_dict(self) -> dict:
        """Plain, JSON-able parameters (for manifests), with the derived sizes."""
        return {
            "sample_rate": self.sample_rate,
            "n_mfcc": self.n_mfcc,
            "n_mels": self.n_mels,
            "win_ms": self.win_ms,
            "hop_ms": self.hop_ms,
            "n_fft": self.fft_size,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "f_min": self.f_min,
            "f_max": self.f_max,
            "log_mels": self.log_mels,
            "deltas": self.deltas,
            "frame_rate": self.frame_rate,
            **({"extras": list(self.extras)} if self.extras else {}),
        }


@functools.lru_cache(maxsize=8)
def _mfcc_transform(cfg: MFCCConfig):
    """The torchaudio MFCC module for ``cfg`` (built once per config: filterbank + DCT)."""
    import torchaudio

    transform = torchaudio.transforms.MFCC(
        sample_rate=cfg.sample_rate,
        n_mfcc=cfg.n_mfcc,
        dct_type=2,
        norm="ortho",
        log_mels=cfg.log_mels,
        melkwargs={
            "n_fft": cfg.fft_size,
            "win_length": cfg.win_length,
            "hop_length": cfg.hop_length,
            "f_min": cfg.f_min,
            "f_max": cfg.f_max,
            "n_mels": cfg.n_mels,
            "center": True,
            "pad_mode": "reflect",
            "power": 2.0,
            "norm": None,
            "mel_scale": "htk",
        },
    )
    return transform.eval()


def mfcc(audio: np.ndarray, cfg: MFCCConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MFCCs of one mono clip, with the time of every frame.

    Args:
        audio: mono samples ``(L,)`` at ``cfg.sample_rate`` (float32; other float dtypes are
            converted); sample ``i`` is at ``i / sample_rate`` s.
        cfg: settings; ``None`` -> ``MFCCConfig()``.

    Returns:
        ``features`` float32 ``(N, F)`` with ``N = 1 + L // hop`` and ``F = cfg.n_features``, and
        ``times`` float64 ``(N,)``: frame ``n`` is centred at ``n * hop / sample_rate`` s.

    Computed on the CPU with a transform cached per config; deterministic (same input, same
    bits).
    """
    import torch

    cfg = cfg or MFCCConfig()
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(
            f"mfcc: audio must be mono, shape (L,); got shape {x.shape} "
            f"(downmix or pick a channel first)."
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"mfcc: audio must be float samples in [-1, 1], got dtype {x.dtype}.")
    half = cfg.fft_size // 2
    if len(x) <= half:
        raise ValueError(
            f"mfcc: audio has {len(x)} samples ({len(x) / cfg.sample_rate:.4f} s); "
            f"the centred framing needs more than n_fft // 2 = {half}."
        )
    if not np.isfinite(x).all():
        raise ValueError(
            f"mfcc: audio holds {int(np.count_nonzero(~np.isfinite(x)))} "
            f"NaN/inf samples; fix the decode before computing features."
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    base = cfg.without_extras()
    with torch.inference_mode():
        out = _mfcc_transform(base)(torch.from_numpy(x))  # (n_mfcc, N)
        if cfg.deltas:
            import torchaudio.functional as AF

            d1 = AF.compute_deltas(out, win_length=5, mode="replicate")
            d2 = AF.compute_deltas(d1, win_length=5, mode="replicate")
            out = torch.cat([out, d1, d2], dim=0)
        feats = np.ascontiguousarray(out.T.numpy(), dtype=np.float32)
    n = cfg.n_frames(len(x))
    if feats.shape != (n, base.n_features):  # torchaudio changed its framing: say so loudly
        raise RuntimeError(
            f"mfcc: torchaudio returned {feats.shape}, expected "
            f"({n}, {base.n_features}) for {len(x)} samples; the frame-time "
            f"convention of this module no longer holds."
        )
    times = cfg.frame_times(n)
    if cfg.extras:
        from wav2kp.features import phonetic

        extra = phonetic.extra_features(x, times, cfg.extras)
        feats = np.ascontiguousarray(np.concatenate([feats, extra], axis=1), dtype=np.float32)
    return feats, times


def clip_features(
    audio: np.ndarray, cfg: MFCCConfig | None = None, sample_rate: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Features of one clip: :func:`mfcc`, after checking that the audio's rate (when given,
    Hz) is the config's. Returns ``(features (N, F) float32, times (N,) float64 s)``."""
    cfg = cfg or MFCCConfig()
    if sample_rate is not None and int(sample_rate) != cfg.sample_rate:
        raise ValueError(
            f"clip_features: audio is at {sample_rate} Hz but the MFCC config "
            f"expects {cfg.sample_rate} Hz; decode at {cfg.sample_rate} Hz "
            f"(media.decode_audio(..., rate={cfg.sample_rate}))."
        )
    return mfcc(audio, cfg)


# --------------------------------------------------------------------------------------------
# Alignment by time
# --------------------------------------------------------------------------------------------


def _check_times(times: np.ndarray, name: str, n: int | None = None) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or len(t) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of seconds, got shape {t.shape}")
    if n is not None and len(t) != n:
        raise ValueError(f"{name} has {len(t)} entries but the values have {n} rows")
    if not np.isfinite(t).all():
        raise ValueError(f"{name} holds NaN/inf; every frame needs a timestamp")
    if len(t) > 1 and not (np.diff(t) > 0).all():
        k = int(np.argmin(np.diff(t)))
        raise ValueError(
            f"{name} must be strictly increasing; entry {k + 1} ({t[k + 1]!r} s) "
            f"does not follow entry {k} ({t[k]!r} s)"
        )
    return t


def _as_rows(values: np.ndarray, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    v = np.asarray(values)
    if v.ndim == 0:
        raise ValueError(f"{name} must have a leading time axis, got a scalar")
    return v.reshape(len(v), -1), v.shape[1:]


def _out_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _interp_weights(times: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each target time: left knot ``j`` (``0..T-2``) and weight ``w`` in [0, 1] of knot
    ``j + 1`` (targets outside the knots get w = 0 at the first / w = 1 at the last)."""
    j = np.clip(np.searchsorted(times, target, side="right") - 1, 0, len(times) - 2)
    w = np.clip((target - times[j]) / (times[j + 1] - times[j]), 0.0, 1.0)
    return j, w


def align_to_times(
    values: np.ndarray,
    times: np.ndarray,
    target_times: np.ndarray,
    outside: Literal["hold", "nan"] = "hold",
) -> np.ndarray:
    """Resample a per-frame sequence at other times, by linear interpolation in time.

    Args:
        values: ``(T, ...)`` one row per source frame (keypoints ``(T, 68, 2)``, PCA
            coefficients ``(T, D)``, ...), any units.
        times: ``(T,)`` seconds, strictly increasing (the rows' presentation timestamps; need not
            be uniform).
        target_times: ``(N,)`` seconds, e.g. MFCC frame times.
        outside: targets before ``times[0]`` / after ``times[-1]`` take the first / last row
            (``"hold"``: a video frame is shown until the next one) or NaN (``"nan"``).

    Returns:
        ``(N, ...)`` in the values' float dtype (float64 for integer input).

    Missing rows (NaN, e.g. a face not found) are not filled here: an output is NaN exactly when
    a source row with non-zero weight is NaN, so one missing frame spoils the outputs within one
    frame period of it and nothing else (a target landing exactly on a valid frame stays valid).
    Fill gaps upstream (``landmarks.interpolate_gaps``) and carry ``found`` separately.
    """
    v, tail = _as_rows(values, "align_to_times: values")
    t = _check_times(times, "align_to_times: times", len(v))
    target = np.asarray(target_times, dtype=np.float64)
    if target.ndim != 1 or not np.isfinite(target).all():
        raise ValueError(
            "align_to_times: target_times must be a 1-D array of finite seconds, "
            f"got shape {target.shape}"
        )
    if outside not in ("hold", "nan"):
        raise ValueError(f"align_to_times: outside must be 'hold' or 'nan', got {outside!r}")
    dtype = _out_dtype(v.dtype)
    if len(t) == 1:
        out = np.repeat(v.astype(np.float64), len(target), axis=0)
    else:
        j, w = _interp_weights(t, target)
        a = v[j].astype(np.float64)
        b = v[j + 1].astype(np.float64)
        w1 = w[:, None]
        # w == 0 / w == 1 use one row alone, so a NaN neighbour with zero weight does not leak
        out = np.where(w1 == 0.0, a, np.where(w1 == 1.0, b, a + w1 * (b - a)))
    if outside == "nan":
        out[(target < t[0]) | (target > t[-1])] = np.nan
    return out.astype(dtype, copy=False).reshape((len(target),) + tail)


def inside_mask(target_times: np.ndarray, times: np.ndarray, slack_s: float = 0.0) -> np.ndarray:
    """``(N,)`` bool: which targets lie within ``[times[0] - slack_s, times[-1] + slack_s]``
    (seconds), i.e. where :func:`align_to_times` interpolates rather than holds an end."""
    target = np.asarray(target_times, dtype=np.float64)
    t = _check_times(times, "inside_mask: times")
    return (target >= t[0] - slack_s) & (target <= t[-1] + slack_s)


def to_video_times(
    pred: np.ndarray,
    audio_times: np.ndarray,
    video_times: np.ndarray,
    method: Literal["lstsq", "interp"] = "lstsq",
) -> np.ndarray:
    """Map a per-audio-frame sequence (a model's output) back to the video frame times.

    Args:
        pred: ``(N, ...)`` one row per audio frame (e.g. keypoints ``(N, 68, 2)`` in pixels).
        audio_times: ``(N,)`` seconds, strictly increasing (the feature frame times).
        video_times: ``(T,)`` seconds, strictly increasing (the clip's frame timestamps).
        method:
            ``"lstsq"`` (default): the exact inverse of :func:`align_to_times`. Finds the video
            rows whose time-interpolation best matches ``pred`` in least squares (a banded
            ``T x T`` solve), so ``to_video_times(align_to_times(v, vt, at), at, vt) == v`` up to
            rounding whenever the audio frames are denser than the video frames. For a
            prediction that is not piecewise linear it is the best piecewise-linear fit: every
            audio frame within the video's span counts (an average over ~3 frames at 100 vs
            30 /s, no aliasing), with a mild alternating ringing (ratio ~0.27 per frame) after
            a lone spike. Audio frames before the first / after the last video frame are left
            out (they would only see a held end frame). Video frames that no audio frame touches
            take plain interpolation (a 1e-9 ridge pulls towards it, which also keeps
            barely-touched end frames stable).
            ``"interp"``: plain linear interpolation of ``pred`` at the video times (ends held).
            Not an inverse: a video frame between two audio frames gets their chord, so a knot of
            a piecewise-linear signal is cut by up to (slope change) x (audio hop) / 4. For a
            prediction that is smooth at the *audio* rate it is the closer of the two pointwise
            (error <= h_audio^2 f''/8 against lstsq's ~h_video^2 f''/8): a 2 Hz unit sine gives
            0.002 against 0.017.

    Returns:
        ``(T, ...)`` in ``pred``'s float dtype.
    """
    p, tail = _as_rows(pred, "to_video_times: pred")
    at = _check_times(audio_times, "to_video_times: audio_times", len(p))
    vt = _check_times(video_times, "to_video_times: video_times")
    if method == "interp":
        return align_to_times(pred, at, vt)
    if method != "lstsq":
        raise ValueError(f"to_video_times: method must be 'lstsq' or 'interp', got {method!r}")
    if not np.isfinite(p).all():
        raise ValueError(
            "to_video_times: pred holds NaN/inf, which the least-squares inverse "
            "would spread over neighbouring frames; use method='interp'."
        )
    dtype = _out_dtype(p.dtype)
    p64 = p.astype(np.float64)
    t_n = len(vt)
    if t_n == 1:
        return p64.mean(axis=0, keepdims=True).astype(dtype).reshape((1,) + tail)
    from scipy.linalg import solveh_banded
    from scipy.sparse import csr_matrix

    # Audio frames outside the video's span only see a held end frame; fitting them would drag
    # the end frames towards wherever the prediction goes after the video stops, so they are
    # left out (the inverse stays exact: those rows repeat an end row anyway).
    at_in, p_in = at[(at >= vt[0]) & (at <= vt[-1])], p64[(at >= vt[0]) & (at <= vt[-1])]
    j, w = _interp_weights(vt, at_in)  # row n of A: (1-w) at j, w at j+1
    w0 = 1.0 - w
    diag = np.bincount(j, w0 * w0, minlength=t_n) + np.bincount(j + 1, w * w, minlength=t_n)
    off = np.bincount(j, w0 * w, minlength=t_n)[:-1]  # (k, k+1)
    rows = np.repeat(np.arange(len(at_in)), 2)
    cols = np.stack([j, j + 1], axis=1).ravel()
    a_mat = csr_matrix((np.stack([w0, w], axis=1).ravel(), (rows, cols)), shape=(len(at_in), t_n))
    ridge = 1e-9
    rhs = a_mat.T @ p_in + ridge * align_to_times(p64, at, vt)
    band = np.zeros((2, t_n))
    band[0, 1:] = off
    band[1] = diag + ridge
    out = solveh_banded(band, rhs)
    return out.astype(dtype, copy=False).reshape((t_n,) + tail)


# --------------------------------------------------------------------------------------------
# The original project's pairing (reproduced to measure it, not to use)
# --------------------------------------------------------------------------------------------


class OriginalPairing(NamedTuple):
    """Pairs kept by the original x``factor`` pairing (M of them).

    Attributes:
        targets: ``(M, ...)`` the upsampled target rows kept.
        audio_index: ``(M,)`` int, the audio frame each target row is paired with.
        video_index: ``(M,)`` float, the (fractional) source video frame each target row is
            interpolated from: upsampled row ``u`` is video frame ``u / factor``.
        target_times: ``(M,)`` seconds, the true time of each target row (interpolated from the
            video times by index), or ``None`` when no video times were given.
    """

    targets: np.ndarray
    audio_index: np.ndarray
    video_index: np.ndarray
    target_times: np.ndarray | None


def _upsample_by_index(values: np.ndarray, factor: int) -> np.ndarray:
    """``(T, D)`` -> ``(factor * (T - 1) + 1, D)``: linear interpolation by frame index."""
    t_n = len(values)
    if t_n == 1:
        return values.astype(np.float64)
    u = np.arange(factor * (t_n - 1) + 1) / factor
    j = np.minimum(u.astype(np.int64), t_n - 2)
    w = (u - j)[:, None]
    return values[j] * (1.0 - w) + values[j + 1] * w


def align_original(
    values: np.ndarray,
    n_audio_frames: int,
    factor: int = 3,
    video_times: np.ndarray | None = None,
    pairing: Literal["index", "ratio"] = "index",
) -> OriginalPairing:
    """Reproduce the original project's target/audio pairing (for measuring it).

    The video rows are upsampled ``factor`` x by linear interpolation *by index*
    (``factor * (T - 1) + 1`` rows: ``factor - 1`` new rows between each pair, none after the
    last). The original's exact upsampler is unknown; ``np.repeat`` or ``scipy.signal.resample``
    would give ``factor * T`` rows and move each row's time by less than one video frame, which
    does not change the drift this reproduces. Then:

    * ``pairing="index"`` (default; the original, and ObamaNet's ``train.py``): cut both
      sequences to the shorter length and pair upsampled row ``i`` with audio frame ``i``. With
      29.97 fps x 3 = 89.91 rows/s against 80 audio frames/s, row ``i`` is at ``i / 89.91`` s but
      its audio at ``i / 80`` s: the pairing drifts by 11.0 % of the elapsed time (33 s after
      300 s).
    * ``pairing="ratio"``: pair row ``i`` with audio frame ``floor(i * n_audio / n_up)`` (scaling
      the whole clip onto the whole clip). It drifts by at most about one audio frame plus the
      mismatch between the two streams' durations, so it is not the fault issue 4 describes;
      it is here for comparison.

    Args:
        values: ``(T, ...)`` per-video-frame targets.
        n_audio_frames: number of audio feature frames of the clip.
        factor: upsampling factor (3 in the original).
        video_times: optional ``(T,)`` seconds, to report each kept row's true time.
        pairing: ``"index"`` or ``"ratio"`` (above).
    """
    v, tail = _as_rows(values, "align_original: values")
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"align_original: factor must be a positive integer, got {factor}")
    if n_audio_frames < 1:
        raise ValueError(f"align_original: n_audio_frames must be >= 1, got {n_audio_frames}")
    factor = int(factor)
    up = _upsample_by_index(v.astype(np.float64), factor)
    n_up = len(up)
    vidx = np.arange(n_up) / factor
    if pairing == "index":
        m = min(n_up, int(n_audio_frames))
        keep = np.arange(m)
        audio_index = keep.copy()
    elif pairing == "ratio":
        keep = np.arange(n_up)
        audio_index = (keep * int(n_audio_frames)) // n_up
    else:
        raise ValueError(f"align_original: pairing must be 'index' or 'ratio', got {pairing!r}")
    target_times = None
    if video_times is not None:
        vt = _check_times(video_times, "align_original: video_times", len(v))
        target_times = np.interp(vidx[keep], np.arange(len(vt)), vt)
    targets = up[keep].astype(_out_dtype(v.dtype), copy=False).reshape((len(keep),) + tail)
    return OriginalPairing(targets, audio_index, vidx[keep], target_times)


def original_drift(
    video_times: np.ndarray,
    audio_frame_times: np.ndarray,
    factor: int = 3,
    pairing: Literal["index", "ratio"] = "index",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How far the original x``factor`` pairing puts each target from its audio.

    Args:
        video_times: ``(T,)`` seconds, the clip's video frame times.
        audio_frame_times: ``(N,)`` seconds, the audio feature frame times (the original's:
            ``MFCCConfig.original().frame_times(N)``, 80 /s).
        factor, pairing: as in :func:`align_original`.

    Returns:
        ``(pair_times_audio, pair_times_target, drift_s)``, each ``(M,)`` seconds, one entry
        per kept pair: the time of the audio frame, the true time of the target row, and
        ``drift_s = pair_times_audio - pair_times_target`` (positive: the model is shown audio
        from *later* than the face it must predict). Exact alignment has drift 0.
    """
    vt = _check_times(video_times, "original_drift: video_times")
    at = _check_times(audio_frame_times, "original_drift: audio_frame_times")
    pairs = align_original(vt, len(at), factor, video_times=vt, pairing=pairing)
    t_audio = at[pairs.audio_index]
    t_target = pairs.target_times
    return t_audio, t_target, t_audio - t_target


# --------------------------------------------------------------------------------------------
# Context windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """Audio context around a frame: ``past_ms`` before and ``future_ms`` after its time (ms of
    frame-centre offsets; the window also sees half an analysis window beyond each end, see
    :func:`audio_span_s`)."""

    past_ms: float
    future_ms: float
    description: str = ""

    def frames(self, cfg: MFCCConfig) -> tuple[int, int]:
        """``(n_past, n_future)`` frames of ``cfg``'s hop (see :func:`context_frames`)."""
        return context_frames(cfg, self.past_ms, self.future_ms)


def context_frames(cfg: MFCCConfig, past_ms: float, future_ms: float) -> tuple[int, int]:
    """Context in frames: ``(round(past_ms / hop_ms), round(future_ms / hop_ms))``, halves
    rounded up. With 10 ms hops 200 ms -> 20 frames; with 12.5 ms hops 487.5 ms -> 39."""
    if past_ms < 0 or future_ms < 0 or not (math.isfinite(past_ms) and math.isfinite(future_ms)):
        raise ValueError(
            f"context_frames: past_ms and future_ms must be finite and >= 0, got "
            f"{past_ms} and {future_ms}"
        )
    hop_ms = 1000.0 * cfg.hop_s
    return (
        int(math.floor(past_ms / hop_ms + 0.5 + 1e-9)),
        int(math.floor(future_ms / hop_ms + 0.5 + 1e-9)),
    )


#: The original project's context: the 40 frames *starting at* the current frame at 80 /s
#: (``n_past=0, n_future=39``): 500 ms of future-only audio (frame centres 0 .. 487.5 ms).
ORIGINAL_CONTEXT = Context(0.0, 487.5, "original: 40 frames from the current one, future only")
#: ObamaNet (``train.py``: ``look_back=50, time_delay=20`` at 100 frames/s): 50 frames of which
#: the target is the 31st, i.e. 300 ms past and 190 ms future (500 ms in all).
OBAMANET_CONTEXT = Context(300.0, 190.0, "ObamaNet: 50 frames, target 20 frames before the end")
#: Ours: centred, 200 ms either side (41 frames at 100 /s) -- a phoneme's worth of coarticulation
#: each way; the model, not the window, decides how much it uses.
DEFAULT_CONTEXT = Context(200.0, 200.0, "centred: 200 ms past, 200 ms future")


def windows(
    features: np.ndarray, n_past: int, n_future: int, pad: Literal["edge", "zero"] = "edge"
) -> np.ndarray:
    """Context windows for every frame, as a read-only view.

    Args:
        features: ``(N, F)`` frames (any dtype).
        n_past, n_future: frames before and after each frame (>= 0).
        pad: frames beyond the clip repeat the first / last frame (``"edge"``) or are 0
            (``"zero"``).

    Returns:
        ``(N, n_past + 1 + n_future, F)``: ``out[n, k]`` is frame ``n - n_past + k`` (padded at
        the ends). The window is never shifted to stay inside the clip, so ``out[n, n_past]`` is
        always frame ``n``. It is a strided view of one padded copy of ``features``
        (``(N + n_past + n_future) x F``), so it costs one copy however long the windows are;
        it is read-only (copy a batch before changing it).
    """
    x = np.asarray(features)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"windows: features must be (N, F) with N >= 1, got shape {x.shape}")
    if int(n_past) != n_past or int(n_future) != n_future or n_past < 0 or n_future < 0:
        raise ValueError(
            f"windows: n_past and n_future must be integers >= 0, got {n_past} and {n_future}"
        )
    n_past, n_future = int(n_past), int(n_future)
    if pad == "edge":
        padded = np.pad(x, ((n_past, n_future), (0, 0)), mode="edge")
    elif pad == "zero":
        padded = np.pad(x, ((n_past, n_future), (0, 0)), mode="constant")
    else:
        raise ValueError(f"windows: pad must be 'edge' or 'zero', got {pad!r}")
    view = np.lib.stride_tricks.sliding_window_view(padded, n_past + 1 + n_future, axis=0)
    return view.transpose(0, 2, 1)  # (N, F, W) -> (N, W, F), still a read-only view


def window_offsets_s(cfg: MFCCConfig, n_past: int, n_future: int) -> np.ndarray:
    """Time of each window position relative to the window's own frame, seconds ``(W,)``:
    ``(-n_past .. n_future) * hop_s`` (frame centres)."""
    return np.arange(-int(n_past), int(n_future) + 1, dtype=np.float64) * cfg.hop_s


def audio_span_s(cfg: MFCCConfig, n_past: int, n_future: int) -> tuple[float, float]:
    """Audio a window actually hears, relative to its frame's time, seconds ``(start, end)``:
    from half an analysis window before the first frame centre to half a window after the last.
    The original's ``(0, 39)`` at 12.5 ms hops / 25 ms windows hears ``(-0.0125, 0.5)``."""
    half = cfg.win_length / 2 / cfg.sample_rate
    return -int(n_past) * cfg.hop_s - half, int(n_future) * cfg.hop_s + half


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


class FeatureNormalizer:
    """Standardise features per dimension: ``(x - mean) / max(std, std_floor)``.

    ``mode="global"``: :meth:`fit` takes the *training* arrays only (never validation or test)
    and their pooled per-dimension mean and std are applied to every array afterwards.
    ``mode="utterance"``: every array is standardised by its own statistics (cepstral mean and
    variance normalisation per clip); :meth:`fit` is not needed (it only records nothing).

    Arrays are ``(..., F)``; statistics are over all leading axes. The std floor (default 1e-5,
    in feature units) keeps a constant dimension from dividing by ~0. Outputs are float32.
    """

    def __init__(
        self, mode: Literal["global", "utterance"] = "global", std_floor: float = 1e-5
    ) -> None:
        if mode not in ("global", "utterance"):
            raise ValueError(
                f"FeatureNormalizer: mode must be 'global' or 'utterance', got {mode!r}"
            )
        if not std_floor > 0:
            raise ValueError(f"FeatureNormalizer: std_floor must be > 0, got {std_floor}")
        self.mode = mode
        self.std_floor = float(std_floor)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.n_frames = 0

    @property
    def fitted(self) -> bool:
        """Whether global statistics are available."""
        return self.mean is not None

    def fit(self, arrays: Sequence[np.ndarray]) -> FeatureNormalizer:
        """Pool per-dimension mean and std over ``arrays`` (each ``(..., F)``; the training
        clips; a single array counts as a list of one). Float64 accumulation, merged per array
        (Chan et al.), so the order of the clips does not matter beyond rounding. Returns
        ``self``."""
        if self.mode == "utterance":
            return self
        if isinstance(arrays, np.ndarray):
            arrays = [arrays]
        n_tot, mean, m2 = 0, None, None
        for i, a in enumerate(arrays):
            x = np.asarray(a, dtype=np.float64)
            x = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
            if mean is not None and x.shape[1] != len(mean):
                raise ValueError(
                    f"FeatureNormalizer.fit: array {i} has {x.shape[1]} features, "
                    f"the ones before it had {len(mean)}"
                )
            if not np.isfinite(x).all():
                raise ValueError(f"FeatureNormalizer.fit: array {i} holds NaN/inf")
            if len(x) == 0:
                continue
            n_i, mu_i = len(x), x.mean(axis=0)
            m2_i = ((x - mu_i) ** 2).sum(axis=0)
            if mean is None:
                n_tot, mean, m2 = n_i, mu_i, m2_i
                continue
            delta = mu_i - mean
            n_new = n_tot + n_i
            mean = mean + delta * (n_i / n_new)
            m2 = m2 + m2_i + delta**2 * (n_tot * n_i / n_new)
            n_tot = n_new
        if mean is None:
            raise ValueError("FeatureNormalizer.fit: no frames given (empty list of arrays)")
        self.mean, self.std, self.n_frames = mean, np.sqrt(m2 / n_tot), int(n_tot)
        return self

    def _stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == "utterance":
            flat = x.reshape(-1, x.shape[-1])
            return flat.mean(axis=0), flat.std(axis=0)
        if self.mean is None:
            raise RuntimeError(
                "FeatureNormalizer: global mode needs fit(train_arrays) (or "
                "from_state_dict) before transform"
            )
        if x.shape[-1] != len(self.mean):
            raise ValueError(
                f"FeatureNormalizer: array has {x.shape[-1]} features, the "
                f"normaliser was fitted on {len(self.mean)}"
            )
        return self.mean, self.std

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardised copy of ``x`` ``(..., F)``, float32."""
        x64 = np.asarray(x, dtype=np.float64)
        if x64.ndim == 0 or x64.size == 0:
            raise ValueError(
                f"FeatureNormalizer.transform: need a non-empty (..., F) array, "
                f"got shape {x64.shape}"
            )
        mean, std = self._stats(x64)
        return ((x64 - mean) / np.maximum(std, self.std_floor)).astype(np.float32)

    __call__ = transform

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Undo the global standardisation (float64); utterance mode has no single inverse."""
        if self.mode == "utterance":
            raise ValueError(
                "FeatureNormalizer.inverse_transform: utterance mode uses each "
                "array's own statistics; there is nothing to invert with"
            )
        mean, std = self._stats(np.asarray(z, dtype=np.float64))
        return np.asarray(z, dtype=np.float64) * np.maximum(std, self.std_floor) + mean

    def state_dict(self) -> dict:
        """Plain, JSON-able state (lists and floats)."""
        return {
            "mode": self.mode,
            "std_floor": self.std_floor,
            "n_frames": self.n_frames,
            "mean": None if self.mean is None else [float(v) for v in self.mean],
            "std": None if self.std is None else [float(v) for v in self.std],
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> FeatureNormalizer:
        """Rebuild from :meth:`state_dict` output (e.g. after ``json.loads``)."""
        try:
            norm = cls(state["mode"], state["std_floor"])
            mean, std = state["mean"], state["std"]
        except KeyError as err:
            raise ValueError(
                f"FeatureNormalizer.from_state_dict: missing key {err}; expected "
                f"the output of state_dict()"
            ) from None
        if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
            raise ValueError(
                "FeatureNormalizer.from_state_dict: mean and std must both be "
                "absent or lists of the same length"
            )
        if mean is not None:
            norm.mean = np.asarray(mean, dtype=np.float64)
            norm.std = np.asarray(std, dtype=np.float64)
        norm.n_frames = int(state.get("n_frames", 0))
        return norm


class CausalNormalizer:
    """Running (causal) per-utterance normalisation: frame ``n`` is standardised by the mean and
    variance of frames ``0..n`` of its own utterance, blended with a prior (a fitted global
    :class:`FeatureNormalizer`) worth ``prior_frames`` frames:

    ``mean_n = (k mu + sum_{i<=n} x_i) / (k + n + 1)``, ``var_n = (k (sd^2 + mu^2) +
    sum_{i<=n} x_i^2) / (k + n + 1) - mean_n^2``.

    Like cepstral mean and variance normalisation per utterance it removes a recording's channel
    and speaker offsets, but a frame depends only on the past, so a stream computes exactly what
    the whole recording computes (:class:`wav2kp.training.inference.StreamingPredictor`)."""

    def __init__(self, prior: FeatureNormalizer, prior_frames: float = 100.0) -> None:
        if not prior.fitted:
            raise ValueError("CausalNormalizer: the prior must be a fitted global normaliser.")
        self.prior, self.k = prior, float(prior_frames)
        self.mode = "causal"
        self.std_floor = prior.std_floor

    def transform(self, x: np.ndarray, start: int = 0, sums=None) -> np.ndarray:
        """Normalise frames ``x`` of one recording. A stream that no longer keeps its first
        frames passes where ``x`` starts (``start``) and the sums of the frames before it
        (``sums = (sum x, sum x**2)``)."""
        x64 = np.asarray(x, dtype=np.float64)
        if x64.ndim != 2 or not len(x64):
            raise ValueError(
                f"CausalNormalizer: need a non-empty (N, F) array, got shape {x64.shape}"
            )
        s1, s2 = (0.0, 0.0) if sums is None else sums
        mu, sd = np.asarray(self.prior.mean), np.asarray(self.prior.std)
        n = np.arange(start + 1, start + len(x64) + 1, dtype=np.float64)[:, None] + self.k
        mean = (self.k * mu + s1 + np.cumsum(x64, axis=0)) / n
        var = (self.k * (sd**2 + mu**2) + s2 + np.cumsum(x64**2, axis=0)) / n - mean**2
        std = np.sqrt(np.maximum(var, 0.0))
        return ((x64 - mean) / np.maximum(std, self.std_floor)).astype(np.float32)

    __call__ = transform


#: The feature normalisations a model can train and predict with.
NORMALISATIONS = ("set", "utterance", "causal")


def feature_normaliser(choice: str, set_normalizer: FeatureNormalizer, who: str = "feature_norm"):
    """The normaliser a model applies to a recording's features: the feature set's training
    statistics (``"set"``), each recording's own statistics (``"utterance"``), or running
    statistics of the recording so far blended with the set's (``"causal"``, streamable).
    ``who`` names the caller in the error for any other ``choice``."""
    if choice == "set":
        return set_normalizer
    if choice == "utterance":
        return FeatureNormalizer("utterance", set_normalizer.std_floor)
    if choice == "causal":
        return CausalNormalizer(set_normalizer)
    raise ValueError(
        f"{who} must be one of {', '.join(map(repr, NORMALISATIONS))}, got {choice!r}."
    )
