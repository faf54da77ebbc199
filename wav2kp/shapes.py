"""Landmark geometry for the 68-point dlib / iBUG-300W layout.

All functions take points as float arrays ``(..., 68, 2)`` in pixels (x right, y down) and work
on any leading batch shape (a single face ``(68, 2)`` or a sequence ``(T, 68, 2)``).

Pose normalisation and the PCA basis (second half of the module) follow one path, each step
invertible so that model output always returns to pixels::

    reference = mean_shape(train_points)                  # (68, 2), IOD 1, centred, eyes level
    norm, pose = normalise(points, reference)             # (T, 68, 2) + Similarity per frame
    pca = ShapePCA.fit(select_points(norm, "mouth"), variance=0.95)
    z = pca.transform(select_points(norm, "mouth"))       # (T, k) model targets
    mouth = pca.inverse_transform(z).reshape(-1, 20, 2)   # back to normalised mouth points
    pixels = denormalise(complete_with(reference, mouth), pose)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

N_POINTS = 68

#: Index ranges of the face parts (subject's right is the image's left).
PARTS: dict[str, np.ndarray] = {
    "jaw": np.arange(0, 17),
    "right_brow": np.arange(17, 22),
    "left_brow": np.arange(22, 27),
    "nose": np.arange(27, 36),
    "right_eye": np.arange(36, 42),
    "left_eye": np.arange(42, 48),
    "outer_lip": np.arange(48, 60),
    "inner_lip": np.arange(60, 68),
}
#: The 20 mouth points (outer and inner lip), as scored by M-LMD.
MOUTH = np.arange(48, 68)

#: Polylines for drawing: (part, closed?)
POLYLINES: list[tuple[str, bool]] = [
    ("jaw", False),
    ("right_brow", False),
    ("left_brow", False),
    ("nose", False),
    ("right_eye", True),
    ("left_eye", True),
    ("outer_lip", True),
    ("inner_lip", True),
]

#: Upper/lower inner-lip pairs whose gaps define the mouth opening.
INNER_LIP_PAIRS = np.array([[61, 67], [62, 66], [63, 65]])


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the subject's right and left eye, ``(..., 2)`` each, in pixels."""
    pts = np.asarray(points, dtype=np.float64)
    return pts[..., 36:42, :].mean(axis=-2), pts[..., 42:48, :].mean(axis=-2)


def inter_ocular(points: np.ndarray) -> np.ndarray:
    """Inter-ocular distance in pixels: between the outer eye corners (points 36 and 45).

    This is the normalisation of the 300-W benchmark; errors "in % of the inter-ocular
    distance" throughout the study divide by it. Shape ``(...)``.
    """
    pts = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(pts[..., 36, :] - pts[..., 45, :], axis=-1)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Mean vertical gap between the inner lips (pairs 61-67, 62-66, 63-65), pixels, ``(...)``."""
    pts = np.asarray(points, dtype=np.float64)
    gaps = pts[..., INNER_LIP_PAIRS[:, 1], :] - pts[..., INNER_LIP_PAIRS[:, 0], :]
    return np.linalg.norm(gaps, axis=-1).mean(axis=-1)


def polygon_area(poly: np.ndarray) -> np.ndarray:
    """Unsigned shoelace area of polygons ``(..., N, 2)``, square pixels, ``(...)``."""
    x, y = poly[..., 0], poly[..., 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y, axis=-1))


def mouth_area(points: np.ndarray) -> np.ndarray:
    """Area of the inner-lip polygon (points 60..67), square pixels, ``(...)``."""
    return polygon_area(np.asarray(points, dtype=np.float64)[..., 60:68, :])


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A face-aligned frame: origin (eye midpoint), unit x (towards the subject's left eye) and
    unit y (down the face), each ``(..., 2)``."""
    right, left = eye_centres(points)
    origin = (right + left) / 2
    ex = left - right
    ex = ex / np.linalg.norm(ex, axis=-1, keepdims=True)
    ey = np.stack([-ex[..., 1], ex[..., 0]], axis=-1)
    return origin, ex, ey


# --------------------------------------------------------------------------------------------
# Pose normalisation: similarity Procrustes to a reference (mean) face
# --------------------------------------------------------------------------------------------

#: Default points for fitting the head pose: the nose (27-35) and the four eye corners
#: (36, 39, 42, 45). These are the points that speech and expression do not move. The jaw
#: (0-16) and the lips (48-67) move with speech, so fitting on them would turn jaw opening into
#: a pose change (the face would be shifted and shrunk to hide the opening); the eyelids
#: (37, 38, 40, 41, 43, 44, 46, 47) move with blinks and eye widening; the brows (17-26) move with
#: emotion (raised / lowered). This is also what the bundled corpus' face moves (see
#: :mod:`wav2kp.corpus.face`): none of these 13 points carries a local displacement there.
STABLE_POINTS = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])

#: Named point sets accepted wherever a ``which`` / ``points`` argument takes a string.
POINT_SETS: dict[str, np.ndarray] = {
    "face": np.arange(N_POINTS),
    "all": np.arange(N_POINTS),
    "mouth": MOUTH,
    "stable": STABLE_POINTS,
    **PARTS,
}


def point_indices(
    which: str | Sequence[int] | np.ndarray | None, default: np.ndarray = STABLE_POINTS
) -> np.ndarray:
    """Landmark indices ``(P,)`` for a point-set name (``"face"``, ``"mouth"``, ``"stable"`` or a
    :data:`PARTS` name), an explicit index list, or ``None`` (``default``)."""
    if which is None:
        return np.asarray(default, dtype=np.intp)
    if isinstance(which, str):
        try:
            return POINT_SETS[which]
        except KeyError:
            raise ValueError(
                f"Unknown point set {which!r}: use one of {sorted(POINT_SETS)} "
                "or a list of landmark indices."
            ) from None
    idx = np.asarray(which, dtype=np.intp).ravel()
    if idx.size == 0 or idx.min() < 0 or idx.max() >= N_POINTS:
        raise ValueError(f"Landmark indices must be a non-empty list within 0..67, got {which!r}.")
    return idx


@dataclass(eq=False)
class Similarity:
    """Similarity transforms ``x -> scale * rotation @ x + translation`` (no reflection), one per
    frame of a batch with shape ``B`` (``(T,)`` for a sequence, ``()`` for one face).

    ``scale`` is ``B`` (unitless ratio: output units per input unit), ``rotation`` ``B + (2, 2)``
    with determinant +1, ``translation`` ``B + (2,)`` in output units. Frames that could not be
    fitted (missing faces) hold NaN everywhere and map every point to NaN.
    """

    scale: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        self.scale = np.asarray(self.scale, dtype=np.float64)
        self.rotation = np.asarray(self.rotation, dtype=np.float64)
        self.translation = np.asarray(self.translation, dtype=np.float64)
        b = self.scale.shape
        if self.rotation.shape != b + (2, 2) or self.translation.shape != b + (2,):
            raise ValueError(
                f"Similarity arrays disagree: scale {self.scale.shape}, rotation "
                f"{self.rotation.shape}, translation {self.translation.shape}; "
                "expected B, B+(2, 2), B+(2,)."
            )

    @classmethod
    def from_params(
        cls,
        scale: np.ndarray | float,
        angle: np.ndarray | float,
        translation: np.ndarray | Sequence[float],
    ) -> Similarity:
        """Build from scale ``B``, angle ``B`` (radians, counter-clockwise in x-right/y-up axes,
        i.e. clockwise on screen where y points down) and translation ``B + (2,)``."""
        s = np.asarray(scale, dtype=np.float64)
        a = np.asarray(angle, dtype=np.float64)
        c, sn = np.cos(a), np.sin(a)
        rot = np.stack([np.stack([c, -sn], -1), np.stack([sn, c], -1)], -2)
        b = np.broadcast_shapes(s.shape, a.shape)
        return cls(
            np.broadcast_to(s, b).copy(),
            np.broadcast_to(rot, b + (2, 2)).copy(),
            np.broadcast_to(np.asarray(translation, dtype=np.float64), b + (2,)).copy(),
        )

    @classmethod
    def identity(cls, shape: tuple[int, ...] = ()) -> Similarity:
        """Identity transforms for a batch ``shape``."""
        return cls.from_params(np.ones(shape), np.zeros(shape), np.zeros(shape + (2,)))

    @property
    def angle(self) -> np.ndarray:
        """Rotation angle in radians, ``B`` (see :meth:`from_params` for the sense)."""
        return np.arctan2(self.rotation[..., 1, 0], self.rotation[..., 0, 0])

    def __len__(self) -> int:
        return len(self.scale)

    def __getitem__(self, index: int | slice | np.ndarray) -> Similarity:
        """The transforms of some frames (numpy indexing on the batch axes)."""
        return Similarity(self.scale[index], self.rotation[index], self.translation[index])

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform points ``B + (P, 2)`` (or anything broadcasting against it, e.g. one shape
        ``(P, 2)`` under ``T`` transforms gives ``(T, P, 2)``). Returns float64."""
        pts = np.asarray(points, dtype=np.float64)
        return (
            self.scale[..., None, None] * (pts @ np.swapaxes(self.rotation, -1, -2))
            + self.translation[..., None, :]
        )

    def inverse(self) -> Similarity:
        """The inverse transforms: ``x -> R^T (x - t) / s``."""
        rt = np.swapaxes(self.rotation, -1, -2)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_s = 1.0 / self.scale
        t = -inv_s[..., None] * np.einsum("...ij,...j->...i", rt, self.translation)
        return Similarity(inv_s, rt, t)

    def smoothed(self, window: int, order: int = 2) -> Similarity:
        """A sequence of transforms (batch ``(T,)``) smoothed over time: a Savitzky-Golay filter
        of ``window`` frames (odd; shortened to the sequence) and polynomial ``order`` on the
        log scale, the unwrapped angle and the translation. Missing frames (NaN) are bridged for
        the filter and stay NaN. ``window <= order`` returns an unchanged copy. Smooth motion
        up to ``order`` (a constant pose, a steady turn) passes through unchanged."""
        from scipy.signal import savgol_filter

        if self.scale.ndim != 1:
            raise ValueError(
                f"smoothed: a sequence (T,) of transforms, got batch {self.scale.shape}"
            )
        n = len(self.scale)
        ok = np.isfinite(self.scale) & np.isfinite(self.translation).all(axis=1)
        window = min(int(window), n if n % 2 else n - 1)
        if window % 2 == 0:
            window -= 1
        if window <= order or ok.sum() < 2:
            return Similarity(self.scale.copy(), self.rotation.copy(), self.translation.copy())
        t = np.arange(n, dtype=np.float64)
        tracks = [np.log(self.scale), np.unwrap(np.where(ok, self.angle, 0.0)),
                  self.translation[:, 0], self.translation[:, 1]]  # fmt: skip
        smooth = []
        for track in tracks:
            filled = np.interp(t, t[ok], track[ok])
            smooth.append(savgol_filter(filled, window, order, mode="interp"))
        out = Similarity.from_params(np.exp(smooth[0]), smooth[1], np.stack(smooth[2:], axis=1))
        out.scale[~ok], out.rotation[~ok], out.translation[~ok] = np.nan, np.nan, np.nan
        return out

    def apply_inverse(self, points: np.ndarray) -> np.ndarray:
        """Undo :meth:`apply`: points ``B + (P, 2)`` in output units back to input units."""
        return self.inverse().apply(points)

    def as_affine(self) -> np.ndarray:
        """Affine matrices ``B + (2, 3)``: ``[s R | t]`` (the layout of
        :meth:`wav2kp.corpus.face.FaceModel.head_transforms`)."""
        return np.concatenate(
            [self.scale[..., None, None] * self.rotation, self.translation[..., None]], axis=-1
        )

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Arrays for ``np.savez``: ``{prefix}scale``, ``{prefix}rotation``,
        ``{prefix}translation`` (a prefix lets several live in one npz)."""
        return {
            f"{prefix}scale": self.scale,
            f"{prefix}rotation": self.rotation,
            f"{prefix}translation": self.translation,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str = "") -> Similarity:
        """Inverse of :meth:`to_arrays` (takes a dict or an opened ``np.load`` npz)."""
        return cls(
            np.asarray(arrays[f"{prefix}scale"]),
            np.asarray(arrays[f"{prefix}rotation"]),
            np.asarray(arrays[f"{prefix}translation"]),
        )


def similarity_fit(
    src: np.ndarray, dst: np.ndarray, points: str | Sequence[int] | np.ndarray | None = None
) -> Similarity:
    """Least-squares similarity (Umeyama 1991, restricted to rotations) mapping ``src`` onto
    ``dst``: minimises ``sum_i |s R src_i + t - dst_i|^2`` over the landmarks ``points``.

    ``src`` is ``(68, 2)`` or ``(..., 68, 2)`` (e.g. ``(T, 68, 2)`` pixels), ``dst`` ``(68, 2)``
    or broadcastable against ``src``; ``points`` selects the landmarks that are fitted
    (:func:`point_indices`; default :data:`STABLE_POINTS`, ``"face"`` for all 68). In 2-D the
    optimum has a closed form: with centred points ``x``, ``y``, ``a = sum x.y`` and
    ``b = sum x cross y``, the angle is ``atan2(b, a)`` and ``s = hypot(a, b) / sum |x|^2``; the
    rotation therefore never reflects (det +1), even when ``dst`` is a mirrored face.

    Frames with a NaN among the fitted points, or whose fitted points all coincide, get NaN
    transforms; the other frames are unaffected. Returns a :class:`Similarity` with batch shape
    ``src.shape[:-2]`` (broadcast with ``dst.shape[:-2]``).
    """
    idx = point_indices(points)
    x = np.asarray(src, dtype=np.float64)[..., idx, :]
    y = np.asarray(dst, dtype=np.float64)[..., idx, :]
    x, y = np.broadcast_arrays(x, y)
    mx, my = x.mean(axis=-2), y.mean(axis=-2)
    xc, yc = x - mx[..., None, :], y - my[..., None, :]
    a = np.sum(xc[..., 0] * yc[..., 0] + xc[..., 1] * yc[..., 1], axis=-1)
    b = np.sum(xc[..., 0] * yc[..., 1] - xc[..., 1] * yc[..., 0], axis=-1)
    var = np.sum(xc**2, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(var > 0, np.hypot(a, b) / var, np.nan)
    angle = np.where(np.isfinite(scale), np.arctan2(b, a), np.nan)
    sim = Similarity.from_params(scale, angle, np.zeros(scale.shape + (2,)))
    sim.translation = my - sim.apply(mx[..., None, :])[..., 0, :]
    return sim


def canonical_transform(shape: np.ndarray) -> Similarity:
    """The similarity that puts a shape ``(..., 68, 2)`` into the canonical frame: centroid of
    all 68 points at the origin, inter-ocular distance (outer eye corners 36-45,
    :func:`inter_ocular`) 1, and the line 36 -> 45 along +x (eyes level). Batch ``(...)``."""
    pts = np.asarray(shape, dtype=np.float64)
    d = pts[..., 45, :] - pts[..., 36, :]
    iod = np.hypot(d[..., 0], d[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = Similarity.from_params(
            np.where(iod > 0, 1.0 / iod, np.nan),
            -np.arctan2(d[..., 1], d[..., 0]),
            np.zeros(iod.shape + (2,)),
        )
    sim.translation = -sim.apply(pts.mean(axis=-2)[..., None, :])[..., 0, :]
    return sim


def canonicalise(shape: np.ndarray) -> np.ndarray:
    """``shape`` ``(..., 68, 2)`` in the canonical frame of :func:`canonical_transform`
    (units: inter-ocular distances)."""
    return canonical_transform(shape).apply(shape)


def normalise(
    points: np.ndarray,
    reference: np.ndarray,
    fit_points: str | Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, Similarity]:
    """Remove head position, rotation and scale: align every frame to ``reference``.

    ``points`` ``(T, 68, 2)`` (or ``(68, 2)``) in pixels; ``reference`` ``(68, 2)``, usually
    :func:`mean_shape` (then the output is in inter-ocular distances of the mean face, centred
    near the origin). The pose is fitted on ``fit_points`` (default :data:`STABLE_POINTS`) and
    applied to all 68 points, so speech movements (jaw, lips) survive, scaled by ``1 / s``.

    Returns ``(normalised (T, 68, 2) float64, pose)`` where ``pose`` maps pixels to normalised
    coordinates; :func:`denormalise` undoes it exactly. Frames with NaN stable points stay NaN.
    """
    pose = similarity_fit(points, reference, fit_points)
    return pose.apply(points), pose


def denormalise(normalised: np.ndarray, pose: Similarity) -> np.ndarray:
    """Back to pixels: the inverse of :func:`normalise` for ``normalised`` ``(T, P, 2)`` (any
    ``P``, e.g. predictions of the 20 mouth points) under the per-frame ``pose``."""
    return pose.apply_inverse(normalised)


def mean_shape(
    shapes: np.ndarray,
    iterations: int = 20,
    tol: float = 1e-10,
    fit_points: str | Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Generalised Procrustes mean ``(68, 2)`` of ``shapes`` ``(N, 68, 2)`` (pixels).

    Start from the first complete frame in the canonical frame (:func:`canonicalise`); then
    repeat up to ``iterations`` times: align every frame to the current mean on ``fit_points``
    (default :data:`STABLE_POINTS`, the same as :func:`normalise`, so the mean is the average of
    the normalised training shapes), average point-wise, put the average into the canonical frame
    (centred, inter-ocular distance 1, eyes level). Stop when no point moves more than ``tol``
    (inter-ocular units). Frames with NaN fit points are ignored; other NaN points are left out
    of their point's average.
    """
    pts = np.asarray(shapes, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"mean_shape needs shapes (N, 68, 2), got {pts.shape}.")
    complete = np.flatnonzero(np.isfinite(pts).all(axis=(1, 2)))
    if complete.size == 0:
        raise ValueError("mean_shape: no frame has all 68 points (every face is missing).")
    mean = canonicalise(pts[complete[0]])
    for _ in range(iterations):
        aligned, _ = normalise(pts, mean, fit_points)
        new = canonicalise(np.nanmean(aligned, axis=0))
        done = np.max(np.abs(new - mean)) <= tol
        mean = new
        if done:
            break
    return mean


# --------------------------------------------------------------------------------------------
# Targets: whole face or mouth only
# --------------------------------------------------------------------------------------------


def select_points(
    points: np.ndarray, which: str | Sequence[int] | np.ndarray = "face"
) -> np.ndarray:
    """Points ``(..., 68, 2)`` -> the subset ``(..., P, 2)``: ``"face"`` (68), ``"mouth"``
    (20, :data:`MOUTH`), ``"stable"``, a :data:`PARTS` name or an index list."""
    return np.asarray(points)[..., point_indices(which), :]


def insert_points(
    base: np.ndarray, subset: np.ndarray, which: str | Sequence[int] | np.ndarray = "mouth"
) -> np.ndarray:
    """A copy of ``base`` ``(68, 2)`` or ``(..., 68, 2)`` with the points ``which`` replaced by
    ``subset`` ``(..., P, 2)``; batch shapes broadcast (one base face under ``T`` subsets gives
    ``(T, 68, 2)``). Inverse of :func:`select_points` on the selected points."""
    idx = point_indices(which)
    sub = np.asarray(subset, dtype=np.float64)
    if sub.shape[-2:] != (len(idx), 2):
        raise ValueError(
            f"insert_points: subset has shape {sub.shape}, expected (..., "
            f"{len(idx)}, 2) for {len(idx)} points."
        )
    b = np.asarray(base, dtype=np.float64)
    batch = np.broadcast_shapes(b.shape[:-2], sub.shape[:-2])
    out = np.broadcast_to(b, batch + b.shape[-2:]).copy()
    out[..., idx, :] = sub
    return out


def complete_with(
    mean_face: np.ndarray, mouth_points: np.ndarray, pca: ShapePCA | None = None
) -> np.ndarray:
    """Full faces ``(..., 68, 2)`` from predicted mouth points ``(..., 20, 2)`` (normalised
    coordinates, :data:`MOUTH` order), for drawing mouth-only predictions.

    Without ``pca`` the other 48 points are those of ``mean_face`` ``(68, 2)`` (so the jaw does
    not follow an open mouth). With a whole-face :class:`ShapePCA` (D = 136, all 68 points)
    they come from the PCA face whose mouth best matches (least-squares coefficients, pseudo-
    inverse of the mouth block of the components), so the chin drops with the lower lip; the
    mouth points themselves are always kept exactly.
    """
    mouth = np.asarray(mouth_points, dtype=np.float64)
    if pca is None:
        return insert_points(mean_face, mouth, "mouth")
    if pca.mean.shape != (2 * N_POINTS,):
        raise ValueError(
            "complete_with: the PCA must be a whole-face one (D = 136, fitted on "
            f"all 68 points), got D = {pca.mean.shape[0]}."
        )
    cols = np.stack([2 * MOUTH, 2 * MOUTH + 1], axis=-1).ravel()
    resid = mouth.reshape(mouth.shape[:-2] + (-1,)) - pca.mean[cols]
    coef = resid @ np.linalg.pinv(pca.components[:, cols])  # (..., k)
    full = (pca.mean + coef @ pca.components).reshape(mouth.shape[:-2] + (N_POINTS, 2))
    return insert_points(full, mouth, "mouth")


# --------------------------------------------------------------------------------------------
# PCA basis
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class ShapePCA:
    """PCA of flattened normalised shapes ``(N, D)``, ``D = 2 P`` (``x0, y0, x1, y1, ...``; 136
    for the whole face, 40 for the mouth).

    Fields: ``mean`` ``(D,)``; ``components`` ``(k, D)`` orthonormal rows; ``explained_variance``
    ``(k,)`` (sample variance, ``N - 1`` denominator, in squared normalised units) of the kept
    components; ``explained_variance_ratio`` ``(min(N, D),)``: the *full* curve over all
    components (sums to 1, for the explained-variance plot; the first ``k`` are the kept ones);
    ``indices``: the landmark indices the ``P`` points are (metadata; ``None`` when unknown).

    Signs are deterministic: every component's largest-magnitude loading is positive (the first
    one on ties), so refits on the same rows in any order give the same numbers.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    n_samples: int = 0
    indices: list[int] | None = field(default=None)

    @property
    def n_components(self) -> int:
        """``k``, the number of kept components."""
        return int(self.components.shape[0])

    @property
    def cumulative_variance_ratio(self) -> np.ndarray:
        """Cumulative explained-variance ratio ``(min(N, D),)``: entry ``j`` is the fraction kept
        by ``j + 1`` components."""
        return np.cumsum(self.explained_variance_ratio)

    @staticmethod
    def _flatten(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 3 and x.shape[-1] == 2:
            x = x.reshape(len(x), -1)
        if x.ndim != 2:
            raise ValueError(f"ShapePCA needs X (N, D) or points (N, P, 2), got {x.shape}.")
        return x

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        k: int | None = None,
        variance: float | None = None,
        indices: Sequence[int] | None = None,
    ) -> ShapePCA:
        """Fit on ``X`` ``(N, D)`` (or points ``(N, P, 2)``, flattened); rows with any NaN
        (missing faces) are dropped.

        Keep ``k`` components, or the fewest whose cumulative ratio reaches ``variance`` (in
        0..1, e.g. 0.95), or all ``min(N, D)`` when both are ``None``. ``indices`` is stored as
        metadata (e.g. ``list(MOUTH)``).
        """
        if k is not None and variance is not None:
            raise ValueError("ShapePCA.fit: give k or variance, not both.")
        x = cls._flatten(X)
        x = x[np.isfinite(x).all(axis=1)]
        n, d = x.shape
        if n < 2:
            raise ValueError(f"ShapePCA.fit needs at least 2 complete rows, got {n}.")
        mean = x.mean(axis=0)
        _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)  # vt (min(N, D), D)
        pick = np.argmax(np.abs(vt), axis=1)
        vt = vt * np.sign(vt[np.arange(len(vt)), pick])[:, None]
        var_all = sv**2 / (n - 1)
        total = var_all.sum()
        ratio = var_all / total if total > 0 else np.zeros_like(var_all)
        if variance is not None:
            if not 0.0 < variance <= 1.0:
                raise ValueError(f"ShapePCA.fit: variance must be in (0, 1], got {variance}.")
            k = int(np.searchsorted(np.cumsum(ratio), variance - 1e-12) + 1)
            k = min(k, len(sv))
        elif k is None:
            k = len(sv)
        if not 1 <= k <= len(sv):
            raise ValueError(f"ShapePCA.fit: k must be in 1..{len(sv)} (min(N, D)), got {k}.")
        return cls(
            mean=mean,
            components=vt[:k].copy(),
            explained_variance=var_all[:k].copy(),
            explained_variance_ratio=ratio,
            n_samples=n,
            indices=None if indices is None else [int(i) for i in indices],
        )

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Coefficients ``(N, k)`` of ``X`` ``(N, D)`` or ``(N, P, 2)``; NaN rows stay NaN."""
        return (self._flatten(X) - self.mean) @ self.components.T

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Shapes ``(N, D)`` from coefficients ``Z`` ``(N, k)`` (``.reshape(N, -1, 2)`` gives
        points). Exact inverse of :meth:`transform` on data inside the kept subspace."""
        return self.mean + np.asarray(Z, dtype=np.float64) @ self.components

    def mode_shapes(self, mode: int, sigmas: Sequence[float] = (-2.0, 0.0, 2.0)) -> np.ndarray:
        """Shapes ``(len(sigmas), P, 2)`` along component ``mode`` (0-based):
        ``mean + sigma * sqrt(explained_variance[mode]) * components[mode]``, for plotting the
        PCA modes as faces (sigma 0 is the mean)."""
        if not 0 <= mode < self.n_components:
            raise IndexError(f"mode {mode} is outside 0..{self.n_components - 1}.")
        sig = np.asarray(sigmas, dtype=np.float64)[:, None]
        sd = np.sqrt(self.explained_variance[mode])
        return (self.mean + sig * sd * self.components[mode]).reshape(len(sig), -1, 2)

    def state_dict(self) -> dict:
        """JSON-able state (plain lists and numbers; ``json.dumps`` round-trips float64
        exactly). :meth:`from_state_dict` restores it."""
        return {
            "mean": self.mean.tolist(),
            "components": self.components.tolist(),
            "explained_variance": self.explained_variance.tolist(),
            "explained_variance_ratio": self.explained_variance_ratio.tolist(),
            "n_samples": int(self.n_samples),
            "indices": self.indices,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> ShapePCA:
        """Inverse of :meth:`state_dict` (also accepts arrays, e.g. from an npz)."""
        d = len(state["mean"])
        comps = np.asarray(state["components"], dtype=np.float64).reshape(-1, d)
        idx = state.get("indices")
        return cls(
            mean=np.asarray(state["mean"], dtype=np.float64),
            components=comps,
            explained_variance=np.asarray(state["explained_variance"], dtype=np.float64),
            explained_variance_ratio=np.asarray(
                state["explained_variance_ratio"], dtype=np.float64
            ),
            n_samples=int(state.get("n_samples", 0)),
            indices=None if idx is None else [int(i) for i in np.asarray(idx).ravel()],
        )
