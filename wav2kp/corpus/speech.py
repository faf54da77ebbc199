"""Brazilian-Portuguese speech synthesis with phoneme timing (libespeak-ng through ctypes).

``synthesize(text)`` speaks ``text`` with espeak-ng's ``pt-br`` voice (and a voice variant such
as ``f3``) and returns the float32 audio at espeak's native 22050 Hz together with the time span
of every phoneme, taken from espeak's phoneme events. The library and its data come from the
``espeakng-loader`` wheel, so nothing has to be installed on the system.

Determinism
    libespeak-ng keeps synthesis state in static variables (pitch flutter, wave phase, echo
    buffer, noise generator) that survive ``espeak_Terminate``, so in one loaded library the same
    text gives slightly different audio (and lengths) every time. Here every call loads a fresh
    copy of the library, initialises it, seeds its noise generator, synthesises and unloads it
    again (about 1 ms of overhead), under one process-wide lock because the library is not
    thread-safe. Same inputs therefore give bit-identical audio and identical phonemes in any
    process, whatever was synthesised before: in-process, in a joblib/loky worker, tomorrow. If
    something else in the process already holds the packaged library open (it could not be
    unloaded then), a private copy of the ``.so`` in a temporary folder is used instead. This
    relies on ``dlclose`` really unloading the library, which it does on Linux (glibc).

Phoneme symbols
    ``Phoneme.symbol`` is espeak's mnemonic without its stress mark (espeak writes ``'a`` for a
    stressed ``a`` and ``,i`` for secondary stress; the stress goes to ``Phoneme.stress``). These
    are the symbols the ``pt-br`` voice emitted for 124 varied sentences (the bundled corpus
    sentences, tongue twisters, every nasal vowel and diphthong spelling, ``lh``/``nh``/``ch``/
    ``j``/``r``/``rr``/``x`` words); they are ``PTBR_PHONEMES_SEEN``, with IPA in
    ``PTBR_PHONEME_IPA``. Notes for mapping them to visemes:

    - bilabial closure: ``p b m``. A written final ``m`` (``bom``, ``com``, ``um``, ``bem``) is
      *not* a closure: espeak says nasal vowel + ``N`` (velar nasal), as Brazilians do.
      ``m`` occurs only before a vowel, glide or ``p``/``b`` (``comprou`` = ``k o m p R 'o w``).
    - labiodental: ``f v``.
    - rounded: ``o O u U w o~ u~`` and the diphthongs ending in ``U``/``w`` (``aU eU EU iU
      &U~``); ``S Z`` (``ch``, ``j``) and ``tS dZ`` are produced with protruded lips too.
    - spread / close front: ``i e E y j ;`` and ``eI aI EI oI OI uI`` end spread. ``y`` is the
      unstressed final ``-e``/``-i`` of ``de``, ``noite`` ([ɪ]; espeak's own IPA for it prints
      ``y`` but it is not rounded). ``;`` is a short voiced palatal glide (about 40 ms) that espeak
      inserts between a stressed ``i`` and the next vowel (``dia`` = ``dZ 'i ; &``); it has no
      IPA in espeak, treat it like ``j``.
    - open jaw: ``a & &~ E O`` and diphthongs starting with ``a``. ``&`` is the reduced
      unstressed ``a`` [ɐ] (espeak's IPA output prints ``æ``).
    - tongue only (neutral lips, jaw follows the neighbours): ``t d n l s z * r R x k g N n^ s#
      @-``. ``*`` is the tap [ɾ] (``caro``), ``R`` the ``r`` after a consonant (``trem``,
      ``Brasil``), ``r`` a phrase-final ``r`` (``mar.``), ``x`` the initial / double ``r``
      (``rato``, ``carro``) [x]; ``n^`` is ``nh`` [ɲ]; ``s#`` is a phrase-final ``s``; ``@-`` a
      short epenthetic [ə] that espeak inserts after a syllable-final ``r`` (``*``) before a
      consonant (``forte`` = ``f 'O * @- tS y``, ``absurdo``).
    - pauses: ``_:`` (a clause pause; at rate 160 about 175 ms at a comma, 350 ms at a full stop,
      610 ms at a paragraph break, 8 ms at the very end) followed by ``_`` (0-60 ms, dropped
      where it has no length). ``is_pause`` knows all of espeak's pause symbols.

    The ``pt`` phoneme table has a few more vowels that did not occur (``e~ i~ oI~ I A i/ &/``);
    a caller should map an unknown symbol to a neutral viseme rather than fail.

Timing
    espeak reports each phoneme's start in whole milliseconds of audio (``audio_position``). A
    phoneme ends where the next one starts; the last one ends at the end of the audio. The last
    phoneme is always a pause (espeak closes every clause with ``_:`` ``_``), so the trailing
    silence belongs to a pause, the phonemes cover the audio from the first start to the end
    exactly, and no energy threshold has to be chosen. The first phoneme starts at 0 (vowels,
    nasals, ``l``) or after leading silence: about 12 ms before ``b d g f v s S Z``, 41-52 ms
    before ``p t k``. At rate 160 with the ``f3`` variant a sentence of 8 words lasts
    2.1-3.5 s (median 2.8 s over 25 sentences).
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "PTBR_PHONEMES_SEEN",
    "PTBR_PHONEME_IPA",
    "VOICE",
    "Phoneme",
    "Prosody",
    "Speech",
    "available_variants",
    "is_pause",
    "synthesize",
]

#: espeak-ng language voice used by default (Brazilian Portuguese).
VOICE = "pt-br"

#: Phoneme mnemonics (stress marks removed) that the ``pt-br`` voice emitted for 124 varied
#: sentences; see the module docstring for what each looks like on the lips.
PTBR_PHONEME_IPA: dict[str, str] = {
    # vowels
    "a": "a",
    "&": "ɐ",
    "E": "ɛ",
    "e": "e",
    "i": "i",
    "y": "ɪ",
    "O": "ɔ",
    "o": "o",
    "u": "u",
    "U": "ʊ",
    "@-": "ə",
    # nasal vowels
    "&~": "ɐ̃",
    "o~": "õ",
    "u~": "ũ",
    # diphthongs
    "aI": "aɪ",
    "aU": "aʊ",
    "eI": "eɪ",
    "eU": "eʊ",
    "EI": "ɛɪ",
    "EU": "ɛʊ",
    "iU": "iʊ",
    "oI": "oɪ",
    "OI": "ɔɪ",
    "uI": "uɪ",
    "&U~": "ɐ̃ʊ̃",
    # glides
    "j": "j",
    "w": "w",
    ";": "j",
    # stops and affricates
    "p": "p",
    "b": "b",
    "t": "t",
    "d": "d",
    "k": "k",
    "g": "ɡ",
    "tS": "tʃ",
    "dZ": "dʒ",
    # fricatives
    "f": "f",
    "v": "v",
    "s": "s",
    "s#": "s",
    "z": "z",
    "S": "ʃ",
    "Z": "ʒ",
    "x": "x",
    # nasals
    "m": "m",
    "n": "n",
    "n^": "ɲ",
    "N": "ŋ",
    # liquids
    "l": "l",
    "*": "ɾ",
    "r": "r",
    "R": "r",
    # pauses
    "_:": "",
    "_": "",
}
PTBR_PHONEMES_SEEN: frozenset[str] = frozenset(PTBR_PHONEME_IPA)

# espeak's pause phonemes (type phPAUSE in its phoneme tables) and "|" word-boundary marks.
_PAUSES = frozenset({"", "_", "_:", "_::", "_!", "_;_", "_^_", "_X1", "_|", "||", "|"})
# Stress marks espeak puts in front of a phoneme mnemonic: primary ', secondary , and others.
_STRESS_PREFIX = re.compile(r"^(?:'!|''|'|,,|,|%%|%|=)+")

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_ERRORS = {-1: "EE_INTERNAL_ERROR", 1: "EE_BUFFER_FULL", 2: "EE_NOT_FOUND"}
_RAND_SEED = 1


@dataclass(frozen=True)
class Prosody:
    """espeak voice parameters (absolute values, as ``espeak_SetParameter`` takes them).

    ``rate`` in words per minute (80..450; espeak's own default is 175), ``pitch`` the base pitch
    0..100 (50 = the variant's normal pitch), ``pitch_range`` 0..100 (0 = monotone, 50 =
    normal), ``volume`` 0..200 (100 = normal; above about 150 the audio may clip).
    """

    rate: int = 160
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100

    def __post_init__(self) -> None:
        for name, low, high in (
            ("rate", 80, 450),
            ("pitch", 0, 100),
            ("pitch_range", 0, 100),
            ("volume", 0, 200),
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, np.integer))
                or isinstance(value, bool)
                or not low <= value <= high
            ):
                raise ValueError(f"Prosody.{name}={value!r}: use an integer in {low}..{high}")


@dataclass(frozen=True)
class Phoneme:
    """One phoneme of synthesised speech.

    ``start`` and ``end`` in seconds from the start of the audio; ``symbol`` espeak's mnemonic
    without stress mark (``"a"``, ``"p"``, ``"S"``, pauses keep theirs: ``"_:"``); ``stress``
    2 for primary stress (espeak's ``'``), 1 for secondary (``,``), 0 otherwise.
    """

    start: float
    end: float
    symbol: str
    stress: int = 0


@dataclass(eq=False)
class Speech:
    """Synthesised speech: audio and the phonemes that make it up.

    ``audio`` float32 mono in [-1, 1], shape ``(samples,)``; ``sample_rate`` in Hz (espeak's
    native 22050); ``phonemes`` in time order, non-overlapping, each ending where the next
    starts and the last ending at the end of the audio; ``voice`` the espeak voice name used
    (``"pt-br+f3"``). Two ``Speech`` are equal when all fields are, audio bit for bit.
    """

    audio: np.ndarray
    sample_rate: int
    phonemes: list[Phoneme] = field(default_factory=list)
    text: str = ""
    voice: str = VOICE

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.audio) / self.sample_rate

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Speech):
            return NotImplemented
        return (
            self.sample_rate == other.sample_rate
            and self.text == other.text
            and self.voice == other.voice
            and self.phonemes == other.phonemes
            and self.audio.dtype == other.audio.dtype
            and np.array_equal(self.audio, other.audio)
        )


def is_pause(symbol: str) -> bool:
    """True for espeak's pause / silence symbols (``_``, ``_:``, ``_!``, ``||`` ...) and ``""``.

    A stress mark in front (as in raw espeak events) is ignored.
    """
    return _STRESS_PREFIX.sub("", symbol) in _PAUSES


def _data_path() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


@lru_cache(maxsize=1)
def _variants() -> tuple[str, ...]:
    folder = _data_path() / "voices" / "!v"
    if not folder.is_dir():
        raise RuntimeError(
            f"{folder}: espeak-ng voice variants folder missing; reinstall "
            "espeakng-loader (pip install --force-reinstall espeakng-loader)"
        )
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


def available_variants() -> list[str]:
    """Names of the espeak voice variants in the data folder, sorted (``f1``..``f5``,
    ``m1``..``m8``, ``klatt``, named ones such as ``Alicia``; 104 in espeak-ng 1.52).

    Each file's ``gender`` line says female / male for most of them.
    """
    return list(_variants())


def synthesize(
    text: str, variant: str | None = "f3", prosody: Prosody = Prosody(), voice: str = VOICE
) -> Speech:
    """Speak ``text`` with espeak-ng and return the audio and the phoneme timing.

    ``variant`` is one of ``available_variants()`` (``None`` for the plain voice); ``prosody``
    sets rate (words per minute), pitch, pitch range and volume; ``voice`` is an espeak language
    voice (default ``"pt-br"``). The result is bit-identical for identical arguments in any
    process. Raises ``ValueError`` for empty text, text without anything speakable (only
    punctuation) or an unknown variant, and ``RuntimeError`` naming the espeak call that failed
    (for example ``espeak_SetVoiceByName`` for an unknown ``voice``).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text={text!r}: give a non-empty string to speak")
    if "\0" in text:
        raise ValueError("text contains a NUL character; remove it")
    if variant is not None and variant not in _variants():
        raise ValueError(
            f"unknown espeak variant {variant!r}: use None or one of {', '.join(_variants())}"
        )
    name = voice if variant is None else f"{voice}+{variant}"
    samples, events, sample_rate = _run_espeak(text, name, prosody)

    audio = samples.astype(np.float32) / np.float32(32768.0)
    duration = len(audio) / sample_rate
    starts: list[float] = []
    symbols: list[tuple[str, int]] = []
    for ms, raw in events:
        start = min(ms / 1000.0, duration)
        if starts:
            start = max(start, starts[-1])
        prefix = _STRESS_PREFIX.match(raw)
        marks = prefix.group(0) if prefix else ""
        stress = 2 if "'" in marks else 1 if "," in marks else 0
        starts.append(start)
        symbols.append((raw[len(marks) :], stress))
    ends = starts[1:] + [duration]
    phonemes = [
        Phoneme(start, end, symbol, stress)
        for start, end, (symbol, stress) in zip(starts, ends, symbols)
        if end > start
    ]
    if all(is_pause(p.symbol) for p in phonemes):
        raise ValueError(
            f"text={text!r}: espeak found nothing to speak in it (only pauses); give words"
        )
    return Speech(audio=audio, sample_rate=sample_rate, phonemes=phonemes, text=text, voice=name)


# --- libespeak-ng through ctypes ------------------------------------------------------------


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h (40 bytes on 64-bit: the union is pointer-aligned)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

_LOCK = threading.Lock()
_chunks: list[np.ndarray] = []
_events: list[tuple[int, str]] = []
_callback_error: list[BaseException] = []
_private_library: str | None = None


def _on_synth(wav, numsamples, events) -> int:  # called by espeak inside espeak_Synth
    try:
        if numsamples > 0 and wav:
            _chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        if events:
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                event = events[i]
                if event.type == _EVENT_PHONEME:
                    symbol = event.id.string.decode("utf-8", errors="replace")
                    _events.append((event.audio_position, symbol))
                i += 1
        return 0
    except BaseException as error:  # an exception must not cross the C boundary
        _callback_error.append(error)
        return 1  # tells espeak to stop


# Module-level so that the C function pointer stays alive as long as the module.
_CALLBACK = _SynthCallback(_on_synth)


def _reset_lock_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


def _is_loaded(path: str) -> bool:
    noload = getattr(os, "RTLD_NOLOAD", None)
    if noload is None:
        return False
    try:
        handle = ctypes.CDLL(path, mode=noload | os.RTLD_LAZY)
    except OSError:
        return False
    _ctypes.dlclose(handle._handle)
    return True


def _library_path() -> str:
    """The packaged library, or a private copy if someone else in the process holds it open."""
    global _private_library
    if _private_library is not None:
        return _private_library
    import espeakng_loader

    path = espeakng_loader.get_library_path()
    if not _is_loaded(path):
        return path
    folder = tempfile.mkdtemp(prefix="wav2kp-espeak-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _private_library = shutil.copy(path, os.path.join(folder, "libespeak-ng.so"))
    return _private_library


@lru_cache(maxsize=1)
def _libc():
    """The C library the process runs on (its ``srand``)."""
    lib = ctypes.CDLL(None)
    lib.srand.argtypes = [ctypes.c_uint]
    lib.srand.restype = None
    return lib


def _check(result: int, call: str) -> None:
    if result != 0:
        raise RuntimeError(f"{call} failed with {_ERRORS.get(result, 'error')} ({result})")


def _run_espeak(
    text: str, voice_name: str, prosody: Prosody
) -> tuple[np.ndarray, list[tuple[int, str]], int]:
    """int16 samples, phoneme events ``(audio_position ms, raw mnemonic)`` and the sample rate."""
    with _LOCK:
        lib = ctypes.CDLL(_library_path(), mode=ctypes.RTLD_LOCAL)
        initialised = False
        try:
            lib.espeak_Initialize.argtypes = [
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
            ]
            lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
            lib.espeak_SetSynthCallback.restype = None
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_Synth.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_uint,
                ctypes.c_int,
                ctypes.c_uint,
                ctypes.c_uint,
                ctypes.c_void_p,
                ctypes.c_void_p,
            ]
            data = str(_data_path()).encode()
            sample_rate = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                data,
                _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
            )
            if sample_rate <= 0:
                raise RuntimeError(
                    f"espeak_Initialize failed ({sample_rate}) with data folder "
                    f"{data.decode()}; reinstall espeakng-loader"
                )
            initialised = True
            lib.espeak_SetSynthCallback(_CALLBACK)
            if hasattr(lib, "espeak_ng_SetRandSeed"):  # breath noise of some variants
                lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
                lib.espeak_ng_SetRandSeed.restype = None
                lib.espeak_ng_SetRandSeed(_RAND_SEED)
            result = lib.espeak_SetVoiceByName(voice_name.encode())
            if result != 0:
                raise RuntimeError(
                    f"espeak_SetVoiceByName({voice_name!r}) failed with "
                    f"{_ERRORS.get(result, 'error')} ({result}); use a language voice such as "
                    f"{VOICE!r} and a variant from available_variants()"
                )
            for parameter, value, name in (
                (_RATE, prosody.rate, "espeakRATE"),
                (_VOLUME, prosody.volume, "espeakVOLUME"),
                (_PITCH, prosody.pitch, "espeakPITCH"),
                (_RANGE, prosody.pitch_range, "espeakRANGE"),
            ):
                _check(
                    lib.espeak_SetParameter(parameter, int(value), 0),
                    f"espeak_SetParameter({name}, {value})",
                )
            _chunks.clear()
            _events.clear()
            _callback_error.clear()
            # some variants' noise (breath, flutter) draws from the C library's rand(), whose
            # state is the process's: without this, a clip depended on what the process spoke
            # before it (which loky worker, which clips earlier)
            _libc().srand(_RAND_SEED)
            encoded = text.encode("utf-8") + b"\0"
            _check(
                lib.espeak_Synth(
                    encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                ),
                "espeak_Synth",
            )
            _check(lib.espeak_Synchronize(), "espeak_Synchronize")
            if _callback_error:
                raise RuntimeError("espeak synth callback failed") from _callback_error[0]
            samples = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
            events = list(_events)
        finally:
            _chunks.clear()
            _events.clear()
            _callback_error.clear()
            if initialised:
                lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)
    return samples, events, int(sample_rate)
