"""Audio of any shape decodes, or fails with a clear message, never a crash: 1 to 16 channels
with and without a channel layout, 8 to 96 kHz, 8/16/24/32-bit integer and 32/64-bit float
WAV, and mono/stereo AAC, MP3, Opus and FLAC in several containers. Every file is generated
here; the decoded sound is checked against what was written, and ``predict`` runs on one file
of each kind (issue 25: an 8-channel WAV used to kill the process)."""

from __future__ import annotations

import contextlib
import io
import struct
from pathlib import Path

import numpy as np
import pytest

from wav2kp import cli, media

SECONDS = 1.5
#: WAVE_FORMAT_EXTENSIBLE's sub-format GUID tail (after the 2-byte format tag)
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def _speechlike(rate: int, channels: int) -> np.ndarray:
    """``(N, C)`` in [-0.5, 0.5]: the same bursts of a 300 Hz tone on every channel (so the mono
    mix is that tone) plus a little noise of its own on each."""
    t = np.arange(int(SECONDS * rate)) / rate
    burst = 0.4 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    noise = np.random.default_rng(channels).standard_normal((len(t), channels)) * 0.02
    return (burst[:, None] + noise).astype(np.float64)


def _write_wav(path: Path, x: np.ndarray, rate: int, kind: str, layout: bool) -> None:
    """A WAV of ``x`` (``(N, C)`` floats) as ``kind`` (u8, s16, s24, s32, f32, f64), with a
    WAVE_FORMAT_EXTENSIBLE header and a channel mask when ``layout``, else a plain header."""
    n, ch = x.shape
    bits = {"u8": 8, "s16": 16, "s24": 24, "s32": 32, "f32": 32, "f64": 64}[kind]
    if kind == "u8":
        data = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    elif kind.startswith("s"):
        full = np.clip(np.round(x * 2 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        ints = full.astype("<i4").reshape(-1)
        data = (
            ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # little-endian low 3 bytes
            if bits == 24
            else ints.astype({16: "<i2", 32: "<i4"}[bits]).tobytes()
        )
    else:
        data = x.astype({32: "<f4", 64: "<f8"}[bits]).tobytes()
    tag = 3 if kind.startswith("f") else 1
    block = ch * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if layout else tag, ch, rate, rate * block, block, bits)
    if layout:
        mask = (1 << ch) - 1
        fmt += struct.pack("<HHI", 22, bits, mask) + struct.pack("<H", tag) + _GUID_TAIL
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _encode(path: Path, x: np.ndarray, rate: int, codec: str) -> None:
    """``x`` (``(N, C)``, C 1 or 2) encoded with FFmpeg's ``codec`` into ``path`` (its
    container from the extension)."""
    import av

    layout = "mono" if x.shape[1] == 1 else "stereo"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, layout=layout)
        fmt = s.codec_context.format
        size = s.codec_context.frame_size or 4096
        for i in range(0, len(x) - size + 1, size):
            block = x[i : i + size]
            if fmt.is_planar:
                block = block.T
            else:
                block = block.reshape(1, -1)
            if fmt.name.startswith("s16"):
                block = np.round(block * 32767).astype(np.int16)
            elif fmt.name.startswith("s32"):
                block = np.round(block * 2**31).astype(np.int32)
            else:
                block = block.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), fmt.name, layout)
            frame.sample_rate, frame.pts = rate, i
            c.mux(s.encode(frame))
        c.mux(s.encode(None))


def _check(path: Path, reference: np.ndarray, rate: int, lossy: bool) -> None:
    """Decoded to 16 kHz mono, the file is the mono mix of what was written (up to a codec's
    delay of a few ms, found by cross-correlation)."""
    from scipy.signal import resample_poly

    got = media.decode_audio(path, 16000)
    want = resample_poly(reference.mean(axis=1), 16000, rate)
    assert got.dtype == np.float32 and got.ndim == 1 and np.isfinite(got).all()
    assert abs(len(got) - len(want)) <= 0.05 * len(want) + 2048, (len(got), len(want))
    from scipy.signal import correlate

    n = min(len(got), len(want))
    a, b = got[:n], want[:n]
    xc = correlate(a, b, mode="full", method="fft")[n - 1 - 480 : n + 480]  # lags -480..480
    lag = int(np.argmax(xc)) - 480  # a codec's delay, in samples (0 for PCM)
    a, b = (a[lag:], b[: n - lag]) if lag >= 0 else (a[: n + lag], b[-lag:])
    best = np.corrcoef(a[500:-500], b[500:-500])[0, 1]
    assert lossy or lag == 0, lag
    assert best > (0.9 if lossy else 0.995), best


WAV_CASES = (
    [(f"ch{c}_{'layout' if lay else 'plain'}", 16000, c, "s16", lay)
     for c in (1, 2, 3, 6, 8, 12, 16) for lay in (False, True)]
    + [(f"rate{r}", r, 1, "s16", False) for r in (8000, 11025, 22050, 32000, 44100, 48000, 96000)]
    + [(f"{k}_stereo", 16000, 2, k, False) for k in ("u8", "s16", "s24", "s32", "f32", "f64")]
    + [("s24_8ch_96k", 96000, 8, "s24", True), ("f64_6ch_44k", 44100, 6, "f64", False)]
)  # fmt: skip
CODED_CASES = [
    (codec, ext, ch)
    for codec, exts in (
        ("aac", ("m4a", "mp4", "mkv", "aac")),
        ("libmp3lame", ("mp3", "mkv")),
        ("libopus", ("ogg", "opus", "webm", "mkv")),
        ("flac", ("flac", "mkv", "ogg")),
    )
    for ext in exts
    for ch in (1, 2)
]


@pytest.mark.parametrize(("name", "rate", "channels", "kind", "layout"), WAV_CASES)
def test_wav_of_any_shape_decodes(tmp_path: Path, name, rate, channels, kind, layout) -> None:
    x = _speechlike(rate, channels)
    path = tmp_path / f"{name}.wav"
    _write_wav(path, x, rate, kind, layout)
    _check(path, x, rate, lossy=kind == "u8")


@pytest.mark.parametrize(("codec", "ext", "channels"), CODED_CASES)
def test_compressed_audio_in_any_container(tmp_path: Path, codec, ext, channels) -> None:
    rate = 44100 if codec == "libmp3lame" else 48000
    x = _speechlike(rate, channels) * 0.8
    path = tmp_path / f"{codec}_{channels}.{ext}"
    _encode(path, x, rate, codec)
    _check(path, x, rate, lossy=codec != "flac")


#: one file of each kind, through the whole predict command
PREDICT_CASES = [
    ("ch8_plain", 16000, 8, "s16", False),
    ("ch12_layout", 16000, 12, "s16", True),
    ("s24_8ch_96k", 96000, 8, "s24", True),
    ("u8_8k", 8000, 1, "u8", False),
    ("f64_stereo", 22050, 2, "f64", False),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "rate", "channels", "kind", "layout"), PREDICT_CASES)
def test_predict_on_any_wav(tmp_path: Path, name, rate, channels, kind, layout) -> None:
    path = tmp_path / f"{name}.wav"
    _write_wav(path, _speechlike(rate, channels), rate, kind, layout)
    _predict(path, tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize(("codec", "ext"), [("aac", "m4a"), ("libmp3lame", "mp3"),
                                            ("libopus", "ogg"), ("flac", "mkv")])  # fmt: skip
def test_predict_on_compressed_audio(tmp_path: Path, codec, ext) -> None:
    rate = 44100 if codec == "libmp3lame" else 48000
    path = tmp_path / f"speech.{ext}"
    _encode(path, _speechlike(rate, 2) * 0.8, rate, codec)
    _predict(path, tmp_path / "out")


def _predict(path: Path, out: Path) -> None:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = cli.main(["predict", str(path), "--out", str(out)])
    assert rc == 0, err.getvalue()
    points = np.load(out / "keypoints.npy")
    assert len(points) >= 40 and points.shape[1:] == (68, 2) and np.isfinite(points).all()
    assert media.probe(out / "sketch.mp4")["has_audio"]


def test_a_layout_with_more_channels_than_the_file_fails_clearly(tmp_path: Path) -> None:
    """A header whose channel mask names more speakers than the file has channels (seen from
    broken exporters): FFmpeg refuses or ignores it; either way a message, not a crash."""
    path = tmp_path / "odd.wav"
    _write_wav(path, _speechlike(16000, 2), 16000, "s16", True)
    blob = bytearray(path.read_bytes())
    mask_at = blob.index(b"fmt ") + 8 + 16 + 4
    blob[mask_at : mask_at + 4] = struct.pack("<I", 0x3F)  # 6 speakers for 2 channels
    path.write_bytes(bytes(blob))
    try:
        got = media.decode_audio(path, 16000)
    except media.MediaError as err:
        assert str(path) in str(err)
    else:
        assert np.isfinite(got).all() and len(got) > 0
