"""Landmark geometry for the 68-point dlib / iBUG-300W layout.

All functions take points as float arrays ``(..., 68, 2)`` in pixels (x right, y down) and work
on any leading batch shape (a single face ``(68, 2)`` or a sequence ``(T, 68, 2)``).
"""
from __future__ import annotations

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
    ("jaw", False), ("right_brow", False), ("left_brow", False), ("nose", False),
    ("right_eye", True), ("left_eye", True), ("outer_lip", True), ("inner_lip", True),
]

#: Upper/lower inner-lip pairs whose gaps define the mouth opening.
INNER_LIP_PAIRS = np.array([[61, 67], [62, 66], [63, 65]])


def part_of(index: int) -> str:
    """Name of the face part that landmark ``index`` belongs to."""
    for name, idx in PARTS.items():
        if idx[0] <= index <= idx[-1]:
            return name
    raise IndexError(f"landmark index {index} is outside 0..67")


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


def mouth_width(points: np.ndarray) -> np.ndarray:
    """Distance between the outer mouth corners (48 and 54), pixels, ``(...)``."""
    pts = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(pts[..., 54, :] - pts[..., 48, :], axis=-1)


def polygon_area(poly: np.ndarray) -> np.ndarray:
    """Unsigned shoelace area of polygons ``(..., N, 2)``, square pixels, ``(...)``."""
    x, y = poly[..., 0], poly[..., 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y,
                               axis=-1))


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
