"""The synthetic face of the bundled corpus: a real photo, articulated by speech.

Three pieces, each a plain function of arrays:

1. **Visemes and coarticulation** (:func:`articulation`): every phoneme has articulatory targets
   (jaw opening, lip spread, lip rounding, bilabial closure, labiodental contact); the trajectory
   of each parameter is the dominance-weighted blend of the targets (Cohen & Massaro's
   coarticulation model): each phoneme's influence peaks at its centre and decays exponentially,
   more slowly *before* it (anticipation) than after, and closures (p/b/m) and lip-teeth contact
   (f/v) dominate their own parameters so the lips really close.
2. **Keypoints** (:class:`FaceModel`): the parameters, emotion offsets (brows, mouth corners, eye
   opening), blinks and small head motion move the photo's rest keypoints (from dlib).
3. **Pixels**: :class:`wav2kp.draw.PiecewiseAffineWarp` moves the photo to those keypoints,
   and :func:`wav2kp.draw.draw_mouth_interior` paints the open mouth dark with upper teeth.

Displacements are in units of the inter-ocular distance (outer eye corners) in a face-aligned
frame (x towards the subject's left eye, y down the face).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from wav2kp import face68, shapes
from wav2kp.draw import PiecewiseAffineWarp, draw_mouth_interior, triangulate

PARAMS = ("jaw", "spread", "round", "close", "labio")
_P = {name: i for i, name in enumerate(PARAMS)}

#: Articulatory targets (jaw, spread, round, close, labio) of the viseme classes.
VISEMES: dict[str, tuple[float, float, float, float, float]] = {
    "rest": (0.0, 0.0, 0.0, 0.0, 0.0),
    "a": (1.0, 0.3, 0.0, 0.0, 0.0),
    "schwa": (0.55, 0.2, 0.0, 0.0, 0.0),
    "E": (0.75, 0.55, 0.0, 0.0, 0.0),
    "e": (0.5, 0.65, 0.0, 0.0, 0.0),
    "i": (0.25, 0.9, 0.0, 0.0, 0.0),
    "O": (0.75, 0.0, 0.6, 0.0, 0.0),
    "o": (0.5, 0.0, 0.85, 0.0, 0.0),
    "u": (0.25, 0.0, 1.0, 0.0, 0.0),
    "bilabial": (0.05, 0.0, 0.0, 1.0, 0.0),
    "labiodental": (0.12, 0.1, 0.0, 0.0, 1.0),
    "dental": (0.25, 0.25, 0.0, 0.0, 0.0),
    "sibilant": (0.15, 0.45, 0.0, 0.0, 0.0),
    "postalveolar": (0.2, 0.0, 0.5, 0.0, 0.0),
    "velar": (0.35, 0.1, 0.0, 0.0, 0.0),
    "palatal": (0.2, 0.35, 0.0, 0.0, 0.0),
}

# Dominance strength per viseme class and parameter: vowels own the jaw and the lip shape;
# closures own "close", labiodentals own "labio"; other consonants yield to their neighbours.
_DOM_VOWEL = (1.0, 1.0, 1.0, 0.3, 0.3)
_DOM_CONS = (0.45, 0.35, 0.35, 0.3, 0.3)
DOMINANCE: dict[str, tuple[float, float, float, float, float]] = {
    "rest": (1.2, 1.2, 1.2, 1.2, 1.2),
    "bilabial": (0.8, 0.5, 0.5, 12.0, 0.3),
    "labiodental": (0.8, 0.5, 0.5, 0.3, 10.0),
    "postalveolar": (0.45, 0.6, 1.2, 0.3, 0.3),
}
for _v in ("a", "schwa", "E", "e", "i", "O", "o", "u"):
    DOMINANCE[_v] = _DOM_VOWEL
for _v in ("dental", "sibilant", "velar", "palatal"):
    DOMINANCE[_v] = _DOM_CONS

_VOWEL_CLASS = {
    "a": "a",
    "6": "schwa",
    "@": "schwa",
    "E": "E",
    "e": "e",
    "i": "i",
    "I": "i",
    "O": "O",
    "o": "o",
    "u": "u",
    "U": "u",
    "y": "i",
    "&": "schwa",
    "A": "a",
    "V": "schwa",
    "3": "schwa",
    "Y": "i",
    "Q": "O",
    "W": "O",
    "0": "O",
}
_CONS_CLASS = {
    "p": "bilabial",
    "b": "bilabial",
    "m": "bilabial",
    "f": "labiodental",
    "v": "labiodental",
    "t": "dental",
    "d": "dental",
    "n": "dental",
    "l": "dental",
    "r": "dental",
    "s": "sibilant",
    "z": "sibilant",
    "S": "postalveolar",
    "Z": "postalveolar",
    "*": "dental",
    "R": "dental",
    "k": "velar",
    "g": "velar",
    "x": "velar",
    "h": "velar",
    "Q": "velar",
    "N": "velar",
    "L": "palatal",
    "J": "palatal",
    "c": "palatal",
    "j": "i",
    ";": "i",
    "w": "u",
}


def viseme_of(symbol: str) -> str:
    """Viseme class of an espeak phoneme mnemonic (``"a"``, ``"p"``, ``"e~"``, ``"tS"``, ``"_:"``).

    Pauses map to ``"rest"``; affricates take their fricative (``tS`` -> postalveolar); a
    diphthong takes its first vowel (its second is usually its own event in espeak); unknown
    symbols fall back to a neutral consonant (``"dental"``).
    """
    s = symbol.strip()
    if not s or s[0] in "_|#" or s in {"%", "="}:
        return "rest"
    s = s.lstrip("'\",%=")
    if not s:
        return "rest"
    if s[0] in ("t", "d") and len(s) > 1 and s[1] in "SZ":
        return "postalveolar"
    if s[0] in _CONS_CLASS:
        return _CONS_CLASS[s[0]]
    if s[0] in _VOWEL_CLASS:
        return _VOWEL_CLASS[s[0]]
    return "dental"


def articulation(
    phonemes: list[tuple[float, float, str]],
    times: np.ndarray,
    anticipation: float = 1.6,
    lead_s: float = 0.06,
    release_s: float = 0.04,
) -> np.ndarray:
    """Articulatory parameters ``(T, 5)`` (:data:`PARAMS`) at ``times`` (seconds).

    ``phonemes`` are ``(start_s, end_s, symbol)``, pauses included (they are rest); time before
    the first and after the last phoneme is rest too. The result at a time depends on the
    phonemes alone, not on which other times are asked for.

    - jaw, spread and round: each phoneme's dominance decays as ``exp(-|t - centre| / tau)``
      with ``tau = 0.025 + 0.5 * min(duration, 0.15 s)`` after its centre and ``anticipation``
      times that before it; the parameter is the dominance-weighted mean of the targets.
    - close (p/b/m) and labio (f/v) are constraints, not blends: 1 over the consonant, reached
      ``lead_s`` before it (a raised-cosine ramp: the lips close ahead of the release) and left
      ``release_s`` after it, so the lips really meet and neighbouring vowels still open.
    """
    times = np.asarray(times, dtype=np.float64)
    segs = [(float(a), float(b), viseme_of(s)) for a, b, s in phonemes if b > a]
    if not segs:
        return np.zeros((len(times), len(PARAMS)))
    # Rest before the first and after the last phoneme keeps the mouth closed in silence; a
    # long silence holds it along its whole length: rest spans are cut into pieces <= 0.1 s.
    first, last = segs[0][0], segs[-1][1]
    segs = [(first - 0.5, first, "rest")] + segs + [(last, last + 0.5, "rest")]
    split = []
    for a, b, v in segs:
        n = int(np.ceil((b - a) / 0.1)) if v == "rest" else 1
        edges = np.linspace(a, b, n + 1)
        split.extend((edges[i], edges[i + 1], v) for i in range(n))
    centres = np.array([(a + b) / 2 for a, b, _ in split])
    durs = np.array([b - a for a, b, _ in split])
    targets = np.array([VISEMES[v] for _, _, v in split])  # (K, 5)
    strength = np.array([DOMINANCE[v] for _, _, v in split])  # (K, 5)
    tau = 0.025 + 0.5 * np.minimum(durs, 0.15)
    dt = times[:, None] - centres[None, :]  # (T, K)
    scale = np.where(dt < 0, anticipation * tau[None, :], tau[None, :])
    dom = np.exp(-np.abs(dt) / scale)[:, :, None] * strength[None]  # (T, K, 5)
    out = (dom * targets[None]).sum(axis=1) / np.maximum(dom.sum(axis=1), 1e-12)
    for param, viseme in (("close", "bilabial"), ("labio", "labiodental")):
        col = _P[param]
        out[:, col] = 0.0
        for a, b, v in segs:
            if v == viseme:
                out[:, col] = np.maximum(out[:, col], _plateau(times, a, b, lead_s, release_s))
    return out


def _plateau(
    times: np.ndarray, start: float, end: float, lead: float, release: float
) -> np.ndarray:
    """1 on [start, end], raised-cosine ramps of ``lead`` s before and ``release`` s after."""
    up = np.clip((times - (start - lead)) / lead, 0.0, 1.0)
    down = np.clip(((end + release) - times) / release, 0.0, 1.0)
    ramp = np.minimum(up, down)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


# ---------------------------------------------------------------------------------------------
# Keypoints from parameters

#: How far each jaw point follows the chin when the jaw opens: chin fully, tapering to nothing
#: at the ears (also the jaw of :func:`wav2kp.synthesis.render.open_mouth`).
JAW_WEIGHTS = {
    8: 1.0,
    7: 0.95,
    9: 0.95,
    6: 0.85,
    10: 0.85,
    5: 0.65,
    11: 0.65,
    4: 0.4,
    12: 0.4,
    3: 0.2,
    13: 0.2,
    2: 0.05,
    14: 0.05,
}
_LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
_CORNERS = [48, 54, 60, 64]
_NEAR_CORNERS = [49, 53, 55, 59]
_NEAR_INNER_CORNERS = [61, 63, 65, 67]
_UPPER_LIDS = [37, 38, 43, 44]
_LOWER_LIDS = [41, 40, 47, 46]  # below 37, 38, 43, 44 respectively

JAW_DROP = 0.30  # inter-ocular distances of chin / lower-lip travel at jaw = 1


@dataclass(frozen=True)
class Expression:
    """Emotion offsets, each in -1..1 (see ``emotions.yaml``): 0 everywhere is neutral."""

    smile: float = 0.0  # mouth corners up (+) or down (-)
    brow: float = 0.0  # brows raised (+) or lowered and drawn together (-)
    eyes: float = 0.0  # eyes widened (+) or narrowed (-)


def local_displacement(
    params: np.ndarray,
    expression: Expression = Expression(),
    blink: np.ndarray | None = None,
    rest: np.ndarray | None = None,
) -> np.ndarray:
    """Keypoint displacements ``(T, 68, 2)`` in inter-ocular units, face-aligned frame.

    ``params`` is ``(T, 5)`` from :func:`articulation`; ``blink`` ``(T,)`` in 0..1 closes the
    upper lids onto the lower ones (needs ``rest``, the normalised rest shape, for lid gaps).
    """
    params = np.atleast_2d(params)
    t = len(params)
    jaw, spread, rnd, close, labio = (params[:, i] for i in range(5))
    d = np.zeros((t, 68, 2))
    # Jaw: chin and lower face drop.
    for i, w in JAW_WEIGHTS.items():
        d[:, i, 1] += JAW_DROP * w * jaw
    # Lower lip follows the jaw unless held by a closure or lip-teeth contact.
    held = np.clip(close + labio, 0.0, 1.0)
    lip_drop = JAW_DROP * (0.95 * jaw * (1.0 - held) + 0.03 * rnd * (1.0 - held))
    for i in _LOWER_LIP:
        d[:, i, 1] += lip_drop
    # The inner lips never cross: closure and lip-teeth contact only stop the lower lip's
    # drop (above) and thin the lips from outside (outer points move, inner ones stay).
    d[:, [55, 56, 57, 58, 59], 1] -= 0.02 * labio[:, None]  # lower lip folds under the teeth
    d[:, [50, 51, 52], 1] += 0.01 * close[:, None]  # lips pressed together
    d[:, [56, 57, 58], 1] -= 0.01 * close[:, None]
    d[:, [61, 62, 63], 1] -= 0.015 * rnd[:, None]  # rounded lips pout open
    d[:, [50, 51, 52], 1] -= 0.02 * rnd[:, None]
    d[:, [56, 57, 58], 1] += 0.02 * rnd[:, None]
    # Corners: half the jaw drop, plus spread / rounding.
    d[:, _CORNERS, 1] += 0.5 * JAW_DROP * jaw[:, None] * (1.0 - 0.5 * held[:, None])
    d[:, _CORNERS, 1] -= 0.01 * spread[:, None]
    # Spread widens, rounding narrows the mouth about its centre (applied in normalised coords
    # by the caller through ``mouth_scale``). A smile lifts the corners (a frown lowers them)
    # and carries the lip points next to them part of the way, so the corners never fold.
    sm = expression.smile
    lift = 0.05 * sm if sm > 0 else 0.04 * sm
    d[:, _CORNERS, 1] -= lift
    d[:, _NEAR_CORNERS, 1] -= 0.6 * lift
    d[:, _NEAR_INNER_CORNERS, 1] -= 0.4 * lift
    # Brows.
    br = expression.brow
    brows = np.arange(17, 27)
    d[:, brows, 1] -= 0.07 * br
    if br < 0:
        d[:, [20, 21], 0] += 0.035 * -br
        d[:, [22, 23], 0] -= 0.035 * -br
    # Eyes: upper lids up when wide, down when narrowed; lower lids slightly.
    ey = expression.eyes
    d[:, _UPPER_LIDS, 1] -= 0.03 * ey
    d[:, _LOWER_LIDS, 1] += 0.008 * ey
    if blink is not None and rest is not None:
        gap = rest[_LOWER_LIDS, 1] - rest[_UPPER_LIDS, 1]  # (4,)
        cur = gap[None] - d[:, _UPPER_LIDS, 1] + d[:, _LOWER_LIDS, 1]
        d[:, _UPPER_LIDS, 1] += 0.92 * np.asarray(blink)[:, None] * cur
    return d


def mouth_scale(params: np.ndarray, expression: Expression = Expression()) -> np.ndarray:
    """Horizontal scale ``(T,)`` of the mouth about its centre: spread widens, rounding narrows,
    a smile widens."""
    params = np.atleast_2d(params)
    return 1.0 + 0.10 * params[:, 1] - 0.24 * params[:, 2] + 0.06 * max(expression.smile, 0.0)


def blink_track(
    times: np.ndarray,
    rng: np.random.Generator,
    mean_interval: float = 3.2,
    close_s: float = 0.07,
    open_s: float = 0.11,
) -> np.ndarray:
    """Blink closure ``(T,)`` in 0..1: blinks every ~``mean_interval`` s (at least 1.2 s apart)."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(len(times))
    if len(times) == 0:
        return out
    t = times[0] + rng.uniform(0.3, mean_interval)
    while t < times[-1]:
        rise = np.clip((times - (t - close_s)) / close_s, 0, 1)
        fall = np.clip(1 - (times - t) / open_s, 0, 1)
        out = np.maximum(out, np.where(times < t, rise, fall) * (times < t + open_s))
        t += max(1.2, rng.exponential(mean_interval))
    return out


def smooth_noise(
    times: np.ndarray, rng: np.random.Generator, n: int, freqs: tuple[float, float] = (0.15, 0.9)
) -> np.ndarray:
    """``n`` smooth random signals ``(T, n)`` in -1..1 (sums of a few slow sinusoids)."""
    times = np.asarray(times, dtype=np.float64)
    f = rng.uniform(*freqs, size=(n, 3))
    ph = rng.uniform(0, 2 * np.pi, size=(n, 3))
    a = rng.uniform(0.5, 1.0, size=(n, 3))
    sig = (a[None] * np.sin(2 * np.pi * f[None] * times[:, None, None] + ph[None])).sum(-1)
    return sig / a.sum(-1)[None]


@dataclass
class FaceTemplate:
    """A reference photo cropped and scaled to the video frame, with its dlib rest keypoints."""

    image: np.ndarray  # uint8 (H, W, 3)
    rest: np.ndarray  # float64 (68, 2) pixels
    name: str

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def _face_photo(name: str) -> np.ndarray:
    if name == "grace_hopper":
        import matplotlib.image as mpimg
        from matplotlib import cbook

        return np.asarray(mpimg.imread(cbook.get_sample_data("grace_hopper.jpg")))[..., :3]
    raise ValueError(
        f"Unknown face photo {name!r}: the bundled corpus uses 'grace_hopper' "
        "(for any other photo, see render.FaceRenderer.from_file)."
    )


@functools.lru_cache(maxsize=4)
def load_template(
    name: str = "grace_hopper", size: int = 384, face_fraction: float = 0.57
) -> FaceTemplate:
    """Crop a bundled photo around its face so the jaw spans ``face_fraction`` of a ``size``
    px square frame, and detect its rest keypoints with dlib on the cropped image."""
    import cv2

    photo = _face_photo(name)
    pts = face68.detect_68(photo)
    if pts is None:
        raise RuntimeError(f"dlib found no face in the bundled photo {name!r}.")
    width = float(np.linalg.norm(pts[16] - pts[0]))
    side = width / face_fraction
    cx, cy = pts[:, 0].mean(), pts[:, 1].mean() - 0.08 * side
    scale = size / side
    m = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])
    image = cv2.warpAffine(
        photo, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101
    )
    rest = consensus_keypoints(image)
    if rest is None:
        raise RuntimeError(f"dlib lost the face after cropping the photo {name!r}.")
    return FaceTemplate(image=image, rest=rest, name=name)


def consensus_keypoints(image: np.ndarray, n_jitter: int = 12, seed: int = 0) -> np.ndarray | None:
    """dlib's 68 keypoints averaged over jittered face boxes (``(68, 2)`` float64, pixels).

    dlib's shape predictor depends on the box it is given (detection at another scale shifts
    the jaw and brows by ~2-3 % of the inter-ocular distance); the average over boxes of both
    detector scales, shifted by up to 6 % and scaled by up to 10 %, is a rest shape that no
    particular extractor setting is biased towards.
    """

    boxes = [faces[0][0] for faces in (face68.detect_faces(image, up) for up in (0, 1)) if faces]
    if not boxes:
        return None
    rng = np.random.default_rng(seed)
    preds = []
    for left, top, right, bottom in boxes:
        width = right - left
        for _ in range(n_jitter):
            half = width * (1 + rng.uniform(-0.1, 0.1)) / 2
            cx, cy = (left + right) / 2, (top + bottom) / 2
            cx, cy = cx + rng.uniform(-0.06, 0.06) * width, cy + rng.uniform(-0.06, 0.06) * width
            preds.append(face68.predict_points(image, (cx - half, cy - half, cx + half, cy + half)))
    return np.mean(preds, axis=0, dtype=np.float64)


class FaceModel:
    """Animate a :class:`FaceTemplate`: parameters -> keypoints -> frames."""

    def __init__(self, template: FaceTemplate) -> None:
        self.template = template
        rest = template.rest
        self.origin, self.ex, self.ey = (np.asarray(v) for v in shapes.face_frame(rest))
        self.iod = float(shapes.inter_ocular(rest))
        self.rot = np.stack([self.ex, self.ey])  # rows: face axes in pixels
        self.rest_n = (rest - self.origin) @ self.rot.T / self.iod
        self.anchors_n = self._anchors()
        # Triangulate on a half-open, slightly spread mouth so no triangle flips between the
        # closed and the fully open mouth.
        canon = self.normalised_shape(np.array([[0.55, 0.3, 0.0, 0.0, 0.0]]))[0]
        ctrl = np.concatenate([self._to_px(canon), self._to_px(self.anchors_n)])
        self.triangles = triangulate(ctrl)
        src = np.concatenate([rest, self._to_px(self.anchors_n)])
        self.warp = PiecewiseAffineWarp(template.image, src, self.triangles)

    def _to_px(self, pts_n: np.ndarray) -> np.ndarray:
        return pts_n * self.iod @ self.rot + self.origin

    def _anchors(self) -> np.ndarray:
        """Anchor points (normalised coords) that hold the background: a ring around the face
        and a frame border beyond the image edges."""
        lo, hi = self.rest_n.min(0), self.rest_n.max(0)
        centre, half = (lo + hi) / 2, (hi - lo) / 2
        ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        ring = centre + np.c_[np.cos(ang) * half[0] * 1.45, np.sin(ang) * half[1] * 1.55]
        w, h = self.template.size
        m = 0.25 * max(w, h)
        xs, ys = np.linspace(-m, w + m, 5), np.linspace(-m, h + m, 5)
        border = np.array(
            [(x, y) for x in xs for y in ys if x in (xs[0], xs[-1]) or y in (ys[0], ys[-1])]
        )
        border_n = (border - self.origin) @ self.rot.T / self.iod
        return np.concatenate([ring, border_n])

    def normalised_shape(
        self,
        params: np.ndarray,
        expression: Expression = Expression(),
        blink: np.ndarray | None = None,
    ) -> np.ndarray:
        """Keypoints ``(T, 68, 2)`` in normalised face coordinates."""
        params = np.atleast_2d(params)
        pts = self.rest_n[None] + local_displacement(params, expression, blink, self.rest_n)
        mouth = shapes.MOUTH
        cx = pts[:, mouth, 0].mean(axis=1, keepdims=True)
        pts[:, mouth, 0] = cx + (pts[:, mouth, 0] - cx) * mouth_scale(params, expression)[:, None]
        return pts

    def head_transforms(
        self, times: np.ndarray, rng: np.random.Generator, amplitude: float = 1.0
    ) -> np.ndarray:
        """Similarity transforms ``(T, 2, 3)`` in pixels: rotation within +-3 degrees (times
        ``amplitude`` <= 1), translation within +-3 % of the frame, scale within +-2 %."""
        n = smooth_noise(times, rng, 4)
        ang = np.deg2rad(3.0) * amplitude * n[:, 0]
        w, h = self.template.size
        tx, ty = 0.03 * w * amplitude * n[:, 1], 0.03 * h * amplitude * n[:, 2]
        s = 1.0 + 0.02 * amplitude * n[:, 3]
        c, sn = s * np.cos(ang), s * np.sin(ang)
        pivot = self.origin + 0.6 * self.iod * self.ey
        out = np.zeros((len(times), 2, 3))
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -sn, sn, c
        out[:, :, 2] = pivot - np.einsum("tij,j->ti", out[:, :, :2], pivot) + np.c_[tx, ty]
        return out

    def keypoints(
        self,
        params: np.ndarray,
        head: np.ndarray,
        expression: Expression = Expression(),
        blink: np.ndarray | None = None,
    ) -> np.ndarray:
        """Pixel keypoints ``(T, 68, 2)`` of the animated face (the ground truth)."""
        pts = self._to_px(self.normalised_shape(params, expression, blink))
        return np.einsum("tij,tkj->tki", head[:, :, :2], pts) + head[:, None, :, 2]

    def render(self, points: np.ndarray, head: np.ndarray) -> np.ndarray:
        """One frame, uint8 ``(H, W, 3)``, for keypoints ``(68, 2)`` and head transform ``(2, 3)``."""
        anchors = self._to_px(self.anchors_n) @ head[:, :2].T + head[:, 2]
        frame = self.warp(np.concatenate([points, anchors]), self.template.size)
        return draw_mouth_interior(frame, points)
