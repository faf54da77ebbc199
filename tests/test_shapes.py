"""Pose normalisation (similarity Procrustes), mean shape, targets and the PCA basis.

Everything runs on a synthetic 68-point face (pixels, IOD 100 px, a fixed 1-px asymmetry) so the
tests are fast and independent of dlib; known transforms and known PCA modes give exact answers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from wav2kp import shapes
from wav2kp.shapes import ShapePCA, Similarity


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Tiny matrices: BLAS threads only add spin-wait contention on a busy 2-core machine
    (10x slower here while a benchmark runs), so pin them to one while these tests run."""
    try:
        import threadpoolctl
    except ImportError:  # optional: just slower
        yield
        return
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def _face() -> np.ndarray:
    """A plausible frontal face ``(68, 2)`` in pixels (x right, y down): IOD 100 px."""
    t = np.linspace(0.0, np.pi, 17)
    jaw = np.c_[100 - 75 * np.cos(t), 95 + 95 * np.sin(t)]
    bx = np.linspace(0, 1, 5)
    rbrow = np.c_[40 + 50 * bx, 62 - 8 * np.sin(np.pi * bx)]
    lbrow = np.c_[110 + 50 * bx, 62 - 8 * np.sin(np.pi * bx)]
    nose = np.r_[
        [[100, y] for y in (70, 85, 100, 115)],
        [[85, 125], [92, 128], [100, 130], [108, 128], [115, 125]],
    ]
    reye = [[50, 80], [60, 74], [70, 74], [80, 80], [70, 85], [60, 85]]
    leye = [[120, 80], [130, 74], [140, 74], [150, 80], [140, 85], [130, 85]]
    outer = [
        [70, 150],
        [80, 144],
        [90, 141],
        [100, 142],
        [110, 141],
        [120, 144],
        [130, 150],
        [120, 158],
        [110, 162],
        [100, 163],
        [90, 162],
        [80, 158],
    ]
    inner = [
        [75, 150],
        [88, 148],
        [100, 148],
        [112, 148],
        [125, 150],
        [112, 152],
        [100, 153],
        [88, 152],
    ]
    pts = np.concatenate([jaw, rbrow, lbrow, nose, reye, leye, outer, inner]).astype(float)
    pts += np.random.default_rng(7).uniform(-1, 1, pts.shape)  # break the symmetry
    return pts


FACE = _face()
JAW_AND_LOWER_LIP = np.r_[5:12, 55:60, 65:68]


def _open_jaw(face: np.ndarray, px: float) -> np.ndarray:
    """``face`` with the chin, lower lip and lower inner lip moved ``px`` pixels down."""
    out = face.copy()
    out[..., JAW_AND_LOWER_LIP, 1] += px
    return out


def _random_poses(rng: np.random.Generator, n: int) -> Similarity:
    return Similarity.from_params(
        rng.uniform(0.5, 3.0, n), rng.uniform(-np.pi, np.pi, n), rng.uniform(-300, 300, (n, 2))
    )


def test_synthetic_face_is_sane() -> None:
    assert FACE.shape == (68, 2)
    assert shapes.inter_ocular(FACE) == pytest.approx(100.0, abs=2.0)
    assert shapes.mouth_opening(FACE) == pytest.approx(4.0, abs=2.0)


def test_similarity_fit_recovers_known_transforms_vectorised() -> None:
    rng = np.random.default_rng(0)
    scale, angle = np.array([0.5, 1.0, 1.7, 2.9, 0.8]), np.array([-3.0, -0.4, 0.0, 0.9, 2.5])
    shift = rng.uniform(-500, 500, (5, 2))
    truth = Similarity.from_params(scale, angle, shift)
    moved = truth.apply(FACE)  # (5, 68, 2)
    assert moved.shape == (5, 68, 2)
    for points in (None, "face", "mouth", [36, 45, 30]):
        fit = shapes.similarity_fit(FACE, moved, points)  # one src, T targets
        np.testing.assert_allclose(fit.scale, scale, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fit.angle, angle, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fit.translation, shift, rtol=0, atol=1e-9)
    back = shapes.similarity_fit(moved, FACE)  # T sources, one target
    np.testing.assert_allclose(back.scale, 1 / scale, atol=1e-9)
    np.testing.assert_allclose(back.apply(moved), np.broadcast_to(FACE, (5, 68, 2)), atol=1e-9)
    np.testing.assert_allclose(back.inverse().as_affine(), truth.as_affine(), atol=1e-9)
    one = shapes.similarity_fit(FACE, moved[3])
    assert one.scale.shape == () and one.rotation.shape == (2, 2)
    assert float(one.scale) == pytest.approx(2.9, abs=1e-9)


def test_similarity_fit_never_reflects() -> None:
    mirrored = FACE * np.array([-1.0, 1.0])  # x -> -x
    fit = shapes.similarity_fit(FACE, mirrored, "face")
    assert np.linalg.det(fit.rotation) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(fit.rotation @ fit.rotation.T, np.eye(2), atol=1e-12)
    assert 0 < fit.scale < 1  # a reflection cannot fit
    exact = shapes.similarity_fit(FACE, 2.0 * FACE)
    assert float(exact.scale) == pytest.approx(2.0, abs=1e-12)


def test_similarity_fit_nan_frames_give_nan_transforms_only() -> None:
    poses = _random_poses(np.random.default_rng(1), 4)
    moved = poses.apply(FACE)
    moved[1] = np.nan  # missing face
    moved[2, 60] = np.nan  # NaN outside the fit points
    fit = shapes.similarity_fit(moved, FACE)
    assert np.isnan(fit.scale[1]) and np.isnan(fit.rotation[1]).all()
    assert np.isnan(fit.translation[1]).all()
    ok = [0, 2, 3]
    np.testing.assert_allclose(fit.scale[ok], 1 / poses.scale[ok], atol=1e-9)
    norm, _ = shapes.normalise(moved, FACE)
    assert np.isnan(norm[1]).all() and np.isnan(norm[2, 60]).all()
    np.testing.assert_allclose(np.delete(norm[2], 60, 0), np.delete(FACE, 60, 0), atol=1e-9)
    degenerate = np.zeros((68, 2))  # all points coincide
    assert np.isnan(shapes.similarity_fit(degenerate, FACE).scale)


def test_normalise_denormalise_round_trip() -> None:
    rng = np.random.default_rng(2)
    reference = shapes.canonicalise(FACE)
    poses = _random_poses(rng, 50)
    pixels = poses.apply(FACE + rng.normal(0, 3, (50, 68, 2)))  # noisy: no exact fit
    norm, pose = shapes.normalise(pixels, reference)
    assert norm.shape == (50, 68, 2) and pose.scale.shape == (50,)
    np.testing.assert_allclose(shapes.denormalise(norm, pose), pixels, rtol=0, atol=1e-6)
    # mouth-only predictions go back through the same pose
    mouth = shapes.select_points(norm, "mouth")
    np.testing.assert_allclose(shapes.denormalise(mouth, pose), pixels[:, shapes.MOUTH], atol=1e-6)
    # the pose survives an npz round trip
    saved = pose.to_arrays("pose_")
    assert set(saved) == {"pose_scale", "pose_rotation", "pose_translation"}
    again = Similarity.from_arrays(saved, "pose_")
    np.testing.assert_array_equal(again[:3].apply(pixels[:3]), pose[:3].apply(pixels[:3]))
    np.testing.assert_allclose(again.apply_inverse(norm), pixels, atol=1e-6)


def test_normalise_removes_pose_and_keeps_mouth_motion() -> None:
    rng = np.random.default_rng(3)
    reference = shapes.canonicalise(FACE)
    gaps = np.linspace(0, 40, 9)  # jaw opening, px
    faces = np.stack([_open_jaw(FACE, g) for g in gaps])
    poses = _random_poses(rng, len(gaps))
    norm, pose = shapes.normalise(poses.apply(faces), reference)
    stable = shapes.STABLE_POINTS
    np.testing.assert_allclose(
        norm[:, stable], np.broadcast_to(reference[stable], (9, 13, 2)), atol=1e-9
    )
    np.testing.assert_allclose(pose.scale * poses.scale, 1 / shapes.inter_ocular(FACE), rtol=1e-9)
    # inner-lip gap in normalised units = true pixel gap / IOD of the unposed face
    iod = shapes.inter_ocular(FACE)
    np.testing.assert_allclose(
        shapes.mouth_opening(norm), shapes.mouth_opening(faces) / iod, rtol=0, atol=1e-9
    )
    drop = np.linalg.norm(norm[:, 8] - reference[8], axis=-1)  # chin travel
    np.testing.assert_allclose(drop, gaps / iod, atol=1e-9)


def test_jaw_motion_does_not_leak_into_pose() -> None:
    reference = shapes.canonicalise(FACE)
    closed, opened = FACE, _open_jaw(FACE, 30.0)
    a, b = shapes.similarity_fit(closed, reference), shapes.similarity_fit(opened, reference)
    np.testing.assert_allclose(b.as_affine(), a.as_affine(), rtol=0, atol=1e-12)
    # fitting on the whole face would turn the opening into a pose change
    a_all = shapes.similarity_fit(closed, reference, "face")
    b_all = shapes.similarity_fit(opened, reference, "face")
    shift = np.linalg.norm(b_all.translation - a_all.translation)
    assert shift > 0.05  # IOD units: > 5 % of IOD
    assert abs(float(b_all.scale / a_all.scale) - 1) > 0.01


def test_canonicalise_and_mean_shape_of_posed_copies() -> None:
    canon = shapes.canonicalise(FACE)
    assert float(shapes.inter_ocular(canon)) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(canon.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(canon[45] - canon[36], [1.0, 0.0], atol=1e-12)
    rng = np.random.default_rng(4)
    copies = _random_poses(rng, 12).apply(FACE)
    copies[5] = np.nan  # a missing face
    copies[0] = np.nan  # ... even the first
    np.testing.assert_allclose(shapes.mean_shape(copies), canon, rtol=0, atol=1e-6)


def test_mean_shape_averages_speech_in_normalised_coordinates() -> None:
    rng = np.random.default_rng(5)
    gaps = np.array([0.0, 10.0, 20.0, 30.0])
    copies = _random_poses(rng, 4).apply(np.stack([_open_jaw(FACE, g) for g in gaps]))
    mean = shapes.mean_shape(copies)
    expected = shapes.canonicalise(_open_jaw(FACE, gaps.mean()))  # the average opening
    np.testing.assert_allclose(mean, expected, atol=1e-6)
    with pytest.raises(ValueError, match="missing"):
        shapes.mean_shape(np.full((3, 68, 2), np.nan))


def test_similarity_algebra() -> None:
    rng = np.random.default_rng(6)
    p, q = _random_poses(rng, 3), _random_poses(rng, 3)
    x = rng.normal(0, 50, (3, 68, 2))
    np.testing.assert_allclose(p.inverse().apply(p.apply(x)), x, atol=1e-9)
    np.testing.assert_allclose(p.apply_inverse(p.apply(q.apply(x))), q.apply(x), atol=1e-9)
    np.testing.assert_allclose(Similarity.identity((3,)).apply(x), x, atol=0)
    assert len(p) == 3 and p[1:].scale.shape == (2,)


def test_select_insert_and_complete_mouth_targets() -> None:
    seq = np.stack([FACE, _open_jaw(FACE, 10.0)])
    mouth = shapes.select_points(seq, "mouth")
    assert mouth.shape == (2, 20, 2)
    assert shapes.select_points(seq, "face").shape == (2, 68, 2)
    np.testing.assert_array_equal(shapes.select_points(FACE, [36, 45]), FACE[[36, 45]])
    np.testing.assert_array_equal(shapes.insert_points(seq, mouth, "mouth"), seq)
    full = shapes.complete_with(FACE, mouth)  # (68, 2) base, T mouths
    assert full.shape == (2, 68, 2)
    np.testing.assert_array_equal(full[:, shapes.MOUTH], mouth)
    rest = np.setdiff1d(np.arange(68), shapes.MOUTH)
    np.testing.assert_array_equal(full[:, rest], np.broadcast_to(FACE[rest], (2, 48, 2)))
    with pytest.raises(ValueError, match="expected"):
        shapes.insert_points(FACE, mouth[:, :5], "mouth")
    with pytest.raises(ValueError, match="Unknown point set"):
        shapes.select_points(FACE, "ears")


def test_complete_with_whole_face_pca_moves_the_jaw() -> None:
    reference = shapes.canonicalise(FACE)
    iod = shapes.inter_ocular(FACE)
    train = np.stack(
        [
            shapes.canonicalise(FACE) + (_open_jaw(FACE, g) - FACE) / iod
            for g in np.linspace(0, 30, 7)
        ]
    )
    pca = ShapePCA.fit(train, k=1, indices=range(68))
    truth = reference + (_open_jaw(FACE, 17.0) - FACE) / iod
    full = shapes.complete_with(reference, truth[shapes.MOUTH], pca)
    np.testing.assert_allclose(full, truth, atol=1e-9)  # chin follows the lips
    plain = shapes.complete_with(reference, truth[shapes.MOUTH])
    assert plain[8, 1] == pytest.approx(reference[8, 1])  # mean jaw stays closed
    with pytest.raises(ValueError, match="whole-face"):
        shapes.complete_with(
            reference, truth[shapes.MOUTH], ShapePCA.fit(train[:, shapes.MOUTH], k=1)
        )


def _three_modes(n: int = 600, d: int = 40, noise: float = 0.0) -> tuple[np.ndarray, ...]:
    """Rows ``mean + scores @ modes`` whose scores have *exactly* the sample variances 9, 4, 1
    and are exactly uncorrelated (orthogonalised), so PCA must return them to 1e-9."""
    rng = np.random.default_rng(8)
    modes = np.linalg.qr(rng.normal(size=(d, 3)))[0].T  # (3, d) orthonormal
    raw = rng.normal(size=(n, 3))
    raw -= raw.mean(axis=0)
    q = np.linalg.qr(raw)[0]  # orthonormal, zero-mean
    variances = np.array([9.0, 4.0, 1.0])
    scores = q * np.sqrt(variances * (n - 1))
    mean = rng.normal(size=d)
    x = mean + scores @ modes + noise * rng.normal(size=(n, d))
    return x, mean, modes, variances


def test_pca_recovers_known_modes_and_variances() -> None:
    x, mean, modes, variances = _three_modes()
    pca = ShapePCA.fit(x, k=3)
    assert pca.components.shape == (3, 40) and pca.n_components == 3 and pca.mean.shape == (40,)
    np.testing.assert_allclose(pca.explained_variance, variances, rtol=1e-9)
    np.testing.assert_allclose(pca.mean, mean, atol=1e-9)
    np.testing.assert_allclose(np.abs(pca.components @ modes.T), np.eye(3), atol=1e-9)
    assert pca.explained_variance_ratio.shape == (40,)  # the full curve
    assert pca.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pca.explained_variance_ratio[:3], variances / 14, atol=1e-9)
    np.testing.assert_allclose(pca.cumulative_variance_ratio[2], 1.0, atol=1e-9)
    z = pca.transform(x)
    assert z.shape == (600, 3)
    np.testing.assert_allclose(z.var(axis=0, ddof=1), variances, rtol=1e-9)
    np.testing.assert_allclose(pca.inverse_transform(z), x, rtol=0, atol=1e-9)  # k = rank
    pts = x.reshape(600, 20, 2)  # points are flattened
    np.testing.assert_allclose(pca.transform(pts), z, atol=1e-12)
    lossy = ShapePCA.fit(x, k=1)
    err = np.mean(np.sum((lossy.inverse_transform(lossy.transform(x)) - x) ** 2, axis=1))
    assert err == pytest.approx((4 + 1) * 599 / 600, rel=1e-9)  # dropped variance


def test_pca_variance_threshold_picks_k() -> None:
    x = _three_modes(noise=0.01)[0]  # full rank, ratios ~9:4:1
    for target, k in ((0.5, 1), (0.64, 1), (0.65, 2), (0.9, 2), (0.95, 3), (0.99, 3), (1.0, 40)):
        assert ShapePCA.fit(x, variance=target).n_components == k, target
    with pytest.raises(ValueError, match="not both"):
        ShapePCA.fit(x, k=2, variance=0.9)
    with pytest.raises(ValueError, match="k must be"):
        ShapePCA.fit(x, k=41)
    assert ShapePCA.fit(x).n_components == 40


def test_pca_signs_are_deterministic_and_state_round_trips() -> None:
    x = _three_modes(noise=0.05)[0]
    a = ShapePCA.fit(x, k=5, indices=shapes.MOUTH)
    perm = np.random.default_rng(9).permutation(len(x))
    b = ShapePCA.fit(-(-x[perm]), k=5)  # noqa: B002  same rows, shuffled
    np.testing.assert_allclose(b.components, a.components, rtol=0, atol=1e-12)
    top = np.abs(a.components).argmax(axis=1)
    assert (a.components[np.arange(5), top] > 0).all()
    np.testing.assert_array_equal(ShapePCA.fit(x, k=5).components, a.components)  # rerun
    state = json.loads(json.dumps(a.state_dict()))
    c = ShapePCA.from_state_dict(state)
    assert c.indices == list(range(48, 68)) and c.n_samples == 600
    for name in ("mean", "components", "explained_variance", "explained_variance_ratio"):
        np.testing.assert_array_equal(getattr(c, name), getattr(a, name))
    np.testing.assert_array_equal(c.transform(x[:7]), a.transform(x[:7]))
    with_nan = x.copy()
    with_nan[3, 0] = np.nan  # missing face: dropped
    d = ShapePCA.fit(with_nan, k=5)
    assert d.n_samples == 599 and np.isnan(d.transform(with_nan)[3]).all()


def test_mode_shapes() -> None:
    x, mean, _, variances = _three_modes()
    pca = ShapePCA.fit(x, k=3)
    faces = pca.mode_shapes(1)
    assert faces.shape == (3, 20, 2)
    np.testing.assert_allclose(faces[1], pca.mean.reshape(20, 2), atol=1e-15)
    step = (faces[2] - faces[1]).ravel()
    np.testing.assert_allclose(step, 2 * np.sqrt(variances[1]) * pca.components[1], atol=1e-12)
    np.testing.assert_allclose(faces[0] - faces[1], faces[1] - faces[2], atol=1e-12)
    with pytest.raises(IndexError):
        pca.mode_shapes(3)


def test_smoothed_pose_keeps_steady_motion_and_removes_jitter() -> None:
    """Savitzky-Golay over time: a steady turn and zoom pass through (order 2), jitter on top
    shrinks, missing frames stay missing, a short window or sequence changes nothing."""
    t = np.arange(60.0)
    steady = Similarity.from_params(1.0 + 0.002 * t, 0.01 * t, np.stack([100 + t, 50 - 0.5 * t], 1))
    np.testing.assert_allclose(steady.smoothed(9).as_affine(), steady.as_affine(), atol=1e-9)
    rng = np.random.default_rng(3)
    noisy = Similarity.from_params(
        steady.scale * np.exp(rng.normal(0, 0.01, 60)),
        steady.angle + rng.normal(0, 0.01, 60),
        steady.translation + rng.normal(0, 1.0, (60, 2)),
    )
    noisy.scale[10] = np.nan
    noisy.rotation[10] = np.nan
    noisy.translation[10] = np.nan
    smooth = noisy.smoothed(15)
    ok = np.arange(60) != 10
    err_before = np.abs(noisy.translation[ok] - steady.translation[ok]).mean()
    err_after = np.abs(smooth.translation[ok] - steady.translation[ok]).mean()
    assert err_after < 0.6 * err_before  # measured 0.50: 15-frame quadratic fit of white noise
    assert np.isnan(smooth.scale[10]) and np.isfinite(smooth.scale[ok]).all()
    np.testing.assert_array_equal(noisy.smoothed(2).translation, noisy.translation)
    short = noisy[:3].smoothed(15)  # window shortened to 3: a quadratic through 3 points
    np.testing.assert_allclose(short.translation, noisy[:3].translation, atol=1e-9)
