"""Synthetic talkers: many voices saying many sentences, with ground-truth keypoints, no video.

The bundled corpus is one "actress" (four female espeak variants, 66 sentences). A model trained
on it learns that voice's acoustics. For pre-training, :func:`talker_specs` draws as many
utterances as asked, each with its own voice and way of speaking:

- **language**: espeak-ng's Brazilian Portuguese (``pt-br``), European Portuguese (``pt``),
  American and British English (``en-us``, ``en``); the real recordings people bring speak many
  languages, the real samples here mostly English;
- **voice**: any of espeak-ng's variants (:func:`variants`: male and female, ``klatt``, named
  voices, whisper; the ones that are not speech-like, such as ``Demonic``, are left out);
- **prosody**: rate 110-230 words per minute, base pitch 15-85, pitch range 15-95, volume
  70-140;
- **text**: random sentences of 4-12 words, Portuguese words from the bundled corpus's own
  sentences, English words from a list of common ones (:data:`ENGLISH_WORDS`);
- **timing**: 0.1-0.6 s of silence before and after, and pauses (commas) inside some sentences.

:func:`synthesize_talker` speaks a spec (16 kHz audio and the phoneme timeline, phoneme times
exact from espeak's events), and :func:`talker_keypoints` animates the bundled corpus's face
from the timeline with the same articulation model that made the corpus (:mod:`.face`), with a
random expression and blinks but no head motion. The pairs need no rendering or extraction, so
an hour of them takes minutes; :mod:`wav2kp.features.talkers` turns them into a feature set.

Same seed, same specs, same audio and keypoints, bit for bit (espeak is deterministic here, see
:mod:`.speech`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

from wav2kp.corpus import face as face_mod
from wav2kp.corpus import speech
from wav2kp.corpus.face import Expression
from wav2kp.corpus.speech import Prosody

__all__ = [
    "ENGLISH_WORDS",
    "GENERATOR_VERSION",
    "LANGUAGES",
    "RATE",
    "TalkerClip",
    "TalkerSpec",
    "portuguese_words",
    "synthesize_talker",
    "talker_keypoints",
    "talker_specs",
    "variants",
]

#: Bump when anything below changes what a spec produces.
GENERATOR_VERSION = "2"  # 2: espeak reseeds the C rand() per utterance (reproducible)
#: Sample rate of the audio returned (the features' rate).
RATE = 16000
#: espeak-ng language voices the talkers speak with, and how often each is drawn.
LANGUAGES: dict[str, float] = {"pt-br": 0.35, "pt": 0.1, "en-us": 0.35, "en": 0.2}
#: Variants left out: not speech a microphone would record from a person.
_NOT_SPEECH = {"Demonic", "UniRobot", "anikaRobot", "croak", "Storm", "Tweaky"}

#: Common English words (function words and everyday nouns, verbs and adjectives).
_WORDS = """the a an and but or so because if when while then this that these those I you he she we
    they it my your his her our their me him them is are was were be been have has had do does
    did will would can could should may might must not no yes very really just only also still
    again always never often sometimes here there now today tomorrow yesterday morning evening
    night time year day week hour minute people man woman child friend family mother father
    brother sister teacher doctor house home room door window table chair bed kitchen garden
    street city country world school work office book paper letter story music song movie
    picture phone computer car bus train road water food bread milk coffee tea apple fish meat
    money price shop market weather rain snow sun wind sky tree flower river sea beach mountain
    dog cat bird horse hand head face eye mouth voice word name question answer idea problem
    reason way place thing part kind number go come get make take give see look watch hear
    listen speak say tell talk ask answer think know believe feel want need like love hate
    hope try start stop open close walk run sit stand wait stay leave bring buy sell pay send
    write read learn teach play win lose find keep hold turn move live die call help show
    remember forget understand happen change follow meet good bad big small long short new
    old young high low hot cold warm cool fast slow early late easy hard happy sad angry
    afraid tired busy free full empty right wrong true false beautiful ugly strong weak rich
    poor clean dirty quiet loud bright dark red blue green yellow white black brown first last
    next every each many much more most some any all both few little other same different
    important possible sure ready about after before under over between through into from with
    without for at by on in out up down near far behind above below around across"""
ENGLISH_WORDS: tuple[str, ...] = tuple(_WORDS.split())


@lru_cache(maxsize=1)
def portuguese_words() -> tuple[str, ...]:
    """The distinct words of the bundled corpus's sentences (lower case, no punctuation)."""
    text = resources.files("wav2kp.corpus").joinpath("sentences.yaml").read_text("utf-8")
    words = set()
    for lines in yaml.safe_load(text).values():
        for line in lines:
            for w in line.lower().split():
                w = w.strip(".,!?;:\"'()")
                if w and w.isalpha():
                    words.add(w)
    return tuple(sorted(words))


@lru_cache(maxsize=1)
def variants() -> tuple[str, ...]:
    """The espeak-ng voice variants talkers speak with (all but the unnatural ones)."""
    return tuple(v for v in speech.available_variants() if v not in _NOT_SPEECH)


@dataclass(frozen=True)
class TalkerSpec:
    """Everything that decides one talker utterance."""

    name: str
    voice: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int
    volume: int
    text: str
    lead_s: float
    tail_s: float
    smile: float
    brow: float
    eyes: float
    seed: int

    @property
    def prosody(self) -> Prosody:
        return Prosody(
            rate=self.rate, pitch=self.pitch, pitch_range=self.pitch_range, volume=self.volume
        )

    def as_dict(self) -> dict:
        return asdict(self)


def _sentence(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    n = int(rng.integers(4, 13))
    picked = [words[int(i)] for i in rng.integers(0, len(words), size=n)]
    if n >= 7 and rng.random() < 0.4:  # a comma: a short pause inside the sentence
        k = int(rng.integers(2, n - 2))
        picked[k] += ","
    end = "?" if rng.random() < 0.2 else "!" if rng.random() < 0.1 else "."
    text = " ".join(picked) + end
    return text[0].upper() + text[1:]


def _seed_of(seed: int, index: int) -> int:
    digest = hashlib.sha256(f"talkers:{GENERATOR_VERSION}:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def talker_specs(n: int, seed: int = 0, start: int = 0) -> list[TalkerSpec]:
    """Utterances ``start .. start + n - 1`` of the talker stream of ``seed``. Each is drawn
    from its own seed, so utterance ``i`` is the same whatever ``n`` and ``start`` are."""
    if n < 0 or start < 0:
        raise ValueError(f"talker_specs: n and start must be >= 0, got n={n}, start={start}.")
    languages = list(LANGUAGES)
    weights = np.array([LANGUAGES[k] for k in languages])
    weights = weights / weights.sum()
    voices = variants()
    specs = []
    for i in range(start, start + n):
        s = _seed_of(seed, i)
        rng = np.random.default_rng(s)
        voice = languages[int(rng.choice(len(languages), p=weights))]
        words = portuguese_words() if voice.startswith("pt") else ENGLISH_WORDS
        specs.append(
            TalkerSpec(
                name=f"talker{i:06d}",
                voice=voice,
                variant=voices[int(rng.integers(len(voices)))],
                rate=int(rng.integers(110, 231)),
                pitch=int(rng.integers(15, 86)),
                pitch_range=int(rng.integers(15, 96)),
                volume=int(rng.integers(70, 141)),
                text=_sentence(rng, words),
                lead_s=round(float(rng.uniform(0.1, 0.6)), 3),
                tail_s=round(float(rng.uniform(0.1, 0.6)), 3),
                smile=round(float(rng.uniform(-0.5, 0.8)), 3),
                brow=round(float(rng.uniform(-0.6, 0.6)), 3),
                eyes=round(float(rng.uniform(-0.5, 0.5)), 3),
                seed=s,
            )
        )
    return specs


@dataclass
class TalkerClip:
    """A spoken talker utterance: float32 mono ``audio`` at :data:`RATE` and ``phonemes``
    ``[(start_s, end_s, symbol)]`` on the audio's clock (leading silence included)."""

    spec: TalkerSpec
    audio: np.ndarray
    phonemes: list[tuple[float, float, str]]

    @property
    def duration(self) -> float:
        return len(self.audio) / RATE


def synthesize_talker(spec: TalkerSpec) -> TalkerClip:
    """Speak ``spec``: 16 kHz audio with the silences around it, and its phoneme timeline."""
    from scipy.signal import resample_poly

    sp = speech.synthesize(spec.text, variant=spec.variant, prosody=spec.prosody, voice=spec.voice)
    audio = resample_poly(sp.audio.astype(np.float64), 320, 441)  # 22050 -> 16000 Hz
    lead, tail = int(round(spec.lead_s * RATE)), int(round(spec.tail_s * RATE))
    audio = np.concatenate([np.zeros(lead), audio, np.zeros(tail)])
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    phonemes = [(p.start + spec.lead_s, p.end + spec.lead_s, p.symbol) for p in sp.phonemes]
    return TalkerClip(spec, audio, phonemes)


def talker_keypoints(clip: TalkerClip, times: np.ndarray, tempo: float = 1.0) -> np.ndarray:
    """Pixel keypoints ``(T, 68, 2)`` of the bundled corpus's face saying ``clip`` at ``times``
    (s), without head motion. ``tempo``: the audio was stretched by it afterwards (what
    happened at ``t`` now happens at ``t / tempo``), the phonemes are moved the same way."""
    from wav2kp.corpus.bundled import _face_model

    spec = clip.spec
    phonemes = [(a / tempo, b / tempo, s) for a, b, s in clip.phonemes]
    times = np.asarray(times, dtype=np.float64)
    rng = np.random.default_rng(spec.seed)
    params = face_mod.articulation(phonemes, times)
    blink = face_mod.blink_track(times, rng)
    head = np.broadcast_to(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (len(times), 2, 3))
    expression = Expression(smile=spec.smile, brow=spec.brow, eyes=spec.eyes)
    return _face_model().keypoints(params, head, expression, blink).astype(np.float32)
