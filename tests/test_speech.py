"""Speech synthesis with phoneme timing (wav2kp.corpus.speech, libespeak-ng via ctypes)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

from wav2kp.corpus import speech  # noqa: E402
from wav2kp.corpus.speech import (  # noqa: E402
    Prosody,
    Speech,
    available_variants,
    is_pause,
    synthesize,
)

SENTENCES = [
    "O rato roeu a roupa do rei de Roma.",
    "Fiquei muito feliz com a sua visita inesperada.",
    "Bom dia, papai, vamos beber um vinho?",
]
VOWELS = {"a", "&", "E", "e", "i", "y", "O", "o", "u", "U", "&~", "o~", "u~"}


def _f0(s: Speech) -> float:
    """Median f0 in Hz over the middles of vowels, by autocorrelation (lags for 60..500 Hz)."""
    sr, found = s.sample_rate, []
    n = int(0.04 * sr)
    for p in s.phonemes:
        if p.symbol not in VOWELS or p.end - p.start < 0.04:
            continue
        mid = int((p.start + p.end) / 2 * sr)
        x = s.audio[mid - n // 2 : mid + n // 2].astype(np.float64)
        x -= x.mean()
        ac = np.correlate(x, x, "full")[len(x) - 1 :]
        lo, hi = int(sr / 500), int(sr / 60)
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[0] > 0 and ac[lag] / ac[0] > 0.5:  # voiced
            found.append(sr / lag)
    assert len(found) >= 5, "too few voiced vowels to estimate f0"
    return float(np.median(found))


def _samples(s: Speech, pause: bool) -> np.ndarray:
    """Audio inside pause phonemes plus leading silence (pause=True) or inside the others."""
    sr = s.sample_rate
    spans = [(p.start, p.end) for p in s.phonemes if is_pause(p.symbol) == pause]
    if pause:
        spans.append((0.0, s.phonemes[0].start))
    idx = [np.arange(int(round(a * sr)), int(round(b * sr))) for a, b in spans]
    return s.audio[np.concatenate(idx)]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture(scope="module")
def spoken() -> list[Speech]:
    return [synthesize(t) for t in SENTENCES]


def test_audio_format_and_duration(spoken):
    for s, text in zip(spoken, SENTENCES):
        assert s.sample_rate == 22050
        assert s.audio.dtype == np.float32 and s.audio.ndim == 1
        assert np.abs(s.audio).max() <= 1.0
        assert np.abs(s.audio).max() > 0.05
        assert s.duration == pytest.approx(len(s.audio) / 22050)
        assert 1.5 < s.duration < 4.0  # 7-9 words at 160 words per minute
        assert s.text == text and s.voice == "pt-br+f3"


def test_same_inputs_give_bit_identical_speech():
    for variant in ("f3", "f2", "klatt", None):  # f2 has breath noise, klatt another generator
        first = synthesize(SENTENCES[1], variant)
        synthesize(SENTENCES[0], "m1", Prosody(rate=300, pitch=90))  # disturb any library state
        second = synthesize(SENTENCES[1], variant)
        assert np.array_equal(first.audio, second.audio)
        assert first.phonemes == second.phonemes
        assert first == second


def test_speech_does_not_depend_on_what_the_process_did_before():
    """Some variants' noise draws from the C library's rand(), whose state belongs to the whole
    process: a talker utterance (en-us, variant Reed) came out differently after another
    variant (mike2) had spoken in the same worker. Each synthesis reseeds it."""
    libc = ctypes.CDLL(None)
    prosody = speech.Prosody(rate=220, pitch=64, pitch_range=30, volume=114)
    text = "More woman here him under him, my all every."
    first = speech.synthesize(text, variant="Reed", prosody=prosody, voice="en-us").audio
    speech.synthesize("Big them have head.", variant="mike2", voice="en-us")
    libc.srand(12345)
    libc.rand()
    again = speech.synthesize(text, variant="Reed", prosody=prosody, voice="en-us").audio
    assert np.array_equal(first, again)


def test_identical_when_someone_else_holds_the_library_open():
    import espeakng_loader

    before = synthesize(SENTENCES[2])
    other = ctypes.CDLL(espeakng_loader.get_library_path())  # it could not be unloaded now
    try:
        runs = [synthesize(SENTENCES[2]) for _ in range(2)]
    finally:
        import _ctypes

        _ctypes.dlclose(other._handle)
    assert runs[0] == runs[1] == before


def test_phonemes_are_ordered_contiguous_and_cover_the_audio(spoken):
    for s in spoken:
        ph = s.phonemes
        assert len(ph) > 15
        assert 0.0 <= ph[0].start < 0.06
        assert all(p.end > p.start for p in ph)  # no zero-length phonemes
        assert all(a.end == b.start for a, b in zip(ph, ph[1:]))
        assert ph[-1].end == s.duration
        assert sum(p.end - p.start for p in ph) == pytest.approx(s.duration - ph[0].start)
        assert is_pause(ph[-1].symbol)


def test_symbols_are_the_documented_ptbr_set(spoken):
    symbols = [p.symbol for s in spoken for p in s.phonemes]
    assert set(symbols) <= speech.PTBR_PHONEMES_SEEN
    assert not any(sym[:1] in "',%=" for sym in symbols)  # stress marks removed
    # "O rato roeu a roupa do rei de Roma." as espeak's pt-br says it
    assert [p.symbol for p in spoken[0].phonemes if not is_pause(p.symbol)] == [
        "U",
        "x",
        "a",
        "t",
        "U",
        "x",
        "o",
        "eU",
        "a",
        "x",
        "o",
        "w",
        "p",
        "&",
        "d",
        "U",
        "x",
        "eI",
        "dZ",
        "y",
        "x",
        "o",
        "m",
        "&",
    ]
    stressed = [p.symbol for p in spoken[0].phonemes if p.stress == 2]
    assert stressed == ["a", "eU", "o", "eI", "o"]  # rAto roEU ROUpa REI ROma
    # bilabials and labiodentals the viseme mapping relies on
    bom_dia = [p.symbol for p in spoken[2].phonemes]
    assert bom_dia[:3] == ["b", "o", "N"]  # final "m" of "bom" is a velar nasal, no closure
    assert bom_dia.count("p") == 2 and bom_dia.count("b") == 3 and bom_dia.count("v") == 2
    assert [p.symbol for p in spoken[1].phonemes].count("f") == 2


def test_speech_is_loud_inside_phonemes_and_quiet_in_pauses(spoken):
    for s in spoken:
        inside, pauses = _rms(_samples(s, pause=False)), _rms(_samples(s, pause=True))
        assert inside > 0.05
        assert inside > 8 * pauses
    # the comma pauses of "Bom dia, papai, ..." last 0.1..0.3 s and are near silence
    commas = [p for p in spoken[2].phonemes if p.symbol == "_:" and p.end < 1.5]
    assert len(commas) == 2
    for p in commas:
        assert 0.1 < p.end - p.start < 0.3
        seg = spoken[2].audio[int(p.start * 22050) : int(p.end * 22050)]
        assert _rms(seg) < 0.01


def test_faster_rate_gives_shorter_speech():
    slow = synthesize(SENTENCES[1], prosody=Prosody(rate=120)).duration
    normal = synthesize(SENTENCES[1], prosody=Prosody(rate=160)).duration
    fast = synthesize(SENTENCES[1], prosody=Prosody(rate=300)).duration
    assert slow > normal > fast
    assert fast / slow == pytest.approx(120 / 300, rel=0.25)


def test_higher_pitch_gives_higher_f0():
    low = _f0(synthesize(SENTENCES[1], prosody=Prosody(pitch=20)))
    mid = _f0(synthesize(SENTENCES[1], prosody=Prosody(pitch=50)))
    high = _f0(synthesize(SENTENCES[1], prosody=Prosody(pitch=80)))
    assert low < mid < high
    assert high > 1.3 * low
    assert 150 < mid < 260  # a female voice (f3)
    assert _f0(synthesize(SENTENCES[1], variant="m1")) < 130  # a male one


def test_female_variants_exist_and_sound_different():
    variants = available_variants()
    assert variants == sorted(variants) and len(variants) > 20
    female = [v for v in ("f1", "f2", "f3", "f4", "f5") if v in variants]
    assert len(female) >= 3
    spoken = {v: synthesize(SENTENCES[0], v) for v in female}
    for i, a in enumerate(female):
        for b in female[i + 1 :]:
            x, y = spoken[a].audio, spoken[b].audio
            n = min(len(x), len(y))
            assert not np.array_equal(x, y)
            assert np.mean(np.abs(x[:n] - y[:n])) > 0.01, (a, b)
    for s in spoken.values():  # the same phonemes, whoever speaks
        assert [p.symbol for p in s.phonemes] == [p.symbol for p in spoken[female[0]].phonemes]
        assert 140 < _f0(s) < 300


def test_bad_inputs_are_rejected_with_what_is_allowed():
    with pytest.raises(ValueError, match="non-empty"):
        synthesize("")
    with pytest.raises(ValueError, match="non-empty"):
        synthesize("   \n")
    with pytest.raises(ValueError, match="nothing to speak"):
        synthesize("...")
    with pytest.raises(ValueError, match=r"unknown espeak variant 'zz'.*f3"):
        synthesize("Olá", variant="zz")
    with pytest.raises(RuntimeError, match="espeak_SetVoiceByName"):
        synthesize("Olá", voice="xx-yy")
    with pytest.raises(ValueError, match=r"rate.*80\.\.450"):
        Prosody(rate=20)
    with pytest.raises(ValueError, match=r"volume.*0\.\.200"):
        Prosody(volume=300)
    # still works after the failures
    assert synthesize("Olá", variant=None).voice == "pt-br"


def test_is_pause():
    for sym in ("", "_", "_:", "_!", "||", "_::", "_^_"):
        assert is_pause(sym)
    for sym in ("a", "p", "S", "&~", "n^", ";", "_j", "'a"):
        assert not is_pause(sym)


def test_fresh_worker_processes_give_the_same_speech():
    from joblib import Parallel, delayed

    jobs = [(SENTENCES[0], "f3"), (SENTENCES[2], "f5"), (SENTENCES[1], "f2")]
    remote = Parallel(n_jobs=2, backend="loky")(delayed(synthesize)(t, v) for t, v in jobs)
    local = [synthesize(t, v) for t, v in jobs]
    assert remote == local
    assert [s.voice for s in remote] == ["pt-br+f3", "pt-br+f5", "pt-br+f2"]
