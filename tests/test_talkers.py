"""Synthetic talkers for pre-training, and the phone recogniser: deterministic, varied, timed
right, and in the feature set's coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from wav2kp import metrics, shapes
from wav2kp.corpus import face, talkers
from wav2kp.features import acoustic, phones
from wav2kp.features import talkers as talker_features


def test_specs_are_deterministic_varied_and_index_stable() -> None:
    a = talkers.talker_specs(40, seed=0)
    assert a == talkers.talker_specs(40, seed=0)
    assert talkers.talker_specs(5, seed=0, start=10) == a[10:15]
    assert a[0] != talkers.talker_specs(1, seed=1)[0]
    assert [s.name for s in a[:2]] == ["talker000000", "talker000001"]
    assert {s.voice for s in a} <= set(talkers.LANGUAGES) and len({s.voice for s in a}) >= 3
    assert len({s.variant for s in a}) >= 20
    assert not {s.variant for s in a} & talkers._NOT_SPEECH
    for s in a:
        assert 110 <= s.rate <= 230 and 4 <= len(s.text.split()) <= 12
        words = talkers.portuguese_words() if s.voice.startswith("pt") else talkers.ENGLISH_WORDS
        first = s.text.split()[0].strip(",.?!").lower()
        assert first in {w.lower() for w in words}
    with pytest.raises(ValueError, match="n and start"):
        talkers.talker_specs(-1)


def test_portuguese_words_come_from_the_corpus_sentences() -> None:
    words = talkers.portuguese_words()
    assert len(words) > 200 and "feliz" in words
    assert all(w.isalpha() and w == w.lower() for w in words)


def test_a_talker_speaks_with_exact_timing_and_rests_in_silence() -> None:
    spec = talkers.talker_specs(3, seed=0)[2]
    clip = talkers.synthesize_talker(spec)
    again = talkers.synthesize_talker(spec)
    assert np.array_equal(clip.audio, again.audio) and clip.phonemes == again.phonemes
    assert clip.audio.dtype == np.float32 and np.abs(clip.audio).max() <= 1.0
    lead = int(spec.lead_s * talkers.RATE)
    assert np.abs(clip.audio[: lead - 10]).max() == 0.0  # the silence before it
    assert clip.phonemes[0][0] >= spec.lead_s - 1e-9
    assert clip.phonemes[-1][1] == pytest.approx(clip.duration - spec.tail_s, abs=0.02)
    times = np.arange(0, clip.duration, 0.01)
    pts = talkers.talker_keypoints(clip, times)
    assert pts.shape == (len(times), 68, 2) and np.isfinite(pts).all()
    opening = metrics.opening(pts)
    rest = opening[times < spec.lead_s - 0.2]
    assert np.ptp(rest) < 0.005  # the mouth rests before the speech (anticipation aside)
    assert opening.max() > rest.max() + 0.05  # and opens with it
    # stretched audio (tempo 1.25): the same mouth movements 1.25 times sooner
    fast = metrics.opening(talkers.talker_keypoints(clip, times / 1.25, tempo=1.25))
    assert metrics.pearson(fast, opening) > 0.98


def test_talker_utterance_is_in_the_feature_set_layout() -> None:
    spec = talkers.talker_specs(1, seed=3)[0]
    from wav2kp.corpus.bundled import _face_model

    model = _face_model()
    reference = model.template.rest / shapes.inter_ocular(model.template.rest)
    idx = shapes.point_indices("face")
    utt = talker_features.talker_utterance(spec, reference, idx, acoustic.MFCCConfig())
    n = len(utt["feature_times"])
    assert utt["features"].shape == (n, 40) and utt["targets"].shape == (n, 136)
    assert utt["valid"].all() and np.isfinite(utt["targets"]).all()
    assert np.array_equal(utt["target_times"], utt["feature_times"])
    again = talker_features.talker_utterance(spec, reference, idx, acoustic.MFCCConfig())
    assert all(np.array_equal(utt[k], again[k]) for k in utt)
    # normalised to the reference: unit inter-ocular distance
    pts = utt["targets"].reshape(n, 68, 2)
    assert shapes.inter_ocular(pts).mean() == pytest.approx(
        shapes.inter_ocular(reference), rel=0.02
    )


def test_the_phone_recogniser_hears_a_sentence() -> None:
    spec = talkers.talker_specs(1, seed=0)[0]
    sp = talkers.synthesize_talker(
        talkers.TalkerSpec(
            **{
                **spec.as_dict(),
                "voice": "en-us",
                "variant": "m3",
                "text": "Bob and Mary bought a blue boat.",
            }
        )  # fmt: skip
    )
    segs = phones.recognise(sp.audio)
    other = talkers.synthesize_talker(talkers.talker_specs(1, seed=5)[0])
    phones.recognise(other.audio)
    assert segs == phones.recognise(sp.audio)  # deterministic, whatever was decoded before
    assert all(a < b for a, b, _ in segs) and segs[0][0] == 0.0
    symbols = [s for _, _, s in segs]
    assert symbols[0] == "_" and sum(s in ("b", "p", "m") for s in symbols) >= 2
    assert set(symbols) <= set(phones.ARPABET.values()) | {"_"}
    # the articulation they imply closes the lips on the bilabials
    times = np.arange(0, sp.duration, 0.01)
    art = phones.articulation(sp.audio, times)
    assert art.shape == (len(times), len(face.PARAMS))
    assert art[:, face.PARAMS.index("close")].max() > 0.9
    with pytest.raises(ValueError, match="mono"):
        phones.recognise(np.zeros((2, 100), np.float32))
