"""Drawing on images, shared by the corpus generator, the viewer and the renderers.

- :func:`draw_keypoints`: the 68 keypoints and their face-part lines, anti-aliased, sub-pixel.
- :class:`PiecewiseAffineWarp`: moves a photo so that its control points land on new positions
  (Delaunay triangles over the points, every output pixel mapped back by the affine map of the
  triangle it falls in, one ``cv2.remap`` per frame); :func:`draw_mouth_interior` paints an open
  mouth (dark cavity, upper teeth).

Keypoints are ``(68, 2)`` pixels (dlib layout), pixel centres at integers; images uint8 RGB.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

from wav2kp import shapes

_SHIFT = 4  # sub-pixel bits for OpenCV drawing and polygon filling
_ONE = 1 << _SHIFT
_FAR = float(1 << 20)  # coordinates are clipped to +-_FAR px (int32 after the shift)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``(N, 2)`` as int32 fixed-point for OpenCV's ``shift``."""
    return np.round(np.clip(np.asarray(points, dtype=np.float64), -_FAR, _FAR) * _ONE).astype(
        np.int32
    )


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles ``(M, 3)`` (indices into ``points``) of control points ``(N, 2)``."""
    return Delaunay(np.asarray(points, dtype=np.float64)).simplices.astype(np.int32)


def affine_maps(dst: np.ndarray, src: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per-triangle affine maps ``(M, 2, 3)`` taking ``dst`` triangle coordinates to ``src``.

    Degenerate destination triangles (which cover no pixel) get a least-squares map.
    """
    d = np.concatenate([dst[triangles], np.ones((len(triangles), 3, 1))], axis=2)  # (M,3,3)
    s = src[triangles]  # (M,3,2)
    return np.transpose(np.linalg.pinv(d) @ s, (0, 2, 1))


class PiecewiseAffineWarp:
    """Warp ``image`` so that control points ``src_points`` move to new positions.

    Parameters
    ----------
    image: uint8 ``(H, W, 3)`` reference image.
    src_points: ``(N, 2)`` control points in ``image``'s pixels (keypoints plus any anchors).
    triangles: ``(M, 3)`` triangulation to use; by default Delaunay on ``src_points``. Pass a
        triangulation computed on a shape where no triangle flips under the motions you expect.
    """

    def __init__(
        self, image: np.ndarray, src_points: np.ndarray, triangles: np.ndarray | None = None
    ) -> None:
        self.image = np.ascontiguousarray(image)
        self.src = np.asarray(src_points, dtype=np.float64)
        self.triangles = triangulate(self.src) if triangles is None else np.asarray(triangles)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _grid(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if size not in self._cache:
            w, h = size
            self._cache[size] = np.meshgrid(
                np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
            )
        return self._cache[size]

    def maps(self, dst_points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``cv2.remap`` maps (float32 ``(h, w)`` each) for output ``size`` = (w, h)."""
        dst = np.asarray(dst_points, dtype=np.float64)
        w, h = size
        mats = affine_maps(dst, self.src, self.triangles)
        # Uncovered pixels (outside every triangle) use the global least-squares affine map.
        glob = np.linalg.lstsq(np.c_[dst, np.ones(len(dst))], self.src, rcond=None)[0].T
        mats = np.concatenate([mats, glob[None]], axis=0).astype(np.float32)
        ids = np.full((h, w), len(self.triangles), dtype=np.int32)
        fixed = _fixed(dst)
        for k, tri in enumerate(self.triangles):
            cv2.fillConvexPoly(ids, fixed[tri], int(k), lineType=cv2.LINE_8, shift=_SHIFT)
        gx, gy = self._grid(size)
        m = mats[ids]  # (h, w, 2, 3)
        map_x = m[..., 0, 0] * gx + m[..., 0, 1] * gy + m[..., 0, 2]
        map_y = m[..., 1, 0] * gx + m[..., 1, 1] * gy + m[..., 1, 2]
        return map_x, map_y

    def __call__(self, dst_points: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """The warped image, uint8 ``(h, w, 3)``; ``size`` (w, h) defaults to the input's."""
        if size is None:
            size = (self.image.shape[1], self.image.shape[0])
        map_x, map_y = self.maps(dst_points, size)
        return cv2.remap(
            self.image,
            map_x,
            map_y,
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        )


MOUTH_COLOUR = (70, 24, 30)  # RGB: dark mouth cavity
TEETH_COLOUR = (222, 214, 200)  # RGB


def draw_mouth_interior(
    image: np.ndarray, points: np.ndarray, teeth_fraction: float = 0.35
) -> np.ndarray:
    """Paint the inside of the inner-lip polygon (points 60..67) of ``points`` ``(68, 2)`` as an
    open mouth: a dark cavity with a band of upper teeth below the upper lip. In place; returns
    ``image``. ``teeth_fraction`` is the visible tooth height as a fraction of the opening."""
    inner = np.asarray(points, dtype=np.float64)[60:68]
    gap = np.linalg.norm(inner[[7, 6, 5]] - inner[[1, 2, 3]], axis=1).mean()
    if gap < 0.75:  # closed: nothing visible between the lips
        return image
    x0, y0 = np.floor(inner.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(inner.max(axis=0)).astype(int) + 3
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return image
    off = np.array([x0, y0])
    patch = image[y0:y1, x0:x1]
    mouth = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [_fixed(inner - off)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    upper = inner[[0, 1, 2, 3, 4]] - off
    tooth = min(teeth_fraction * gap, 0.12 * (inner[4, 0] - inner[0, 0]))
    band = np.concatenate([upper, upper[::-1] + [0.0, tooth]])
    teeth = np.zeros_like(mouth)
    cv2.fillPoly(teeth, [_fixed(band)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    teeth = ((teeth.astype(np.uint16) * mouth) // 255).astype(np.float32)[..., None] / 255
    cav = mouth.astype(np.float32)[..., None] / 255
    out = patch.astype(np.float32)
    out = out * (1 - cav) + np.array(MOUTH_COLOUR, np.float32) * cav
    out = out * (1 - teeth) + np.array(TEETH_COLOUR, np.float32) * teeth
    patch[...] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return image


def draw_keypoints(
    image: np.ndarray,
    points: np.ndarray,
    colour: tuple[int, int, int] = (0, 255, 0),
    radius: float = 2,
    thickness: int = 1,
    lines: bool = True,
) -> np.ndarray:
    """A copy of ``image`` with 68 keypoints drawn on it (anti-aliased, sub-pixel).

    Parameters
    ----------
    image : ndarray, uint8 (H, W, 3) or (H, W)
        RGB frame (a grey frame is drawn on as RGB); left unchanged.
    points : ndarray, (68, 2)
        Pixel coordinates (x, y), float. Rows with a NaN are not drawn, nor the lines that
        touch them, so an all-NaN frame returns an unchanged copy.
    colour : (r, g, b)
        Colour of points and lines.
    radius : float
        Radius of the filled point discs in pixels; 0 draws no discs.
    thickness : int
        Width of the face-part lines (:data:`wav2kp.shapes.POLYLINES`, closed parts closed).
    lines : bool
        Draw the face-part lines.

    Returns
    -------
    ndarray, uint8 (H, W, 3)
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"image must be uint8 (H, W, 3) or (H, W), got {img.dtype} {img.shape}.")
    img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img.copy()
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (shapes.N_POINTS, 2):
        raise ValueError(f"points must be (68, 2), got {pts.shape}.")
    ok = np.isfinite(pts).all(axis=1)
    fixed = np.zeros((shapes.N_POINTS, 2), dtype=np.int32)
    fixed[ok] = _fixed(pts[ok])
    rgb = tuple(int(c) for c in colour)
    if lines and thickness > 0:
        for part, closed in shapes.POLYLINES:
            idx = shapes.PARTS[part]
            ends = list(zip(idx[:-1], idx[1:])) + ([(idx[-1], idx[0])] if closed else [])
            for a, b in ends:
                if ok[a] and ok[b]:
                    cv2.line(
                        img,
                        (int(fixed[a, 0]), int(fixed[a, 1])),
                        (int(fixed[b, 0]), int(fixed[b, 1])),
                        rgb,
                        int(thickness),
                        cv2.LINE_AA,
                        _SHIFT,
                    )
    r = int(round(radius * _ONE))
    if r > 0:
        for i in np.flatnonzero(ok):
            cv2.circle(img, (int(fixed[i, 0]), int(fixed[i, 1])), r, rgb, -1, cv2.LINE_AA, _SHIFT)
    return img
