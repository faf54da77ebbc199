"""Features meant to transfer across speakers and languages: extra input channels beside the MFCCs.

- ``"phones"``: the phones a multilingual recogniser hears, as one-hot *classes* of what the
  mouth does for them (:data:`PHONE_CLASSES`: lips closed, lip to teeth, rounded, open, mid or
  close vowel, tongue front, tongue back, a pause) at every frame. The recogniser is ``hama``
  (Apache-2.0; a 4.7 MB waveform-to-IPA model in its wheel, no download, its own engine, one
  thread): it emits timed IPA phones on a 20 ms grid. A phone's span runs to the next phone, so
  one longer than :data:`MAX_PHONE_S` ends there (the rest is a pause). Its output depends on
  the whole recording (it cannot stream) and it is English-centred (43 symbols heard on GRID,
  Arabic and Portuguese speech alike).
- ``"formants"``: F1, F2, F3 (Burg, kHz), voicing and intensity (dB below the recording's
  loudest frame, / 50) from Praat through ``praat-parselmouth`` (GPL-3.0: a dependency the study
  runs, not code of ours; no shipped model needs it). F1 is the classic acoustic correlate of
  the jaw's opening. Formants are 0 where the frame is more than 40 dB below the loudest (no
  formant to speak of).

:func:`extra_features` computes the channels named in ``MFCCConfig.extras`` at given frame
times; :func:`wav2kp.features.acoustic.mfcc` appends them to the MFCCs. Deterministic (same
audio, same bits).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

import numpy as np

__all__ = [
    "EXTRAS",
    "MAX_PHONE_S",
    "PHONE_CLASSES",
    "extra_dims",
    "extra_features",
    "formant_tracks",
    "phone_class",
    "phone_classes",
]

RATE = 16000
#: What the mouth does for a phone: the channels of ``"phones"``, in order.
PHONE_CLASSES = (
    "pause",
    "bilabial",
    "labiodental",
    "rounded",
    "open",
    "mid",
    "close",
    "front",
    "back",
)
#: A recognised phone lasts at most this long; the rest of its span is a pause (s).
MAX_PHONE_S = 0.25
#: Longest stretch hama reads at once (it cuts longer input at 30 s), and the overlap between
#: stretches (s).
CHUNK_S, OVERLAP_S = 20.0, 2.0
_FORMANTS = ("f1_khz", "f2_khz", "f3_khz", "voiced", "intensity")
#: Extra feature kinds and their channels.
EXTRAS = {"phones": PHONE_CLASSES, "formants": _FORMANTS}

_CLASS_OF = {
    **dict.fromkeys("pbmɓβɸʙ", "bilabial"),
    **dict.fromkeys("fvɱʋ", "labiodental"),
    **dict.fromkeys("uoɔwʊyøœɒʉɵʏɶ", "rounded"),
    **dict.fromkeys("aɑæʌɐ", "open"),
    **dict.fromkeys("eɛəɜɝɚɘɤ", "mid"),
    **dict.fromkeys("iɪɨɯjɥ", "close"),
    **dict.fromkeys("tdnszlrɹɾθðɫɬɮɖɗʈɽɻɲʃʒɕʑʂʐçʎʝ", "front"),
    **dict.fromkeys("kgɡŋhxχɣʁʀħʔqɴɦɰcɟ", "back"),
}


def phone_class(symbol: str) -> str:
    """The class (:data:`PHONE_CLASSES`) of an IPA phone: by its first letter, diacritics and
    tie bars aside (an affricate by its release: ``t͡ʃ`` is ``ʃ``, front); ``"pause"`` for
    anything that is not a phone (``<wb>``, punctuation)."""
    if symbol.startswith("<"):
        return "pause"
    base = [c for c in unicodedata.normalize("NFD", symbol) if not unicodedata.combining(c)]
    if "͡" in symbol and len(base) > 1:
        base = base[1:]
    for c in base:
        if c in _CLASS_OF:
            return _CLASS_OF[c]
    return "pause"


@functools.lru_cache(maxsize=1)
def _recogniser():
    from hama import ASRModel

    return ASRModel()


def _spans(audio: np.ndarray) -> list[tuple[float, float, str]]:
    """``[(start s, end s, phone)]`` of a recording, read in overlapping stretches."""
    model = _recogniser()
    total = len(audio) / RATE
    spans, start = [], 0.0
    while True:
        a = int(round(start * RATE))
        b = min(len(audio), a + int(CHUNK_S * RATE))
        if b - a >= RATE // 10:
            result = model.transcribe_waveform(np.ascontiguousarray(audio[a:b], np.float32), RATE)
            keep_from = start + (OVERLAP_S / 2 if a > 0 else 0.0)
            keep_to = b / RATE - (OVERLAP_S / 2 if b < len(audio) else 0.0)
            for s in model.phoneme_spans(result):
                t0, t1 = start + s.start_ms / 1000.0, start + s.end_ms / 1000.0
                if keep_from <= t0 < keep_to:
                    spans.append((t0, min(t1, total), s.phoneme))
        if b >= len(audio):
            break
        start += CHUNK_S - OVERLAP_S
    return spans


def phone_classes(audio: np.ndarray, times: np.ndarray) -> np.ndarray:
    """One-hot :data:`PHONE_CLASSES` ``(N, 9)`` float32 at ``times`` (s) of 16 kHz ``audio``."""
    times = np.asarray(times, np.float64)
    out = np.zeros((len(times), len(PHONE_CLASSES)), np.float32)
    label = np.zeros(len(times), int)  # pause
    for t0, t1, phone in _spans(np.asarray(audio, np.float32)):
        t1 = min(t1, t0 + MAX_PHONE_S)
        label[(times >= t0) & (times < t1)] = PHONE_CLASSES.index(phone_class(phone))
    out[np.arange(len(times)), label] = 1.0
    return out


def formant_tracks(audio: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``(N, 5)`` float32 at ``times``: F1, F2, F3 (kHz; 0 in frames 40 dB below the loudest),
    voicing (0/1) and intensity (dB below the loudest frame, / 50, floored at -1)."""
    import parselmouth

    times = np.asarray(times, np.float64)
    snd = parselmouth.Sound(np.asarray(audio, np.float64), sampling_frequency=RATE)
    step = 0.01
    formant = snd.to_formant_burg(time_step=step, max_number_of_formants=5, maximum_formant=5500.0)
    pitch = snd.to_pitch_ac(time_step=step, pitch_floor=75.0, pitch_ceiling=500.0)
    intensity = snd.to_intensity(minimum_pitch=100.0, time_step=step, subtract_mean=False)

    def sample(xs: np.ndarray, ys: np.ndarray, fill: float) -> np.ndarray:
        ys = np.where(np.isfinite(ys), ys, fill)
        return np.interp(times, xs, ys) if len(xs) else np.full(len(times), fill)

    fx = np.asarray(formant.xs())
    tracks = [
        sample(fx, np.array([formant.get_value_at_time(k, t) for t in fx]) / 1000.0, 0.0)
        for k in (1, 2, 3)
    ]
    f0 = pitch.selected_array["frequency"]
    voiced = sample(np.asarray(pitch.xs()), (f0 > 0).astype(np.float64), 0.0)
    level = np.asarray(intensity.values[0], np.float64)
    loud = float(np.max(level)) if level.size and np.isfinite(level).any() else 0.0
    db = sample(np.asarray(intensity.xs()), level - loud, -100.0)
    quiet = db < -40.0
    tracks = [np.where(quiet, 0.0, f) for f in tracks]
    rel = np.maximum(db / 50.0, -1.0)
    return np.stack([*tracks, voiced, rel], axis=1).astype(np.float32)


def extra_dims(extras: Sequence[str]) -> int:
    """Channels the extras add."""
    return sum(len(EXTRAS[e]) for e in extras)


def extra_features(audio: np.ndarray, times: np.ndarray, extras: Sequence[str]) -> np.ndarray:
    """The channels of ``extras`` (:data:`EXTRAS` keys, in that order) ``(N, C)`` float32 at
    ``times`` of 16 kHz ``audio``."""
    unknown = [e for e in extras if e not in EXTRAS]
    if unknown:
        raise ValueError(f"Unknown extra features {unknown}; known: {sorted(EXTRAS)}.")
    parts = []
    for e in extras:
        parts.append(phone_classes(audio, times) if e == "phones" else formant_tracks(audio, times))
    if not parts:
        return np.zeros((len(times), 0), np.float32)
    return np.concatenate(parts, axis=1)
