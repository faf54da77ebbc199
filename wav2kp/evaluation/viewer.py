"""Looking at predictions: keypoints drawn on the clip's own video, as a side-by-side comparison
video (with the clip's speech) and as a live notebook widget.

Everything starts from a :class:`ClipView`: the clip's mp4, its video frame times and the pixel
keypoints ``(T, 68, 2)`` of the ground truth and of each model at those times::

    view = ClipView("s01_a", video, times, truth, {"lstm": pred}, audio=wav)
    comparison_video(view, "s01_a_compare.mp4")      # truth | lstm, with sound
    KeypointViewer([view])                            # scrub / play in JupyterLab

Keypoints are pixel coordinates of the full-size video with pixel centres at integers (the
dlib convention); when a frame is resized by ``s`` a point moves to ``(p + 0.5) * s - 0.5``.
Frame ``k`` of the video is the frame at ``times[k]``; a video that has one frame more or less
than ``times`` is accepted and the longer of the two is cut (encoders drop or repeat a last
frame), anything larger is an error.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from wav2kp import media, metrics, shapes
from wav2kp.draw import draw_keypoints

#: RGB colour of the ground truth.
TRUTH_COLOUR: tuple[int, int, int] = (255, 255, 0)
#: RGB colour of the thin ground truth drawn under a model's keypoints.
TRUTH_UNDER_COLOUR: tuple[int, int, int] = (215, 215, 215)
#: RGB colours of the models, in order (cycled when there are more models).
MODEL_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 229, 255),
    (255, 77, 240),
    (80, 255, 80),
    (255, 140, 26),
    (255, 59, 59),
    (120, 140, 255),
    (255, 255, 255),
    (160, 255, 200),
)
#: The model choice of :class:`KeypointViewer` that overlays every model.
ALL_MODELS = "all models"


@dataclass
class ClipView:
    """One clip with its keypoints, ready to look at.

    Attributes
    ----------
    clip : str
        The clip's name (used in every error message).
    video : Path
        The clip's video (any container :mod:`wav2kp.media` reads).
    times : ndarray, shape (T,)
        Video frame times in seconds.
    truth : ndarray, shape (T, 68, 2)
        Ground-truth pixel keypoints; NaN rows where a frame has none.
    preds : dict[str, ndarray]
        Model name -> predicted pixel keypoints ``(T, 68, 2)``.
    audio : Path or None
        WAV of the clip's speech, sample ``i`` at ``i / rate`` s on the clock of ``times``.
    title : str
        Free text shown next to the clip's name.
    """

    clip: str
    video: Path
    times: np.ndarray
    truth: np.ndarray
    preds: dict[str, np.ndarray] = field(default_factory=dict)
    audio: Path | None = None
    title: str = ""

    def __post_init__(self) -> None:
        self.video = Path(self.video)
        self.audio = None if self.audio is None else Path(self.audio)
        self.times = np.asarray(self.times, dtype=np.float64)
        self.truth = np.asarray(self.truth, dtype=np.float64)
        self.preds = {str(k): np.asarray(v, dtype=np.float64) for k, v in self.preds.items()}
        self.validate()

    def validate(self) -> int:
        """Check the array shapes against ``times``; returns ``T``.

        Raises ``ValueError`` naming the clip when ``times`` is not 1-D or the truth or a
        prediction is not ``(T, 68, 2)``.
        """
        times = np.asarray(self.times)
        if times.ndim != 1 or len(times) == 0:
            raise ValueError(
                f"clip {self.clip!r}: times must be a non-empty 1-D array, got shape {times.shape}."
            )
        n = len(times)
        want = (n, shapes.N_POINTS, 2)
        arrays = {"truth": self.truth, **{f"prediction {k!r}": v for k, v in self.preds.items()}}
        for name, arr in arrays.items():
            shape = np.shape(arr)
            if shape != want:
                raise ValueError(
                    f"clip {self.clip!r}: {name} has shape {shape}, expected "
                    f"{want} (one (68, 2) row per video frame time)."
                )
        return n

    def fps(self) -> Fraction:
        """The frame rate from the median frame interval, as a fraction with a denominator of
        at most 1001 (29.97 fps gives exactly 30000/1001)."""
        if len(self.times) < 2:
            raise ValueError(
                f"clip {self.clip!r}: one frame time gives no frame rate; pass fps explicitly."
            )
        step = float(np.median(np.diff(self.times)))
        if not step > 0:
            raise ValueError(
                f"clip {self.clip!r}: frame times do not increase (median step {step} s)."
            )
        return Fraction(1 / step).limit_denominator(1001)


# --------------------------------------------------------------------------------- drawing


def scale_points(points: np.ndarray, scale: float | Sequence[float]) -> np.ndarray:
    """Pixel keypoints ``(..., 2)`` of a frame resized by ``scale`` (one factor, or ``(sx, sy)``):
    ``(p + 0.5) * scale - 0.5``, pixel centres at integers. NaN stays NaN."""
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (2,))
    return (np.asarray(points, dtype=np.float64) + 0.5) * s - 0.5


def mouth_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean Euclidean error of the 20 mouth points (48-67) in % of the truth's inter-ocular
    distance, per frame: ``(..., 68, 2)`` pairs give ``(...)``; NaN where either is missing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        err = metrics.point_errors(pred, truth)[..., shapes.MOUTH].mean(axis=-1)
    return np.where(np.isfinite(err), err, np.nan)


def model_colours(models: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """RGB colour of each model, by its position (:data:`MODEL_COLOURS`, cycled)."""
    return {m: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, m in enumerate(models)}


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# ---------------------------------------------------------------------------------- frames


def _video_size(video: Path) -> tuple[int, int]:
    info = media.probe(video)
    if not info["has_video"]:
        raise media.MediaError(f"{video}: no video stream.")
    return int(info["width"]), int(info["height"])


def _video_frames(video: Path) -> int:
    """Frames in the video: the container's count, or a packet scan when it keeps none."""
    n = int(media.probe(video)["n_frames"])
    return n if n > 0 else int(media.probe(video, scan_timestamps=True)["n_frames"])


def _usable_frames(view: ClipView, n_video: int) -> int:
    """Frames shared by the video and ``times`` (they may differ by one frame)."""
    n = view.validate()
    if abs(n_video - n) > 1:
        raise ValueError(
            f"clip {view.clip!r}: the video {view.video.name} has {n_video} frames "
            f"but there are {n} frame times (at most one frame may differ)."
        )
    return min(n, n_video)


def load_frames(video: str | Path, max_size: int | None = 320) -> tuple[list[np.ndarray], float]:
    """Every frame of a video, RGB uint8, shrunk so that the longer side is at most
    ``max_size`` px (never enlarged; ``None`` keeps the size).

    Returns ``(frames, scale)``: the frames and the resize factor; keypoints follow with
    :func:`scale_points` (exact to within half a pixel of rounding the frame size).
    """
    video = Path(video)
    w, h = _video_size(video)
    scale = 1.0 if max_size is None else min(1.0, float(max_size) / max(w, h))
    return [img for _, img in media.iter_frames(video, scale=scale)], scale


def _models(view: ClipView, models: Sequence[str] | None) -> list[str]:
    models = list(view.preds) if models is None else [str(m) for m in models]
    missing = [m for m in models if m not in view.preds]
    if missing:
        raise ValueError(
            f"clip {view.clip!r}: no predictions of {missing}; it has {sorted(view.preds)}."
        )
    return models


def _even(n: int) -> int:
    return n + (n % 2)


def _font_scale(panel: int) -> float:
    return float(np.clip(panel / 420, 0.3, 1.2))


def _put_text(img: np.ndarray, text: str, x: int, y: int, scale: float, width: int) -> None:
    """White text with a black outline, its baseline at ``y``, cut to fit ``width`` px."""
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(scale * 1.6))
    while len(text) > 2 and cv2.getTextSize(text, font, scale, thick)[0][0] > width:
        text = text[:-3] + ".."
    cv2.putText(img, text, (x, y), font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def comparison_frames(
    view: ClipView,
    models: Sequence[str] | None = None,
    panel: int = 256,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Side-by-side frames: the truth, then each model, on the clip's own video.

    Panel 0 shows the truth keypoints (:data:`TRUTH_COLOUR`) and the frame time at the bottom;
    panel ``i`` shows model ``models[i - 1]`` in its :func:`model_colours` colour over the
    truth drawn thinly, with its mouth error (:func:`mouth_error`) at the bottom. Each panel
    is labelled at the top, ``panel`` px wide, and as high as the video's aspect gives.

    Parameters
    ----------
    view : ClipView
    models : list of str, optional
        Models to show, in order (default: all of ``view.preds``).
    panel : int
        Panel width in px.
    max_frames : int, optional
        Stop after this many frames.

    Yields
    ------
    ndarray, uint8 (H, W, 3)
        ``W = panel * (1 + len(models))`` and ``H`` the panel height, each rounded up to even
        (padded with black), one per frame the video and ``times`` share. Bad input raises
        ``ValueError`` (naming the clip) at the call, before any frame is decoded.
    """
    if panel < 8:
        raise ValueError(f"panel must be at least 8 px, got {panel}.")
    models = _models(view, models)
    n = _usable_frames(view, _video_frames(view.video))
    if max_frames is not None:
        n = min(n, int(max_frames))
    return _strips(view, models, panel, n)


def _strips(view: ClipView, models: list[str], panel: int, n: int) -> Iterator[np.ndarray]:
    """The generator behind :func:`comparison_frames` (which checks its input eagerly)."""
    w, h = _video_size(view.video)
    ph = max(1, round(h * panel / w))
    scale = (panel / w, ph / h)
    width, height = _even(panel * (1 + len(models))), _even(ph)
    colours = model_colours(models)
    font = _font_scale(panel)
    top = int(round(22 * font / 0.6))
    truth = scale_points(view.truth, scale)
    preds = {m: scale_points(view.preds[m], scale) for m in models}
    err = {m: mouth_error(view.preds[m], view.truth) for m in models}
    frames = media.iter_frames(view.video, scale=panel / w)
    try:
        for k, (_, img) in enumerate(frames):
            if k >= n:
                break
            if img.shape[:2] != (ph, panel):
                img = cv2.resize(img, (panel, ph), interpolation=cv2.INTER_AREA)
            out = np.zeros((height, width, 3), dtype=np.uint8)
            first = draw_keypoints(img, truth[k], TRUTH_COLOUR, radius=1.5)
            _put_text(first, "truth", 4, top, font, panel - 8)
            _put_text(first, f"t={view.times[k]:.2f}s #{k}", 4, ph - 6, font * 0.85, panel - 8)
            out[:ph, :panel] = first
            for i, m in enumerate(models, start=1):
                pan = draw_keypoints(img, truth[k], TRUTH_UNDER_COLOUR, radius=1, thickness=1)
                pan = draw_keypoints(pan, preds[m][k], colours[m], radius=1.5)
                _put_text(pan, m, 4, top, font, panel - 8)
                if np.isfinite(err[m][k]):
                    _put_text(pan, f"mouth {err[m][k]:.1f}% IOD", 4, ph - 6, font * 0.85, panel - 8)
                out[:ph, i * panel : (i + 1) * panel] = pan
            yield out
    finally:
        frames.close()


def comparison_video(
    view: ClipView,
    path: str | Path,
    models: Sequence[str] | None = None,
    panel: int = 256,
    fps: Fraction | float | None = None,
    max_seconds: float | None = None,
) -> Path:
    """Write :func:`comparison_frames` as an H.264 mp4 with the clip's speech (AAC).

    Parameters
    ----------
    view : ClipView
    path : path
        Output mp4, written atomically (:func:`wav2kp.media.write_video`).
    models, panel :
        As in :func:`comparison_frames`.
    fps : Fraction or float, optional
        Frame rate; default :meth:`ClipView.fps` (the clip's own rate).
    max_seconds : float, optional
        Keep only the first ``ceil(max_seconds * fps)`` frames.

    The audio is ``view.audio`` from ``times[0]`` for exactly the frames written (padded with
    silence where the WAV ends early); none when ``view.audio`` is ``None``. Returns ``path``.
    Raises ``ValueError`` naming the clip when the arrays do not match ``times`` or the video
    has more than one frame more or less than ``times``.
    """
    path = Path(path)
    n = _usable_frames(view, _video_frames(view.video))
    n_panels = 1 + len(_models(view, models))
    rate = view.fps() if fps is None else Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"clip {view.clip!r}: fps must be positive, got {fps}.")
    if max_seconds is not None:
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}.")
        n = min(n, max(1, math.ceil(max_seconds * rate - 1e-9)))
    w, h = _video_size(view.video)
    ph = max(1, round(h * panel / w))
    size = (_even(panel * n_panels), _even(ph))
    audio, audio_rate = None, None
    if view.audio is not None:
        samples, audio_rate = media.read_wav(view.audio)
        start = max(0, int(round(view.times[0] * audio_rate)))
        length = int(round(n / rate * audio_rate))
        audio = samples[..., start : start + length]
        if audio.shape[-1] < length:
            pad = np.zeros(audio.shape[:-1] + (length - audio.shape[-1],), dtype=np.float32)
            audio = np.concatenate([audio, pad], axis=-1)
    media.write_video(
        path,
        comparison_frames(view, models, panel, max_frames=n),
        audio,
        size=size,
        fps=rate,
        audio_rate=audio_rate,
    )
    return path


# ---------------------------------------------------------------------------------- widget


#: Keypoints are stored in the page as int16 multiples of 1/QUANTUM px (NaN: -32768).
QUANTUM = 8
_NAN16 = -32768
#: The player's page elements (its script and data are added by :meth:`KeypointPlayer.html`).
_PLAYER_CSS = """
.w2k-player { font: 13px/1.4 system-ui, sans-serif; color: #1d232a; margin: .5rem 0; }
.w2k-player .w2k-bar { display: flex; flex-wrap: wrap; gap: .4rem .8rem; align-items: center;
  margin-bottom: .4rem; }
.w2k-player select, .w2k-player button { font: inherit; }
.w2k-player .w2k-slider { flex: 1 1 12rem; }
.w2k-player .w2k-panels { display: flex; flex-wrap: wrap; gap: .5rem; }
.w2k-player figure { margin: 0; }
.w2k-player figcaption { text-align: center; color: #444; }
.w2k-player canvas { background: #1b1e22; display: block; border-radius: 3px; }
.w2k-player video { position: absolute; width: 2px; height: 2px; opacity: 0.01;
  pointer-events: none; }
.w2k-player .w2k-label { min-height: 1.4em; margin-top: .3rem; }
"""


def _pack(points: np.ndarray) -> str:
    """``(T, 68, 2)`` pixel keypoints as base64 of little-endian int16 in 1/QUANTUM px."""
    import base64

    q = np.round(np.asarray(points, np.float64) * QUANTUM)
    q = np.where(np.isfinite(q), np.clip(q, -32767, 32767), _NAN16).astype("<i2")
    return base64.b64encode(q.tobytes()).decode("ascii")


class KeypointPlayer:
    """Play test clips with keypoints drawn over their video, in sync with the clip's audio —
    in JupyterLab and in the exported HTML page alike: one self-contained block of HTML and
    JavaScript (the videos and keypoints embedded; no kernel, no network).

    Pick a clip and a model (or every model side by side), play or scrub; the truth can be
    toggled and the frame shown over its video or on a blank canvas. The clip's video (with
    its sound) is the clock: each panel draws the frame the video presents and the keypoints
    of that frame (``requestVideoFrameCallback``), so the keypoints never drift from the
    sound. The label gives the frame, its time and each model's mouth error (% IOD).

    Parameters
    ----------
    views : dict[str, ClipView] or list of ClipView
        The clips (their ``video`` must be a file a browser plays: H.264/AAC mp4 or WebM).
    models : list of str, optional
        Models offered, in order (default: every model of any clip).
    size : int
        Longer side of each panel in px.
    model : str, optional
        The model shown first (default: the first of ``models``).
    """

    def __init__(
        self,
        views: Mapping[str, ClipView] | Sequence[ClipView],
        models: Sequence[str] | None = None,
        size: int = 320,
        model: str | None = None,
    ) -> None:
        if isinstance(views, Mapping):
            self.views: dict[str, ClipView] = {str(k): v for k, v in views.items()}
        else:
            self.views = {}
            for v in views:
                if v.clip in self.views:
                    raise ValueError(
                        f"clip {v.clip!r} appears twice; pass a dict to name the views."
                    )
                self.views[v.clip] = v
        if not self.views:
            raise ValueError("KeypointPlayer needs at least one clip.")
        for v in self.views.values():
            v.validate()
            if not v.video.is_file():
                raise FileNotFoundError(f"clip {v.clip!r}: no video file {v.video}.")
        if models is None:
            models = list(dict.fromkeys(m for v in self.views.values() for m in v.preds))
        self.models = [str(m) for m in models]
        self.colours = model_colours(self.models)
        self.size = int(size)
        if model is not None and model not in self.models:
            raise ValueError(f"model {model!r} is not one of {self.models}.")
        self.model = model or (self.models[0] if self.models else None)

    def data(self) -> dict:
        """What the page embeds: per clip the video (a data URL), frame times, truth and
        predictions (:func:`_pack`); the models and their colours."""
        import base64

        clips = []
        for key, v in self.views.items():
            _usable_frames(v, _video_frames(v.video))  # as many frames as times (give or take 1)
            w, h = _video_size(v.video)
            kind = "webm" if v.video.suffix.lower() == ".webm" else "mp4"
            video = base64.b64encode(v.video.read_bytes()).decode("ascii")
            clips.append(
                {
                    "clip": key,
                    "title": v.title,
                    "video": f"data:video/{kind};base64,{video}",
                    "w": w,
                    "h": h,
                    "times": [round(float(t), 6) for t in v.times],
                    "truth": _pack(v.truth),
                    "preds": {m: _pack(v.preds[m]) for m in self.models if m in v.preds},
                }
            )
        return {
            "quantum": QUANTUM,
            "size": self.size,
            "models": self.models,
            "model": self.model,
            "colours": {m: _hex(c) for m, c in self.colours.items()},
            "truthColour": _hex(TRUTH_COLOUR),
            "clips": clips,
        }

    def html(self) -> str:
        """The player as one block of HTML (style, elements, embedded data and script)."""
        import hashlib
        import json
        from importlib import resources

        payload = json.dumps(self.data(), separators=(",", ":"))
        root = "w2k-" + hashlib.sha1(payload.encode()).hexdigest()[:12]
        script = resources.files("wav2kp.evaluation").joinpath("player.js").read_text("utf-8")
        script = script.replace("__ROOT_ID__", root)
        payload = payload.replace("</", "<\\/")  # never closes the script element early
        return (
            f"<style>{_PLAYER_CSS}</style>"
            f'<div class="w2k-player" id="{root}">'
            '<div class="w2k-bar">'
            '<label>clip <select class="w2k-clip"></select></label>'
            '<label>model <select class="w2k-model"></select></label>'
            '<label><input type="checkbox" class="w2k-truth" checked> truth</label>'
            '<label>background <select class="w2k-bg"><option value="video">video frame</option>'
            '<option value="blank">blank</option></select></label></div>'
            '<div class="w2k-bar"><button type="button" class="w2k-play">&#9654; play</button>'
            '<input type="range" class="w2k-slider" min="0" max="0" value="0" step="1"></div>'
            '<video preload="auto" playsinline></video>'
            '<div class="w2k-panels"></div><div class="w2k-label"></div>'
            f'<script type="application/json" class="w2k-data">{payload}</script>'
            f"<script>{script}</script></div>"
        )

    def _repr_html_(self) -> str:
        return self.html()

    def save(self, path: str | Path, title: str = "wav2kp keypoint player") -> Path:
        """A standalone page holding the player (atomic write)."""
        from wav2kp.manifest import atomic_path

        page = (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head><body>{self.html()}</body></html>"
        )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
        return path
