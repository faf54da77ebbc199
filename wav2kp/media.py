"""Every ffmpeg call of the project, through PyAV (FFmpeg's libraries, bundled in the wheel;
there is no ``ffmpeg`` program to call).

Conventions:

- Times are in seconds on the container's timeline: a frame's time is its presentation
  timestamp (``pts * time_base``), so a video stream that starts after 0 s, or runs at a variable
  frame rate, comes out with its true times. (MPEG-TS/PS clocks may not start at 0; ``probe``
  gives ``start_time`` so that callers can subtract it.)
- Frames are RGB uint8 ``(H, W, 3)`` (or gray ``(H, W)``); audio is float32, full scale 1.0
  (not clipped: resampling a clipped recording overshoots a little, GRID's reach 1.005).
- The video stream is the first one that is not a cover picture; the audio stream is the first.
- Bad input raises :class:`MediaError` (a ``ValueError``) whose message names the file and says
  what is wrong in plain words; a missing file raises ``FileNotFoundError``.
- Damage: a packet that FFmpeg cannot decode is skipped (with a ``RuntimeWarning`` that counts
  them) and decoding goes on, as FFmpeg's own tools do. A truncated file whose index survived
  (an mp4 with its index first) raises :class:`MediaError` naming the time where the data stops,
  before decoding; one whose index was lost (an mp4 with its index last) cannot be opened
  (:class:`MediaError` too); a stream without an index (MPEG-PS, FLV) simply ends where the data
  ends. A read error while demuxing raises :class:`MediaError` naming the time reached.
- Writes are atomic: a temporary ``.<name>.<pid>.partial.<ext>`` in the same folder, then a rename.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: Two frame intervals differing by more than this fraction of the median interval (and by more
#: than one tick of the time base) make a stream variable-frame-rate.
VFR_TOLERANCE = 0.01
#: A jump forward in audio timestamps larger than this (s) is filled with silence.
AUDIO_GAP_S = 0.02


class MediaError(ValueError):
    """A media file that cannot be used: empty, not media, missing a stream, damaged."""


# --------------------------------------------------------------------------------------- opening


def _ffmpeg_reason(err: Exception) -> str:
    """FFmpeg's error text, plus the detail it logged (e.g. 'moov atom not found') if any."""
    reason = getattr(err, "strerror", None) or str(err)
    log = getattr(err, "log", None)
    if log and len(log) >= 3 and str(log[2]).strip():
        reason = f"{reason}: {str(log[2]).strip()}"
    return reason


def _open(path: str | Path):
    """Open ``path`` for reading; errors name the file and the problem."""
    import av
    import av.logging

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file.")
    if not path.is_file():
        raise MediaError(f"{path}: is a folder, not a media file.")
    if path.stat().st_size == 0:
        raise MediaError(
            f"{path}: the file is empty (0 bytes); it was probably not written "
            "completely. Re-create or re-download it."
        )
    try:
        open(path, "rb").close()  # noqa: SIM115 (only: may this process read it?)
    except PermissionError as err:
        raise MediaError(f"{path}: cannot be read (permission denied).") from err
    try:
        return av.open(str(path))
    except av.error.FFmpegError as err:
        first = err
    # Open again with FFmpeg's log captured, to say why (logging is off by default in PyAV and
    # is switched on only here, on the failure path, for one open without decoder threads).
    level = av.logging.get_level()
    try:
        av.logging.set_level(av.logging.ERROR)
        with av.logging.Capture():
            av.open(str(path)).close()
    except av.error.FFmpegError as err:
        first = err
    except Exception:  # noqa: BLE001 (the first error is what we report)
        pass
    finally:
        av.logging.set_level(level)
    raise MediaError(
        f"{path}: not a media file FFmpeg can read ({_ffmpeg_reason(first)}). "
        "Is it truncated or not a video/audio file?"
    ) from first


def _is_cover(stream) -> bool:
    import av

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def _video_stream(container):
    for s in container.streams.video:
        if not _is_cover(s):
            return s
    return None


def _audio_stream(container):
    return container.streams.audio[0] if container.streams.audio else None


def _nominal_fps(stream) -> Fraction | None:
    """The stream's frame rate: FFmpeg's guessed (nominal) rate when it agrees with the average
    rate within 1 % (e.g. 30000/1001 rather than 989/33 for a 1 ms time base), else the average."""
    avg, guess = stream.average_rate, stream.guessed_rate
    avg = Fraction(avg) if avg else None
    guess = Fraction(guess) if guess else None
    if avg and guess:
        return guess if abs(avg - guess) <= VFR_TOLERANCE * guess else avg
    return avg or guess


def _describe_stream(s) -> str:
    cc = s.codec_context
    codec = cc.name if cc is not None else None
    if s.type == "video":
        fps = _nominal_fps(s)
        fps_s = f" {float(fps):.3f}".rstrip("0").rstrip(".") + " fps" if fps else ""
        cover = " (cover picture)" if _is_cover(s) else ""
        return f"video {codec} {cc.width}x{cc.height}{fps_s}{cover}"
    if s.type == "audio":
        layout = cc.layout.name if cc is not None and cc.layout is not None else ""
        if not layout or layout.endswith("channels"):  # unnamed layout, e.g. "1 channels"
            layout = {1: "mono", 2: "stereo"}.get(s.channels, f"{s.channels} ch")
        return f"audio {codec} {s.rate} Hz {layout}"
    return f"{s.type} {codec}" if codec else s.type


def _streams_text(container) -> str:
    return "; ".join(_describe_stream(s) for s in container.streams) or "none"


def _truncated_at(stream, path) -> float | None:
    """Time (s) of the first packet that the container's index places beyond the end of the
    file (a truncated file whose index survived, e.g. an mp4 with its index first), else None."""
    if stream is None:
        return None
    size = Path(path).stat().st_size
    for entry in stream.index_entries:
        if entry.pos + entry.size > size:
            ts = entry.timestamp
            return max(float(ts * stream.time_base), 0.0) if ts is not None else 0.0
    return None


def _require(container, path, kind: str):
    """The video or audio stream to decode; MediaError when it is missing or cut short."""
    stream = _video_stream(container) if kind == "video" else _audio_stream(container)
    if stream is None:
        raise MediaError(f"{path}: has no {kind} stream (streams: {_streams_text(container)}).")
    if stream.codec_context is None:
        raise MediaError(f"{path}: its {kind} stream is in a codec this FFmpeg cannot decode.")
    cut = _truncated_at(stream, path)
    if cut is not None:
        raise MediaError(
            f"{path}: the file is truncated: its {kind} data stops at about "
            f"{cut:.2f} s although its index goes on (an interrupted download or "
            "copy?). Re-create or re-download it."
        )
    return stream


def _start_s(stream) -> float | None:
    """The stream's first timestamp (s); 0 when the container keeps none (WAV); None: no stream."""
    if stream is None:
        return None
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


# --------------------------------------------------------------------------------------- probing


def _scan(container, stream, path) -> tuple[np.ndarray, int, int, np.ndarray]:
    """Sorted pts times (s), number of packets, number without a timestamp, sorted pts (ticks)."""
    import av

    ticks, n, untimed = [], 0, 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            n += 1
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                untimed += 1
            else:
                ticks.append(ts)
    except av.error.FFmpegError as err:
        raise MediaError(
            f"{path}: reading failed after {n} video packets ({_ffmpeg_reason(err)})."
        ) from err
    ticks = np.sort(np.asarray(ticks, dtype=np.int64))
    return ticks * float(stream.time_base), n, untimed, ticks


def _is_vfr(ticks: np.ndarray) -> bool | None:
    """True when frame intervals (in ticks) differ from their median by more than 1 % and one
    tick; None with fewer than 3 timed frames."""
    if len(ticks) < 3:
        return None
    d = np.diff(ticks).astype(np.float64)
    med = float(np.median(d))
    tol = max(1.0, VFR_TOLERANCE * med)
    return bool(np.any(np.abs(d - med) > tol))


def probe(path: str | Path, scan_timestamps: bool = False) -> dict:
    """What a media file holds, from its headers (fast), or also from its video packets.

    Keys: ``path``; ``format`` (container); ``duration`` (s, the longest stream);
    ``start_time`` (s, container's earliest timestamp); ``streams`` (short descriptions, data
    streams included); ``has_video``, ``has_audio``; video: ``fps`` (exact ``Fraction``; the
    nominal rate, or the average for a variable rate), ``width``, ``height`` (px), ``n_frames``,
    ``video_codec``, ``video_start`` (s, first frame's time); audio: ``audio_codec``,
    ``audio_rate`` (Hz), ``channels``, ``audio_start`` (s); ``vfr``. A missing stream gives
    ``None`` for its keys (``n_frames`` 0).

    Without scanning, ``n_frames`` is the container's count (0 when it keeps none, e.g. MPEG-PS
    or FLV) and ``vfr`` is ``None``. With ``scan_timestamps=True`` the video packets are read
    (not decoded): ``n_frames`` is the exact count, ``video_start`` the first pts, ``vfr`` says
    whether frame intervals vary by more than 1 % (and one tick) from their median, and
    ``declared_frames`` is always the container's count. ``truncated_at`` (s) is where the data of
    a truncated file stops when its index says so (else ``None``).
    """
    with _open(path) as c:
        v = _video_stream(c)
        a = _audio_stream(c)
        duration = float(c.duration / 1e6) if c.duration else None
        if duration is None:
            ends = [
                float(s.duration * s.time_base)
                for s in (v, a)
                if s is not None and s.duration and s.time_base
            ]
            duration = max(ends) if ends else None
        vcc = v.codec_context if v is not None else None
        acc = a.codec_context if a is not None else None
        info = {
            "path": str(path),
            "format": c.format.name,
            "duration": duration,
            "start_time": float(c.start_time / 1e6) if c.start_time is not None else None,
            "streams": [_describe_stream(s) for s in c.streams],
            "has_video": v is not None,
            "has_audio": a is not None,
            "fps": _nominal_fps(v) if v is not None else None,
            "width": vcc.width if vcc is not None else None,
            "height": vcc.height if vcc is not None else None,
            "n_frames": int(v.frames) if v is not None else 0,
            "declared_frames": int(v.frames) if v is not None else 0,
            "video_codec": vcc.name if vcc is not None else None,
            "video_start": _start_s(v),
            "audio_codec": acc.name if acc is not None else None,
            "audio_rate": a.rate if a is not None else None,
            "channels": a.channels if a is not None else None,
            "audio_start": _start_s(a),
            "vfr": None,
            "truncated_at": min(
                (t for t in (_truncated_at(v, path), _truncated_at(a, path)) if t is not None),
                default=None,
            ),
        }
        if scan_timestamps and v is not None:
            times, n, untimed, ticks = _scan(c, v, path)
            info["n_frames"] = n
            if len(times):
                info["video_start"] = float(times[0])
            if untimed == 0:
                info["vfr"] = _is_vfr(ticks)
                if info["vfr"] and v.average_rate:
                    info["fps"] = Fraction(v.average_rate)  # FFmpeg's: frames / duration
        return info


# -------------------------------------------------------------------------------------- decoding


def _packets(container, stream, path, kind: str, clock: list) -> Iterator:
    """Decoded frames of ``stream``; damaged packets are skipped (and counted in a warning).

    ``clock[0]`` is the last time reached (s), kept by the caller for error messages.
    """
    import av

    demux = container.demux(stream)
    n_packets, damaged = 0, 0
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            break
        except av.error.FFmpegError as err:
            raise MediaError(
                f"{path}: reading failed at {clock[0]:.2f} s ({_ffmpeg_reason(err)})."
            ) from err
        if packet.size:
            n_packets += 1
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            damaged += 1
            continue
        yield from frames
    if damaged:
        warnings.warn(
            f"{path}: skipped {damaged} damaged {kind} packet(s) of {n_packets}.",
            RuntimeWarning,
            stacklevel=3,
        )


def iter_frames(
    path: str | Path, gray: bool = False, scale: float = 1.0, threads: bool = False
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_s, image)`` for every video frame, streaming (one frame in memory).

    ``time_s`` is the frame's presentation time (``pts * time_base``), so variable frame rates
    and streams that start after 0 s come out right. A frame without a pts gets the previous
    frame's time + 1/fps (the first such frame: the stream's start, or 0).
    ``image`` is RGB uint8 ``(H, W, 3)``, or luma ``(H, W)`` with ``gray=True``, resized by
    ``scale`` (area interpolation when shrinking). ``threads=True`` lets FFmpeg decode with
    frame and slice threads (``thread_type="AUTO"``): the same pixels, but no faster on the
    2-core machine where it was measured (clips are short and RGB conversion dominates), so it
    is off by default; per-clip parallelism (one process per clip) is what pays.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}.")
    with _open(path) as c:
        v = _require(c, path, "video")
        if threads:
            v.thread_type = "AUTO"
        fps = _nominal_fps(v)
        step = float(1 / fps) if fps else 0.0
        kwargs: dict = {"format": "gray" if gray else "rgb24"}
        if scale != 1.0:
            cc = v.codec_context
            kwargs.update(
                width=max(1, round(cc.width * scale)),
                height=max(1, round(cc.height * scale)),
                interpolation="AREA" if scale < 1 else "BICUBIC",
            )
        clock = [_start_s(v) or 0.0]
        last = None
        for frame in _packets(c, v, path, "video", clock):
            if frame.pts is not None:
                t = float(frame.time)
            else:
                t = clock[0] if last is None else last + step
            last = clock[0] = t
            yield t, frame.to_ndarray(**kwargs)
        if last is None:
            raise MediaError(
                f"{path}: no video frame could be decoded (streams: {_streams_text(c)})."
            )


def frame_at(path: str | Path, t: float) -> np.ndarray:
    """The RGB frame shown at time ``t`` (s): the last frame whose timestamp is <= ``t``
    (the first frame for an earlier ``t``)."""
    last = None
    frames = iter_frames(path)
    try:
        for time_s, img in frames:
            if time_s > t + 1e-6 and last is not None:
                break
            last = img
    finally:
        frames.close()
    if last is None:
        raise MediaError(f"{path}: no video frame decoded.")
    return last


class AudioTrack(NamedTuple):
    """Decoded audio: ``samples`` float32, 1-D (mono) or ``(C, N)``; ``rate`` (Hz); ``start``
    (s): the time of sample 0 on the container's timeline (sample i is at start + i / rate);
    ``gaps_s``: seconds of silence inserted where the stream's timestamps jumped forward."""

    samples: np.ndarray
    rate: int
    start: float
    gaps_s: float = 0.0


def iter_audio(
    path: str | Path,
    rate: int | None = 16000,
    mono: bool = True,
    block_s: float = 10.0,
    info: dict | None = None,
) -> Iterator[np.ndarray]:
    """The first audio stream decoded in blocks of about ``block_s`` seconds (float32 at
    ``rate`` Hz, ``None``: the stream's own; 1-D with the channels averaged when ``mono``, else
    ``(C, n)``), so that a recording of any length is read in bounded memory. What
    :func:`decode_audio_with_start` returns, piece by piece: the same samples.

    ``info`` (a dict), when given, is filled with ``rate``, ``start`` (s, once the first frame is
    decoded) and ``gaps_s`` (at the end). A truncated PCM stream raises :class:`MediaError`
    at the end, after its last block."""
    import av

    info = {} if info is None else info
    with _open(path) as c:
        a = _require(c, path, "audio")
        native = a.rate or a.codec_context.sample_rate
        out_rate = int(rate or native)
        info["rate"] = out_rate
        # packed float ("flt"), split into channels here: PyAV's planar to_ndarray crashes the
        # process on many channels (8, 12: a segmentation fault, not an exception)
        resampler = av.AudioResampler(format="flt", layout=None, rate=out_rate)
        pending: list[np.ndarray] = []
        held, size = 0, max(1, int(block_s * out_rate))
        start, clock, expected, gaps = None, [_start_s(a) or 0.0], None, 0

        def block(chunks: list[np.ndarray]) -> np.ndarray:
            x = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
            if not mono:
                return x
            return x.mean(axis=0, dtype=np.float64).astype(np.float32) if len(x) > 1 else x[0]

        for frame in _packets(c, a, path, "audio", clock):
            t = float(frame.time) if frame.pts is not None else None
            if start is None:
                start = t if t is not None else (_start_s(a) or 0.0)
                info["start"] = float(start)
                expected = 0
            got = []
            if t is not None and frame.sample_rate:
                gap = round((t - start) * frame.sample_rate) - expected
                if gap > AUDIO_GAP_S * frame.sample_rate:
                    got.extend(_resampled(resampler, _silence(frame, gap)))
                    expected += gap
                    gaps += gap
            expected += frame.samples
            clock[0] = start + expected / (frame.sample_rate or native)
            got.extend(_resampled(resampler, frame))
            pending.extend(got)
            held += sum(g.shape[1] for g in got)
            if held >= size:
                out, pending = block(pending), []
                info["held"] = info.get("held", 0) + held
                held = 0
                yield out
        pending.extend(_resampled(resampler, None))
        if start is None:
            raise MediaError(f"{path}: no audio could be decoded (streams: {_streams_text(c)}).")
        declared = _declared_s(a)
        held = sum(g.shape[1] for g in pending)
        info["held"] = info.get("held", 0) + held
        info["gaps_s"] = gaps / native
        if held:
            yield block(pending)
    total = info["held"] / out_rate
    if declared is not None and total < declared - max(0.05, 0.01 * declared):
        raise MediaError(
            f"{path}: truncated: it holds {total:.2f} s of audio where its header declares "
            f"{declared:.2f} s (the file was not written completely). Re-create or re-download it."
        )


def decode_audio_with_start(
    path: str | Path, rate: int | None = 16000, mono: bool = True
) -> AudioTrack:
    """The first audio stream decoded by FFmpeg to float32 at ``rate`` Hz (``None``: the
    stream's own rate), as an :class:`AudioTrack` that also says when it starts.

    Mono averages the channels (numpy mean after resampling; not FFmpeg's downmix matrix).
    Resampling is FFmpeg's (libswresample). A forward jump in the timestamps larger than
    ``AUDIO_GAP_S`` (a lost packet, a damaged one that was skipped) is filled with silence, so
    that sample times stay right; overlapping timestamps are decoded as they come. (All at
    once: :func:`iter_audio` gives the same in blocks.)
    """
    info: dict = {}
    blocks = list(iter_audio(path, rate, mono=False, block_s=60.0, info=info))
    n_ch = blocks[0].shape[0] if blocks else 1
    samples = np.concatenate(blocks, axis=1) if blocks else np.zeros((n_ch, 0), np.float32)
    if mono:
        samples = (
            samples.mean(axis=0, dtype=np.float64).astype(np.float32)
            if samples.shape[0] > 1
            else samples[0]
        )
    return AudioTrack(samples, info["rate"], float(info["start"]), info["gaps_s"])


def _declared_s(stream) -> float | None:
    """The duration a PCM stream's header declares (``None`` for other codecs, whose durations
    are estimates, and for headers that leave it open: streamed WAVs write 0 or 0xFFFFFFFF)."""
    if not stream.codec_context.name.startswith("pcm_") or not stream.duration:
        return None
    declared = float(stream.duration * stream.time_base)
    return declared if 0 < declared < 0xFFFFFFF0 / max(1, stream.rate or 1) / 8 else None


def _resampled(resampler, frame) -> list[np.ndarray]:
    """``(C, N)`` float32 chunks of what the (packed-format) resampler gives for ``frame``."""
    out = []
    for piece in resampler.resample(frame):
        n_ch = piece.layout.nb_channels or len(piece.layout.channels) or 1
        out.append(piece.to_ndarray().reshape(-1, n_ch).T)
    return out


def _silence(like, n: int):
    import av

    frame = av.AudioFrame(format=like.format.name, layout=like.layout, samples=n)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = like.sample_rate
    frame.time_base = like.time_base
    return frame


def decode_audio(path: str | Path, rate: int | None = 16000, mono: bool = True) -> np.ndarray:
    """The first audio stream as float32 at ``rate`` Hz (``None``: native rate): 1-D with the
    channels averaged (``mono=True``), else ``(C, N)``. Sample 0 is at the stream's first
    timestamp; use :func:`decode_audio_with_start` to know when that is."""
    return decode_audio_with_start(path, rate, mono).samples


# --------------------------------------------------------------------------------------- writing


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def export_frames_png(
    path: str | Path,
    out_dir: str | Path,
    pattern: str = "frame_{:06d}.png",
    every: int = 1,
    gray: bool = False,
    scale: float = 1.0,
) -> list[Path]:
    """Write every ``every``-th video frame of ``path`` as a PNG in ``out_dir`` (as the original
    project did for vid2vid), named ``pattern.format(index)`` with the frame's index in the
    video (from 0), plus ``frames.csv`` (``index,time_s,file``). Each file is written atomically;
    existing files of the same names are replaced, others are left alone. Returns the PNG paths.
    """
    import cv2

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, rows = [], []
    for k, (t, img) in enumerate(iter_frames(path, gray=gray, scale=scale)):
        if k % every:
            continue
        target = out_dir / pattern.format(k)
        bgr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".png", bgr)
        if not ok:
            raise MediaError(f"{path}: frame {k} could not be encoded as PNG.")
        _write_bytes_atomic(target, data.tobytes())
        written.append(target)
        rows.append((k, f"{t:.9f}", target.name))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("index", "time_s", "file"))
    w.writerows(rows)
    _write_bytes_atomic(out_dir / "frames.csv", buf.getvalue().encode())
    return written


def _write_bytes_atomic(target: Path, data: bytes) -> None:
    tmp = _partial(target)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    audio: np.ndarray | None,
    size: tuple[int, int],
    fps: Fraction | int,
    audio_rate: int | None = None,
    crf: int = 18,
) -> None:
    """Encode RGB uint8 frames ``(h, w, 3)`` (H.264, yuv420p, CRF ``crf``, preset veryfast, one
    thread so the bytes do not depend on the machine) and float32 audio (AAC 128 kb/s; 1-D mono
    or ``(C, N)`` with 1 or 2 channels; ``None`` for video only) into an mp4 at ``path``.

    ``size`` is ``(w, h)`` in pixels, both even. Frame k gets pts k in a 1/fps time base; audio
    starts at 0. Atomic: written to ``.<name>.<pid>.partial.mp4`` in the same folder and renamed at
    the end; on any error the partial file is removed and ``path`` is left as it was.
    """
    import av

    path = Path(path)
    fps = Fraction(fps)
    w, h = (int(x) for x in size)
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ValueError(f"{path}: frame size {w}x{h} must be positive and even (yuv420p).")
    blocks = None
    if audio is not None:
        if audio_rate is None:
            raise ValueError(f"{path}: audio given without audio_rate.")
        blocks = iter([audio]) if isinstance(audio, np.ndarray) else iter(audio)
        first = next(blocks, None)
        first = np.zeros(0, np.float32) if first is None else first
        first = _audio_block(path, first)
        n_channels = first.shape[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(path)
    try:
        with av.open(str(tmp), "w", format="mp4") as out:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height = w, h
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": str(crf), "preset": "veryfast"}
            vs.codec_context.thread_count = 1
            aus = audio_frames = None
            if blocks is not None:
                layout = "mono" if n_channels == 1 else "stereo"
                aus = out.add_stream("aac", rate=int(audio_rate), layout=layout)
                aus.bit_rate = 128000
                audio_frames = _audio_frames(path, first, blocks, n_channels, int(audio_rate))
            pending = next(audio_frames, None) if audio_frames is not None else None

            def mux_audio_until(t: float) -> None:
                # the sound up to the video's time, interleaved as it goes: the muxer holds
                # the packets of one stream until the other catches up, so all the audio
                # first would be held whole (an hour's recording: hundreds of MB)
                nonlocal pending
                while pending is not None and pending.pts <= t * audio_rate:
                    out.mux(aus.encode(pending))
                    pending = next(audio_frames, None)

            n = 0
            for k, img in enumerate(frames):
                img = np.asarray(img)
                if img.shape != (h, w, 3) or img.dtype != np.uint8:
                    raise ValueError(
                        f"{path}: frame {k} is {img.dtype} {img.shape}, expected uint8 {(h, w, 3)}."
                    )
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                vf.pts = k
                vf.time_base = 1 / fps
                mux_audio_until((k + 1) / float(fps))
                out.mux(vs.encode(vf))
                n += 1
            if n == 0:
                raise ValueError(f"{path}: no frames to write.")
            mux_audio_until(math.inf)
            if aus is not None:
                out.mux(aus.encode(None))
            out.mux(vs.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _audio_frames(path: Path, first, blocks: Iterator, n_channels: int, rate: int):
    """AAC-sized ``av.AudioFrame``s (4096 samples; the last may be shorter) of ``first`` and
    then ``blocks``, with their pts in samples."""
    import av

    layout = "mono" if n_channels == 1 else "stereo"
    chunk, pts = 4096, 0
    carry = first
    for more in _then(blocks, None):
        if more is not None:
            carry = np.concatenate([carry, _audio_block(path, more, n_channels)], 1)
        # whole frames of ``chunk`` samples; the last one may be shorter
        stop = carry.shape[1] if more is None else carry.shape[1] // chunk * chunk
        for s in range(0, stop, chunk):
            block = np.ascontiguousarray(carry[:, s : min(s + chunk, stop)])
            af = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            af.sample_rate = rate
            af.pts = pts
            af.time_base = Fraction(1, rate)
            pts += block.shape[1]
            yield af
        carry = carry[:, stop:]


def _then(items: Iterator, last):
    """``items``, then ``last``."""
    yield from items
    yield last


def _audio_block(path: Path, block, n_channels: int | None = None) -> np.ndarray:
    """One block of audio to mux as float32 ``(C, n)`` with C 1 or 2 (``n_channels`` when the
    first block set it); a clear error otherwise."""
    x = np.asarray(block, dtype=np.float32)
    x = x[None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] not in (1, 2) or n_channels not in (None, x.shape[0]):
        raise ValueError(
            f"{path}: audio must be 1-D or (C, N) with C in (1, 2), the same in every block; "
            f"got shape {x.shape}."
        )
    return x


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write float32 samples (1-D mono, or ``(C, N)``) as a 32-bit float WAV, atomically."""
    from scipy.io import wavfile

    path = Path(path)
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.T
    elif x.ndim != 1:
        raise ValueError(f"{path}: samples must be 1-D or (C, N), got shape {x.shape}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(path)
    try:
        with open(tmp, "wb") as fh:
            wavfile.write(fh, int(rate), np.ascontiguousarray(x))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A PCM or float WAV as ``(samples, rate)``: float32, 1-D (mono) or ``(C, N)``; integer
    samples scaled to [-1, 1) (int16 / 32768, int32 / 2**31, uint8 (x - 128) / 128)."""
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: the file is empty (0 bytes).")
    try:
        rate, x = wavfile.read(path)
    except ValueError as err:
        raise MediaError(f"{path}: not a WAV file scipy can read ({err}).") from err
    if x.dtype == np.uint8:
        y = (x.astype(np.float32) - 128) / 128
    elif np.issubdtype(x.dtype, np.integer):
        y = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    else:
        y = x.astype(np.float32)
    return (y.T.copy() if y.ndim == 2 else y), int(rate)


def from_time_zero(track: AudioTrack) -> np.ndarray:
    """The samples of ``track`` re-based so that sample i is at i / rate on the container's
    timeline: silence is prepended for a late start, samples before 0 (codec priming, a stream
    that starts early) are dropped. Video frame times and these samples then share one clock."""
    shift = int(round(track.start * track.rate))
    samples = track.samples
    if shift > 0:
        pad = np.zeros(samples.shape[:-1] + (shift,), dtype=samples.dtype)
        return np.concatenate([pad, samples], axis=-1)
    return samples[..., -shift:] if shift < 0 else samples
