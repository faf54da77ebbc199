"""Training-time audio augmentation, with the features recomputed and the targets retimed.

Models trained on one synthetic voice must hold up on real recordings, so training utterances
are perturbed *as audio* (noise, level, tempo, pitch, room, microphone colouring) and their
MFCCs recomputed on every draw; cached features would make every epoch identical.

Time stays explicit (see :mod:`wav2kp.features`). Every step but the time-stretch keeps sample
``i`` at ``i / rate`` s: resampling is zero-phase (``resample_poly``), the equaliser runs forwards
and backwards (``sosfiltfilt``), the room impulse response starts with its direct path at lag 0.
A stretch by ``r`` (output duration = input / r) moves what happened at time ``t`` to ``t / r``
(to within the WSOLA search, +-10 ms); :func:`retime` moves the targets the same way.

Order of the steps: tempo and pitch (one resampling, one WSOLA stretch), equaliser, reverb,
additive noise at an SNR relative to the active speech, gain, clipping to [-1, 1].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from wav2kp import media
from wav2kp.extraction import landmarks
from wav2kp.features import dataset
from wav2kp.features.acoustic import feature_normaliser, mfcc
from wav2kp.manifest import inputs_sha256

__all__ = [
    "AugmentConfig",
    "AugmentDraw",
    "draw",
    "apply",
    "augment",
    "time_stretch",
    "pitch_shift",
    "biquad",
    "equalize",
    "room_impulse",
    "reverb",
    "noise",
    "active_power",
    "add_noise",
    "retime",
    "AugmentedUtterances",
    "set_epochs",
]

_DECAY_60DB = 3.0 * math.log(10.0)  # ln(1000): amplitude falls 60 dB when exp(-x) reaches this


# --------------------------------------------------------------------------------------------
# Configuration and draws
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """What :func:`augment` may do to an utterance, and how often.

    Attributes:
        p: probability that an utterance is augmented at all (otherwise it is left untouched).
        snr_db: additive-noise SNR range, dB (uniform), relative to the active speech power.
        noise_p: probability of noise (given augmentation); ``pink_p``: of pink (else white).
        gain_db: level change range, dB (uniform; always drawn when augmented).
        tempo: time-stretch factor range ``r`` (uniform): output duration = input / r, pitch
            kept.
        tempo_p: probability of a time-stretch.
        pitch_semitones: pitch-shift range, semitones (uniform); duration kept.
        pitch_p: probability of a pitch shift.
        reverb_p: probability of a synthetic room: exponentially decaying noise with RT60 in
            ``rt60_s`` (uniform), direct path first, mixed with wet fraction in ``reverb_wet``.
        eq_p: probability of an equaliser of ``eq_bands`` (inclusive range) random
            peaking / low-shelf / high-shelf biquads, gains within +-``eq_gain_db``, centre
            frequencies log-uniform in ``eq_freq_hz``, peaking Q log-uniform in ``eq_q``.
        clip: clip the result to [-1, 1] (what a recorder does).
    """

    # p 0.5 and SNRs from 10 dB: measured on the full profile (tcn_emotion), p 0.9 with SNRs
    # from 5 dB cost 12.5 % test M-LMD on the bundled corpus for no gain on real videos
    p: float = 0.5
    snr_db: tuple[float, float] = (10.0, 40.0)
    noise_p: float = 0.8
    pink_p: float = 0.5
    gain_db: tuple[float, float] = (-12.0, 6.0)
    tempo: tuple[float, float] = (0.85, 1.15)
    tempo_p: float = 0.5
    pitch_semitones: tuple[float, float] = (-4.0, 4.0)
    pitch_p: float = 0.5
    reverb_p: float = 0.3
    rt60_s: tuple[float, float] = (0.15, 0.7)
    reverb_wet: tuple[float, float] = (0.2, 0.8)
    eq_p: float = 0.5
    eq_bands: tuple[int, int] = (1, 3)
    eq_gain_db: float = 9.0
    eq_freq_hz: tuple[float, float] = (100.0, 6000.0)
    eq_q: tuple[float, float] = (0.5, 2.0)
    clip: bool = True

    def __post_init__(self) -> None:
        for name in ("p", "noise_p", "pink_p", "tempo_p", "pitch_p", "reverb_p", "eq_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig: {name} is a probability, got {value!r}.")
        for name in (
            "snr_db",
            "gain_db",
            "tempo",
            "pitch_semitones",
            "rt60_s",
            "reverb_wet",
            "eq_bands",
            "eq_freq_hz",
            "eq_q",
        ):
            value = tuple(getattr(self, name))
            if len(value) != 2 or not all(math.isfinite(v) for v in value) or value[0] > value[1]:
                raise ValueError(
                    f"AugmentConfig: {name} must be a finite range (low, high) "
                    f"with low <= high, got {getattr(self, name)!r}."
                )
            object.__setattr__(self, name, value)
        checks = (
            ("tempo", self.tempo[0] > 0, "positive factors"),
            ("rt60_s", self.rt60_s[0] > 0, "positive times, s"),
            (
                "reverb_wet",
                self.reverb_wet[0] >= 0 and self.reverb_wet[1] <= 1,
                "fractions in [0, 1]",
            ),
            (
                "eq_bands",
                self.eq_bands[0] >= 1 and all(int(b) == b for b in self.eq_bands),
                "whole numbers >= 1",
            ),
            ("eq_freq_hz", self.eq_freq_hz[0] > 0, "positive frequencies, Hz"),
            ("eq_q", self.eq_q[0] > 0, "positive Q values"),
        )
        for name, ok, what in checks:
            if not ok:
                raise ValueError(
                    f"AugmentConfig: {name} must hold {what}, got {getattr(self, name)!r}."
                )
        if not (math.isfinite(self.eq_gain_db) and self.eq_gain_db >= 0):
            raise ValueError(
                f"AugmentConfig: eq_gain_db must be finite and >= 0, got {self.eq_gain_db!r}."
            )

    def as_dict(self) -> dict:
        """Plain, JSON-able parameters (ranges as lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all (``p = 0``): every utterance is served as stored."""
        return cls(p=0.0)


@dataclass(frozen=True)
class AugmentDraw:
    """One draw of :func:`draw`: the effective settings (neutral values for the steps that were
    not drawn). ``eq`` holds ``(kind, f0_hz, gain_db, q)`` per biquad."""

    applied: bool = False
    tempo: float = 1.0
    semitones: float = 0.0
    eq: tuple[tuple[str, float, float, float], ...] = ()
    rt60_s: float | None = None
    wet: float = 0.0
    noise: Literal["white", "pink"] | None = None
    snr_db: float | None = None
    gain_db: float = 0.0

    def as_dict(self) -> dict:
        """Plain, JSON-able settings."""
        return {**dataclasses.asdict(self), "eq": [list(b) for b in self.eq]}


_EQ_KINDS = ("peaking", "lowshelf", "highshelf")


def draw(rng: np.random.Generator, cfg: AugmentConfig) -> AugmentDraw:
    """The random settings of one utterance. Every value is drawn whether its step is on or not,
    in a fixed order, so changing one probability leaves the other draws as they were."""
    applied = rng.random() < cfg.p
    on = {
        k: rng.random() < getattr(cfg, f"{k}_p")
        for k in ("tempo", "pitch", "eq", "reverb", "noise")
    }
    pink = rng.random() < cfg.pink_p
    tempo = rng.uniform(*cfg.tempo)
    semitones = rng.uniform(*cfg.pitch_semitones)
    n_bands = int(rng.integers(int(cfg.eq_bands[0]), int(cfg.eq_bands[1]) + 1))
    bands = []
    for _ in range(int(cfg.eq_bands[1])):
        kind = _EQ_KINDS[int(rng.integers(len(_EQ_KINDS)))]
        f0 = math.exp(rng.uniform(math.log(cfg.eq_freq_hz[0]), math.log(cfg.eq_freq_hz[1])))
        gain = rng.uniform(-cfg.eq_gain_db, cfg.eq_gain_db)
        q = math.exp(rng.uniform(math.log(cfg.eq_q[0]), math.log(cfg.eq_q[1])))
        bands.append((kind, float(f0), float(gain), float(q)))
    rt60 = rng.uniform(*cfg.rt60_s)
    wet = rng.uniform(*cfg.reverb_wet)
    snr = rng.uniform(*cfg.snr_db)
    gain_db = rng.uniform(*cfg.gain_db)
    if not applied:
        return AugmentDraw()
    return AugmentDraw(
        applied=True,
        tempo=float(tempo) if on["tempo"] else 1.0,
        semitones=float(semitones) if on["pitch"] else 0.0,
        eq=tuple(bands[:n_bands]) if on["eq"] else (),
        rt60_s=float(rt60) if on["reverb"] else None,
        wet=float(wet) if on["reverb"] else 0.0,
        noise=("pink" if pink else "white") if on["noise"] else None,
        snr_db=float(snr) if on["noise"] else None,
        gain_db=float(gain_db),
    )


def apply(
    audio: np.ndarray, rate: int, d: AugmentDraw, rng: np.random.Generator, clip: bool = True
) -> np.ndarray:
    """``audio`` with the settings ``d`` applied (``rng`` supplies the noise and the room);
    float32, ``round(len(audio) / d.tempo)`` samples. An unapplied draw returns a float32 copy."""
    x = _mono(audio, "apply")
    if not d.applied:
        return x.astype(np.float32)
    y = x.astype(np.float64)
    if d.tempo != 1.0 or d.semitones != 0.0:
        y = _shift_and_stretch(y, rate, d.tempo, d.semitones)
    if d.eq:
        y = equalize(y, rate, d.eq)
    if d.rt60_s is not None:
        y = reverb(y, rate, d.rt60_s, d.wet, rng)
    if d.noise is not None and d.snr_db is not None:
        y = add_noise(y, rate, d.snr_db, d.noise, rng)
    y = y * 10.0 ** (d.gain_db / 20.0)
    if clip:
        y = np.clip(y, -1.0, 1.0)
    return y.astype(np.float32)


def augment(
    audio: np.ndarray, rate: int, rng: np.random.Generator, cfg: AugmentConfig | None = None
) -> tuple[np.ndarray, float]:
    """One random augmentation of a mono clip: :func:`draw` then :func:`apply`.

    Returns ``(audio_out float32, tempo_factor)``: what happened at ``t`` s in ``audio`` happens
    at ``t / tempo_factor`` s in ``audio_out`` (1.0 when no stretch was drawn). The same ``rng``
    state gives the same bits.
    """
    cfg = cfg or AugmentConfig()
    d = draw(rng, cfg)
    return apply(audio, rate, d, rng, clip=cfg.clip), d.tempo


def _mono(audio: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"{where}: audio must be mono samples (L,), got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{where}: audio must be float samples, got dtype {x.dtype}.")
    if not np.isfinite(x).all():
        raise ValueError(
            f"{where}: audio holds {int(np.count_nonzero(~np.isfinite(x)))} NaN/inf samples."
        )
    return x


# --------------------------------------------------------------------------------------------
# Tempo and pitch
# --------------------------------------------------------------------------------------------


def time_stretch(
    audio: np.ndarray,
    rate: int,
    r: float,
    length: int | None = None,
    frame_ms: float = 30.0,
    search_ms: float = 10.0,
) -> np.ndarray:
    """Time-stretch by ``r`` with the pitch kept: WSOLA (waveform-similarity overlap-add).

    Output frame ``k`` (Hann, ``frame_ms`` long, half-overlapped) is centred at ``k * hop`` and
    copied from the input around ``k * hop * r``, moved by ``delta`` within ``+-search_ms`` so
    that its waveform continues the previous frame: among the local maxima of the normalised
    cross-correlation ``c`` with that frame's natural continuation, the one maximising
    ``c - 2 (delta / search)^2`` (the best match nearest the nominal position; plain argmax
    lets the continuation drag every frame towards the edge of the search, a bias of ~7 ms on
    speech, this ~1.5 ms). Input time ``t`` lands at ``t / r`` to within the search; the offsets
    do not accumulate.

    Returns float64 of ``length`` samples (default ``round(len(audio) / r)``).
    """
    x = np.asarray(audio, dtype=np.float64)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"time_stretch: the factor r must be finite and > 0, got {r!r}.")
    n_out = int(round(len(x) / r)) if length is None else int(length)
    if n_out < 1:
        raise ValueError(f"time_stretch: {len(x)} samples stretched by {r} give no output.")
    hop = max(1, int(round(frame_ms * rate / 2000.0)))
    n = 2 * hop
    search = max(0, int(round(search_ms * rate / 1000.0)))
    penalty = 2.0 * (np.arange(-search, search + 1) / max(search, 1)) ** 2
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic Hann: sums to 1
    n_frames = -(-n_out // hop) + 2
    pad = n + search
    tail = int(math.ceil((n_frames + 1) * hop * r)) + n + search + hop + 1
    xp = np.pad(x, (pad, max(0, tail - len(x)) + pad))
    out = np.zeros((n_frames + 1) * hop + n)
    prev = None
    for k in range(n_frames):
        # frame k fills out[k*hop : k*hop + n]: output sample k*hop (its centre) <- input k*hop*r
        start = int(round(k * hop * r)) - hop + pad
        if prev is not None and search:
            template = xp[prev + hop : prev + hop + n]
            t_energy = float(np.dot(template, template))
            if t_energy > 1e-20:
                seg = xp[start - search : start + search + n]
                corr = np.correlate(seg, template, mode="valid")
                energy = np.cumsum(np.concatenate([[0.0], seg * seg]))
                ncc = corr / (np.sqrt(np.maximum(energy[n:] - energy[:-n], 0.0) * t_energy) + 1e-12)
                peak = np.ones(len(ncc), dtype=bool)
                peak[1:-1] = (ncc[1:-1] >= ncc[:-2]) & (ncc[1:-1] >= ncc[2:])
                start += int(np.argmax(np.where(peak, ncc - penalty, -np.inf))) - search
        out[k * hop : k * hop + n] += win * xp[start : start + n]
        prev = start
    return out[hop : hop + n_out]


def _pitch_ratio(semitones: float, max_den: int = 64) -> Fraction:
    """``up / down`` ~= 2 ** (-semitones / 12): resampling by it then playing at the same rate
    multiplies every frequency by ``down / up``."""
    return Fraction(2.0 ** (-semitones / 12.0)).limit_denominator(max_den)


def _shift_and_stretch(x: np.ndarray, rate: int, tempo: float, semitones: float) -> np.ndarray:
    """Pitch shift and tempo change in one resampling and one stretch: input time ``t`` lands at
    ``t / tempo``; the output has ``round(len(x) / tempo)`` samples."""
    from scipy.signal import resample_poly

    n_out = int(round(len(x) / tempo))
    ratio = _pitch_ratio(semitones) if semitones else Fraction(1)
    if ratio != 1:
        x = resample_poly(x, ratio.numerator, ratio.denominator)  # time t -> t * ratio
    return time_stretch(x, rate, float(ratio) * tempo, length=n_out)


def pitch_shift(audio: np.ndarray, rate: int, semitones: float) -> np.ndarray:
    """Shift the pitch by ``semitones`` keeping the duration (and the timing): resample by a
    rational ~= 2 ** (-semitones / 12) (``resample_poly``, zero-phase), then :func:`time_stretch`
    back. Returns float64 of ``len(audio)`` samples."""
    x = np.asarray(audio, dtype=np.float64)
    if semitones == 0:
        return x.copy()
    return _shift_and_stretch(x, rate, 1.0, semitones)


# --------------------------------------------------------------------------------------------
# Equaliser, room, noise
# --------------------------------------------------------------------------------------------


def biquad(kind: str, f0: float, gain_db: float, q: float, rate: int) -> np.ndarray:
    """One RBJ-cookbook biquad as a second-order section ``(6,)``: ``"peaking"`` (bandwidth set
    by ``q``), ``"lowshelf"`` or ``"highshelf"`` (shelf slope 1, ``q`` unused); gain in dB."""
    if not 0 < f0 < rate / 2:
        raise ValueError(f"biquad: f0 = {f0} Hz must lie in (0, {rate / 2:g}) Hz (Nyquist).")
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0 / rate
    cw, sw = math.cos(w0), math.sin(w0)
    if kind == "peaking":
        alpha = sw / (2.0 * q)
        b = [1 + alpha * a_lin, -2 * cw, 1 - alpha * a_lin]
        a = [1 + alpha / a_lin, -2 * cw, 1 - alpha / a_lin]
    elif kind in ("lowshelf", "highshelf"):
        alpha = sw / 2.0 * math.sqrt(2.0)
        s = 2.0 * math.sqrt(a_lin) * alpha
        ap, am = a_lin + 1, a_lin - 1
        if kind == "lowshelf":
            b = [a_lin * (ap - am * cw + s), 2 * a_lin * (am - ap * cw), a_lin * (ap - am * cw - s)]
            a = [ap + am * cw + s, -2 * (am + ap * cw), ap + am * cw - s]
        else:
            b = [
                a_lin * (ap + am * cw + s),
                -2 * a_lin * (am + ap * cw),
                a_lin * (ap + am * cw - s),
            ]
            a = [ap - am * cw + s, 2 * (am - ap * cw), ap - am * cw - s]
    else:
        raise ValueError(f"biquad: kind must be one of {_EQ_KINDS}, got {kind!r}.")
    return np.asarray(b + a, dtype=np.float64) / a[0]


def equalize(
    audio: np.ndarray, rate: int, bands: Sequence[tuple[str, float, float, float]]
) -> np.ndarray:
    """Apply biquads ``(kind, f0_hz, gain_db, q)`` with zero phase: each is designed with half
    its gain in dB and run forwards and backwards (``sosfiltfilt``), so the magnitude is the
    band's and nothing moves in time. Returns float64."""
    from scipy.signal import sosfiltfilt

    x = np.asarray(audio, dtype=np.float64)
    if not bands:
        return x.copy()
    sos = np.stack([biquad(k, f, g / 2.0, q, rate) for k, f, g, q in bands])
    return sosfiltfilt(sos, x)


def room_impulse(rate: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response ``(round(rt60_s * rate),)``: Gaussian noise under an
    envelope falling 60 dB in ``rt60_s``, the direct path (lag 0) as its largest tap, unit
    energy."""
    if not (math.isfinite(rt60_s) and rt60_s > 0):
        raise ValueError(f"room_impulse: rt60_s must be finite and > 0, got {rt60_s!r}.")
    n = max(2, int(round(rt60_s * rate)))
    t = np.arange(n) / rate
    h = rng.standard_normal(n) * np.exp(-_DECAY_60DB * t / rt60_s)
    h[0] = 0.0
    h[0] = 1.5 * np.max(np.abs(h))
    return h / np.sqrt(np.dot(h, h))


def reverb(
    audio: np.ndarray, rate: int, rt60_s: float, wet: float, rng: np.random.Generator
) -> np.ndarray:
    """``(1 - wet) * dry + wet * room`` where ``room`` is the audio convolved with
    :func:`room_impulse` (cut to the input length), then scaled back to the input's RMS.
    Returns float64."""
    from scipy.signal import fftconvolve

    x = np.asarray(audio, dtype=np.float64)
    if not 0.0 <= wet <= 1.0:
        raise ValueError(f"reverb: wet must be in [0, 1], got {wet!r}.")
    room = fftconvolve(x, room_impulse(rate, rt60_s, rng))[: len(x)]
    y = (1.0 - wet) * x + wet * room
    p_in, p_out = np.dot(x, x), np.dot(y, y)
    return y * math.sqrt(p_in / p_out) if p_out > 0 else y


def noise(
    n: int, color: Literal["white", "pink"], rng: np.random.Generator, rate: int = 16000
) -> np.ndarray:
    """``n`` samples of unit-power noise: ``"white"`` (flat) or ``"pink"`` (power ~ 1/f, i.e.
    -3 dB per octave; flat below 20 Hz, no DC)."""
    w = rng.standard_normal(n)
    if color == "pink":
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n, 1.0 / rate)
        spec = spec / np.sqrt(np.maximum(f, 20.0))
        spec[0] = 0.0
        w = np.fft.irfft(spec, n)
    elif color != "white":
        raise ValueError(f"noise: color must be 'white' or 'pink', got {color!r}.")
    power = np.mean(w * w)
    return w / math.sqrt(power) if power > 0 else w


def active_power(
    audio: np.ndarray, rate: int, block_ms: float = 20.0, floor_db: float = -40.0
) -> float:
    """Mean power of the active part of a clip: of the ``block_ms`` blocks whose power is within
    ``floor_db`` of the loudest block (leading and trailing silence do not dilute it)."""
    x = np.asarray(audio, dtype=np.float64)
    m = max(1, int(round(block_ms * rate / 1000.0)))
    n_blocks = max(1, len(x) // m)
    blocks = np.pad(x, (0, max(0, n_blocks * m - len(x))))[: n_blocks * m].reshape(n_blocks, m)
    p = np.mean(blocks * blocks, axis=1)
    top = float(p.max())
    if top <= 0:
        return 0.0
    return float(p[p >= top * 10.0 ** (floor_db / 10.0)].mean())


def add_noise(
    audio: np.ndarray,
    rate: int,
    snr_db: float,
    color: Literal["white", "pink"],
    rng: np.random.Generator,
) -> np.ndarray:
    """Add noise at ``snr_db`` relative to :func:`active_power` of the audio (silent audio is
    returned unchanged). Returns float64."""
    x = np.asarray(audio, dtype=np.float64)
    p = active_power(x, rate)
    if p <= 0:
        return x.copy()
    return x + noise(len(x), color, rng, rate) * math.sqrt(p / 10.0 ** (snr_db / 10.0))


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


def retime(
    targets: np.ndarray, valid: np.ndarray, times: np.ndarray, new_times: np.ndarray, tempo: float
) -> tuple[np.ndarray, np.ndarray]:
    """Targets after a stretch by ``tempo``: what was at ``t`` is now at ``t / tempo``, so the
    target at new time ``t'`` is the original interpolated (linearly) at ``t' * tempo``.

    Args:
        targets: ``(N, D)`` at ``times`` (``(N,)`` s, increasing); ``valid`` ``(N,)`` bool.
        new_times: ``(M,)`` s, the new frame times.

    Returns:
        ``(targets (M, D) float32, valid (M,) bool)``: valid where ``t' * tempo`` lies within
        ``times`` and both neighbours are valid (a neighbour of weight 0 is not needed, so a
        frame that falls on a knot needs only that knot); invalid rows are 0.
    """
    y = np.asarray(targets)
    ok = np.asarray(valid, dtype=bool)
    t = np.asarray(times, dtype=np.float64)
    tn = np.asarray(new_times, dtype=np.float64)
    if y.ndim != 2 or ok.shape != (len(y),) or t.shape != (len(y),) or len(y) == 0:
        raise ValueError(
            f"retime: need targets (N, D), valid (N,) and times (N,) with N >= 1, "
            f"got {y.shape}, {ok.shape} and {t.shape}."
        )
    if tn.ndim != 1:
        raise ValueError(f"retime: new_times must be 1-D, got shape {tn.shape}.")
    if len(t) > 1 and not (np.diff(t) > 0).all():
        raise ValueError("retime: times must be strictly increasing.")
    if not (math.isfinite(tempo) and tempo > 0):
        raise ValueError(f"retime: tempo must be finite and > 0, got {tempo!r}.")
    src = tn * float(tempo)
    y64 = np.where(ok[:, None], y, 0.0).astype(np.float64)
    inside = (src >= t[0]) & (src <= t[-1])
    if len(t) == 1:
        out = np.repeat(y64, len(tn), axis=0)
        keep = inside & ok[0]
    else:
        j = np.clip(np.searchsorted(t, src, side="right") - 1, 0, len(t) - 2)
        w = np.clip((src - t[j]) / (t[j + 1] - t[j]), 0.0, 1.0)
        out = (1.0 - w)[:, None] * y64[j] + w[:, None] * y64[j + 1]
        keep = inside & ((w == 1.0) | ok[j]) & ((w == 0.0) | ok[j + 1])
    out = np.where(keep[:, None], out, 0.0).astype(np.float32)
    return out, keep


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


class AugmentedUtterances(torch.utils.data.Dataset):
    """Whole utterances of a feature set, augmented afresh on every draw.

    Item ``i`` is ``(features (M, F) float32, targets (M, D) float32, valid (M,) bool)`` tensors,
    the format of :class:`wav2kp.features.dataset.UtteranceDataset` (batch with
    :func:`wav2kp.features.dataset.collate_padded`). Its draws come from
    ``np.random.default_rng([seed, epoch, i])``: same seed and epoch, same bits. An undrawn
    item (probability ``1 - cfg.p``) is the stored item exactly; a drawn one is the clip's
    16 kHz audio augmented (:func:`augment`), its MFCCs (``fs.mfcc``), normalised (the set's
    fitted normaliser, or per utterance) and the stored targets retimed (:func:`retime`); the
    set's extra channels (``fs.mfcc.extras``), slow to compute, are the stored ones retimed.

    The raw audio, targets and stored items are read once, at construction (the audio is
    checked against the set's manifest, so a re-extracted interim folder is caught).
    ``set_epoch`` (or :func:`set_epochs`, which the training loop's
    :class:`wav2kp.training.lit.EpochCallback` calls every epoch) changes the draws; with
    DataLoader workers it reaches them only when they are started per epoch
    (``persistent_workers=False``).

    Args:
        fs: a :class:`wav2kp.features.dataset.FeatureSet` made with ``alignment="timestamps"``.
        clips: clips to serve, in order (e.g. ``fs.split_clips("train")``).
        cfg: what to do to the audio; ``AugmentConfig.off()`` serves the stored items.
        seed: seed of the draws (>= 0).
        interim_dir: the extraction stage's folder holding ``audio/<clip>.wav``; ``None`` ->
            where the set says its audio is (:meth:`~wav2kp.features.dataset.FeatureSet.
            extraction_paths`: ``data/interim/<corpus>`` beside ``fs.out_dir``, or each source's).
        normalize: ``"set"`` (``fs.normalizer``), ``"causal"``
            (:class:`wav2kp.features.CausalNormalizer`) or ``"utterance"`` (each item by its own
            per-dimension mean and std).
    """

    def __init__(
        self,
        fs: Any,
        clips: Sequence[str],
        cfg: AugmentConfig | None = None,
        seed: int = 0,
        interim_dir: str | Path | None = None,
        normalize: Literal["set", "utterance", "causal"] = "set",
    ) -> None:

        self.cfg = cfg if cfg is not None else AugmentConfig()
        if int(seed) != seed or seed < 0:
            raise ValueError(f"AugmentedUtterances: seed must be an integer >= 0, got {seed!r}.")
        self.seed, self.epoch = int(seed), 0
        alignment = fs.params.get("alignment", "timestamps")
        if alignment != "timestamps":
            raise ValueError(
                f"AugmentedUtterances: feature set {fs.out_dir} uses alignment "
                f"{alignment!r}; augmentation retimes targets by their times and "
                f"needs alignment='timestamps'."
            )
        self.normalizer = feature_normaliser(
            normalize, fs.normalizer, who="AugmentedUtterances: normalize"
        )
        self.normalize = normalize
        self.mfcc = fs.mfcc
        self.interim_dir = Path(interim_dir) if interim_dir is not None else None
        self.clips = [str(c) for c in clips]
        utts = {c: fs.load(c) for c in self.clips}
        self._stored = dataset.UtteranceDataset(utts, self.clips, self.normalizer)
        self.n_features, self.n_targets = self._stored.n_features, self._stored.n_targets
        try:
            recorded = dataset.read_manifest(fs.out_dir).get("inputs", {})
        except (FileNotFoundError, ValueError):
            recorded = {}
        self._audio: list[np.ndarray] = []
        self._extras: list[np.ndarray] = []  # stored extra channels (raw), see compute
        self._targets: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        for clip in self.clips:
            if self.interim_dir is not None:
                wav, lm = landmarks.clip_paths(self.interim_dir, clip)
            else:  # the set's own extraction (a mixed set's: each source's)
                wav, lm = fs.extraction_paths(clip)
            if not wav.is_file():
                raise FileNotFoundError(
                    f"AugmentedUtterances: clip {clip!r} has no audio at {wav}; pass the "
                    f"extraction folder that built {fs.out_dir} as interim_dir."
                )
            if clip in recorded and lm.is_file() and inputs_sha256(wav, lm) != recorded[clip]:
                raise ValueError(
                    f"AugmentedUtterances: clip {clip!r}: {wav} (or its landmarks) is not what "
                    f"feature set {fs.out_dir} was built from (manifest inputs differ); rebuild "
                    f"the feature set or point interim_dir at the right extraction."
                )
            audio, rate = media.read_wav(wav)
            if audio.ndim != 1 or rate != self.mfcc.sample_rate:
                raise ValueError(
                    f"AugmentedUtterances: {wav} has shape {audio.shape} at {rate} Hz; the "
                    f"features need mono audio at {self.mfcc.sample_rate} Hz."
                )
            utt = utts[clip]
            times = np.asarray(utt["feature_times"], dtype=np.float64)
            expected = self.mfcc.frame_times(self.mfcc.n_frames(len(audio)))
            if times.shape != expected.shape or not np.allclose(times, expected, atol=1e-9):
                raise ValueError(
                    f"AugmentedUtterances: clip {clip!r}: {wav} ({len(audio)} samples) gives "
                    f"{len(expected)} feature frames but the stored utterance has {len(times)} "
                    f"at other times; the audio is not the one the features came from."
                )
            _, targets, valid = self._stored[len(self._audio)]
            n_mfcc = self.mfcc.without_extras().n_features
            self._extras.append(np.asarray(utt["features"], np.float32)[:, n_mfcc:])
            self._audio.append(np.ascontiguousarray(audio, dtype=np.float32))
            self._targets.append(targets.numpy())
            self._valid.append(valid.numpy())
            self._times.append(times)

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        """Draw the items of epoch ``epoch`` (>= 0) from now on."""
        if int(epoch) != epoch or epoch < 0:
            raise ValueError(
                f"AugmentedUtterances.set_epoch: epoch must be an integer >= 0, got {epoch!r}."
            )
        self.epoch = int(epoch)

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(i)])

    def _index(self, i: int) -> int:
        if not 0 <= int(i) < len(self):
            raise IndexError(
                f"AugmentedUtterances: item {i} is out of range for {len(self)} clips."
            )
        return int(i)

    def drawn(self, i: int) -> AugmentDraw:
        """The settings item ``i`` gets in the current epoch."""
        return draw(self._rng(self._index(i)), self.cfg)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = self._index(i)
        rng = self._rng(i)
        d = draw(rng, self.cfg)
        if not d.applied:
            return self._stored[i]
        return self.compute(i, d, rng)

    def compute(
        self, i: int, d: AugmentDraw | None = None, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item ``i`` computed from its audio with the settings ``d`` (``None``: unaugmented, so
        the result reproduces the stored item through the whole pipeline)."""
        i = self._index(i)
        clip = self.clips[i]
        d = d if d is not None else AugmentDraw()
        rng = rng if rng is not None else self._rng(i)
        audio = apply(self._audio[i], self.mfcc.sample_rate, d, rng, clip=self.cfg.clip)

        try:
            # the MFCCs from the augmented audio; extra channels (a phone recogniser, formants:
            # seconds per clip) are the stored ones, retimed with the tempo like the targets
            feats, times = mfcc(audio, self.mfcc.without_extras())
            if self.mfcc.extras:
                ones = np.ones(len(self._times[i]), bool)
                extra, _ = retime(self._extras[i], ones, self._times[i], times, d.tempo)
                feats = np.concatenate([feats, extra], axis=1)
            feats = np.asarray(self.normalizer(feats), dtype=np.float32)
        except ValueError as err:
            raise ValueError(f"AugmentedUtterances: clip {clip!r} with {d}: {err}") from err
        if not np.isfinite(feats).all():
            raise ValueError(
                f"AugmentedUtterances: clip {clip!r} with {d}: the features hold NaN or inf."
            )
        targets, valid = retime(self._targets[i], self._valid[i], self._times[i], times, d.tempo)
        return torch.from_numpy(feats), torch.from_numpy(targets), torch.from_numpy(valid)


# --------------------------------------------------------------------------------------------
# Lightning
# --------------------------------------------------------------------------------------------


def _loaders(obj: Any) -> list[Any]:
    if obj is None:
        return []
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _loaders(v)]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _loaders(v)]
    return [obj]


def set_epochs(train_dataloader: Any, epoch: int) -> list[Any]:
    """Call ``set_epoch(epoch)`` on the dataset of every loader in ``train_dataloader`` (a
    loader, or a list / dict of them) that has one, looking through wrappers' ``.base`` (and a
    ``Subset``'s ``.dataset``). Returns the datasets it was called on."""
    done = []
    for loader in _loaders(train_dataloader):
        ds = getattr(loader, "dataset", None)
        seen = set()
        while ds is not None and id(ds) not in seen:
            seen.add(id(ds))
            if callable(getattr(ds, "set_epoch", None)):
                ds.set_epoch(int(epoch))
                done.append(ds)
                break
            ds = (
                getattr(ds, "base", None)
                if hasattr(ds, "base")
                else getattr(ds, "dataset", None)
                if isinstance(ds, torch.utils.data.Subset)
                else None
            )
    return done
