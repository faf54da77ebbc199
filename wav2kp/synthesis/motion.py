"""Head motion and blinks from speech, learned from what extraction measures on a corpus.

The study's models predict the face in a normalised pose (head motion removed, to learn the
mouth better); on their own they give a head that never moves and eyes that never blink. This
module puts both back, as small generative models fitted on the pose tracks and eye openings
the extractor measures on a corpus's training clips (the bundled corpus by default):

- **head motion**: per pose parameter (rotation in degrees, log scale, x and y translation in
  inter-ocular distances, each relative to the clip's median pose) an order-2 autoregressive
  process driven by the speech's prosody at the same frame (loudness, its change, voice pitch,
  speech/pause) with its own innovation spread in speech and in pauses
  (:class:`HeadMotionModel`);
- **blinks**: intervals drawn from the log-normal fitted to the measured intervals, more
  likely to start in a pause when the corpus's blinks were, durations from the measured ones
  (:class:`BlinkModel`).

Both are causal (a frame depends on the audio up to its time and on earlier frames) and seeded,
so a stream (``wav2kp live``) draws exactly what an offline prediction with the same seed
draws. :func:`motion_statistics` measures the same statistics on any keypoint sequence — real
videos, the corpus, generated motion — so they can be compared (notebook 05).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from wav2kp import config, media, results, shapes
from wav2kp import corpus as corpora
from wav2kp.extraction import landmarks
from wav2kp.manifest import write_json_atomic

RATE = 16000
#: Pose parameters, in this order, of a pose track ``(T, 4)``.
POSE_NAMES = ("rotation_deg", "log_scale", "x_iod", "y_iod")
#: A blink: the eyes' openness below this share of the clip's median (measured: dlib then finds
#: 14.8 blinks a minute on the bundled corpus, whose generator blinks about 17 times a minute).
BLINK_THRESHOLD = 0.75
#: Runs below the threshold separated by at most this many frames are one blink (dlib's
#: eyelids flicker across the threshold while the eye closes).
MERGE_FRAMES = 2
#: Share of a generated blink (:meth:`MotionState._blink`'s profile, :func:`apply`'s lids)
#: during which the eyes' openness is below :data:`BLINK_THRESHOLD` (closure above 1/3).
BELOW_SHARE = 2 / 3
#: The shortest and longest whole blink generated (s).
BLINK_SECONDS = (0.15, 0.4)
#: Eye points (dlib 68): right eye 36-41, left eye 42-47; upper lids 37, 38 / 43, 44.
_EYES = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))
#: The prosody inputs of the head-motion model (see :func:`prosody`).
PROSODY_NAMES = ("energy", "energy_change", "pitch", "speech")


# --------------------------------------------------------------------------- measuring


def pose_track(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(T, 4)``: rotation (degrees), log scale, x and y translation (inter-ocular distances
    of the face), each relative to the clip's median; NaN where the face was not found."""
    _, pose = shapes.normalise(np.asarray(points, np.float64), reference)
    inv_scale = 1.0 / pose.scale  # pose maps pixels -> normalised; the head's size is 1 / s
    angle = -np.degrees(pose.angle)
    centre = -np.einsum("...ij,...j->...i", np.swapaxes(pose.rotation, -1, -2), pose.translation)
    centre = centre * inv_scale[:, None]
    med_scale = np.nanmedian(inv_scale)
    track = np.column_stack(
        [
            angle - np.nanmedian(angle),
            np.log(inv_scale / med_scale),
            (centre[:, 0] - np.nanmedian(centre[:, 0])) / med_scale,
            (centre[:, 1] - np.nanmedian(centre[:, 1])) / med_scale,
        ]
    )
    return track


def eye_openness(points: np.ndarray) -> np.ndarray:
    """``(T,)``: the eye aspect ratio (lid gap over eye width) averaged over both eyes."""
    p = np.asarray(points, np.float64)
    out = []
    for a, b, c, d, e, f in _EYES:
        gap = np.linalg.norm(p[:, b] - p[:, f], axis=-1) + np.linalg.norm(
            p[:, c] - p[:, e], axis=-1
        )
        out.append(gap / (2 * np.linalg.norm(p[:, a] - p[:, d], axis=-1)))
    return np.mean(out, axis=0)


def find_blinks(openness: np.ndarray, fps: float) -> list[tuple[float, float]]:
    """``[(start s, duration s), ...]``: runs of frames whose openness is below
    :data:`BLINK_THRESHOLD` of the clip's median (at most 0.6 s: longer is eyes closed)."""
    o = np.asarray(openness, np.float64)
    ok = np.isfinite(o)
    if ok.sum() < 3:
        return []
    low = np.zeros(len(o), bool)
    low[ok] = o[ok] < BLINK_THRESHOLD * np.median(o[ok])
    runs, k = [], 0
    while k < len(o):
        if low[k]:
            j = k
            while j + 1 < len(o) and low[j + 1]:
                j += 1
            if runs and k - runs[-1][1] <= MERGE_FRAMES + 1:  # one blink, one frame above
                runs[-1][1] = j
            else:
                runs.append([k, j])
            k = j + 1
        else:
            k += 1
    out = []
    for k, j in runs:
        dur = (j - k + 1) / fps
        if dur <= 0.6:
            out.append((k / fps, dur))
    return out


def prosody(audio: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``(T, 4)`` causal prosody at each time (:class:`ProsodyTracker`): loudness, its change
    over the last 3 frames, voice pitch and speech/pause, each from the audio up to its time."""
    x = np.asarray(audio, np.float64)
    tracker = ProsodyTracker()
    ends = np.clip(np.round(np.asarray(times) * RATE).astype(int), 0, len(x))
    rows = [tracker.row(x[max(0, e - ProsodyTracker.WINDOW) : e]) for e in ends]
    return np.asarray(rows).reshape(-1, 4)


class ProsodyTracker:
    """Prosody frame by frame, from the :data:`WINDOW` samples before each frame's time: the
    offline :func:`prosody` and a stream (``wav2kp live``) run the same code."""

    WINDOW = int(0.06 * RATE)  # pitch needs 60 ms; loudness uses the last 30 ms

    def __init__(self) -> None:
        self.history: list[float] = []

    def row(self, seg: np.ndarray) -> np.ndarray:
        seg = np.asarray(seg, np.float64)
        last = seg[-int(0.03 * RATE) :]
        energy = 10 * np.log10(np.mean(last**2) + 1e-10) if len(last) else -100.0
        floor = max(energy, -70.0)
        self.history = ([floor] if not self.history else self.history)[-3:]
        change = floor - self.history[0]
        self.history.append(floor)
        return np.array([(floor + 40) / 20, change / 10, _pitch(seg), 1.0 if energy > -45 else 0.0])


def _pitch(seg: np.ndarray) -> float:
    """log2(F0 / 150 Hz) of a voiced segment by autocorrelation (70-400 Hz), else 0."""
    if len(seg) < int(0.04 * RATE) or np.mean(seg**2) < 1e-6:
        return 0.0
    seg = seg - seg.mean()
    spec = np.fft.rfft(seg, 2 * len(seg))
    ac = np.fft.irfft(np.abs(spec) ** 2)[: len(seg)]
    lo, hi = RATE // 400, RATE // 70
    lag = lo + int(np.argmax(ac[lo:hi]))
    if ac[lag] < 0.3 * ac[0]:
        return 0.0
    return float(np.log2(RATE / lag / 150.0))


# --------------------------------------------------------------------------- models


@dataclass
class HeadMotionModel:
    """Order-2 autoregression per pose parameter, driven by prosody (see the module)."""

    ar: list[list[float]]  # per parameter: a1, a2
    drive: list[list[float]]  # per parameter: one weight per prosody input
    sigma_speech: list[float]
    sigma_pause: list[float]
    limit: list[float]  # |value| kept within the measured 99.5th percentile
    fps: float


@dataclass
class BlinkModel:
    """Blink intervals (log-normal), how much likelier a blink starts in a pause, durations."""

    interval_mu: float
    interval_sigma: float
    min_interval: float
    pause_boost: float
    duration_s: float
    duration_sd: float


@dataclass
class MotionModel:
    """Head motion and blinks, with what they were fitted on."""

    head: HeadMotionModel
    blinks: BlinkModel
    fitted_on: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:

        return write_json_atomic(Path(path), asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> MotionModel:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(HeadMotionModel(**d["head"]), BlinkModel(**d["blinks"]), d.get("fitted_on", {}))


def fit(clips: list[tuple[np.ndarray, np.ndarray, np.ndarray]], reference: np.ndarray, fps: float):
    """Fit a :class:`MotionModel` on ``[(points (T, 68, 2), times (T,), 16 kHz audio), ...]``."""
    rows, nexts, speaking, tracks, total_seconds = [], [], [], [], 0.0
    intervals, durations, starts_in_pause, pause_share = [], [], [], []
    for points, times, audio in clips:
        track = pose_track(points, reference)
        pro = prosody(audio, times)
        total_seconds += len(times) / fps
        tracks.append(track)
        for k in range(2, len(track)):
            if np.isfinite(track[k - 2 : k + 1]).all():
                rows.append(np.concatenate([track[k - 1], track[k - 2], pro[k]]))
                nexts.append(track[k])
                speaking.append(pro[k, 3] > 0.5)
        blinks = find_blinks(eye_openness(points), fps)
        starts = [s for s, _ in blinks]
        intervals += list(np.diff(starts))
        durations += [d for _, d in blinks]
        for s in starts:
            k = min(len(pro) - 1, int(round(s * fps)))
            starts_in_pause.append(pro[k, 3] < 0.5)
        pause_share.append(float(np.mean(pro[:, 3] < 0.5)))
    if len(rows) < 50:
        raise ValueError(f"motion.fit: {len(rows)} usable frames; need at least 50.")
    rows, nexts, speaking = np.asarray(rows), np.asarray(nexts), np.asarray(speaking)
    ar, drive, sig_s, sig_p, limit = [], [], [], [], []
    allv = np.concatenate(tracks)
    for d in range(4):
        X = np.column_stack([rows[:, d], rows[:, 4 + d], rows[:, 8:]])
        coef, *_ = np.linalg.lstsq(X, nexts[:, d], rcond=None)
        a1, a2 = _stable(coef[0], coef[1])
        resid = nexts[:, d] - X @ np.concatenate([[a1, a2], coef[2:]])
        ar.append([a1, a2])
        drive.append([float(c) for c in coef[2:]])
        sig_s.append(float(np.std(resid[speaking])) if speaking.any() else float(np.std(resid)))
        sig_p.append(float(np.std(resid[~speaking])) if (~speaking).any() else float(np.std(resid)))
        limit.append(float(np.nanpercentile(np.abs(allv[:, d]), 99.5)))
    # Intervals inside clips of a few seconds are biased short (a 4 s clip holds no 5 s
    # interval): the mean interval comes from the rate (seconds per blink over all clips), the
    # spread from the intervals measured (log-normal: mean = exp(mu + sigma^2 / 2)).
    sigma = float(np.clip(np.log(intervals).std(), 0.3, 0.8)) if len(intervals) >= 3 else 0.5
    if durations:
        mean_interval = total_seconds / len(durations)
    else:  # no blink measured: the literature's ~17 blinks a minute in conversation
        mean_interval = 3.5
    mu = float(math.log(mean_interval) - sigma**2 / 2)
    share = float(np.mean(starts_in_pause)) if starts_in_pause else float(np.mean(pause_share))
    base = float(np.mean(pause_share)) if pause_share else 0.5
    boost = float(np.clip((share / max(base, 1e-3)), 0.5, 4.0))
    dur = np.asarray(durations) if durations else np.array([0.15])
    head = HeadMotionModel(ar, drive, sig_s, sig_p, limit, float(fps))
    blink = BlinkModel(
        mu, sigma, float(np.clip(np.min(intervals) if intervals else 0.8, 0.5, 1.0)), boost,
        float(dur.mean()), float(dur.std()),
    )  # fmt: skip
    info = {
        "clips": len(clips),
        "frames": int(len(rows)),
        "blinks": len(durations),
        "fps": float(fps),
    }
    return MotionModel(head, blink, info)


def _stable(a1: float, a2: float) -> tuple[float, float]:
    """Shrink AR(2) coefficients until the process is stationary (roots inside the circle)."""
    a1, a2 = float(a1), float(a2)
    for _ in range(50):
        roots = np.roots([1.0, -a1, -a2])
        if np.all(np.abs(roots) < 0.995):
            break
        a1, a2 = 0.97 * a1, 0.97 * a2
    return a1, a2


class MotionState:
    """The causal generator: call :meth:`step` frame by frame (a stream) or :meth:`head` /
    :meth:`blinks` on whole arrays (offline); the same seed gives the same motion either way."""

    def __init__(
        self, head: HeadMotionModel, blinks: BlinkModel | None, seed: int = 0, strength: float = 1.0
    ) -> None:
        self.hm, self.bm, self.strength = head, blinks, float(strength)
        self.rng_head = np.random.default_rng([int(seed), 1])
        self.rng_blink = np.random.default_rng([int(seed), 2])
        self.prev = np.zeros((2, 4))
        self.t = 0.0
        self.next_blink = None
        self.blink_until = -1.0
        self.blink_start = -1.0
        self.blink_len = 0.15

    def step(self, pro: np.ndarray) -> tuple[np.ndarray, float]:
        """One frame: prosody row ``(4,)`` -> (pose offsets ``(4,)``, eye closure 0..1)."""
        hm = self.hm
        speech = pro[3] > 0.5
        x = np.empty(4)
        for d in range(4):
            a1, a2 = hm.ar[d]
            sigma = hm.sigma_speech[d] if speech else hm.sigma_pause[d]
            v = a1 * self.prev[0, d] + a2 * self.prev[1, d] + float(np.dot(hm.drive[d], pro))
            v += sigma * self.rng_head.standard_normal()
            x[d] = float(np.clip(v, -hm.limit[d], hm.limit[d]))
        self.prev = np.stack([x, self.prev[0]])
        closure = self._blink(speech) if self.bm is not None else 0.0
        self.t += 1.0 / hm.fps
        return x * self.strength, closure

    def _blink(self, speech: bool) -> float:
        bm, t = self.bm, self.t
        if self.next_blink is None:
            self.next_blink = t + self._interval()
        idle = t > self.blink_until
        due = idle and t >= self.next_blink
        # a pause may bring the next blink forward (as often as the corpus's blinks did)
        early = (
            idle
            and not speech
            and bm.pause_boost > 1
            and t > self.blink_until + bm.min_interval
            and self.rng_blink.random() < (bm.pause_boost - 1) / (2 * self.hm.fps)
        )
        if due or early:
            self.blink_start = t
            noise = bm.duration_sd * self.rng_blink.standard_normal()
            # the measured duration is the time the eye is mostly shut: BELOW_SHARE of a blink;
            # a whole blink lasts 150-400 ms (dlib sees only ~45 ms of the bundled corpus's
            # 180 ms blinks on its photo, so a shorter fit is its detector, not the face)
            full = (bm.duration_s + noise) / BELOW_SHARE
            self.blink_len = float(np.clip(full, BLINK_SECONDS[0], BLINK_SECONDS[1]))
            self.blink_until = t + self.blink_len
            self.next_blink = self.blink_until + self._interval()
        if self.blink_start <= t <= self.blink_until:
            u = (t - self.blink_start) / self.blink_len  # close fast (a third), open slower
            return float(np.clip(u / 0.35 if u < 0.35 else (1 - u) / 0.65, 0, 1))
        return 0.0

    def _interval(self) -> float:
        bm = self.bm
        draw = math.exp(bm.interval_mu + bm.interval_sigma * self.rng_blink.standard_normal())
        return max(bm.min_interval, draw)

    def run(self, prosody_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(T, 4)`` pose offsets and ``(T,)`` eye closure for ``(T, 4)`` prosody rows."""
        out = [self.step(p) for p in np.asarray(prosody_frames)]
        if not out:
            return np.zeros((0, 4)), np.zeros(0)
        return np.array([o[0] for o in out]), np.array([o[1] for o in out])

    def move(
        self, normalised: np.ndarray, prosody_frames: np.ndarray, head_motion: str, blinks: bool
    ) -> np.ndarray:
        """The frames ``normalised (T, 68, 2)`` moved by the next ``T`` steps (head motion
        only when ``head_motion`` is ``"natural"``, blinks only with ``blinks``)."""
        offsets, closure = self.run(prosody_frames)
        if head_motion == "none":
            offsets = np.zeros_like(offsets)
        return apply(normalised, offsets, closure if blinks else None)


def _check(head_motion: str) -> None:
    if head_motion not in ("none", "natural"):
        raise ValueError(f"head_motion must be 'none' or 'natural', got {head_motion!r}.")


# --------------------------------------------------------------------------- applying


def apply(
    normalised: np.ndarray, offsets: np.ndarray, closure: np.ndarray | None = None
) -> np.ndarray:
    """Keypoints ``(T, 68, 2)`` in the normalised face (unit inter-ocular distance) moved by
    pose ``offsets (T, 4)`` (rotation about the face's centre, scale, translation) with the
    eyelids closed by ``closure (T,)`` (0 open, 1 shut)."""
    pts = np.array(normalised, dtype=np.float64, copy=True)
    if closure is not None:
        for _, b, c, _, e, f in _EYES:
            for up, low in ((b, f), (c, e)):
                mid = (pts[:, up] + pts[:, low]) / 2
                w = np.asarray(closure)[:, None]
                pts[:, up] = pts[:, up] + w * 0.9 * (mid - pts[:, up])
                pts[:, low] = pts[:, low] + w * 0.6 * (mid - pts[:, low])
    centre = np.nanmean(pts, axis=1, keepdims=True)
    ang = np.radians(offsets[:, 0])
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    rel = pts - centre
    rot = np.stack([c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1]], -1)
    scale = np.exp(offsets[:, 1])[:, None, None]
    return centre + rot * scale + offsets[:, None, 2:4]


def animate(
    normalised: np.ndarray,
    times: np.ndarray,
    audio: np.ndarray,
    model: MotionModel,
    head_motion: str = "natural",
    strength: float = 1.0,
    blinks: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """A prediction with head motion (``"none"`` or ``"natural"``, times ``strength``) and
    blinks added, from the recording's 16 kHz ``audio`` at the frame ``times``."""
    _check(head_motion)
    state = MotionState(model.head, model.blinks if blinks else None, seed, strength)
    return state.move(normalised, prosody(audio, times), head_motion, blinks)


class MotionStream:
    """:func:`animate` for a stream: feed the audio as it arrives (:meth:`push_audio`), then
    move each batch of predicted frames (:meth:`apply`); the same seed gives exactly what
    :func:`animate` gives on the whole recording (frames are never ahead of the audio)."""

    KEEP = 2 * RATE  # samples of audio kept (frames lag the audio by well under a second)

    def __init__(
        self,
        model: MotionModel,
        head_motion: str = "natural",
        strength: float = 1.0,
        blinks: bool = True,
        seed: int = 0,
    ) -> None:
        _check(head_motion)
        self.state = MotionState(model.head, model.blinks if blinks else None, seed, strength)
        self.tracker = ProsodyTracker()
        self.head_motion, self.blinks = head_motion, bool(blinks)
        self.audio, self.a0 = np.zeros(0), 0

    def push_audio(self, samples: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, np.asarray(samples, np.float64).ravel()])
        if len(self.audio) > 2 * self.KEEP:
            drop = len(self.audio) - self.KEEP
            self.audio, self.a0 = self.audio[drop:], self.a0 + drop

    def apply(self, times: np.ndarray, normalised: np.ndarray) -> np.ndarray:
        if len(times) == 0:
            return normalised
        n = self.a0 + len(self.audio)
        rows = []
        for t in np.asarray(times):
            e = int(np.clip(round(float(t) * RATE), 0, n))
            seg = self.audio[max(self.a0, e - ProsodyTracker.WINDOW) - self.a0 : e - self.a0]
            rows.append(self.tracker.row(seg))
        return self.state.move(normalised, np.asarray(rows), self.head_motion, self.blinks)


# --------------------------------------------------------------------------- statistics


def motion_statistics(points: np.ndarray, times: np.ndarray, audio: np.ndarray, reference) -> dict:
    """The statistics notebook 05 compares, for one keypoint sequence ``(T, 68, 2)`` (pixels or
    normalised) with its audio: rotation speed (deg/s) and range (deg, 5th-95th percentile),
    translation range (inter-ocular distances), motion in pauses over motion in speech, blink
    rate (per minute), mean blink duration (ms) and the spread of blink intervals (coefficient
    of variation; 0 would be a metronome)."""
    fps = 1.0 / float(np.median(np.diff(times)))
    track = pose_track(points, reference)
    smooth = _smooth(track, 5)
    rot = smooth[:, 0]
    speed = np.abs(np.diff(rot)) * fps
    pro = prosody(audio, times)
    speaking = pro[1:, 3] > 0.5
    move = np.linalg.norm(np.diff(smooth[:, [0]], axis=0), axis=1)
    blinks = find_blinks(eye_openness(points), fps)
    starts = np.array([s for s, _ in blinks])
    gaps = np.diff(starts)
    minutes = (times[-1] - times[0] + 1 / fps) / 60
    return {
        "blinks": len(blinks),
        "rotation_speed_deg_s": float(np.nanmean(speed)),
        "rotation_range_deg": float(np.nanpercentile(rot, 95) - np.nanpercentile(rot, 5)),
        "translation_range_iod": float(
            np.nanmax(
                np.nanpercentile(smooth[:, 2:], 95, axis=0)
                - np.nanpercentile(smooth[:, 2:], 5, axis=0)
            )
        ),
        "pause_over_speech_motion": float(
            np.nanmean(move[~speaking]) / max(np.nanmean(move[speaking]), 1e-9)
        )
        if speaking.any() and (~speaking).any()
        else math.nan,
        "blinks_per_min": float(len(blinks) / minutes),
        "blink_ms": float(1000 * np.mean([d for _, d in blinks])) if blinks else math.nan,
        "blink_interval_cv": float(gaps.std() / gaps.mean()) if len(gaps) >= 2 else math.nan,
        "seconds": float(minutes * 60),
    }


def _smooth(track: np.ndarray, window: int) -> np.ndarray:
    """A centred moving median over ``window`` frames (dlib's frame-to-frame jitter out)."""
    from scipy.ndimage import median_filter

    out = np.array(track, copy=True)
    ok = np.isfinite(out).all(axis=1)
    if ok.sum() >= window:
        out[ok] = median_filter(out[ok], size=(window, 1), mode="nearest")
    return out


# --------------------------------------------------------------------------- the study's use


#: Where a study keeps its fitted motion model (beside its runs), and the one shipped.
MOTION_RUN = "motion"
SHIPPED_FILE = Path(__file__).resolve().parents[1] / "shipped" / "motion.json"


def clip_inputs(interim_dir: str | Path, clip: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points (T, 68, 2), times (T,), 16 kHz audio)`` of an extracted clip (extraction
    writes its audio at 16 kHz)."""

    wav, lm_path = landmarks.clip_paths(Path(interim_dir), clip)
    lm = landmarks.load_landmarks(lm_path)
    audio, _ = media.read_wav(wav)
    return np.asarray(lm.points, np.float64), np.asarray(lm.times), np.asarray(audio, np.float32)


def fit_corpus(fs, interim_dir: str | Path, split: str = "train") -> MotionModel:
    """Fit on the extracted clips of a feature set's ``split`` (its reference face)."""
    clips = [clip_inputs(interim_dir, c) for c in fs.split_clips(split)]
    if not clips:
        raise ValueError(f"motion.fit_corpus: no {split} clips in {fs.out_dir}.")
    fps = 1.0 / float(np.median(np.diff(clips[0][1])))
    model = fit(clips, fs.reference, fps)
    model.fitted_on.update({"feature_set": str(fs.out_dir), "split": split})
    return model


def load_default() -> MotionModel:
    """The motion model the last study fitted (notebook 05, :func:`wav2kp.results.motion_file`),
    else the one shipped with the package."""

    path = results.motion_file()
    return MotionModel.load(path if path is not None else SHIPPED_FILE)


def fit_study(fs, interim_dir: str | Path, out_file: str | Path) -> MotionModel:
    """Notebook 05's motion model: fitted on the extracted training clips of ``fs``
    (:func:`fit_corpus`) and saved to ``out_file``; the shipped model when there are none to
    fit on (a predictor whose feature set is the shipped one), said on the output."""
    try:
        model = fit_corpus(fs, interim_dir)
        model.save(out_file)
    except (ValueError, OSError) as err:  # no extracted training clips
        print(f"fitting skipped ({err}); the shipped motion model is used")
        return MotionModel.load(SHIPPED_FILE)
    return model


def real_statistics(folder: str | Path, reference: np.ndarray) -> list[dict]:
    """:func:`motion_statistics` of every talking-head video in ``folder``, extracted (or
    reused: notebook 04 extracts the same folder) as corpus ``real_<folder name>``."""

    name = f"real_{config.corpus_name(folder)}"
    landmarks.extract(corpora.discover(folder), corpus=name, progress=False)
    interim = config.interim_dir(name)
    return [
        motion_statistics(*clip_inputs(interim, f.stem), reference)
        for f in sorted((interim / "landmarks").glob("*.npz"))
    ]


@dataclass
class Comparison:
    """Notebook 05's comparison of generated motion with real videos and the corpus: the
    :func:`compare` table and what it was measured on."""

    table: object  # pandas.DataFrame, one row per statistic
    real_videos: int
    corpus_clips: int
    generated_seconds: float

    @property
    def inside(self) -> int:
        """Statistics whose generated value lies inside the real videos' range."""
        return int(self.table["inside real range"].sum())

    def record(self) -> dict:
        """The table as plain JSON (NaN as ``None``), with the counts."""
        table = {
            k: {
                c: (v if not isinstance(v, float) or np.isfinite(v) else None)
                for c, v in row.items()
            }
            for k, row in self.table.to_dict("index").items()
        }
        return {
            "real_videos": self.real_videos,
            "table": table,
            "inside_real_range": self.inside,
            "statistics": len(self.table),
        }


def compare_study(
    model: MotionModel,
    predictor,
    fs,
    interim_dir: str | Path,
    real_dir: str | Path | None = None,
    head_motion: str = "natural",
    strength: float = 1.0,
    blinks: bool = True,
    seed: int = 0,
    fps: float = 30000 / 1001,
) -> Comparison:
    """Motion statistics of the real videos of ``real_dir`` (skipped when ``None`` or absent),
    of the extracted test clips of ``fs``, and of motion ``model`` generates for the test clips'
    speech played back to back (predicted by ``predictor``), side by side (:func:`compare`)."""
    interim = Path(interim_dir)

    tests = [c for c in fs.split_clips("test") if landmarks.clip_paths(interim, c)[1].is_file()]
    clips = [clip_inputs(interim, c) for c in tests]
    corpus_stats = [motion_statistics(*c, fs.reference) for c in clips]
    real = []
    if real_dir is not None and Path(real_dir).is_dir():
        real = real_statistics(real_dir, fs.reference)
    speech = np.concatenate([c[2] for c in clips])
    pred = predictor.predict_audio(speech, fps=fps)
    alive = animate(pred.normalised, pred.times, speech, model, head_motion, strength, blinks, seed)
    generated = motion_statistics(alive, pred.times, speech, fs.reference)
    table = compare(real or [generated], corpus_stats, generated)
    return Comparison(table, len(real), len(corpus_stats), float(generated["seconds"]))


def compare(real: list[dict], corpus: list[dict], generated: dict):
    """One row per statistic: the real videos' range (min, median, max over videos), the
    corpus (median over clips; blink rate pooled), the generated motion, and whether the
    generated value lies inside the real range (a ``pandas.DataFrame``)."""
    import pandas as pd

    names = [k for k in generated if k not in ("blinks", "seconds")]
    rows = []
    for name in names:
        r = np.array([x[name] for x in real], float)
        r = r[np.isfinite(r)]
        if name == "blinks_per_min":
            c = 60 * sum(x["blinks"] for x in corpus) / max(sum(x["seconds"] for x in corpus), 1e-9)
        else:
            cv = np.array([x[name] for x in corpus], float)
            c = float(np.nanmedian(cv)) if np.isfinite(cv).any() else math.nan
        g = float(generated[name])
        lo, hi = (float(r.min()), float(r.max())) if len(r) else (math.nan, math.nan)
        rows.append(
            {
                "statistic": name,
                "real min": lo,
                "real median": float(np.median(r)) if len(r) else math.nan,
                "real max": hi,
                "corpus": c,
                "generated": g,
                "inside real range": bool(len(r) and lo <= g <= hi),
            }
        )
    return pd.DataFrame(rows).set_index("statistic")
