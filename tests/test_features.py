"""Tests for wav2kp.features: MFCC framing and timing, alignment by timestamps (and the drift of
the original x3 pairing), context windows, normalisation. Fast: a few seconds in all."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from wav2kp.features import acoustic as F

SR = 16000
NTSC = 30000 / 1001  # 29.97 frames/s


def _noise(seconds: float, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal(int(round(seconds * SR)))).astype(np.float32)


def _ntsc_times(duration_s: float) -> np.ndarray:
    """Frame times k * 1001 / 30000 s of every frame starting before ``duration_s``."""
    k = np.arange(int(np.ceil(duration_s * 30000 / 1001)))
    return k * 1001 / 30000


# ------------------------------------------------------------------------------------------
# MFCC
# ------------------------------------------------------------------------------------------


def test_config_sizes_and_the_original_settings():
    cfg = F.MFCCConfig()
    assert (cfg.win_length, cfg.hop_length, cfg.fft_size) == (400, 160, 512)
    assert cfg.hop_s == pytest.approx(0.010) and cfg.frame_rate == pytest.approx(100.0)
    orig = F.MFCCConfig.original()
    assert (orig.win_length, orig.hop_length, orig.fft_size) == (400, 200, 400)
    assert orig.frame_rate == pytest.approx(80.0) and orig.hop_s == pytest.approx(0.0125)
    assert (orig.n_mfcc, orig.n_mels, orig.log_mels) == (40, 40, False)
    assert F.MFCCConfig(deltas=True).n_features == 120
    json.dumps(cfg.as_dict())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hop_ms": 10.03}, "whole number of samples"),
        ({"win_ms": 25.01}, "whole number of samples"),
        ({"n_fft": 256}, "shorter than the window"),
        ({"n_mfcc": 41}, "n_mfcc"),
        ({"f_max": 9000.0}, "Nyquist"),
    ],
)
def test_config_rejects_settings_that_break_the_frame_times(kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.MFCCConfig(**kwargs)


@pytest.mark.parametrize("n_samples", [257, 400, 1599, 1600, 1601, 16000, 16161])
def test_mfcc_frame_count_and_times(n_samples):
    cfg = F.MFCCConfig()
    feats, times = F.mfcc(_noise(n_samples / SR), cfg)
    assert feats.shape == (1 + n_samples // 160, 40) == (cfg.n_frames(n_samples), 40)
    assert feats.dtype == np.float32 and times.dtype == np.float64
    np.testing.assert_allclose(times, np.arange(len(feats)) * 160 / SR, rtol=0, atol=1e-12)
    assert np.isfinite(feats).all()


def test_original_config_is_torchaudio_defaults_at_80_frames_per_second():
    import torch
    import torchaudio

    audio = _noise(1.0)
    feats, times = F.mfcc(audio, F.MFCCConfig.original())
    assert feats.shape == (81, 40)  # 1 + 16000 // 200
    assert times[1] - times[0] == pytest.approx(1 / 80) and times[-1] == pytest.approx(1.0)
    ref = (
        torchaudio.transforms.MFCC(n_mfcc=40, melkwargs={"n_mels": 40})(torch.from_numpy(audio))
        .numpy()
        .T
    )
    np.testing.assert_allclose(feats, ref, rtol=0, atol=1e-4)


def test_deltas_triple_the_features_and_keep_the_statics():
    audio = _noise(0.5, seed=1)
    plain, _ = F.mfcc(audio, F.MFCCConfig())
    full, times = F.mfcc(audio, F.MFCCConfig(deltas=True))
    assert full.shape == (51, 120) and len(times) == 51
    np.testing.assert_array_equal(full[:, :40], plain)
    # 5-frame regression: d[t] = (c[t+1] - c[t-1] + 2 (c[t+2] - c[t-2])) / 10, edges replicated
    c = np.pad(plain.astype(np.float64), ((2, 2), (0, 0)), mode="edge")
    d = (c[3:-1] - c[1:-3] + 2 * (c[4:] - c[:-4])) / 10
    np.testing.assert_allclose(full[:, 40:80], d, rtol=0, atol=1e-4)
    dp = np.pad(d, ((2, 2), (0, 0)), mode="edge")
    dd = (dp[3:-1] - dp[1:-3] + 2 * (dp[4:] - dp[:-4])) / 10
    np.testing.assert_allclose(full[:, 80:], dd, rtol=0, atol=1e-4)


def test_mfcc_is_deterministic_and_caches_its_transform():
    audio = _noise(2.0, seed=2)
    a, _ = F.mfcc(audio)
    b, _ = F.mfcc(audio.astype(np.float64))  # float64 input is converted
    assert np.array_equal(a, b)
    assert F._mfcc_transform(F.MFCCConfig()) is F._mfcc_transform(F.MFCCConfig())


def test_log_mels_make_frames_independent_of_the_rest_of_the_clip():
    """Our frames are a function of their own window: a prefix of the clip gives the same
    frames (except the last few, whose windows reach the cut)."""
    audio = _noise(3.0, seed=3)
    audio[SR:] *= 20.0  # a much louder second part
    full, _ = F.mfcc(audio)
    part, _ = F.mfcc(audio[:SR])
    np.testing.assert_allclose(part[:-3], full[: len(part) - 3], rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros((2, 16000), np.float32), "mono"),
        (np.zeros(200, np.float32), "n_fft // 2"),
        (np.full(16000, np.nan, np.float32), "NaN"),
        (np.zeros(16000, np.int16), "float"),
    ],
)
def test_mfcc_rejects_bad_audio(audio, message):
    with pytest.raises(ValueError, match=message):
        F.mfcc(audio)


def test_clip_features_checks_the_sample_rate():
    feats, times = F.clip_features(_noise(0.3), F.MFCCConfig(), sample_rate=16000)
    assert feats.shape == (31, 40) and times[-1] == pytest.approx(0.30)
    with pytest.raises(ValueError, match="44100 Hz"):
        F.clip_features(_noise(0.3), F.MFCCConfig(), sample_rate=44100)


def _tone_burst(start_s: float = 1.0, stop_s: float = 1.2, total_s: float = 2.0) -> np.ndarray:
    x = np.zeros(int(total_s * SR), np.float32)
    n = np.arange(int(start_s * SR), int(stop_s * SR))
    x[n] = 0.5 * np.sin(2 * np.pi * 1000.0 * n / SR)
    return x


def _mel_energy(feats: np.ndarray, db: bool) -> np.ndarray:
    """Summed mel power per frame, undoing the (square, orthonormal) DCT."""
    import torchaudio.functional as AF

    log_mel = feats @ AF.create_dct(40, 40, "ortho").numpy().T
    return (10.0 ** (log_mel / 10.0) if db else np.exp(log_mel)).sum(axis=1)


def test_tone_burst_frame_times_are_window_centres():
    """1 kHz from 1.00 s to 1.20 s in silence. A frame is affected only while its 25 ms window
    overlaps the tone (|t - edge| < 12.5 ms), and the frame centred on an edge sees half the
    window's energy."""
    feats, times = F.mfcc(_tone_burst(), F.MFCCConfig())
    c0 = feats[:, 0]
    silent = c0[0]
    changed = np.flatnonzero(np.abs(c0 - silent) > 1.0)
    assert times[changed[0]] == pytest.approx(0.99)  # rises within one hop before 1.00 s
    assert times[changed[-1]] == pytest.approx(1.21)  # falls within one hop after 1.20 s
    assert np.abs(c0[times <= 0.98 + 1e-9] - silent).max() < 1e-4
    assert np.abs(c0[times >= 1.22 - 1e-9] - silent).max() < 1e-4
    energy = _mel_energy(feats, db=False)
    plateau = np.median(energy[(times > 1.03) & (times < 1.17)])
    at = {round(t, 2): e / plateau for t, e in zip(times, energy)}
    assert at[1.00] == pytest.approx(0.5, abs=0.005)
    assert at[1.20] == pytest.approx(0.5, abs=0.005)
    assert at[1.02] == pytest.approx(1.0, abs=0.01) and at[0.98] < 1e-6


def test_tone_burst_with_the_original_config_lands_on_frame_80():
    feats, times = F.mfcc(_tone_burst(), F.MFCCConfig.original())
    energy = _mel_energy(feats, db=True)
    plateau = np.median(energy[(times > 1.03) & (times < 1.17)])
    assert times[80] == pytest.approx(1.0) and times[96] == pytest.approx(1.2)
    assert energy[80] / plateau == pytest.approx(0.5, abs=0.005)
    assert energy[96] / plateau == pytest.approx(0.5, abs=0.005)


# ------------------------------------------------------------------------------------------
# Alignment by time
# ------------------------------------------------------------------------------------------


def test_no_drift_over_five_minutes_and_the_original_pairing_drifts_33_s():
    """Issue 4: 300 s at 29.97 fps against 16 kHz audio. The target is the time itself, so the
    aligned value *is* the time the target was taken at."""
    duration = 300.0
    audio = _noise(duration, seed=4, scale=0.01)
    video_times = _ntsc_times(duration)  # 8992 frames, last at 299.9997 s
    assert len(video_times) == 8992
    target = np.stack([video_times, np.sin(video_times)], axis=1)

    feats, audio_times = F.mfcc(audio, F.MFCCConfig())
    assert len(feats) == 1 + len(audio) // 160 == 30001  # 100 /s over 300 s, plus frame 0
    assert audio_times[-1] == pytest.approx(duration)
    aligned = F.align_to_times(target, video_times, audio_times)
    assert aligned.shape == (30001, 2)
    err_s = np.abs(aligned[:, 0] - audio_times)
    half_frame = 0.5 / NTSC
    assert err_s[-1] < half_frame  # last audio frame: 0.3 ms (held end)
    assert err_s[-1] == pytest.approx(300.0 - 8991 * 1001 / 30000, abs=1e-9)
    inside = F.inside_mask(audio_times, video_times)
    assert inside.sum() == 30000 and err_s[inside].max() < 1e-9  # no drift anywhere

    # The original: 80 frames/s audio, keypoints x3 (89.91 /s), paired index to index.
    orig_feats, orig_times = F.mfcc(audio, F.MFCCConfig.original())
    assert len(orig_feats) == 24001
    t_audio, t_target, drift = F.original_drift(video_times, orig_times, factor=3)
    n_up = 3 * (8992 - 1) + 1
    assert len(drift) == min(n_up, 24001) == 24001
    # row i is at (i / 3) * 1001 / 30000 s but hears audio at i / 80 s
    expected_end = 300.0 - 8000 * 1001 / 30000  # = 300 * (1 - 80 * 1001 / 90000)
    assert drift[-1] == pytest.approx(expected_end, abs=1e-9)
    assert drift[-1] == pytest.approx(33.0667, abs=1e-4)
    np.testing.assert_allclose(drift, t_audio * (1 - 80 / (3 * NTSC)), rtol=0, atol=1e-9)
    # ... while the exact alignment of the same targets at those audio times is exact
    ours = F.align_to_times(target, video_times, t_audio)[:, 0]
    assert np.abs(ours - t_audio)[t_audio <= video_times[-1]].max() < 1e-9


def test_original_pairing_reproduces_the_upsampled_targets():
    video_times = _ntsc_times(2.0)  # 60 frames
    values = np.stack([np.arange(60.0), 2 * np.arange(60.0)], axis=1)
    pairs = F.align_original(values, n_audio_frames=161, factor=3, video_times=video_times)
    assert len(pairs.targets) == 161 and pairs.targets.shape == (161, 2)  # cut to the audio
    np.testing.assert_array_equal(pairs.audio_index, np.arange(161))
    np.testing.assert_allclose(pairs.targets[:, 0], np.arange(161) / 3, atol=1e-12)
    np.testing.assert_allclose(pairs.video_index, np.arange(161) / 3, atol=1e-12)
    np.testing.assert_allclose(pairs.target_times, np.arange(161) / 3 * 1001 / 30000, atol=1e-12)
    longer = F.align_original(values, n_audio_frames=1000, factor=3)
    assert len(longer.targets) == 3 * 59 + 1 and longer.target_times is None  # cut to video


def test_ratio_pairing_drifts_at_most_about_one_audio_frame():
    video_times = _ntsc_times(300.0)
    audio_times = F.MFCCConfig.original().frame_times(24001)
    _, _, drift = F.original_drift(video_times, audio_times, factor=3, pairing="ratio")
    assert len(drift) == 3 * 8991 + 1
    assert np.abs(drift).max() < 0.0125 + 1e-3


def test_variable_frame_rate_uses_the_timestamps():
    rng = np.random.default_rng(5)
    video_times = np.cumsum(rng.uniform(0.02, 0.06, size=200))  # uneven, 20..60 ms
    points = np.repeat(video_times[:, None, None], 68, axis=1).repeat(2, axis=2)  # (T, 68, 2)
    audio_times = F.MFCCConfig().frame_times(1 + int(video_times[-1] * 100))
    aligned = F.align_to_times(points.astype(np.float32), video_times, audio_times)
    assert aligned.shape == (len(audio_times), 68, 2) and aligned.dtype == np.float32
    inside = F.inside_mask(audio_times, video_times)
    assert inside.sum() > 0.9 * len(audio_times)
    np.testing.assert_allclose(aligned[inside, 10, 1], audio_times[inside], rtol=0, atol=1e-4)
    exact = F.align_to_times(video_times, video_times, audio_times)  # float64, 1-D values
    np.testing.assert_allclose(exact[inside], audio_times[inside], rtol=0, atol=1e-12)
    # outside the video: held (default) or NaN
    assert exact[0] == video_times[0]
    nan = F.align_to_times(video_times, video_times, audio_times, outside="nan")
    assert np.isnan(nan[~inside]).all() and not np.isnan(nan[inside]).any()


def test_missing_rows_spoil_only_their_neighbourhood():
    video_times = np.arange(10) * 0.04
    values = np.arange(10.0)[:, None].copy()
    values[5] = np.nan
    target = np.array([0.159, 0.16, 0.161, 0.2, 0.239, 0.24, 0.241])
    out = F.align_to_times(values, video_times, target)[:, 0]
    assert out[1] == 4.0 and out[5] == 6.0  # exactly on a valid frame: valid
    assert out[0] == pytest.approx(3.975)
    assert np.isnan(out[[2, 3, 4]]).all()  # between frames 4 and 6: NaN
    assert out[6] == pytest.approx(6.025)


def test_alignment_rejects_bad_timestamps():
    with pytest.raises(ValueError, match="strictly increasing"):
        F.align_to_times(np.zeros((3, 2)), [0.0, 0.1, 0.1], [0.05])
    with pytest.raises(ValueError, match="3 entries but the values have 4 rows"):
        F.align_to_times(np.zeros((4, 2)), [0.0, 0.1, 0.2], [0.05])


def _roundtrip_setup():
    video_times = _ntsc_times(10.0)  # 300 frames
    audio_times = F.MFCCConfig().frame_times(1001)  # 0 .. 10.00 s, 100 /s
    return video_times, audio_times


def test_round_trip_to_video_times_is_exact_for_piecewise_linear_signals():
    video_times, audio_times = _roundtrip_setup()
    rng = np.random.default_rng(6)
    v = rng.uniform(0, 500, size=(len(video_times), 6))  # knots at the video frames
    at_audio = F.align_to_times(v, video_times, audio_times)
    back = F.to_video_times(at_audio, audio_times, video_times)
    assert back.shape == v.shape
    assert np.abs(back - v).max() < 1e-6
    # plain interpolation is not an inverse: it cuts each knot by up to h_audio * |dslope| / 4
    interp = F.to_video_times(at_audio, audio_times, video_times, method="interp")
    dslope = np.abs(np.diff(v, 2, axis=0)) / (1001 / 30000)
    assert np.abs(interp - v)[1:-1].max() <= (0.01 * dslope / 4).max() + 1e-9
    assert np.abs(interp - v).max() > 1.0


def test_round_trip_of_keypoints_keeps_shape_and_dtype():
    video_times, audio_times = _roundtrip_setup()
    t = video_times[:, None, None]
    points = (
        200 + 30 * np.sin(2 * np.pi * 2.0 * t + np.arange(68)[:, None] / 10) + np.zeros((1, 1, 2))
    ).astype(np.float32)
    back = F.to_video_times(
        F.align_to_times(points, video_times, audio_times), audio_times, video_times
    )
    assert back.shape == (300, 68, 2) and back.dtype == np.float32
    assert np.abs(back - points).max() < 1e-3  # float32 pixels


def test_to_video_times_of_a_smooth_prediction_is_close_to_the_truth():
    """A prediction that is a smooth function of time (not piecewise linear in video frames):
    the least-squares inverse returns the best piecewise-linear fit, within the video-rate
    approximation error h_video^2 f'' / 8 of the truth (0.022 for a 2 Hz unit sine); plain
    interpolation is within the audio-rate chord error h_audio^2 f'' / 8 (0.0020)."""
    video_times, audio_times = _roundtrip_setup()
    f = lambda t: np.sin(2 * np.pi * 2.0 * t)  # noqa: E731
    curvature = (2 * np.pi * 2.0) ** 2
    pred = f(audio_times)[:, None]
    lstsq = F.to_video_times(pred, audio_times, video_times)[:, 0]
    bound_video = (1001 / 30000) ** 2 * curvature / 8
    assert bound_video == pytest.approx(0.0220, abs=1e-4)
    assert np.abs(lstsq - f(video_times)).max() < bound_video
    interp = F.to_video_times(pred, audio_times, video_times, method="interp")[:, 0]
    bound_audio = 0.01**2 * curvature / 8
    assert bound_audio == pytest.approx(0.00197, abs=1e-5)
    assert np.abs(interp - f(video_times)).max() <= bound_audio + 1e-6


def test_to_video_times_handles_video_beyond_the_audio():
    video_times = _ntsc_times(2.0)  # 0 .. 1.9686 s
    audio_times = F.MFCCConfig().frame_times(151)  # 0 .. 1.50 s only
    pred = audio_times[:, None] * 10.0
    back = F.to_video_times(pred, audio_times, video_times)[:, 0]
    covered = video_times < 1.5 - 1 / NTSC
    np.testing.assert_allclose(back[covered], 10 * video_times[covered], atol=1e-6)
    assert np.isfinite(back).all() and back[-1] == pytest.approx(15.0, abs=1e-6)  # held end
    with pytest.raises(ValueError, match="interp"):
        F.to_video_times(np.full((151, 1), np.nan), audio_times, video_times)


# ------------------------------------------------------------------------------------------
# Context windows
# ------------------------------------------------------------------------------------------


def _root_array(a: np.ndarray) -> np.ndarray:
    """Follow ``.base`` to the array that owns the memory."""
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def test_windows_hold_exactly_their_frames_with_edge_padding():
    n, f, p, q = 50, 3, 4, 6
    feats = np.arange(n * f, dtype=np.float32).reshape(n, f)
    win = F.windows(feats, p, q, pad="edge")
    assert win.shape == (50, 11, 3)
    for i in range(n):
        idx = np.clip(np.arange(i - p, i + q + 1), 0, n - 1)
        np.testing.assert_array_equal(win[i], feats[idx])
    np.testing.assert_array_equal(win[:, p], feats)  # never slid off its frame
    np.testing.assert_array_equal(win[0, :p], np.repeat(feats[:1], p, axis=0))
    np.testing.assert_array_equal(win[-1, -q:], np.repeat(feats[-1:], q, axis=0))


def test_windows_zero_padding():
    feats = np.arange(1.0, 21.0).reshape(10, 2)
    win = F.windows(feats, 2, 3, pad="zero")
    assert (win[0, :2] == 0).all() and (win[1, 0] == 0).all() and (win[1, 1] == feats[0]).all()
    assert (win[-1, -3:] == 0).all() and (win[-1, 2] == feats[-1]).all()
    assert (win[4] == feats[2:8]).all()


def test_windows_are_a_read_only_view_of_one_padded_copy():
    feats = np.random.default_rng(7).standard_normal((6000, 40)).astype(np.float32)
    p = q = 40  # 81 frames: 81x the features as a copy
    win = F.windows(feats, p, q)
    root = _root_array(win)
    assert isinstance(root, np.ndarray) and root.shape == (6000 + 80, 40)
    assert np.shares_memory(win, root) and not np.shares_memory(win, feats)
    assert not win.flags.writeable
    with pytest.raises(ValueError):
        win[0, 0, 0] = 1.0
    assert win.nbytes == 81 * feats.nbytes  # what a copy would cost

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        F.windows(feats, p, q)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * feats.nbytes, f"windows() allocated {peak} bytes"


def test_original_context_is_40_frames_of_future_only():
    cfg = F.MFCCConfig.original()
    n_past, n_future = F.ORIGINAL_CONTEXT.frames(cfg)
    assert (n_past, n_future) == (0, 39)
    off = F.window_offsets_s(cfg, n_past, n_future)
    assert len(off) == 40 and off[0] == 0.0 and off[-1] == pytest.approx(0.4875)
    assert len(off) * cfg.hop_s == pytest.approx(0.5)  # 500 ms of future
    assert F.audio_span_s(cfg, n_past, n_future) == pytest.approx((-0.0125, 0.5))
    feats = np.arange(100.0)[:, None]
    win = F.windows(feats, n_past, n_future)
    assert (win[10, :, 0] == np.arange(10, 50)).all()  # starts at its own frame


def test_context_presets_and_rounding():
    ours = F.MFCCConfig()
    assert F.OBAMANET_CONTEXT.frames(ours) == (30, 19)  # look_back 50, time_delay 20
    assert F.DEFAULT_CONTEXT.frames(ours) == (20, 20)
    np.testing.assert_allclose(F.window_offsets_s(ours, 20, 20), np.arange(-20, 21) * 0.01)
    assert F.context_frames(ours, 204.0, 205.0) == (20, 21)  # nearest, halves up
    assert F.context_frames(F.MFCCConfig.original(), 200.0, 200.0) == (16, 16)
    with pytest.raises(ValueError, match=">= 0"):
        F.context_frames(ours, -10.0, 0.0)


# ------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------


def _train_val():
    rng = np.random.default_rng(8)
    train = [rng.normal([10, -5, 3, 7], [1, 2, 3, 4], size=(n, 4)) for n in (300, 500, 200)]
    for a in train:
        a[:, 3] = 7.0  # a constant dimension
    val = rng.normal([15, -5, 3, 7], [1, 2, 3, 4], size=(400, 4))
    return train, val


def test_global_normaliser_uses_train_statistics_only():
    train, val = _train_val()
    norm = F.FeatureNormalizer("global").fit(train)
    pooled = np.concatenate(train)
    np.testing.assert_allclose(norm.mean, pooled.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(norm.std, pooled.std(axis=0), rtol=0, atol=1e-12)
    assert norm.n_frames == 1000
    z = norm.transform(pooled)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z[:, :3].std(axis=0), 1.0, atol=1e-5)
    assert (z[:, 3] == 0).all()  # constant: floored std, no inf/NaN
    zv = norm.transform(val)
    np.testing.assert_allclose(zv, (val - norm.mean) / np.maximum(norm.std, 1e-5), atol=1e-5)
    assert zv[:, 0].mean() == pytest.approx((15 - norm.mean[0]) / norm.std[0], abs=0.15)
    assert zv[:, 0].mean() > 4.0  # not standardised by its own stats
    np.testing.assert_allclose(norm.inverse_transform(zv)[:, :3], val[:, :3], atol=1e-4)


def test_utterance_normaliser_standardises_each_array():
    train, val = _train_val()
    norm = F.FeatureNormalizer("utterance")
    for a in train + [val]:
        z = norm.transform(a)
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(z[:, :3].std(axis=0), 1.0, atol=1e-5)


def test_normaliser_state_round_trips_through_json():
    train, val = _train_val()
    norm = F.FeatureNormalizer("global", std_floor=1e-4).fit(train)
    again = F.FeatureNormalizer.from_state_dict(json.loads(json.dumps(norm.state_dict())))
    assert again.mode == "global" and again.std_floor == 1e-4 and again.n_frames == 1000
    assert np.array_equal(again.transform(val), norm.transform(val))


def test_normaliser_errors_name_the_problem():
    with pytest.raises(RuntimeError, match="fit"):
        F.FeatureNormalizer("global").transform(np.zeros((3, 4)))
    train, _ = _train_val()
    norm = F.FeatureNormalizer().fit(train)
    with pytest.raises(ValueError, match="fitted on 4"):
        norm.transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="array 1 has 5 features"):
        F.FeatureNormalizer().fit([np.zeros((3, 4)), np.zeros((3, 5))])
    with pytest.raises(ValueError, match="mode"):
        F.FeatureNormalizer("per-speaker")


def test_causal_normalizer_uses_only_the_past_and_a_prior() -> None:
    from wav2kp.features.acoustic import CausalNormalizer, FeatureNormalizer

    rng = np.random.default_rng(0)
    prior = FeatureNormalizer().fit([rng.normal(2.0, 3.0, size=(500, 4))])
    norm = CausalNormalizer(prior, prior_frames=50)
    x = rng.normal(-1.0, 0.5, size=(400, 4))  # another "channel": offset and scale
    z = norm(x)
    # causal: a prefix normalises to the prefix of the whole
    np.testing.assert_allclose(norm(x[:123]), z[:123], rtol=1e-6, atol=1e-6)
    # the first frame is normalised by (almost) the prior alone
    np.testing.assert_allclose(
        z[0],
        (x[0] - (50 * prior.mean + x[0]) / 51)
        / np.sqrt(
            (50 * (prior.std**2 + prior.mean**2) + x[0] ** 2) / 51
            - ((50 * prior.mean + x[0]) / 51) ** 2
        ),
        rtol=1e-5,
    )
    # long after the start the recording's own statistics dominate: near zero mean, where the
    # global normaliser leaves the channel's offset (-1 sd here)
    assert np.abs(z[300:].mean(axis=0)).max() < 0.3
    assert np.abs(prior(x)[300:].mean(axis=0)).min() > 0.9
    with pytest.raises(ValueError, match="fitted"):
        CausalNormalizer(FeatureNormalizer())
