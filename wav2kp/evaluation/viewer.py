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
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
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


@dataclass
class _Loaded:
    frames: list[np.ndarray]
    scale: float
    n: int


class KeypointViewer:
    """A notebook widget to scrub or play through clips with keypoints on their video.

    Parameters
    ----------
    views : dict[str, ClipView] or list of ClipView
        The clips, keyed by the dict's keys (else by ``ClipView.clip``, which must be unique).
    models : list of str, optional
        Models offered (default: every model of any clip, in order of appearance). A clip
        without a model's predictions shows only the truth for it.
    max_size : int
        Longer side of the shown frames in px (:func:`load_frames`).
    cache_clips : int
        Clips whose decoded frames are kept (least recently shown ones are dropped).

    ``.widget`` is the ipywidgets ``VBox`` (clip, model, truth, play/frame controls, the frame,
    the clip's audio and a label with time and per-frame mouth error); ``display(viewer)`` or
    a bare ``viewer`` shows it. The audio player is independent of the frame player:
    :func:`comparison_video` is the synchronised view.
    """

    def __init__(
        self,
        views: Mapping[str, ClipView] | Sequence[ClipView],
        models: Sequence[str] | None = None,
        max_size: int = 320,
        cache_clips: int = 4,
    ) -> None:
        import ipywidgets as widgets

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
            raise ValueError("KeypointViewer needs at least one clip.")
        for v in self.views.values():
            v.validate()
        if models is None:
            models = list(dict.fromkeys(m for v in self.views.values() for m in v.preds))
        self.models = [str(m) for m in models]
        if ALL_MODELS in self.models:
            raise ValueError(f"{ALL_MODELS!r} is reserved for the overlay of every model.")
        self.colours = model_colours(self.models)
        self.max_size = max_size
        self.cache_clips = max(1, int(cache_clips))
        self._cache: OrderedDict[str, _Loaded] = OrderedDict()
        self._quiet = False  # no redraws while a clip is being set up

        labels = [(f"{k} - {v.title}" if v.title else k, k) for k, v in self.views.items()]
        choices = self.models + ([ALL_MODELS] if len(self.models) > 1 else [])
        self.clip = widgets.Dropdown(options=labels, value=labels[0][1], description="clip")
        self.model = widgets.Dropdown(
            options=choices or ["(none)"], description="model", disabled=not choices
        )
        self.truth = widgets.Checkbox(value=True, description="truth", indent=False)
        self.play = widgets.Play(value=0, min=0, max=0, step=1, interval=40, description="play")
        self.frame = widgets.IntSlider(
            value=0, min=0, max=0, description="frame", continuous_update=True
        )
        widgets.jslink((self.play, "value"), (self.frame, "value"))
        self.image = widgets.Image(format="png")
        self.audio = widgets.Audio(format="wav", autoplay=False, controls=True, loop=False)
        self.label = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.clip, self.model, self.truth]),
                widgets.HBox([self.play, self.frame]),
                self.image,
                self.audio,
                self.label,
            ]
        )
        self._show_clip(self.clip.value)
        self.clip.observe(self._on_clip, names="value")
        for w in (self.model, self.truth, self.frame):
            w.observe(self._on_change, names="value")

    # ------------------------------------------------------------------ state
    def _load(self, key: str) -> _Loaded:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        view = self.views[key]
        frames, scale = load_frames(view.video, self.max_size)
        loaded = _Loaded(frames, scale, _usable_frames(view, len(frames)))
        self._cache[key] = loaded
        while len(self._cache) > self.cache_clips:
            self._cache.popitem(last=False)
        return loaded

    @property
    def view(self) -> ClipView:
        """The clip shown."""
        return self.views[self.clip.value]

    def _shown_models(self) -> list[str]:
        if self.model.disabled:
            return []
        chosen = self.models if self.model.value == ALL_MODELS else [self.model.value]
        return [m for m in chosen if m in self.view.preds]

    def _show_clip(self, key: str) -> None:
        loaded = self._load(key)
        view = self.views[key]
        self._quiet = True
        try:
            self.frame.value = self.play.value = 0
            self.frame.max = self.play.max = loaded.n - 1
        finally:
            self._quiet = False
        if len(view.times) > 1:
            self.play.interval = max(1, int(round(1000 / float(view.fps()))))
        if view.audio is not None:
            self.audio.value = view.audio.read_bytes()
            self.audio.layout.display = None
        else:
            self.audio.value = b""
            self.audio.layout.display = "none"
        self._redraw()

    def _shown_safely(self, show: Callable[[], None]) -> None:
        """Run an observer's update; a clip that cannot be shown says why in the label (an
        exception in an observer would only reach the browser's log)."""
        try:
            show()
        except (ValueError, OSError) as err:  # media.MediaError is a ValueError
            self.image.value = b""
            self.label.value = f'<span style="color:#c00">{html.escape(str(err))}</span>'

    def _on_clip(self, change: dict) -> None:
        self._shown_safely(lambda: self._show_clip(change["new"]))

    def _on_change(self, change: dict) -> None:
        if not self._quiet:
            self._shown_safely(self._redraw)

    def _redraw(self) -> None:
        k = min(self.frame.value, self._load(self.clip.value).n - 1)
        ok, png = cv2.imencode(".png", cv2.cvtColor(self.render(k), cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"clip {self.view.clip!r}: frame {k} could not be PNG-encoded.")
        self.image.value = png.tobytes()
        self.label.value = self.describe(k)

    # ------------------------------------------------------------------ public
    def select(self, clip: str | None = None, model: str | None = None) -> None:
        """Show clip ``clip`` (a key of :attr:`views`) and/or model ``model`` (one of
        :attr:`models` or ``"all models"``); ``None`` keeps the current choice."""
        if clip is not None:
            if clip not in self.views:
                raise KeyError(f"no clip {clip!r}; the viewer has {list(self.views)}.")
            self._load(clip)  # raises here rather than in the observer
            self.clip.value = clip
        if model is not None:
            if model not in self.model.options:
                raise KeyError(f"no model {model!r}; choose from {list(self.model.options)}.")
            self.model.value = model

    def render(self, frame_index: int) -> np.ndarray:
        """The RGB image shown for frame ``frame_index`` of the current clip with the current
        model choice and truth checkbox (truth in :data:`TRUTH_COLOUR`, under the models)."""
        loaded = self._load(self.clip.value)
        if not 0 <= frame_index < loaded.n:
            raise IndexError(
                f"clip {self.view.clip!r}: frame {frame_index} is outside 0..{loaded.n - 1}."
            )
        view = self.view
        img = loaded.frames[frame_index]
        if self.truth.value:
            img = draw_keypoints(
                img, scale_points(view.truth[frame_index], loaded.scale), TRUTH_COLOUR, radius=1.5
            )
        for m in self._shown_models():
            img = draw_keypoints(
                img,
                scale_points(view.preds[m][frame_index], loaded.scale),
                self.colours[m],
                radius=1.5,
            )
        return np.array(img, copy=True)

    def describe(self, frame_index: int) -> str:
        """The label's HTML for a frame: time, and each shown model's mouth error (% IOD)."""
        view = self.view
        parts = [
            f"<b>{html.escape(view.clip)}</b> frame {frame_index}, "
            f"t = {view.times[frame_index]:.3f} s"
        ]
        if self.truth.value:
            parts.append(
                f'<span style="color:{_hex(TRUTH_COLOUR)};background:#333">&#9679;</span> truth'
            )
        if (
            not self.model.disabled
            and self.model.value != ALL_MODELS
            and self.model.value not in view.preds
        ):
            parts.append(f"{html.escape(self.model.value)}: no prediction for this clip")
        for m in self._shown_models():
            err = mouth_error(view.preds[m][frame_index], view.truth[frame_index])
            txt = f"{float(err):.1f} % IOD" if np.isfinite(err) else "no truth"
            parts.append(
                f'<span style="color:{_hex(self.colours[m])};background:#333">'
                f"&#9679;</span> {html.escape(m)}: mouth {txt}"
            )
        return " &nbsp; ".join(parts)

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
