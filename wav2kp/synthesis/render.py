"""Rendering keypoints: the animated face, keypoint sketches, vid2vid edge maps and export.

- :class:`FaceRenderer` animates any face photo (or the bundled corpus face) with 68 keypoints,
  and :meth:`FaceRenderer.retarget` puts motion given in inter-ocular units onto it (the warp
  itself is :class:`wav2kp.draw.PiecewiseAffineWarp`)::

      r = FaceRenderer.from_file("me.jpg", size=256)
      r.render_video("me.mp4", r.retarget(displacements), audio=wav, audio_rate=16000)

- :func:`sketch_frame` draws the keypoint sketch; :func:`edge_map` the face edges that NVIDIA
  vid2vid's face model takes, and :func:`export_vid2vid` writes a sequence as its test input.

Keypoints are ``(68, 2)`` pixels (dlib layout), pixel centres at integers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from wav2kp import media, shapes
from wav2kp.corpus import face
from wav2kp.draw import (  # noqa: F401  (the warp and the mouth are part of this module's API)
    MOUTH_COLOUR,
    TEETH_COLOUR,
    PiecewiseAffineWarp,
    draw_keypoints,
    draw_mouth_interior,
    triangulate,
)

# --------------------------------------------------------------------------------------------
# Keypoint drawings: the sketch and vid2vid-style edge maps
# --------------------------------------------------------------------------------------------


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise ValueError(f"frame size must be positive (w, h), got {tuple(size)}.")
    return w, h


def _check_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"points must be (68, 2) pixels, got shape {pts.shape}.")
    return pts


def sketch_frame(
    points: np.ndarray,
    size: tuple[int, int],
    background: tuple[int, int, int] = (255, 255, 255),
    colour: tuple[int, int, int] = (0, 0, 0),
    thickness: int = 2,
    point_radius: float = 2,
) -> np.ndarray:
    """The keypoint sketch: face-part polylines (:data:`wav2kp.shapes.POLYLINES`, closed parts
    closed) and point discs, anti-aliased and sub-pixel, on a plain ``background``.

    ``points`` ``(68, 2)`` pixels; ``size`` ``(w, h)``. Points with a NaN are left out with the
    lines that touch them (an all-NaN face gives a blank frame). Returns uint8 RGB ``(h, w, 3)``.
    """
    w, h = _check_size(size)
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[...] = np.asarray(background, dtype=np.uint8)
    return draw_keypoints(
        canvas,
        _check_points(points),
        colour=colour,
        radius=point_radius,
        thickness=thickness,
        lines=thickness > 0,
    )


#: The curves of :func:`edge_map`, as arcs of keypoint indices: each arc is one smooth curve
#: through its points. As in NVIDIA vid2vid's face dataset (``data/face_dataset.py``), eyes and
#: lips are two arcs (upper, lower) meeting at the corners, so each is a closed curve with sharp
#: corners, and the lower nose is joined to the nose tip (30) at both ends by straight lines.
EDGE_ARCS: list[tuple[int, ...]] = [
    tuple(range(0, 17)),  # jaw
    tuple(range(17, 22)),
    tuple(range(22, 27)),  # brows
    tuple(range(27, 31)),  # nose bridge
    (30, 31),
    tuple(range(31, 36)),
    (35, 30),  # lower nose, joined to the tip
    (36, 37, 38, 39),
    (39, 40, 41, 36),  # right eye
    (42, 43, 44, 45),
    (45, 46, 47, 42),  # left eye
    tuple(range(48, 55)),
    (54, 55, 56, 57, 58, 59, 48),  # outer lip
    tuple(range(60, 65)),
    (64, 65, 66, 67, 60),  # inner lip
]


def catmull_rom(points: np.ndarray, step: float = 1.0) -> np.ndarray:
    """A centripetal Catmull-Rom curve ``(K, 2)`` through ``points`` ``(N, 2)``, sampled so that
    consecutive samples are at most about ``step`` apart.

    The curve passes through every point, has a continuous tangent, and (centripetal
    parametrisation) neither overshoots nor forms cusps or loops within a segment. The end
    segments use mirrored phantom points. Two points give the straight segment, sampled.
    """
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 2:
        return p.copy()
    if len(p) == 2:
        n = max(2, int(np.ceil(2 * np.linalg.norm(p[1] - p[0]) / step)) + 1)
        return p[0] + np.linspace(0.0, 1.0, n)[:, None] * (p[1] - p[0])
    ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    p0, p1, p2, p3 = ext[:-3], ext[1:-2], ext[2:-1], ext[3:]  # (S, 2) each
    eps = 1e-6
    d01 = np.sqrt(np.linalg.norm(p1 - p0, axis=1)) + eps
    d12 = np.sqrt(np.linalg.norm(p2 - p1, axis=1)) + eps
    d23 = np.sqrt(np.linalg.norm(p3 - p2, axis=1)) + eps
    t0 = np.zeros_like(d01)
    t1 = t0 + d01
    t2 = t1 + d12
    t3 = t2 + d23
    # twice the chord length in samples: the centripetal speed varies along a segment
    n = max(2, int(np.ceil(2 * np.linalg.norm(p2 - p1, axis=1).max() / step)) + 1)
    u = np.linspace(0.0, 1.0, n)
    t = t1[:, None] + (t2 - t1)[:, None] * u[None]  # (S, n)

    def lerp(a: np.ndarray, b: np.ndarray, ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
        wa = ((tb[:, None] - t) / (tb - ta)[:, None])[..., None]
        return wa * a[:, None] + (1 - wa) * b[:, None]

    a1, a2, a3 = lerp(p0, p1, t0, t1), lerp(p1, p2, t1, t2), lerp(p2, p3, t2, t3)
    wa = ((t2[:, None] - t) / (t2 - t0)[:, None])[..., None]
    b1 = wa * a1 + (1 - wa) * a2
    wb = ((t3[:, None] - t) / (t3 - t1)[:, None])[..., None]
    b2 = wb * a2 + (1 - wb) * a3
    c = ((t2[:, None] - t) / (t2 - t1)[:, None])[..., None]
    curve = c * b1 + (1 - c) * b2  # (S, n, 2)
    return np.concatenate([curve[:, :-1].reshape(-1, 2), p[-1:]])


def _thin_pixels(curve: np.ndarray) -> np.ndarray:
    """Integer pixels ``(K, 2)`` of a densely sampled curve (samples at most 1 px apart) as a
    minimal 8-connected path: consecutive duplicates merged, and every pixel whose neighbours
    along the path already touch (the inner pixel of an L-shaped step) left out."""
    pix = np.rint(curve).astype(np.int64)
    while True:
        pix = pix[np.r_[True, np.any(pix[1:] != pix[:-1], axis=1)]]
        if len(pix) < 3:
            return pix
        skip = np.abs(pix[2:] - pix[:-2]).max(axis=1) <= 1  # pixel i + 1 is redundant
        first = skip & ~np.r_[False, skip[:-1]]  # one per run, so no gap opens
        if not first.any():
            return pix
        pix = np.delete(pix, np.flatnonzero(first) + 1, axis=0)


def edge_map(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """vid2vid-style face edges: one smooth curve per arc of :data:`EDGE_ARCS` through the
    keypoints ``(68, 2)`` (pixels, centres at integers), drawn as 1-pixel 8-connected white
    (255) lines on black.

    vid2vid fits a quadratic through every 3 consecutive keypoints; here each arc is a
    centripetal Catmull-Rom spline (:func:`catmull_rom`), which also passes through every point
    but has no kinks between chunks. The curve is sampled every half pixel and each sample
    rounded to its pixel, so the line is exact to half a pixel and never thicker than one.
    Arcs with a NaN point are left out. Returns uint8 ``(h, w)`` for ``size`` = ``(w, h)``.
    """
    w, h = _check_size(size)
    pts = _check_points(points)
    out = np.zeros((h, w), np.uint8)
    for arc in EDGE_ARCS:
        ctrl = pts[list(arc)]
        if not np.isfinite(ctrl).all():
            continue
        pix = _thin_pixels(np.clip(catmull_rom(ctrl, step=0.5), -1.0, [w, h]))
        ok = (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
        out[pix[ok, 1], pix[ok, 0]] = 255
    return out


# --------------------------------------------------------------------------------------------
# vid2vid export
# --------------------------------------------------------------------------------------------

#: vid2vid's face test command (README "Faces", ``scripts/face/test_512.sh``).
VID2VID_TEST = (
    "python test.py --name edge2face_512 --dataroot {root} --dataset_mode face "
    "--input_nc 15 --loadSize 512 --use_single_G"
)

_VID2VID_README = """\
vid2vid face test input, written by wav2kp.synthesis.render.export_vid2vid
==================================================================

Layout (what NVIDIA vid2vid's data/face_dataset.py reads for --phase test):

  test_keypoints/{name}/NNNNN.txt
      68 lines "x,y" (dlib 68-point layout, integer pixels of the {w}x{h} frame;
      np.loadtxt(path, delimiter=","))
  test_img/{name}/NNNNN.jpg
      one RGB image per keypoint file ({images}); vid2vid reads the first as the
      reference frame and takes background edges (Canny) from each image outside the face
  test_edges/{name}/NNNNN.png
      the face edges drawn from the keypoints, for inspection only (vid2vid draws its own
      from test_keypoints)

{n} frames. To render them with vid2vid's pretrained face model (from a vid2vid checkout, after
`python scripts/face/download_models.py`; command of vid2vid's README and
scripts/face/test_512.sh, with --dataroot pointed here):

  {command}

Results go to ./results/edge2face_512/test_latest/{name}/ (fake_B_*.jpg). vid2vid crops a
square of 2.5 face widths around the first frame's keypoints and scales it to --loadSize.
numpy >= 1.18 rejects the float sample count in vid2vid's data/keypoint2img.py
(np.linspace(x[0], x[-1], (x[-1]-x[0]))): wrap that count in int(...) if test.py fails there.
"""


def export_vid2vid(
    out_dir: str | os.PathLike,
    points_seq: np.ndarray,
    size: tuple[int, int],
    frames: Iterable[np.ndarray] | None = None,
    name: str = "seq0000",
) -> Path:
    """Write keypoints ``(T, 68, 2)`` (pixels of a ``size`` = ``(w, h)`` frame) as the test
    input of NVIDIA vid2vid's face model; returns ``out_dir``.

    ``out_dir`` gets ``test_keypoints/<name>/00000.txt ...`` (68 lines ``x,y``, integer pixels,
    as vid2vid's own ``data/face_landmark_detection.py`` writes them), ``test_edges/<name>/*.png``
    (:func:`edge_map`, for inspection), ``test_img/<name>/*.jpg`` (``frames``, RGB uint8
    ``(h, w, 3)``, one per keypoint frame; the :func:`sketch_frame` of each frame when ``frames``
    is None, so the folder is complete) and ``README.txt`` with the vid2vid command.

    Atomic: built in a hidden temporary folder next to ``out_dir``, then renamed onto it; an
    earlier export there is replaced. A folder that exists and is not an export is left alone
    (``ValueError``). Frames with a NaN keypoint are an error: vid2vid needs a face in each.
    """
    out = Path(out_dir)
    w, h = _check_size(size)
    pts = np.asarray(points_seq, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2) or len(pts) == 0:
        raise ValueError(f"{out}: points_seq must be (T, 68, 2) with T >= 1, got {pts.shape}.")
    bad = np.flatnonzero(~np.isfinite(pts).all(axis=(1, 2)))
    if len(bad):
        raise ValueError(
            f"{out}: {len(bad)} frame(s) have NaN keypoints (first: frame "
            f"{bad[0]}); vid2vid needs a face in every frame: interpolate or drop "
            "them first."
        )
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"{out}: sequence name {name!r} must be a plain folder name.")
    if out.exists() and not (
        out.is_dir() and (not any(out.iterdir()) or (out / "test_keypoints").is_dir())
    ):
        raise ValueError(
            f"{out}: exists and is not a vid2vid export (no test_keypoints folder); "
            "refusing to replace it. Choose another out_dir or remove it."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.partial-", dir=out.parent))
    old = None
    try:
        dirs = {sub: tmp / f"test_{sub}" / name for sub in ("keypoints", "edges", "img")}
        for d in dirs.values():
            d.mkdir(parents=True)
        images = iter(frames) if frames is not None else None
        for k, p in enumerate(pts):
            stem = f"{k:05d}"
            np.savetxt(
                dirs["keypoints"] / f"{stem}.txt",
                np.rint(p).astype(np.int64),
                fmt="%d",
                delimiter=",",
            )
            _imwrite(dirs["edges"] / f"{stem}.png", edge_map(p, (w, h)))
            if images is None:
                img = sketch_frame(p, (w, h))
            else:
                img = next(images, None)
                if img is None:
                    raise ValueError(
                        f"{out}: frames ran out at frame {k}; {len(pts)} are "
                        "needed, one per keypoint frame."
                    )
                img = np.asarray(img)
                if img.shape != (h, w, 3) or img.dtype != np.uint8:
                    raise ValueError(
                        f"{out}: frame {k} is {img.dtype} {img.shape}, expected "
                        f"uint8 {(h, w, 3)} (RGB of the keypoints' {w}x{h} frame)."
                    )
            _imwrite(
                dirs["img"] / f"{stem}.jpg",
                cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95],
            )
        if images is not None and next(images, None) is not None:
            raise ValueError(f"{out}: more frames than keypoint frames ({len(pts)}).")
        (tmp / "README.txt").write_text(
            _VID2VID_README.format(
                name=name,
                w=w,
                h=h,
                n=len(pts),
                images="the given frames"
                if frames is not None
                else "keypoint sketches, as no "
                "frames were given: pass real frames for a photographic reference",
                command=VID2VID_TEST.format(root=out.resolve()),
            ),
            encoding="utf-8",
        )
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old / out.name, out)  # put the earlier export back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


def _imwrite(path: Path, image: np.ndarray, params: list[int] | None = None) -> None:
    if not cv2.imwrite(str(path), image, params or []):
        raise OSError(f"{path}: OpenCV could not write the image.")


# --------------------------------------------------------------------------------------------
# Any face photo, animated by keypoints
# --------------------------------------------------------------------------------------------

#: Weights of :func:`open_mouth`: how far each point drops per unit of opening. The lower lip
#: drops by the opening, the mouth corners by half of it, the jaw like the bundled corpus'
#: face (:mod:`wav2kp.corpus.face`): chin fully, tapering to nothing at the ears.
OPEN_MOUTH_WEIGHTS: dict[int, float] = {
    **dict.fromkeys((55, 56, 57, 58, 59, 65, 66, 67), 1.0),
    **dict.fromkeys((48, 54, 60, 64), 0.5),
    **face.JAW_WEIGHTS,
}


def open_mouth(points: np.ndarray, opening: float | np.ndarray) -> np.ndarray:
    """``points`` ``(..., 68, 2)`` with the jaw and lower lip dropped down the face (the face's
    own y axis, :func:`wav2kp.shapes.face_frame`) by ``opening`` inter-ocular distances times
    :data:`OPEN_MOUTH_WEIGHTS`: the inner-lip gap grows by ``opening`` IOD. ``opening`` is a
    scalar or broadcasts against the batch shape ``(...)``. Returns a float64 copy."""
    pts = np.array(points, dtype=np.float64)
    _, _, ey = shapes.face_frame(pts)
    drop = np.asarray(opening, dtype=np.float64) * shapes.inter_ocular(pts)  # (...)
    idx = np.fromiter(OPEN_MOUTH_WEIGHTS, dtype=np.intp)
    wts = np.fromiter(OPEN_MOUTH_WEIGHTS.values(), dtype=np.float64)
    pts[..., idx, :] += (drop[..., None, None] * wts[:, None]) * ey[..., None, :]
    return pts


def _read_rgb(path: Path) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # 8-bit BGR, EXIF orientation applied
    if img is None:
        raise ValueError(
            f"{path}: not an image OpenCV can read (empty, truncated or not a picture?)."
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class FaceRenderer:
    """Animate one face photo with 68 keypoints: piecewise-affine warp plus the mouth interior.

    Parameters
    ----------
    image: uint8 RGB ``(H, W, 3)`` photo (grey ``(H, W)`` and RGBA are converted), or None for
        the bundled corpus face (:func:`wav2kp.corpus.face.load_template`, ``grace_hopper``).
    rest: its rest keypoints ``(68, 2)`` in ``image`` pixels; by default dlib's, averaged over
        jittered boxes (:func:`wav2kp.corpus.face.consensus_keypoints`).
    size: crop a ``size`` x ``size`` square around the face (centred, the jaw spanning 57 % of
        it, like the corpus face) and scale it; None keeps the image (cut to even sides).
    source: how error messages name the image (:meth:`from_file` passes the path).

    As in :class:`wav2kp.corpus.face.FaceModel`, the control points are the keypoints plus
    fixed anchors (a ring around the face and a border beyond the frame), so the background
    holds still, and the triangulation is computed on the rest shape with the mouth opened by
    :data:`TRIANGULATION_OPENING` (:func:`open_mouth`), so that no triangle flips for openings
    from 0 to 0.6 inter-ocular distances.
    """

    #: Mouth opening (IOD) of the shape the triangulation is computed on.
    TRIANGULATION_OPENING = 0.3
    #: Fraction of a ``size`` crop that the jaw (points 0-16) spans.
    FACE_FRACTION = 0.57

    def __init__(
        self,
        image: np.ndarray | None = None,
        rest: np.ndarray | None = None,
        size: int | None = None,
        *,
        source: str = "the image",
    ) -> None:

        if size is not None and (int(size) != size or size < 16 or size % 2):
            raise ValueError(f"size must be an even number of pixels >= 16, got {size!r}.")
        if image is None:
            tpl = face.load_template(
                "grace_hopper", 384 if size is None else int(size), self.FACE_FRACTION
            )
            img, pts = tpl.image.copy(), tpl.rest if rest is None else _check_points(rest)
        else:
            img = np.asarray(image)
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
                raise ValueError(
                    f"{source}: expected a uint8 RGB image (H, W, 3), got {img.dtype} {img.shape}."
                )
            img = np.ascontiguousarray(img[..., :3])
            if rest is None:
                pts = face.consensus_keypoints(img)
                if pts is None:
                    raise ValueError(f"no face found in {source} (dlib's detector found none).")
            else:
                pts = _check_points(rest)
            if not np.isfinite(pts).all():
                raise ValueError(f"{source}: the rest keypoints contain NaN.")
            if size is not None:
                img, pts = self._crop(img, pts, int(size))
            else:
                h, w = img.shape[:2]
                if h < 2 or w < 2:
                    raise ValueError(f"{source}: image of {w}x{h} px is too small.")
                img = np.ascontiguousarray(img[: h - h % 2, : w - w % 2])
        self.image: np.ndarray = img
        self._rest = np.array(pts, dtype=np.float64)
        self.origin, ex, ey = (np.asarray(v) for v in shapes.face_frame(self._rest))
        self.iod = float(shapes.inter_ocular(self._rest))
        if not self.iod > 0:
            raise ValueError(f"{source}: the rest keypoints have no inter-ocular distance.")
        self.rot = np.stack([ex, ey])  # rows: face axes in pixels
        self.anchors = self._anchors()
        half_open = open_mouth(self._rest, self.TRIANGULATION_OPENING)
        self.triangles = triangulate(np.concatenate([half_open, self.anchors]))
        self.warp = PiecewiseAffineWarp(
            self.image, np.concatenate([self._rest, self.anchors]), self.triangles
        )

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, size: int | None = None, rest: np.ndarray | None = None
    ) -> FaceRenderer:
        """A renderer for the face photo at ``path`` (any format OpenCV reads); ``ValueError``
        naming the file when it is not a readable image or dlib finds no face in it."""
        path = Path(path)
        return cls(_read_rgb(path), rest=rest, size=size, source=str(path))

    @classmethod
    def _crop(cls, image: np.ndarray, rest: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A ``size`` square around the face (as :func:`wav2kp.corpus.face.load_template`) and
        the rest keypoints moved into it."""
        side = float(np.linalg.norm(rest[16] - rest[0])) / cls.FACE_FRACTION
        cx, cy = rest[:, 0].mean(), rest[:, 1].mean() - 0.08 * side
        scale = size / side
        if scale < 1:  # shrink with area averaging first (warpAffine would alias)
            h, w = image.shape[:2]
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
            s = np.array([nw / w, nh / h])
            rest = (rest + 0.5) * s - 0.5  # pixel centres at integers
            cx, cy = (np.array([cx, cy]) + 0.5) * s - 0.5
            scale = 1.0
        m = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])
        out = cv2.warpAffine(
            image, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101
        )
        return out, rest @ m[:, :2].T + m[:, 2]

    def _anchors(self) -> np.ndarray:
        """Fixed anchors (pixels): a ring around the face, reaching far enough below the chin
        for a 0.6 IOD drop, and a border beyond the frame's edges; ring points outside the
        frame are dropped (the border holds the background there)."""
        rest_n = (self._rest - self.origin) @ self.rot.T / self.iod
        lo, hi = rest_n.min(0), rest_n.max(0)
        centre, half = (lo + hi) / 2, (hi - lo) / 2
        ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        down = np.clip(np.sin(ang), 0, None)  # extra reach below the face
        ring_n = (
            centre + np.c_[np.cos(ang) * half[0] * 1.45, np.sin(ang) * half[1] * 1.55 + 0.8 * down]
        )
        ring = ring_n * self.iod @ self.rot + self.origin
        w, h = self.size
        inside = ((ring >= 0) & (ring <= [w - 1, h - 1])).all(axis=1)
        m = 0.25 * max(w, h)
        xs, ys = np.linspace(-m, w - 1 + m, 5), np.linspace(-m, h - 1 + m, 5)
        border = np.array(
            [(x, y) for x in xs for y in ys if x in (xs[0], xs[-1]) or y in (ys[0], ys[-1])]
        )
        return np.concatenate([ring[inside], border])

    @property
    def rest(self) -> np.ndarray:
        """Rest keypoints ``(68, 2)``, pixels of :attr:`image` (a copy)."""
        return self._rest.copy()

    @property
    def size(self) -> tuple[int, int]:
        """Frame size ``(w, h)``."""
        return self.image.shape[1], self.image.shape[0]

    def render(self, points: np.ndarray) -> np.ndarray:
        """The photo warped so its keypoints land on ``points`` ``(68, 2)`` (pixels), with the
        mouth interior painted when the lips part; uint8 RGB ``(h, w, 3)``. A face with a NaN
        point gives the unwarped photo."""
        pts = _check_points(points)
        if not np.isfinite(pts).all():
            return self.image.copy()
        frame = self.warp(np.concatenate([pts, self.anchors]), self.size)
        return draw_mouth_interior(frame, pts)

    def retarget(self, displacement: np.ndarray) -> np.ndarray:
        """Pixel keypoints ``rest + displacement`` for displacements ``(T, 68, 2)`` (or
        ``(68, 2)``) in inter-ocular distances of the face's own frame (x towards the subject's
        left eye, y down the face), rotated and scaled into this image. Same shape, float64."""
        d = np.asarray(displacement, dtype=np.float64)
        if d.shape[-2:] != (68, 2):
            raise ValueError(f"displacement must be (T, 68, 2) or (68, 2), got {d.shape}.")
        return self._rest + (d * self.iod) @ self.rot

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`retarget`: pixel keypoints ``(..., 68, 2)`` of this face as
        displacements from the rest shape in its own frame, inter-ocular distances."""
        pts = np.asarray(points, dtype=np.float64)
        return (pts - self._rest) @ self.rot.T / self.iod

    def render_video(
        self,
        path: str | os.PathLike,
        points_seq: np.ndarray,
        audio: np.ndarray | None = None,
        audio_rate: int | None = None,
        fps: Fraction | int = Fraction(30000, 1001),
    ) -> Path:
        """Render keypoints ``(T, 68, 2)`` to an H.264 mp4 at ``path`` with optional audio
        (float32, mono or ``(C, N)``, at ``audio_rate`` Hz), via :func:`wav2kp.media.write_video`
        (atomic). Returns ``path``."""
        pts = np.asarray(points_seq, dtype=np.float64)
        if pts.ndim != 3 or pts.shape[1:] != (68, 2):
            raise ValueError(f"{path}: points_seq must be (T, 68, 2), got {pts.shape}.")
        media.write_video(
            path,
            (self.render(p) for p in pts),
            audio,
            size=self.size,
            fps=fps,
            audio_rate=audio_rate,
        )
        return Path(path)
