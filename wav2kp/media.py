"""Every ffmpeg call of the project, through PyAV (FFmpeg's libraries, bundled in the wheel).

Times are in seconds from the container's zero; frames are RGB uint8 ``(H, W, 3)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as err:
        raise ValueError(f"{path}: cannot be read as media ({err}).") from err


def iter_frames(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_s, rgb)`` for every video frame, with its presentation timestamp."""
    with _open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream.")
        for frame in container.decode(video=0):
            yield float(frame.time), frame.to_ndarray(format="rgb24")


def frame_at(path: str | Path, t: float) -> np.ndarray:
    """The RGB frame shown at time ``t`` (s): the last frame whose timestamp is <= ``t``."""
    last = None
    for time_s, img in iter_frames(path):
        if time_s > t + 1e-6 and last is not None:
            break
        last = img
    if last is None:
        raise ValueError(f"{path}: no video frame decoded.")
    return last


def decode_audio(path: str | Path, rate: int = 16000) -> np.ndarray:
    """The first audio stream as mono float32 at ``rate`` Hz (channels averaged)."""
    import av

    with _open(path) as container:
        if not container.streams.audio:
            raise ValueError(f"{path}: has no audio stream.")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def probe(path: str | Path) -> dict:
    """What a media file holds: ``duration`` (s), ``fps`` (exact ``Fraction`` or ``None``),
    ``width``, ``height``, ``n_frames`` (container's count, 0 if unknown), ``video_codec``,
    ``audio_codec``, ``audio_rate`` (Hz), ``channels``; missing streams give ``None``."""
    with _open(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        duration = float(c.duration / 1e6) if c.duration else None
        if duration is None:
            s = v or a
            if s is not None and s.duration and s.time_base:
                duration = float(s.duration * s.time_base)
        return {
            "path": str(path),
            "duration": duration,
            "fps": (v.average_rate or v.guessed_rate) if v is not None else None,
            "width": v.codec_context.width if v is not None else None,
            "height": v.codec_context.height if v is not None else None,
            "n_frames": int(v.frames) if v is not None else 0,
            "video_codec": v.codec_context.name if v is not None else None,
            "audio_codec": a.codec_context.name if a is not None else None,
            "audio_rate": a.rate if a is not None else None,
            "channels": a.channels if a is not None else None,
        }
