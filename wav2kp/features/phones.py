"""Phones recognised in any speech, and the lip articulation they imply.

A recogniser trained on thousands of real speakers transfers to a new voice far better than
features a network learned from one synthetic voice. PocketSphinx 5 ships its US-English
acoustic model and a phone language model inside its wheel (nothing is downloaded):
:func:`recognise` decodes 16 kHz audio into timed phones (``allphone`` search, 10 ms frames),
:data:`ARPABET` maps each to the espeak-style symbol whose viseme class
(:func:`wav2kp.corpus.face.viseme_of`) describes its lips, and :func:`articulation` runs the
bundled corpus's coarticulation model on them: jaw, spread, round, closure and lip-teeth contact
``(T, 5)`` at any frame times. The ``phones`` model (:mod:`wav2kp.training.models`) maps those to
keypoints.

The acoustic model is English; on other languages it still finds the vowels, closures and
pauses, less well (measured in ``docs/history.md``). Every recording gets a fresh
decoder with per-recording cepstral mean normalisation (``cmn="batch"``): a reused decoder
carries state from one utterance to the next, so the same audio would decode differently
depending on what came before. The same audio always gives the same phones. Decoding takes about 4 % of real time on
one core.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from wav2kp.corpus import face

__all__ = ["ARPABET", "RATE", "articulation", "recognise"]

RATE = 16000
#: ARPAbet phones of the recogniser -> espeak-style symbols (:func:`wav2kp.corpus.face.viseme_of`
#: knows them); SIL and the noise fillers (``+NSN+``, ``+SPN+``, ...) are pauses.
ARPABET: dict[str, str] = {
    "AA": "A", "AE": "a", "AH": "V", "AO": "O", "AW": "aU", "AY": "aI", "EH": "E", "ER": "3",
    "EY": "e", "IH": "I", "IY": "i", "OW": "o", "OY": "OI", "UH": "U", "UW": "u",
    "B": "b", "P": "p", "M": "m", "F": "f", "V": "v", "TH": "T", "DH": "D", "T": "t", "D": "d",
    "N": "n", "L": "l", "S": "s", "Z": "z", "SH": "S", "ZH": "Z", "CH": "tS", "JH": "dZ",
    "K": "k", "G": "g", "NG": "N", "HH": "h", "R": "r", "W": "w", "Y": "j",
}  # fmt: skip
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _model_dir() -> Path:
    try:
        from pocketsphinx import get_model_path
    except ImportError as err:  # pragma: no cover - pinned in the lock
        raise ImportError(
            "the phones model needs pocketsphinx (in requirements.lock; reinstall with `make`)"
        ) from err
    return Path(get_model_path()) / "en-us"


def _decoder():
    """A fresh decoder (about 0.08 s): one reused across recordings carries state from one to
    the next (the feature front end's, not only the cepstral mean), so the same audio decoded
    after another gives slightly different boundaries."""
    from pocketsphinx import Decoder

    model = _model_dir()
    return Decoder(
        hmm=str(model / "en-us"),
        allphone=str(model / "en-us-phone.lm.bin"),
        lw=2.0,
        beam=1e-20,
        pbeam=1e-20,
        cmn="batch",  # each recording normalised on its own
        loglevel="FATAL",
    )


def recognise(audio: np.ndarray) -> list[tuple[float, float, str]]:
    """Timed phones ``[(start_s, end_s, symbol)]`` of float 16 kHz mono ``audio`` (symbols of
    :data:`ARPABET`'s values; ``"_"`` for silence and noise)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"recognise: give mono audio (1-D), got shape {x.shape}.")
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    with _LOCK:
        dec = _decoder()
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        segs = [(s.word, s.start_frame, s.end_frame) for s in dec.seg()]
    return [(a / 100.0, (b + 1) / 100.0, ARPABET.get(w, "_")) for w, a, b in segs if b >= a]


def articulation(audio: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Articulatory parameters ``(T, 5)`` (:data:`wav2kp.corpus.face.PARAMS`) at ``times`` (s)
    of the phones :func:`recognise` hears in ``audio``."""
    return face.articulation(recognise(audio), np.asarray(times, dtype=np.float64))
