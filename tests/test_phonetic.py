"""Extra input channels meant to transfer across speakers and languages: hama's phone classes and
Praat's formants (wav2kp.features.phonetic): deterministic, on the MFCC frames, offline."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from wav2kp.corpus import speech
from wav2kp.features import acoustic, phonetic


@pytest.fixture(scope="module")
def spoken() -> np.ndarray:
    voice = speech.synthesize("Amanhã vamos ao mercado comprar frutas.", variant="f1")
    audio = resample_poly(voice.audio.astype(np.float64), 320, 441).astype(np.float32)
    return np.concatenate([np.zeros(8000, np.float32), audio, np.zeros(8000, np.float32)])


def test_phone_classes_of_ipa_symbols() -> None:
    c = phonetic.phone_class
    assert c("p") == c("b") == c("m") == c("pʰ") == "bilabial"
    assert c("f") == c("v") == "labiodental"
    assert c("u") == c("oʊ") == c("w") == "rounded" and c("a") == c("æ") == "open"
    assert c("ə") == "mid" and c("i") == c("ɪ") == "close"
    assert c("t͡ʃ") == c("s") == "front" and c("k") == c("ŋ") == "back"
    assert c("<wb>") == c("%") == c("") == "pause"


def test_phone_classes_are_deterministic_one_hot_and_rest_in_silence(spoken) -> None:
    cfg = acoustic.MFCCConfig()
    times = cfg.frame_times(cfg.n_frames(len(spoken)))
    a = phonetic.phone_classes(spoken, times)
    b = phonetic.phone_classes(spoken.copy(), times)
    assert np.array_equal(a, b)  # same audio, same bits
    assert a.shape == (len(times), len(phonetic.PHONE_CLASSES)) and a.dtype == np.float32
    assert np.array_equal(a.sum(axis=1), np.ones(len(times)))
    pause = phonetic.PHONE_CLASSES.index("pause")
    assert a[times < 0.3, pause].all() and a[times > times[-1] - 0.3, pause].all()
    speaking = a[(times > 0.6) & (times < times[-1] - 0.6)]
    assert speaking[:, pause].mean() < 0.5 and len(set(speaking.argmax(axis=1))) >= 4


def test_formant_tracks_are_deterministic_and_zero_in_silence(spoken) -> None:
    cfg = acoustic.MFCCConfig()
    times = cfg.frame_times(cfg.n_frames(len(spoken)))
    f = phonetic.formant_tracks(spoken, times)
    assert np.array_equal(f, phonetic.formant_tracks(spoken, times))
    assert f.shape == (len(times), 5) and np.isfinite(f).all()
    silent = times < 0.4
    assert (f[silent, :3] == 0).all() and f[silent, 4].max() < -0.5
    voiced = f[:, 3] > 0.5
    assert voiced.mean() > 0.2 and 0.2 < np.median(f[voiced, 0]) < 1.2  # F1, kHz


def test_mfcc_with_extras_appends_the_channels(spoken) -> None:
    cfg = acoustic.MFCCConfig(extras=("phones", "formants"))
    feats, times = acoustic.mfcc(spoken, cfg)
    plain, _ = acoustic.mfcc(spoken, acoustic.MFCCConfig())
    assert cfg.n_features == 40 + 9 + 5 == feats.shape[1]
    assert np.array_equal(feats[:, :40], plain)  # the MFCCs as they were
    assert np.array_equal(feats[:, 40:49], phonetic.phone_classes(spoken, times))
    assert cfg.as_dict()["extras"] == ["phones", "formants"]
    assert "extras" not in acoustic.MFCCConfig().as_dict()  # older sets keep their keys
    with pytest.raises(ValueError, match="unknown extras"):
        acoustic.MFCCConfig(extras=("lips",))
