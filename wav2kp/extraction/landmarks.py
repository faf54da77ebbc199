"""Stage 01: 68 keypoints per video frame, tracked, with QC; per-clip extraction of a corpus.

The detector and predictor themselves are :mod:`wav2kp.face68`; this module tracks the face
through a clip (each box from the previous keypoints, checked and re-detected), writes the
16 kHz audio and the keypoints of every clip, and keeps the QC and failures tables.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wav2kp import config as paths
from wav2kp import corpus as corpora
from wav2kp import media, parallel
from wav2kp.face68 import detect_68, detect_faces, predict_points
from wav2kp.manifest import (
    file_sha256,
    package_versions,
    write_csv_atomic,
    write_json_atomic,
    write_npz_atomic,
)
from wav2kp.shapes import inter_ocular

if TYPE_CHECKING:
    import pandas as pd


# ---------------------------------------------------------------------------------------------
# Tracking

#: dlib's frontal detector box relative to the bounding box of its own 68 keypoints, measured on
#: bundled and real clips (n=125): side ~ 1.056 x the points' width ~ 1.024 x their height,
#: centre 0.014 widths right of and 0.084 heights above the points' centre.
_BOX_W, _BOX_H, _BOX_DX, _BOX_DY = 1.056, 1.024, 0.014, -0.084


def box_from_points(points: np.ndarray) -> tuple[float, float, float, float]:
    """The box dlib's detector would give for a face with these keypoints ``(68, 2)``
    (left, top, right, bottom), so a tracked box feeds the predictor like a detected one."""
    lo, hi = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
    w, h = hi - lo
    side = 0.5 * (_BOX_W * w + _BOX_H * h)
    cx = (lo[0] + hi[0]) / 2 + _BOX_DX * w
    cy = (lo[1] + hi[1]) / 2 + _BOX_DY * h
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


@dataclass(frozen=True)
class TrackerConfig:
    """How faces are found and followed.

    detect_max_side: the detector runs on a grey copy scaled so its longer side is at most this
        many pixels (the original project ran it on every full-resolution frame).
    upsample: dlib detector upsampling on that copy (0 finds faces of ~80 px and more there).
    max_jump_iod: a tracked shape that moved more than this (mean over points, in inter-ocular
        distances) since the last frame is implausible: the face is detected again.
    redetect_every: also re-detect every N frames (0: only when tracking is lost).
    verify_every: every N frames (1: every frame; 0: never) check that a face is still in the
        tracked box: the detector runs on a small crop around it (the face scaled to ~88 px,
        ~1.5 ms). The predictor alone always returns a shape, even on an empty frame, so
        without this check a face that leaves the picture would never count as lost.
    max_gap: gaps of up to this many frames without a face are interpolated (flagged).
    min_found: a clip with a smaller fraction of frames with a face is a failure.
    """

    detect_max_side: int = 320
    upsample: int = 0
    max_jump_iod: float = 0.35
    redetect_every: int = 0
    verify_every: int = 1
    max_gap: int = 5
    min_found: float = 0.5


class FaceTracker:
    """Follow one face through a video: detect once, then predict each frame's keypoints in
    the box given by the previous frame's keypoints; re-detect when the face is lost or jumps.

    With several faces, the first detection keeps the largest, most central one, and later
    detections keep the one nearest the track.
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self.previous: np.ndarray | None = None
        self.redetections = 0
        self.frames = 0

    def _detect(self, rgb: np.ndarray) -> tuple[float, float, float, float] | None:
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, self.config.detect_max_side / max(h, w))
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            grey = cv2.resize(
                grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
        faces = detect_faces(grey, self.config.upsample)
        if not faces and scale < 1.0:  # small faces: try the full-resolution frame
            scale = 1.0
            faces = detect_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), self.config.upsample)
        if not faces:
            return None
        boxes = np.array([f[0] for f in faces], dtype=np.float64) / scale
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        if self.previous is not None:
            ref = np.nanmean(self.previous, axis=0)
            best = int(np.argmin(np.linalg.norm(centres - ref, axis=1)))
        else:
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            off = np.linalg.norm(centres - [w / 2, h / 2], axis=1) / np.hypot(w, h)
            best = int(np.argmax(area * (1.0 - off)))
        return tuple(boxes[best])

    def _face_in_box(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> bool:
        """Does the detector find a face near ``box`` in a small crop around it?"""
        import cv2

        left, top, right, bottom = box
        side = max(right - left, bottom - top)
        cx, cy = (left + right) / 2, (top + bottom) / 2
        h, w = rgb.shape[:2]
        # A crop 1.4 box sides wide, scaled so the face is ~88 px (the detector's window is
        # 80 px): its image pyramid then has only a few levels (~1.5 ms).
        half = 0.7 * side
        x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
        x1, y1 = int(min(cx + half, w)), int(min(cy + half, h))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return False
        scale = min(1.0, 88.0 / side)
        crop = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            crop = cv2.resize(
                crop,
                (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                interpolation=cv2.INTER_AREA,
            )
        for (fl, ft, fr, fb), _ in detect_faces(crop, 0):
            fx = x0 + (fl + fr) / 2 / scale
            fy = y0 + (ft + fb) / 2 / scale
            if np.hypot(fx - cx, fy - cy) < 0.5 * side:
                return True
        return False

    def update(self, rgb: np.ndarray) -> np.ndarray | None:
        """Keypoints ``(68, 2)`` float32 for this frame, or ``None`` when no face is found."""
        cfg = self.config
        self.frames += 1
        points = None
        periodic = cfg.redetect_every and self.frames % cfg.redetect_every == 0
        if self.previous is not None and not periodic:
            points = predict_points(rgb, box_from_points(self.previous))
            jump = np.linalg.norm(points - self.previous, axis=1).mean()
            iod = float(inter_ocular(self.previous))
            if (
                not np.isfinite(jump)
                or iod < 1.0
                or jump > cfg.max_jump_iod * iod
                or cfg.verify_every
                and self.frames % cfg.verify_every == 0
                and not self._face_in_box(rgb, box_from_points(points))
            ):
                points = None
        if points is None:
            if self.previous is not None:
                self.redetections += 1
            box = self._detect(rgb)
            points = None if box is None else predict_points(rgb, box)
        self.previous = points
        return points


def interpolate_gaps(
    points: np.ndarray, found: np.ndarray, times: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fill runs of at most ``max_gap`` missing frames between two found frames by linear
    interpolation in time. Returns ``(points, interpolated)``; longer gaps and gaps at the
    ends stay NaN."""
    points = points.copy()
    interpolated = np.zeros(len(found), dtype=bool)
    idx = np.flatnonzero(found)
    for a, b in zip(idx[:-1], idx[1:]):
        gap = b - a - 1
        if 0 < gap <= max_gap:
            w = ((times[a + 1 : b] - times[a]) / (times[b] - times[a]))[:, None, None]
            points[a + 1 : b] = (1 - w) * points[a] + w * points[b]
            interpolated[a + 1 : b] = True
    return points, interpolated


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in a boolean array."""
    best = run = 0
    for v in mask:
        run = run + 1 if v else 0
        best = max(best, run)
    return best


def still_jitter(points: np.ndarray, window: int = 10) -> float:
    """Jitter in the stillest stretch, in % of the inter-ocular distance: the RMS frame-to-frame
    displacement of the stable points (eye corners, nose) over the ``window``-frame stretch
    where they move least. NaN when there is no such stretch of found frames."""
    stable = points[:, [36, 39, 42, 45, 27, 28, 29, 30, 33]]
    step = np.linalg.norm(np.diff(stable, axis=0), axis=2).mean(axis=1)  # (T-1,)
    iod = inter_ocular(points[1:])
    rel = 100 * step / iod
    if len(rel) < window:
        return float("nan")
    means = np.convolve(np.nan_to_num(rel, nan=np.inf), np.ones(window) / window, "valid")
    k = int(np.argmin(means))
    if not np.isfinite(means[k]):
        return float("nan")
    return float(np.sqrt(np.mean(rel[k : k + window] ** 2)))


# ---------------------------------------------------------------------------------------------
# Per-clip extraction

EXTRACTOR_VERSION = "2"


class ExtractionError(ValueError):
    """A clip that cannot give keypoints (no face, too few faces); the message names the file."""


@dataclass
class ClipLandmarks:
    """Keypoints of one video, the DESIGN contract.

    points: float32 ``(T, 68, 2)`` pixels of the source frame; NaN where no face was found and
        the gap was not interpolated. times: ``(T,)`` s (presentation timestamps). found:
        ``(T,)`` bool, a face was detected or tracked in that frame. interpolated: ``(T,)``
        bool, filled from neighbours. fps: the stream's (average) frame rate. size: (w, h).
    """

    points: np.ndarray
    times: np.ndarray
    found: np.ndarray
    interpolated: np.ndarray
    fps: Fraction
    size: tuple[int, int]
    redetections: int = 0

    def qc(self) -> dict:
        """Quality checks: frames, detection rate, longest gap (frames), interpolated frames,
        jitter in the stillest stretch (% IOD) and re-detections."""
        return {
            "frames": int(len(self.times)),
            "duration_s": float(self.times[-1] - self.times[0] + 1 / self.fps)
            if len(self.times)
            else 0.0,
            "fps": float(self.fps),
            "detection_rate": float(self.found.mean()) if len(self.found) else 0.0,
            "longest_gap": longest_run(~self.found),
            "interpolated": int(self.interpolated.sum()),
            "jitter_still_pct_iod": still_jitter(self.points),
            "redetections": int(self.redetections),
        }


def _run_video(path: str | Path, per_frame) -> ClipLandmarks:
    """Keypoints of every frame of ``path`` from ``per_frame(rgb) -> (68, 2) | None``
    (frames are streamed); missing faces are NaN and flagged in ``found``."""

    info = media.probe(path)
    pts, times = [], []
    for t, rgb in media.iter_frames(path):
        p = per_frame(rgb)
        pts.append(p if p is not None else np.full((68, 2), np.nan, np.float32))
        times.append(t)
    points = np.asarray(pts, dtype=np.float32).reshape(-1, 68, 2)
    found = np.isfinite(points).all(axis=(1, 2))
    return ClipLandmarks(
        points,
        np.asarray(times, dtype=np.float64),
        found,
        np.zeros(len(times), bool),
        info["fps"],
        (info["width"], info["height"]),
    )


def track_video(path: str | Path, config: TrackerConfig = TrackerConfig()) -> ClipLandmarks:
    """Keypoints of every frame of a video with :class:`FaceTracker` (frames are streamed).

    Missing faces stay NaN here and are flagged in ``found``; gaps are filled by
    :func:`interpolate_gaps` in :func:`extract_clip`.
    """
    tracker = FaceTracker(config)
    track = _run_video(path, tracker.update)
    track.redetections = tracker.redetections
    return track


def detect_every_frame(path: str | Path, upsample: int = 1) -> ClipLandmarks:
    """The original project's way, for comparison: detect the face on every full-resolution
    frame (``upsample`` 1), then predict its keypoints; no tracking, no interpolation."""
    return _run_video(path, lambda rgb: detect_68(rgb, upsample))


def save_landmarks(path: Path, track: ClipLandmarks, **extra) -> None:
    """Write a landmarks ``.npz`` atomically (hidden temp file, then rename)."""

    write_npz_atomic(
        path,
        points=track.points,
        times=track.times,
        found=track.found,
        interpolated=track.interpolated,
        fps_num=track.fps.numerator,
        fps_den=track.fps.denominator,
        size=np.array(track.size),
        redetections=track.redetections,
        **extra,
    )


def load_landmarks(path: str | Path) -> ClipLandmarks:
    """Read a landmarks ``.npz`` written by :func:`save_landmarks`."""
    with np.load(path) as z:
        return ClipLandmarks(
            points=z["points"],
            times=z["times"],
            found=z["found"],
            interpolated=z["interpolated"],
            fps=Fraction(int(z["fps_num"]), int(z["fps_den"])),
            size=tuple(int(v) for v in z["size"]),
            redetections=int(z["redetections"]),
        )


def _clip_key(sha: str, config: TrackerConfig) -> str:

    payload = {
        "input": sha,
        "config": asdict(config),
        "version": EXTRACTOR_VERSION,
        "audio_rate": AUDIO_RATE,
        "versions": package_versions(("dlib-bin", "av", "face-recognition-models")),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


AUDIO_RATE = 16000


def clip_paths(out_dir: Path, clip: str) -> tuple[Path, Path]:
    """``(audio .wav, landmarks .npz)`` of a clip under an interim folder."""
    return Path(out_dir) / "audio" / f"{clip}.wav", Path(out_dir) / "landmarks" / f"{clip}.npz"


def extract_clip(
    path: str | Path,
    clip: str,
    out_dir: Path,
    config: TrackerConfig = TrackerConfig(),
    force: bool = False,
) -> dict:
    """Extract one clip: 16 kHz mono audio and tracked 68-point keypoints, written atomically
    to ``out_dir/audio/<clip>.wav`` and ``out_dir/landmarks/<clip>.npz``. The audio's sample i
    is at i / 16000 s on the container's clock, the clock of the landmark ``times``.

    Returns the QC row (with ``cached`` True when the outputs were already current). Raises
    ``FileNotFoundError``, :class:`wav2kp.media.MediaError` (unreadable file, missing stream) or
    :class:`ExtractionError` (no face, too few frames with a face), each naming the file.
    """

    path = Path(path)
    audio_path, lm_path = clip_paths(out_dir, clip)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    sha = file_sha256(path)
    key = _clip_key(sha, config)
    if not force and audio_path.is_file() and lm_path.is_file():
        try:
            with np.load(lm_path) as z:
                if str(z["key"]) == key:
                    return {"clip": clip, **json.loads(str(z["qc"])), "cached": True}
        except (OSError, KeyError, ValueError):
            pass
    # Sample i of the written audio is at i / 16000 s on the same clock as the frame times.
    audio = media.from_time_zero(media.decode_audio_with_start(path, AUDIO_RATE))
    if len(audio) == 0:
        raise media.MediaError(f"{path}: the audio stream holds no samples.")
    track = track_video(path, config)
    if len(track.times) == 0:
        raise media.MediaError(f"{path}: the video stream holds no frames.")
    if not track.found.any():
        raise ExtractionError(f"{path}: no face found in any of its {len(track.times)} frames.")
    if track.found.mean() < config.min_found:
        raise ExtractionError(
            f"{path}: a face was found in only {100 * track.found.mean():.0f}% of its "
            f"{len(track.times)} frames (at least {100 * config.min_found:.0f}% needed)."
        )
    track.points, track.interpolated = interpolate_gaps(
        track.points, track.found, track.times, config.max_gap
    )
    qc = {**track.qc(), "source": str(path), "sha256": sha}
    media.write_wav(audio_path, audio, AUDIO_RATE)
    save_landmarks(lm_path, track, key=key, qc=json.dumps(qc), version=EXTRACTOR_VERSION)
    return {"clip": clip, **qc, "cached": False}


def _extract_one(
    path: str, clip: str, out_dir: Path, config: TrackerConfig, force: bool
) -> tuple[str, str, dict | None, str]:
    try:
        return clip, path, extract_clip(path, clip, out_dir, config, force), ""
    except Exception as err:  # one bad clip never spoils the run: it becomes a failure row
        return clip, path, None, _plain_reason(err)


def _plain_reason(err: Exception) -> str:
    text = str(err)
    return text if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {text}"


@dataclass
class ExtractionReport:
    """What :func:`extract` did: per-clip QC, failures (clip, path, reason), timing."""

    out_dir: Path
    qc: pd.DataFrame
    failures: pd.DataFrame
    wall_s: float

    @property
    def n_cached(self) -> int:
        return int(self.qc["cached"].sum()) if len(self.qc) else 0

    @property
    def all_failed(self) -> bool:
        return len(self.qc) == 0 and len(self.failures) > 0


def _remove_partials(out_dir: Path) -> None:
    """Delete the hidden temporary files of writes that never finished."""
    for sub in ("audio", "landmarks"):
        for stale in (out_dir / sub).glob(".*.partial.*"):
            stale.unlink(missing_ok=True)


def _clip_table(source) -> pd.DataFrame:
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source
    if str(source) != "bundled" and Path(source).is_file():
        p = Path(source).resolve()
        return pd.DataFrame({"clip": [p.stem], "path": [str(p)]})
    return corpora.discover(source)


def extract(
    source,
    corpus: str | None = None,
    out_dir: Path | None = None,
    n_jobs: int = -1,
    config: TrackerConfig = TrackerConfig(),
    progress: bool = True,
    force: bool = False,
    cluster=None,
    batch: int = 1,
) -> ExtractionReport:
    """Extract every clip of ``source`` (a clip table, a folder, a file, or ``"bundled"``).

    Outputs go to ``out_dir`` (default ``data/interim/<corpus>``, the corpus name defaulting
    to the folder's name); clips already extracted from the same bytes with the same settings
    are kept. Clips run in parallel: joblib with ``n_jobs`` processes, or on a Dask cluster
    (``cluster``: ``"local:N"``, a scheduler address, a ``Client``; :mod:`wav2kp.parallel`;
    ``batch`` clips per Dask task). Writes ``manifest.json``, ``qc.csv`` and ``failures.csv`` there. A clip that fails is a row
    of ``failures``; the rest complete.
    """
    import pandas as pd
    from tqdm import tqdm

    t0 = time.perf_counter()
    clips = _clip_table(source)
    if corpus is None:
        corpus = paths.corpus_name(source if not isinstance(source, pd.DataFrame) else "clips")
        if (
            str(source) != "bundled"
            and not isinstance(source, pd.DataFrame)
            and Path(source).is_file()
        ):
            corpus = Path(source).resolve().parent.name
    out_dir = Path(out_dir) if out_dir else paths.interim_dir(corpus)
    for sub in ("audio", "landmarks"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    _remove_partials(out_dir)  # an interrupted run's
    rows, failures = [], []
    tasks = [(p, c, out_dir, config, force) for c, p in zip(clips["clip"], clips["path"])]
    results = parallel.imap_unordered(
        _extract_one,
        tasks,
        n_jobs=n_jobs,
        cluster=cluster,
        on_error=lambda args, err: (args[1], args[0], None, _plain_reason(err)),
        batch=batch,
    )
    for _, (clip, path, row, reason) in tqdm(
        results, total=len(clips), disable=not progress, desc="extraction", unit="clip"
    ):
        if row is None:
            failures.append({"clip": clip, "path": path, "reason": reason})
        else:
            rows.append(row)
    _remove_partials(out_dir)  # a task killed half-way (a lost worker) leaves one
    qc = pd.DataFrame(rows)
    if len(qc):
        qc = qc.sort_values("clip").reset_index(drop=True)
    fails = pd.DataFrame(failures, columns=["clip", "path", "reason"]).sort_values("clip")
    fails = fails.reset_index(drop=True)
    wall = time.perf_counter() - t0
    write_json_atomic(
        out_dir / "manifest.json",
        {
            "stage": "extraction",
            "corpus": corpus,
            "version": EXTRACTOR_VERSION,
            "config": asdict(config),
            "audio_rate": AUDIO_RATE,
            "executor": parallel.describe(cluster),
            "versions": package_versions(
                ("wav2kp", "dlib-bin", "av", "face-recognition-models", "numpy")
            ),
            "clips": {r["clip"]: {"sha256": r["sha256"], "source": r["source"]} for r in rows},
            "failures": failures,
            "wall_s": round(wall, 2),
        },
    )
    write_csv_atomic(out_dir / "qc.csv", qc)
    write_csv_atomic(out_dir / "failures.csv", fails)
    return ExtractionReport(out_dir, qc, fails, wall)
