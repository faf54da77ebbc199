"""What ``wav2kp predict`` leaves: keypoints as ``.npy`` and ``.csv``, a keypoint-sketch video
with the recording's own audio, optionally a face video (a photo warped to the keypoints) and a
folder for NVIDIA vid2vid's face model, plus ``manifest.json`` saying what produced them.

Where the keypoints live: without a face, on a blank ``size`` px square (the model's rest face
centred, inter-ocular distance 0.3 x size); with a face, the predicted motion (prediction minus
the model's rest face, in inter-ocular distances) is moved onto the photo's own keypoints
(:meth:`wav2kp.synthesis.render.FaceRenderer.retarget`), so any face talks with its own shape.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from wav2kp import media
from wav2kp.manifest import (
    atomic_path,
    file_sha256,
    package_versions,
    scratch_path,
    write_json_atomic,
)
from wav2kp.synthesis import motion, render
from wav2kp.training import inference


def write_keypoint_table(
    fh, times: np.ndarray, points: np.ndarray, start: int = 0, header: bool = True
) -> None:
    """Write :func:`keypoint_table`'s rows to the text file ``fh`` one by one (``start``: the
    first row's frame number, ``header``: write the column names first; a long recording's
    table is written block by block)."""
    w = csv.writer(fh, lineterminator="\n")
    if header:
        w.writerow(["frame", "time"] + [f"{a}{i}" for i in range(points.shape[1]) for a in "xy"])
    for k, (t, p) in enumerate(zip(times, points), start=start):
        w.writerow([k, f"{t:.6f}"] + [f"{v:.3f}" for v in p.reshape(-1)])


def keypoint_table(times: np.ndarray, points: np.ndarray) -> str:
    """CSV text: ``frame, time, x0, y0, ..., x67, y67`` (pixels, 3 decimals; time 6)."""
    buf = io.StringIO()
    write_keypoint_table(buf, times, points)
    return buf.getvalue()


def recording_audio(path: str | Path | None, fallback: np.ndarray) -> tuple[np.ndarray, int]:
    """The recording's own audio for muxing (native rate, mono or stereo; more channels are
    averaged), or the 16 kHz ``fallback`` when there is no file or it cannot be decoded."""

    if path is not None:
        try:
            track = media.decode_audio_with_start(path, rate=None, mono=False)
            x = np.asarray(track.samples, dtype=np.float32)
            if x.ndim == 2 and x.shape[0] > 2:
                x = x.mean(axis=0)
            return x, int(track.rate)
        except (media.MediaError, OSError, ValueError):
            pass
    return np.asarray(fallback, dtype=np.float32), inference.RATE


def place(pred: inference.Prediction, rest: np.ndarray, size: int = 256, face=None) -> np.ndarray:
    """Pixel keypoints ``(T, 68, 2)``: on the canvas, or retargeted onto ``face``."""
    if face is not None:
        return face.retarget(pred.normalised - rest[None])
    return inference.canvas_transform(rest, size).apply(pred.normalised)


def write_outputs(
    pred: inference.Prediction,
    out_dir: str | Path,
    rest: np.ndarray,
    source: str | Path | None = None,
    face=None,
    size: int = 256,
    sketch: bool = True,
    vid2vid: bool = False,
) -> dict[str, Path]:
    """Write everything for one prediction into ``out_dir`` (each file atomically); returns
    ``{what: path}``. ``face`` is a :class:`wav2kp.synthesis.render.FaceRenderer` or None."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = place(pred, rest, size, face).astype(np.float32)
    paths: dict[str, Path] = {}
    paths["keypoints_npy"] = out / "keypoints.npy"
    with atomic_path(paths["keypoints_npy"]) as tmp, open(tmp, "wb") as fh:
        np.save(fh, points)
    paths["keypoints_csv"] = out / "keypoints.csv"
    with atomic_path(paths["keypoints_csv"]) as tmp:
        Path(tmp).write_text(keypoint_table(pred.times, points), encoding="utf-8")
    audio, rate = recording_audio(source, pred.audio)
    canvas = (size, size) if face is None else face.size
    if sketch:
        paths["sketch"] = out / "sketch.mp4"

        media.write_video(
            paths["sketch"],
            (render.sketch_frame(p, canvas) for p in points),
            audio,
            canvas,
            fps=pred.fps,
            audio_rate=rate,
        )
    if face is not None:
        paths["face"] = out / "face.mp4"
        face.render_video(paths["face"], points, audio=audio, audio_rate=rate, fps=pred.fps)
    if vid2vid:
        paths["vid2vid"] = render.export_vid2vid(
            out / "vid2vid", points, canvas, name=(Path(source).stem if source else "seq0000")
        )
    manifest: dict[str, Any] = {
        "input": str(source) if source else None,
        "input_sha256": file_sha256(source) if source and Path(source).is_file() else None,
        "frames": int(len(points)),
        "fps": str(Fraction(pred.fps)),
        "duration_s": float(len(pred.audio) / inference.RATE),
        "padded_s": pred.padded_s,
        "canvas": list(canvas),
        "face": getattr(face, "name", None) if face is not None else None,
        **pred.info,
        "outputs": {k: str(v.name) for k, v in paths.items()},
        "versions": package_versions(("wav2kp", "numpy", "torch", "torchaudio")),
    }
    paths["manifest"] = out / "manifest.json"
    write_json_atomic(paths["manifest"], manifest)
    return paths


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    s = size / max(h, w)
    img = cv2.resize(
        img,
        (max(1, round(w * s)), max(1, round(h * s))),
        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
    )
    out = np.zeros((size, size, 3), np.uint8)
    y0, x0 = (size - img.shape[0]) // 2, (size - img.shape[1]) // 2
    out[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    return out


def panel_frames(panels: dict[str, Any], size: int = 256):
    """Frames of a side-by-side strip: each panel (an iterable of RGB or grey images) fitted
    into a ``size`` px square with its label on top; stops with the shortest panel."""
    import cv2

    iters = [iter(p) for p in panels.values()]
    labels = list(panels)
    while True:
        row = []
        for label, it in zip(labels, iters):
            try:
                img = _fit(next(it), size)
            except StopIteration:
                return
            cv2.putText(
                img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA
            )
            cv2.putText(
                img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
            )
            row.append(img)
        yield np.concatenate(row, axis=1)


def panel_video(
    path: str | Path,
    panels: dict[str, Any],
    audio: np.ndarray | None,
    audio_rate: int | None,
    fps,
    size: int = 256,
) -> Path:
    """:func:`panel_frames` written as an H.264 + AAC mp4 (atomic)."""

    media.write_video(
        path,
        panel_frames(panels, size),
        audio,
        (size * len(panels), size),
        fps=fps,
        audio_rate=audio_rate,
    )
    return Path(path)


def predict_recording(
    predictor: inference.Predictor,
    speech: str | Path,
    out_dir: str | Path,
    fps: Fraction | float = inference.DEFAULT_FPS,
    emotion: str | int | None = None,
    head_motion: str = "none",
    motion_strength: float = 1.0,
    blinks: bool = False,
    seed: int = 0,
    motion_model=None,
    face=None,
    size: int = 256,
    vid2vid: bool = False,
) -> tuple[inference.Prediction, dict[str, Path]]:
    """What ``wav2kp predict`` does (and notebook 05 with a new sentence): the recording
    ``speech`` -> keypoints at ``fps`` -> head motion and blinks (``head_motion`` /
    ``blinks``; ``motion_model``: :func:`wav2kp.synthesis.motion.load_default` when ``None``)
    -> :func:`write_outputs` into ``out_dir``. Returns the prediction (without the motion) and
    the written files. A long recording that the model can stream (:func:`can_stream`) goes
    through :func:`predict_long` (bounded memory, progress shown)."""
    if can_stream(predictor, speech):
        return predict_long(
            predictor, speech, out_dir, fps=fps, emotion=emotion, head_motion=head_motion,
            motion_strength=motion_strength, blinks=blinks, seed=seed, motion_model=motion_model,
            face=face, size=size, vid2vid=vid2vid,
        )  # fmt: skip
    pred = predictor.predict_file(speech, fps=fps, emotion=emotion)
    shown = pred
    if head_motion != "none" or blinks:
        model = motion_model if motion_model is not None else motion.load_default()
        moved = motion.animate(
            pred.normalised, pred.times, pred.audio, model, head_motion=head_motion,
            strength=motion_strength, blinks=blinks, seed=seed,
        )  # fmt: skip
        shown = dataclasses.replace(pred, normalised=moved)
    paths = write_outputs(
        shown, out_dir, predictor.rest(), source=speech, face=face, size=size, vid2vid=vid2vid
    )
    return pred, paths


# ---------------------------------------------------------------------------- long recordings

#: Recordings longer than this (s) are predicted as a stream when the model can stream: memory
#: stays flat in the recording's length (an hour of 48 kHz stereo would be 1.4 GB at once).
LONG_RECORDING_S = 60.0
#: Seconds of audio per step of the stream (decoding, prediction, head motion).
STEP_S = 1.0


def can_stream(predictor: inference.Predictor, speech: str | Path) -> bool:
    """Whether :func:`predict_recording` streams ``speech``: longer than
    :data:`LONG_RECORDING_S` by its headers, and a model that predicts chunk by chunk exactly as
    on the whole recording."""
    if predictor.model.stream_problem(predictor.fs) is not None:
        return False
    try:
        duration = media.probe(speech).get("duration")
    except (media.MediaError, OSError):
        return False  # load_speech says what is wrong
    return bool(duration and duration > LONG_RECORDING_S)


def _progress(total_s: float, what: str):
    from tqdm import tqdm

    return tqdm(
        total=round(total_s, 1), unit="s", desc=what, file=sys.stderr, mininterval=2.0,
        bar_format="{desc}: {percentage:3.0f}% {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]",
    )  # fmt: skip


#: frames of keypoints a long recording's outputs are written and read in (4096: 4.5 MB)
BLOCK_FRAMES = 4096
_POINT_BYTES = 68 * 2 * 4  # one frame of float32 keypoints


def _stream_keypoints(predictor, speech, fps, emotion, mover, sink) -> tuple[np.ndarray, float]:
    """Pass 1: the recording decoded in steps of :data:`STEP_S` (16 kHz mono) through
    :class:`~wav2kp.training.inference.StreamingPredictor` (and ``mover``, a
    :class:`~wav2kp.synthesis.motion.MotionStream`, when given), the normalised keypoints
    written to the binary file ``sink`` as they come (float32 ``(68, 2)`` per frame, nothing
    kept in memory): ``(times, duration s)``, with :func:`~wav2kp.training.inference.
    load_speech`'s checks (damaged samples, silence) made on the way."""
    path = Path(speech)
    streamer = inference.StreamingPredictor(predictor, fps=fps, emotion=emotion)
    times, peak, n = [], 0.0, 0
    total = media.probe(path).get("duration") or 0.0

    def keep(t, pts) -> None:
        if mover is not None:
            pts = mover.apply(t, pts)
        times.append(np.asarray(t))
        sink.write(np.ascontiguousarray(pts, np.float32).tobytes())

    with _progress(total, "predicting") as bar:
        try:
            for block in media.iter_audio(path, inference.RATE, mono=True, block_s=STEP_S):
                bad = int(np.count_nonzero(~np.isfinite(block)))
                if bad:
                    raise inference.PredictError(
                        f"{path}: {bad} samples near {n / inference.RATE:.1f} s are NaN or "
                        "infinite: the file is damaged, not audio to lip-sync."
                    )
                peak = max(peak, float(np.max(np.abs(block))) if block.size else 0.0)
                n += len(block)
                if mover is not None:
                    mover.push_audio(block)
                keep(*streamer.push(block))
                bar.update(round(len(block) / inference.RATE, 1))
        except media.MediaError as err:
            raise inference.PredictError(str(err)) from err
        keep(*streamer.flush())
    if peak < inference.SILENCE_PEAK:
        raise inference.PredictError(
            f"{path}: the recording is silent: there is no speech to lip-sync."
        )
    return np.concatenate(times), n / inference.RATE


def _read_frames(fh, offset: int, a: int, b: int) -> np.ndarray:
    """Frames ``a .. b-1`` of float32 ``(68, 2)`` keypoints stored from byte ``offset`` of the
    binary file ``fh``: read, not memory-mapped (mapped pages would count in the process's
    memory as the whole file is read)."""
    fh.seek(offset + a * _POINT_BYTES)
    return np.fromfile(fh, np.float32, count=(b - a) * 68 * 2).reshape(b - a, 68, 2)


def _npy_blocks(path: Path, block: int | None = None) -> Iterator[np.ndarray]:
    """The keypoints of the ``.npy`` file ``path`` (float32 ``(T, 68, 2)``) in blocks of
    ``block`` frames (:data:`BLOCK_FRAMES`)."""
    block = block or BLOCK_FRAMES
    with open(path, "rb") as fh:
        if np.lib.format.read_magic(fh) != (1, 0):  # the version predict_long writes
            raise ValueError(f"{path}: not a keypoint file written by wav2kp predict")
        shape, _, _ = np.lib.format.read_array_header_1_0(fh)
        offset = fh.tell()
        for a in range(0, shape[0], block):
            yield _read_frames(fh, offset, a, min(shape[0], a + block))


def _muxed_audio(path: Path) -> tuple[Iterator[np.ndarray], int]:
    """The recording's own audio in blocks for muxing (native rate; mono or stereo kept, more
    channels averaged, as :func:`recording_audio`)."""
    rate = int(media.probe(path).get("audio_rate") or inference.RATE)

    def blocks():
        for x in media.iter_audio(path, rate=None, mono=False, block_s=10.0):
            yield x.mean(axis=0) if x.shape[0] > 2 else x

    return blocks(), rate


def _sketches(blocks: Iterator[np.ndarray], canvas: tuple[int, int], bar) -> Iterator[np.ndarray]:
    """Sketch frames of the keypoint ``blocks``, drawn one batch ahead in a worker thread
    (OpenCV releases the GIL) while the encoder works on the last: two cores busy, memory
    bounded by two batches."""
    from concurrent.futures import ThreadPoolExecutor

    batch = 64

    def batches():
        for points in blocks:
            for a in range(0, len(points), batch):
                yield points[a : a + batch]

    draw = lambda pts: [render.sketch_frame(p, canvas) for p in pts]  # noqa: E731
    todo = batches()
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(draw, next(todo, []))
        while ahead is not None:
            frames = ahead.result()
            more = next(todo, None)
            ahead = pool.submit(draw, more) if more is not None else None
            yield from frames
            bar.update(len(frames))


def predict_long(
    predictor: inference.Predictor,
    speech: str | Path,
    out_dir: str | Path,
    fps: Fraction | float = inference.DEFAULT_FPS,
    emotion: str | int | None = None,
    head_motion: str = "none",
    motion_strength: float = 1.0,
    blinks: bool = False,
    seed: int = 0,
    motion_model=None,
    face=None,
    size: int = 256,
    vid2vid: bool = False,
) -> tuple[inference.Prediction, dict[str, Path]]:
    """:func:`predict_recording` for a long recording, in memory that does not grow with its
    length: the audio is decoded twice in blocks (16 kHz mono for the model, the native rate
    for the video's sound), predicted as a stream (exactly what the whole recording gives:
    :class:`~wav2kp.training.inference.StreamingPredictor`) whose keypoints go to a temporary
    file as they come, placed into ``keypoints.npy`` block by block, and the table, the sketch
    video (and the face video) are written from it block by block, frame by frame, with
    progress on stderr. The returned prediction holds neither the audio nor the keypoints
    (``normalised`` is empty; they are in ``keypoints.npy``): only their times."""
    path, out = Path(speech), Path(out_dir)
    fps = Fraction(fps).limit_denominator(100000)
    mover = None
    if head_motion != "none" or blinks:
        model = motion_model if motion_model is not None else motion.load_default()
        mover = motion.MotionStream(model, head_motion, motion_strength, blinks, seed)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"keypoints_npy": out / "keypoints.npy"}
    rest = predictor.rest()
    with scratch_path(out / "keypoints.normalised.f32") as raw:
        with open(raw, "wb") as sink:
            times, duration = _stream_keypoints(predictor, path, fps, emotion, mover, sink)
        pred = inference.Prediction(
            times=times, normalised=np.zeros((0, 68, 2), np.float32), fps=fps,
            audio=np.zeros(0, np.float32),
            info={"model": predictor.name, "run": str(predictor.run_dir), "emotion": emotion,
                  "context_s": list(predictor.context_s), "input": str(path), "streamed": True},
        )  # fmt: skip
        n = len(times)
        if raw.stat().st_size != n * _POINT_BYTES:
            raise RuntimeError(f"{raw}: {raw.stat().st_size} bytes for {n} frames")
        # placed block by block into the .npy (its header first): never an hour in memory
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                  "fortran_order": False, "shape": (n, 68, 2)}  # fmt: skip
        with (
            atomic_path(paths["keypoints_npy"]) as tmp,
            open(tmp, "wb") as fh,
            open(raw, "rb") as src,
        ):
            np.lib.format.write_array_header_1_0(fh, header)
            for a in range(0, n, BLOCK_FRAMES):
                block = _read_frames(src, 0, a, min(n, a + BLOCK_FRAMES))
                part = dataclasses.replace(pred, normalised=block)
                fh.write(np.ascontiguousarray(place(part, rest, size, face), np.float32).tobytes())
    paths["keypoints_csv"] = out / "keypoints.csv"
    with atomic_path(paths["keypoints_csv"]) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        a = 0  # row by row: the text of an hour is 200 MB
        for block in _npy_blocks(paths["keypoints_npy"]):
            write_keypoint_table(fh, times[a : a + len(block)], block, start=a, header=a == 0)
            a += len(block)
    canvas = (size, size) if face is None else face.size
    from tqdm import tqdm

    paths["sketch"] = out / "sketch.mp4"
    audio, rate = _muxed_audio(path)
    frames = _npy_blocks(paths["keypoints_npy"])
    with tqdm(total=n, unit="frame", desc="sketch video", file=sys.stderr,
              mininterval=2.0) as bar:  # fmt: skip
        media.write_video(
            paths["sketch"], _sketches(frames, canvas, bar), audio, canvas, fps=fps,
            audio_rate=rate,
        )  # fmt: skip
    if face is not None:
        paths["face"] = out / "face.mp4"
        audio, rate = _muxed_audio(path)
        faces = (face.render(p) for block in _npy_blocks(paths["keypoints_npy"]) for p in block)
        media.write_video(paths["face"], faces, audio, face.size, fps=fps, audio_rate=rate)
    if vid2vid:
        points = np.load(paths["keypoints_npy"], mmap_mode="r")  # read as it is exported
        paths["vid2vid"] = render.export_vid2vid(out / "vid2vid", points, canvas, name=path.stem)
    manifest: dict[str, Any] = {
        "input": str(path),
        "input_sha256": file_sha256(path),
        "frames": int(n),
        "fps": str(fps),
        "duration_s": float(duration),
        "padded_s": 0.0,
        "canvas": list(canvas),
        "face": getattr(face, "name", None) if face is not None else None,
        **pred.info,
        "head_motion": head_motion,
        "blinks": bool(blinks),
        "outputs": {k: str(v.name) for k, v in paths.items()},
        "versions": package_versions(("wav2kp", "numpy", "torch", "torchaudio")),
    }
    paths["manifest"] = out / "manifest.json"
    write_json_atomic(paths["manifest"], manifest)
    return pred, paths
