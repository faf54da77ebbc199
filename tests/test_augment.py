"""Audio augmentation keeps what it must (pitch under a stretch, duration under a pitch shift, the
drawn SNR, the timing of events), retimes targets with the audio, and the augmented dataset
serves stored items exactly when it does not augment and reproducible ones when it does."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wav2kp.features import acoustic as features
from wav2kp.features import augment as A

SR = 16000


def _tone(freq: float, seconds: float = 4.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return amp * np.sin(2 * np.pi * freq * t)


def _dominant_hz(y: np.ndarray) -> float:
    n = len(y)
    spec = np.abs(np.fft.rfft(y * np.hanning(n), 8 * n))
    return float(np.fft.rfftfreq(8 * n, 1 / SR)[np.argmax(spec)])


def _only(**kw) -> A.AugmentConfig:
    """A config that always augments and does nothing but what ``kw`` switches on."""
    base = dict(
        p=1.0,
        noise_p=0.0,
        tempo_p=0.0,
        pitch_p=0.0,
        reverb_p=0.0,
        eq_p=0.0,
        gain_db=(0.0, 0.0),
        clip=False,
    )
    return A.AugmentConfig(**{**base, **kw})


# ------------------------------------------------------------------------------------ config


def test_config_defaults_dict_and_off() -> None:
    cfg = A.AugmentConfig()
    assert (cfg.p, cfg.snr_db, cfg.noise_p, cfg.gain_db) == (0.5, (10.0, 40.0), 0.8, (-12.0, 6.0))
    assert (cfg.tempo, cfg.tempo_p, cfg.pitch_semitones, cfg.pitch_p) == (
        (0.85, 1.15),
        0.5,
        (-4.0, 4.0),
        0.5,
    )
    assert (cfg.reverb_p, cfg.rt60_s, cfg.eq_p, cfg.eq_bands, cfg.eq_gain_db, cfg.eq_freq_hz) == (
        0.3,
        (0.15, 0.7),
        0.5,
        (1, 3),
        9.0,
        (100.0, 6000.0),
    )
    d = cfg.as_dict()
    assert json.loads(json.dumps(d)) == d and d["tempo"] == [0.85, 1.15]
    assert A.AugmentConfig.off().p == 0.0
    with pytest.raises(ValueError, match="tempo"):
        A.AugmentConfig(tempo=(1.2, 0.9))
    with pytest.raises(ValueError, match="noise_p"):
        A.AugmentConfig(noise_p=1.5)


def test_draw_probabilities_and_ranges() -> None:
    cfg = A.AugmentConfig()
    draws = [A.draw(np.random.default_rng([3, i]), cfg) for i in range(4000)]
    applied = [d for d in draws if d.applied]
    assert abs(len(applied) / 4000 - 0.5) < 0.03
    frac = lambda f: np.mean([f(d) for d in applied])  # noqa: E731
    assert abs(frac(lambda d: d.tempo != 1.0) - 0.5) < 0.03
    assert abs(frac(lambda d: d.semitones != 0.0) - 0.5) < 0.03
    assert abs(frac(lambda d: d.noise is not None) - 0.8) < 0.03
    assert abs(frac(lambda d: d.rt60_s is not None) - 0.3) < 0.03
    assert abs(frac(lambda d: bool(d.eq)) - 0.5) < 0.03
    assert all(
        0.85 <= d.tempo <= 1.15 and -4 <= d.semitones <= 4 and -12 <= d.gain_db <= 6
        for d in applied
    )
    assert all(
        1 <= len(d.eq) <= 3 and all(100 <= f <= 6000 and abs(g) <= 9 for _, f, g, _ in d.eq)
        for d in applied
        if d.eq
    )
    assert all(d == A.AugmentDraw() for d in draws if not d.applied)


# ----------------------------------------------------------------------------- tempo, pitch


@pytest.mark.parametrize("r", [0.85, 1.15])
def test_time_stretch_keeps_pitch_and_scales_duration(r: float) -> None:
    x = _tone(200.0)
    y = A.time_stretch(x, SR, r)
    assert abs(len(y) / (len(x) / r) - 1) < 0.01  # exact by construction
    assert abs(_dominant_hz(y) / 200.0 - 1) < 0.03  # measured: < 0.01 %
    # a clean tone stays clean: < 1e-5 of the energy away from 200 Hz (measured ~1e-8)
    mid = y[SR:-SR] * np.hanning(len(y) - 2 * SR)
    spec = np.abs(np.fft.rfft(mid)) ** 2
    f = np.fft.rfftfreq(len(mid), 1 / SR)
    assert spec[np.abs(f - 200) > 10].sum() / spec.sum() < 1e-5


@pytest.mark.parametrize("semitones", [-4.0, -2.5, 3.0, 4.0])
def test_pitch_shift_moves_pitch_and_keeps_duration(semitones: float) -> None:
    x = _tone(200.0)
    y = A.pitch_shift(x, SR, semitones)
    assert len(y) == len(x)
    assert abs(_dominant_hz(y) / (200.0 * 2 ** (semitones / 12)) - 1) < 0.03  # measured < 0.05 %


def test_augment_tempo_and_pitch_together() -> None:
    cfg = _only(tempo_p=1.0, tempo=(0.85, 0.85), pitch_p=1.0, pitch_semitones=(3.0, 3.0))
    x = _tone(200.0)
    y, tempo = A.augment(x, SR, np.random.default_rng(0), cfg)
    assert tempo == 0.85 and y.dtype == np.float32
    assert len(y) == round(len(x) / 0.85)
    assert abs(_dominant_hz(y) / (200 * 2**0.25) - 1) < 0.03


# ------------------------------------------------------------------------------- determinism


def test_augment_is_deterministic_for_an_rng_state() -> None:
    x = _tone(180.0, 2.0, 0.3) + 0.01 * np.random.default_rng(1).standard_normal(2 * SR)
    cfg = A.AugmentConfig(p=1.0, noise_p=1.0, reverb_p=1.0, eq_p=1.0, tempo_p=1.0, pitch_p=1.0)
    a, ta = A.augment(x, SR, np.random.default_rng(42), cfg)
    b, tb = A.augment(x, SR, np.random.default_rng(42), cfg)
    c, _ = A.augment(x, SR, np.random.default_rng(43), cfg)
    assert ta == tb and np.array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)
    assert np.abs(a).max() <= 1.0
    off, tempo = A.augment(x, SR, np.random.default_rng(42), A.AugmentConfig.off())
    assert tempo == 1.0 and np.array_equal(off, x.astype(np.float32))


# ------------------------------------------------------------------------- noise, EQ, reverb


@pytest.mark.parametrize("color", ["white", "pink"])
def test_noise_lands_at_the_drawn_snr(color: str) -> None:
    cfg = _only(noise_p=1.0, pink_p=1.0 if color == "pink" else 0.0)
    x = _tone(220.0, 2.0, 0.1)
    for seed in range(5):
        d = A.draw(np.random.default_rng(seed), cfg)
        y, _ = A.augment(x, SR, np.random.default_rng(seed), cfg)
        assert d.noise == color and cfg.snr_db[0] <= d.snr_db <= cfg.snr_db[1]
        measured = 10 * math.log10(np.mean(x**2) / np.mean((y - x) ** 2))
        assert abs(measured - d.snr_db) < 0.5  # measured: < 0.01 dB


def test_noise_colours_and_active_power() -> None:
    def band_db(w: np.ndarray, lo: float, hi: float) -> float:
        spec = np.abs(np.fft.rfft(w)) ** 2
        f = np.fft.rfftfreq(len(w), 1 / SR)
        return 10 * math.log10(spec[(f >= lo) & (f < hi)].sum())

    rng = np.random.default_rng(0)
    white, pink = A.noise(10 * SR, "white", rng), A.noise(10 * SR, "pink", rng)
    assert abs(np.mean(white**2) - 1) < 1e-9 and abs(np.mean(pink**2) - 1) < 1e-9
    # three octaves up: white gains 3 dB per octave (~9 dB), pink keeps equal power (~0 dB)
    assert abs(band_db(white, 2000, 4000) - band_db(white, 250, 500) - 9.03) < 0.5
    assert abs(band_db(pink, 2000, 4000) - band_db(pink, 250, 500)) < 0.5
    # silence around the speech does not dilute the power the SNR refers to
    x = np.concatenate([np.zeros(SR), _tone(300.0, 1.0, 0.2), np.zeros(2 * SR)])
    assert abs(A.active_power(x, SR) - 0.02) < 1e-3


def test_equalizer_gain_and_zero_phase() -> None:
    x = _tone(1000.0, 1.0, 0.1)
    y = A.equalize(x, SR, [("peaking", 1000.0, 9.0, 1.0)])
    mid = slice(SR // 4, 3 * SR // 4)
    gain = 20 * math.log10(np.std(y[mid]) / np.std(x[mid]))
    assert abs(gain - 9.0) < 0.1
    assert np.max(np.abs(y[mid] - x[mid] * 10 ** (gain / 20))) < 1e-3 * 0.1  # no phase shift
    low = A.equalize(_tone(50.0, 1.0, 0.1), SR, [("lowshelf", 300.0, 6.0, 1.0)])
    high = A.equalize(_tone(4000.0, 1.0, 0.1), SR, [("lowshelf", 300.0, 6.0, 1.0)])
    assert abs(20 * math.log10(np.std(low[mid]) / np.std(_tone(50.0, 1.0, 0.1)[mid])) - 6) < 0.3
    assert abs(20 * math.log10(np.std(high[mid]) / np.std(_tone(4000.0, 1.0, 0.1)[mid]))) < 0.3
    hs = A.equalize(_tone(7000.0, 1.0, 0.1), SR, [("highshelf", 2000.0, -9.0, 1.0)])
    assert abs(20 * math.log10(np.std(hs[mid]) / np.std(_tone(7000.0, 1.0, 0.1)[mid])) + 9) < 0.3


@pytest.mark.parametrize("rt60", [0.15, 0.4, 0.7])
def test_room_impulse_decays_at_its_rt60(rt60: float) -> None:
    h = A.room_impulse(SR, rt60, np.random.default_rng(0))
    assert abs(np.dot(h, h) - 1) < 1e-12 and np.argmax(np.abs(h)) == 0
    # Schroeder integral, T20 (-5 .. -25 dB) x 3
    edc = 10 * np.log10(np.cumsum((h[1:] ** 2)[::-1])[::-1] / np.sum(h[1:] ** 2))
    t = np.arange(len(edc)) / SR
    sel = (edc <= -5) & (edc >= -25)
    slope = np.polyfit(t[sel], edc[sel], 1)[0]
    assert abs(-60 / slope / rt60 - 1) < 0.1


def test_reverb_keeps_onsets_in_place() -> None:
    x = np.zeros(SR)
    x[8000] = 1.0
    y = A.reverb(x, SR, 0.5, 0.5, np.random.default_rng(0))
    assert np.argmax(np.abs(y)) == 8000 and np.abs(y[:8000]).max() < 1e-12  # nothing early
    assert abs(np.dot(y, y) - 1) < 1e-9


# ------------------------------------------------------------------------------------ retime


def test_retime_a_ramp() -> None:
    times = np.arange(300) * 0.01  # 3 s at 100 frames/s
    targets = np.stack([2 * times + 1, -times], axis=1).astype(np.float32)
    valid = np.ones(300, bool)
    new_times = np.arange(400) * 0.01
    out, ok = A.retime(targets, valid, times, new_times, 0.85)
    src = new_times * 0.85
    assert ok.sum() == int(np.sum(src <= times[-1] + 1e-12)) == 352
    np.testing.assert_allclose(out[ok, 0], 2 * src[ok] + 1, atol=1e-5)
    np.testing.assert_allclose(out[ok, 1], -src[ok], atol=1e-6)
    assert np.all(out[~ok] == 0)
    same, same_ok = A.retime(targets, valid, times, times, 1.0)
    assert np.array_equal(same, targets) and same_ok.all()


def test_retime_validity() -> None:
    times = np.arange(10) * 0.01
    targets = np.arange(10, dtype=np.float32)[:, None]
    valid = np.ones(10, bool)
    valid[4] = False
    out, ok = A.retime(targets, valid, times, np.array([0.03, 0.035, 0.045, 0.05, 0.055, 0.1]), 1.0)
    # 0.03 on a valid knot; 0.035 and 0.045 touch frame 4; 0.05 on a valid knot; 0.1 outside
    assert ok.tolist() == [True, False, False, True, True, False]
    np.testing.assert_allclose(out[:, 0], [3, 0, 0, 5, 5.5, 0], atol=1e-6)


@pytest.mark.parametrize("tempo,semitones", [(0.85, 0.0), (1.15, 0.0), (0.85, 3.0)])
def test_retimed_target_event_follows_the_audio_event(tempo: float, semitones: float) -> None:
    """A click at 0.5 s and a target spike at 0.5 s land on the same feature frame."""
    cfg_m = features.MFCCConfig()
    x = 0.003 * np.sin(2 * np.pi * 150 * np.arange(SR) / SR)
    x[8000:8032] += 0.8 * np.random.default_rng(0).standard_normal(32)  # 2 ms click at 0.5 s
    feats, times = features.mfcc(x.astype(np.float32), cfg_m)
    assert times[np.argmax(feats[:, 0])] == pytest.approx(0.5, abs=0.01)
    spike = np.exp(-0.5 * ((times - 0.5) / 0.01) ** 2)[:, None].astype(np.float32)
    cfg = _only(
        tempo_p=1.0,
        tempo=(tempo, tempo),
        pitch_p=1.0 if semitones else 0.0,
        pitch_semitones=(semitones, semitones),
    )
    y, r = A.augment(x, SR, np.random.default_rng(0), cfg)
    new_feats, new_times = features.mfcc(y, cfg_m)
    new_spike, ok = A.retime(spike, np.ones(len(times), bool), times, new_times, r)
    audio_frame = int(np.argmax(new_feats[:, 0]))
    target_frame = int(np.argmax(new_spike[:, 0]))
    assert new_times[target_frame] == pytest.approx(0.5 / tempo, abs=0.01)
    assert abs(audio_frame - target_frame) <= 1


# ---------------------------------------------------------------------------- set_epochs


def test_set_epochs_reaches_wrapped_datasets() -> None:
    class Inner(torch.utils.data.Dataset):
        epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

    inner = Inner()
    wrapper = SimpleNamespace(base=inner)
    loaders = [
        SimpleNamespace(dataset=wrapper),
        {"b": SimpleNamespace(dataset=torch.utils.data.Subset(Inner(), [0]))},
        SimpleNamespace(dataset=[1, 2]),
    ]
    done = A.set_epochs(loaders, 3)
    assert len(done) == 2 and inner.epoch == 3 and done[1].epoch == 3
    assert A.set_epochs(None, 1) == []


# ------------------------------------------------------------------- on a real feature set


@pytest.fixture(scope="module")
def fs(quick_clips):
    from wav2kp import config
    from wav2kp.features import dataset

    out = config.processed_dir("bundled", "test_models")
    feature_set, _ = dataset.build_feature_set(quick_clips, config.interim_dir("bundled"), out)
    return feature_set


@pytest.mark.slow
def test_unaugmented_items_equal_stored_items(fs) -> None:
    from wav2kp.features import dataset

    clips = fs.split_clips("train")[:4]
    stored = dataset.UtteranceDataset(fs.out_dir, clips, fs.normalizer)
    ds = A.AugmentedUtterances(fs, clips, A.AugmentConfig.off())
    assert ds.clips == clips and len(ds) == 4
    for i in range(len(ds)):
        a, b = ds[i], stored[i]
        assert all(torch.equal(u, v) for u, v in zip(a, b))
        # the whole pipeline from the WAV: features within 1e-5, targets and validity exact
        f, t, v = ds.compute(i)
        assert f.shape == b[0].shape and float((f - b[0]).abs().max()) <= 1e-5
        assert torch.equal(t, b[1]) and torch.equal(v, b[2])


@pytest.mark.slow
def test_augmented_items_reproducible_and_change_with_epoch(fs) -> None:
    from wav2kp.features import dataset

    clips = fs.split_clips("train")[:6]
    cfg = A.AugmentConfig(p=0.9)
    ds1 = A.AugmentedUtterances(fs, clips, cfg, seed=7)
    ds2 = A.AugmentedUtterances(fs, clips, cfg, seed=7)
    stored = dataset.UtteranceDataset(fs.out_dir, clips, fs.normalizer)
    items0 = [ds1[i] for i in range(len(ds1))]
    assert all(all(torch.equal(u, v) for u, v in zip(a, ds2[i])) for i, a in enumerate(items0))
    ds1.set_epoch(1)
    items1 = [ds1[i] for i in range(len(ds1))]
    differ = sum(
        not (a[0].shape == b[0].shape and torch.equal(a[0], b[0])) for a, b in zip(items0, items1)
    )
    assert differ >= len(clips) - 2  # an item is left alone with probability 0.1
    for i, (f, t, v) in enumerate(items1):
        d = ds1.drawn(i)
        n_expected = 1 + round(len(ds1._audio[i]) / d.tempo) // fs.mfcc.hop_length
        assert f.shape == (n_expected, fs.mfcc.n_features) and t.shape[0] == v.shape[0] == len(f)
        assert f.dtype == torch.float32 and t.dtype == torch.float32 and v.dtype == torch.bool
        assert torch.isfinite(f).all() and (t[~v] == 0).all()
        if not d.applied:
            assert all(torch.equal(u, w) for u, w in zip((f, t, v), stored[i]))
        else:  # the stretched clip keeps (nearly) its share of valid frames
            share = float(v.float().mean()) / float(stored[i][2].float().mean())
            assert 0.97 < share < 1.03
    batch = dataset.collate_padded(items1)
    assert batch.features.shape[0] == len(clips) and batch.mask.sum() == sum(
        len(x[0]) for x in items1
    )


@pytest.mark.slow
def test_utterance_normalisation_and_errors(fs, tmp_path) -> None:
    clips = fs.split_clips("train")[:2]
    ds = A.AugmentedUtterances(fs, clips, A.AugmentConfig(p=1.0), normalize="utterance")
    f = ds[0][0].numpy().astype(np.float64)
    assert np.abs(f.mean(axis=0)).max() < 1e-4 and np.abs(f.std(axis=0) - 1).max() < 1e-3
    with pytest.raises(FileNotFoundError, match=clips[0]):
        A.AugmentedUtterances(fs, clips, interim_dir=tmp_path)
    with pytest.raises(ValueError, match="normalize"):
        A.AugmentedUtterances(fs, clips, normalize="clip")
    # audio that is not what the set was built from is caught (the manifest's input hashes)
    from wav2kp import config, media
    from wav2kp.extraction import landmarks

    wav, lm = landmarks.clip_paths(config.interim_dir("bundled"), clips[0])
    new_wav, new_lm = landmarks.clip_paths(tmp_path, clips[0])
    new_wav.parent.mkdir(parents=True)
    new_lm.parent.mkdir(parents=True)
    new_lm.write_bytes(lm.read_bytes())
    audio, rate = media.read_wav(wav)
    from scipy.io import wavfile

    wavfile.write(new_wav, rate, (audio * 0.5).astype(np.float32))
    with pytest.raises(ValueError, match=f"{clips[0]}.*manifest inputs differ"):
        A.AugmentedUtterances(fs, clips[:1], interim_dir=tmp_path)


@pytest.mark.slow
def test_epoch_callback_changes_draws_during_fit(fs) -> None:
    import lightning

    from wav2kp.features import dataset
    from wav2kp.training import lit

    clips = fs.split_clips("train")[:4]
    ds = A.AugmentedUtterances(fs, clips, A.AugmentConfig(p=1.0), seed=1)
    seen: list[tuple[int, float]] = []

    class Tiny(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(ds.n_features, ds.n_targets)

        def training_step(self, batch, _):
            seen.append((self.current_epoch, float(batch.features.sum())))
            return ((self.lin(batch.features) - batch.targets) ** 2)[batch.valid].mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=dataset.collate_padded)
    trainer = lightning.Trainer(
        max_epochs=3,
        callbacks=[lit.EpochCallback()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(), loader)
    assert [e for e, _ in seen] == [0, 1, 2] and ds.epoch == 2
    sums = [s for _, s in seen]
    assert len(set(sums)) == 3
    ds.set_epoch(1)
    assert float(dataset.collate_padded([ds[i] for i in range(4)]).features.sum()) == sums[1]


@pytest.mark.slow
@pytest.mark.parametrize("tempo", [0.85, 1.15])
def test_stretched_speech_stays_on_the_retimed_clock(fs, tempo: float) -> None:
    """On real (synthetic-voice) clips the stretched features, read back at ``t' * tempo``, match
    the original's best at a lag of at most a few ms (WSOLA's bias; measured 1-3 ms)."""
    ds = A.AugmentedUtterances(fs, fs.split_clips("train")[:4], A.AugmentConfig.off())
    lags_ms = np.arange(-15, 16)
    best = []
    for audio in ds._audio:
        f0, t0 = features.mfcc(audio, fs.mfcc)
        f1, t1 = features.mfcc(A.time_stretch(audio, SR, tempo).astype(np.float32), fs.mfcc)
        ok = t1 * tempo <= t0[-1]
        corr = [
            np.corrcoef(np.interp((t1[ok] + lag / 1000) * tempo, t0, f0[:, 0]), f1[ok, 0])[0, 1]
            for lag in lags_ms
        ]
        assert max(corr) > 0.98
        best.append(int(lags_ms[int(np.argmax(corr))]))
    assert max(abs(b) for b in best) <= 4 and abs(np.mean(best)) <= 3, best
