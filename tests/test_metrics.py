"""Every metric on hand-made inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from wav2kp import metrics, shapes

FPS = 30000 / 1001


def face(opening: float = 10.0, iod: float = 100.0, seed: int = 0) -> np.ndarray:
    """A (68, 2) shape: eyes' outer corners ``iod`` apart, an octagonal inner lip of vertical
    half-axis ``opening / (2 sin 45°)`` so the inner-lip gap is ``opening`` px."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 100, size=(68, 2))
    pts[36], pts[45] = (0.0, 0.0), (iod, 0.0)
    angles = np.deg2rad([180, 135, 90, 45, 0, -45, -90, -135])
    ry = opening / (2 * np.sin(np.deg2rad(45)))
    pts[60:68, 0] = 50 + 20 * np.cos(angles)
    pts[60:68, 1] = 80 - ry * np.sin(angles)
    # pairs 61-67, 62-66, 63-65 are then vertical, each gap 2 * ry * sin(angle)
    return pts


def talking(n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A sequence whose mouth opening follows a smooth random signal: (points, opening px)."""
    rng = np.random.default_rng(seed)
    sig = np.convolve(rng.normal(size=n + 20), np.hanning(9), mode="same")[10 : 10 + n]
    open_px = 12 + 8 * sig / np.abs(sig).max()
    seq = np.stack([face(o) for o in open_px])
    return seq, open_px


def test_face_helper_opening() -> None:
    # exact: gaps 2 ry sin a for a = 45, 90, 45 degrees
    ry = 7.0 / (2 * np.sin(np.deg2rad(45)))
    assert shapes.mouth_opening(face(7.0)) == pytest.approx(
        (2 * ry * np.sin(np.deg2rad(45)) * 2 + 2 * ry) / 3
    )


def test_identical_sequences_have_zero_error_and_perfect_sync() -> None:
    seq, _ = talking()
    assert metrics.lmd(seq, seq) == 0.0
    assert metrics.mlmd(seq, seq) == 0.0
    assert metrics.velocity_error(seq, seq) == 0.0
    assert metrics.mouth_area_error(seq, seq) == 0.0
    assert metrics.pearson(metrics.opening(seq), metrics.opening(seq)) == pytest.approx(1.0)
    offset, corr = metrics.lipsync_offset(metrics.opening(seq), metrics.opening(seq), FPS)
    assert offset == pytest.approx(0.0, abs=1e-9) and corr == pytest.approx(1.0)


def test_translated_copy_known_lmd_and_zero_velocity_error() -> None:
    seq, _ = talking()
    moved = seq + np.array([3.0, 4.0])  # 5 px everywhere, IOD 100 px -> 5 %
    assert metrics.lmd(moved, seq) == pytest.approx(5.0)
    assert metrics.mlmd(moved, seq) == pytest.approx(5.0)
    assert metrics.velocity_error(moved, seq) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mouth_area_error(moved, seq) == pytest.approx(0.0, abs=1e-9)
    # errors are in % of the *truth's* IOD: a prediction twice as large is not excused
    big = seq * 2.0
    assert metrics.lmd(big, seq) == pytest.approx(
        100 * np.mean(np.linalg.norm(seq, axis=-1) / 100.0)
    )


def test_velocity_error_of_a_frozen_prediction_is_the_true_motion() -> None:
    seq = np.stack([face() + [k * 2.0, 0.0] for k in range(10)])  # moves 2 px per frame
    frozen = np.repeat(seq[:1], 10, axis=0)
    assert metrics.velocity_error(frozen, seq) == pytest.approx(2.0)  # 2 px / 100 px


def test_mouth_area_error_known_answer() -> None:
    a, b = face(10.0), face(16.0)
    area = shapes.mouth_area(np.stack([a, b]))
    expected = 100 * abs(area[0] - area[1]) / 100.0**2
    assert metrics.mouth_area_error(a[None], b[None]) == pytest.approx(expected)
    # the octagon's area: 8 triangles, 2 * rx * ry * sin(45) * 2 ...
    ry = 10.0 / (2 * np.sin(np.deg2rad(45)))
    assert area[0] == pytest.approx(2 * np.sqrt(2) * 20 * ry)


@pytest.mark.parametrize("shift", [-3, -1, 2, 5])
def test_shifted_copy_gives_the_shift_as_offset(shift: int) -> None:
    seq, _ = talking(300)
    o = metrics.opening(seq)
    late = np.roll(o, shift)  # prediction[t] = truth[t - shift]
    ok = np.ones(len(o), bool)
    ok[: abs(shift)] = ok[len(o) - abs(shift) :] = not shift
    exact, corr = metrics.lipsync_offset(late, o, FPS, masks=ok, refine=False)
    assert exact == pytest.approx(1000 * shift / FPS)
    assert corr > 0.99
    refined, _ = metrics.lipsync_offset(late, o, FPS, masks=ok)
    assert refined == pytest.approx(1000 * shift / FPS, abs=0.25 * 1000 / FPS)


def test_offset_pools_clips_without_crossing_them() -> None:
    a, _ = talking(150, seed=3)
    b, _ = talking(150, seed=4)
    oa, ob = metrics.opening(a), metrics.opening(b)
    lags, corr = metrics.lag_correlation([np.roll(oa, 2), np.roll(ob, 2)], [oa, ob], 4)
    assert lags[np.nanargmax(corr)] == 2
    with pytest.raises(ValueError, match="2 predicted series but 1"):
        metrics.lag_correlation([oa, ob], [oa], 3)


def test_masks_and_nan_frames_are_not_scored_as_zero() -> None:
    seq, _ = talking(20)
    pred = seq + [0.0, 10.0]  # 10 % everywhere
    pred[5] = np.nan
    assert metrics.lmd(pred, seq) == pytest.approx(10.0)
    mask = np.ones(20, bool)
    mask[:10] = False
    worse = pred.copy()
    worse[:10] += 50
    assert metrics.lmd(worse, seq, mask) == pytest.approx(10.0)
    assert np.isnan(metrics.lmd(pred, seq, np.zeros(20, bool)))
    with pytest.raises(ValueError, match="mask has shape"):
        metrics.lmd(pred, seq, np.ones(3, bool))
    with pytest.raises(ValueError, match="same length"):
        metrics.lmd(pred[:5], seq)


def test_pearson_edge_cases() -> None:
    x = np.arange(10.0)
    assert metrics.pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert metrics.pearson(x, -x) == pytest.approx(-1.0)
    assert np.isnan(metrics.pearson(x, np.ones(10)))  # constant: undefined
    assert np.isnan(metrics.pearson(x[:2], x[:2]))
    y = x.copy()
    y[3] = np.nan
    assert metrics.pearson(x, y) == pytest.approx(1.0)


def test_pose_free_removes_head_motion_only() -> None:
    seq, open_px = talking(30)
    theta = np.deg2rad(np.linspace(-10, 10, 30))
    rot = np.stack(
        [
            np.stack([np.cos(theta), -np.sin(theta)], -1),
            np.stack([np.sin(theta), np.cos(theta)], -1),
        ],
        -2,
    )  # (T, 2, 2)
    scale = np.linspace(0.8, 1.3, 30)[:, None, None]
    moved = scale * np.einsum("tij,tpj->tpi", rot, seq) + np.array([40.0, -7.0])
    a, b = metrics.pose_free(seq), metrics.pose_free(moved)
    # the stable points of `face` are random but fixed, so the pose is recovered exactly
    np.testing.assert_allclose(a, b, atol=1e-9)
    assert metrics.jitter(moved) == pytest.approx(metrics.jitter(seq))
    # areas in squared IODs: the same whatever the scale
    np.testing.assert_allclose(
        metrics.mouth_area_series(moved), metrics.mouth_area_series(seq), rtol=1e-9
    )


def test_jitter_known_answer() -> None:
    still = np.repeat(face()[None], 12, axis=0)
    assert metrics.jitter(still) == 0.0
    shaky = still.copy()
    shaky[1::2, shapes.MOUTH] += [0.0, 1.0]  # mouth points jump 1 px every frame
    assert metrics.jitter(shaky) == pytest.approx(1.0, rel=1e-6)  # 1 px of a 100 px IOD
    mask = np.zeros(12, bool)
    mask[:1] = True
    assert np.isnan(metrics.jitter(shaky, mask))  # no pair of masked frames


def test_silent_frames() -> None:
    rate = 16000
    t = np.arange(3 * rate) / rate
    audio = np.where((t > 1.0) & (t < 2.0), 0.3 * np.sin(2 * np.pi * 220 * t), 0.0)
    audio = audio + 1e-5 * np.random.default_rng(0).normal(size=len(t))
    times = np.arange(0, 3, 1 / FPS)
    silent = metrics.silent_frames(audio, rate, times)
    assert silent[(times < 0.9) | (times > 2.1)].all()
    assert not silent[(times > 1.1) & (times < 1.9)].any()
    # a single quiet frame inside speech is not a silent stretch
    audio2 = audio.copy()
    audio2[(t > 1.49) & (t < 1.51)] = 0.0
    assert not metrics.silent_frames(audio2, rate, times)[(times > 1.1) & (times < 1.9)].any()
    assert metrics.silent_frames(np.zeros(rate), rate, np.arange(0, 1, 0.1)).all()


def test_bootstrap_intervals() -> None:
    assert metrics.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    values = np.random.default_rng(0).normal(5.0, 1.0, size=200)
    mean, lo, hi = metrics.bootstrap_ci(values)
    assert lo < mean < hi and mean == pytest.approx(values.mean())
    # ~ mean +- 1.96 sd / sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.96 * values.std() / np.sqrt(200), rel=0.15)
    assert metrics.bootstrap_ci(values, seed=1) != metrics.bootstrap_ci(values, seed=2)
    assert metrics.bootstrap_ci(values, seed=1) == metrics.bootstrap_ci(values, seed=1)
    assert all(np.isnan(metrics.bootstrap_ci([np.nan])))
    d, lo, hi = metrics.paired_bootstrap(values, values - 0.5)
    assert d == pytest.approx(-0.5) and lo == pytest.approx(-0.5) and hi == pytest.approx(-0.5)
