"""wav2kp.media: probing, decoding frames and audio with their times, writing, bad input.

Every quirk is tested on small files that the tests write with PyAV (always run); the same
questions are asked of the real recordings in ``../shared/real_samples`` when they are there.
"""

from __future__ import annotations

import csv
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from wav2kp import media
from wav2kp.media import MediaError

W, H = 64, 48


def _image(k: int, w: int = W, h: int = H) -> np.ndarray:
    """A smooth RGB frame (H.264 keeps it almost exactly) that differs from frame to frame."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack(
        [x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, (40 + 20 * k) % 256)], axis=-1
    ).astype(np.uint8)


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(
        np.float32
    )


def _chirp(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * (200 * t + 900 * t**2))).astype(np.float32)


def _write_timed(
    path: Path,
    pts: list[int],
    time_base: Fraction,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    audio_start: int = 0,
    options: dict | None = None,
) -> None:
    """An mp4 whose video frames have exactly the given pts (ticks of ``time_base``), and mono
    AAC audio whose first sample is at ``audio_start`` samples."""
    import av

    with av.open(str(path), "w", format="mp4", options=options or {}) as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.codec_context.time_base = time_base
        vs.time_base = time_base
        if audio is not None:
            aus = out.add_stream("aac", rate=audio_rate, layout="mono")
            for s in range(0, len(audio), 1024):
                af = av.AudioFrame.from_ndarray(
                    audio[None, s : s + 1024].copy(), format="flt", layout="mono"
                )
                af.sample_rate, af.pts = audio_rate, audio_start + s
                af.time_base = Fraction(1, audio_rate)
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
        for k, p in enumerate(pts):
            vf = av.VideoFrame.from_ndarray(_image(k), format="rgb24")
            vf.pts, vf.time_base = int(p), time_base
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))


def _write_pcm_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """A 16-bit PCM WAV written by FFmpeg; ``samples`` is ``(C, N)`` float in [-1, 1]."""
    import av

    layout = {1: "mono", 2: "stereo"}[samples.shape[0]]
    pcm = np.round(samples * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as out:
        st = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm.T.reshape(1, -1)), format="s16", layout=layout
        )
        af.sample_rate, af.pts, af.time_base = rate, 0, Fraction(1, rate)
        out.mux(st.encode(af))
        out.mux(st.encode(None))


def _lag(decoded: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (samples, positive: ``decoded`` is late) of the cross-correlation peak, and the
    normalised peak."""
    from scipy.signal import correlate

    n = min(len(decoded), len(reference))
    d, r = decoded[:n].astype(np.float64), reference[:n].astype(np.float64)
    corr = correlate(d, r, mode="full", method="fft")
    window = corr[n - 1 - max_lag : n + max_lag]
    lag = int(np.argmax(window)) - max_lag
    return lag, float(window.max() / np.sqrt(np.dot(d, d) * np.dot(r, r)))


def _peak(x: np.ndarray, rate: int) -> tuple[float, float]:
    """Frequency (Hz) and amplitude of the strongest sinusoid (Hann window, whole seconds)."""
    win = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * win))
    k = int(np.argmax(spec))
    return k * rate / len(x), 2 * spec[k] / win.sum()


@pytest.fixture(scope="module")
def av_clip(tmp_path_factory) -> tuple[Path, list[np.ndarray], np.ndarray]:
    """48 frames 64x48 at 25 fps with a 1.92 s mono chirp at 44.1 kHz, from write_video."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    frames = [_image(k) for k in range(48)]
    audio = _chirp(1.92, 44100)
    media.write_video(path, iter(frames), audio, (W, H), fps=25, audio_rate=44100)
    return path, frames, audio


# ------------------------------------------------------------------------------------ timestamps


def test_cfr_ntsc_frame_times_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "ntsc.mp4"
    media.write_video(path, (_image(k) for k in range(30)), None, (W, H), fps=Fraction(30000, 1001))
    times = np.array([t for t, _ in media.iter_frames(path)])
    k = np.arange(30)
    assert len(times) == 30
    assert np.abs(times - k * 1001 / 30000).max() < 1e-9
    info = media.probe(path, scan_timestamps=True)
    assert info["fps"] == Fraction(30000, 1001) and isinstance(info["fps"], Fraction)
    assert info["vfr"] is False and info["n_frames"] == 30 and info["video_start"] == 0.0
    assert info["has_audio"] is False and info["audio_start"] is None
    assert info["streams"] == ["video h264 64x48 29.97 fps"]


def test_variable_frame_rate_times_and_detection(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mp4"
    intervals = np.where(np.arange(19) % 2 == 0, 3000, 6000)  # 1/30 s, 1/15 s at 1/90000
    pts = np.concatenate([[0], np.cumsum(intervals)])
    _write_timed(path, pts.tolist(), Fraction(1, 90000))
    times = np.array([t for t, _ in media.iter_frames(path)])
    assert np.array_equal(np.round(times * 90000).astype(np.int64), pts)
    assert np.abs(times - pts / 90000).max() < 1e-9
    headers = media.probe(path)
    assert headers["vfr"] is None  # not scanned: unknown
    info = media.probe(path, scan_timestamps=True)
    assert info["vfr"] is True and info["n_frames"] == 20
    # the average rate (20 frames over 0.9667 s: the last frame lasts 1/30 s), not the nominal 30
    assert info["fps"] == Fraction(600, 29)


def test_video_that_starts_late_keeps_its_start(tmp_path: Path) -> None:
    path = tmp_path / "late.mp4"
    _write_timed(
        path,
        [45000 + 3000 * k for k in range(15)],
        Fraction(1, 90000),
        audio=_tone(440, 1.0, 16000),
    )
    times = np.array([t for t, _ in media.iter_frames(path)])
    assert times[0] == pytest.approx(0.5, abs=1e-9)
    assert np.abs(times - (0.5 + np.arange(15) / 30)).max() < 1e-9
    info = media.probe(path, scan_timestamps=True)
    assert info["video_start"] == pytest.approx(0.5, abs=1e-9)
    assert info["audio_start"] == pytest.approx(0.0, abs=1e-9)
    assert info["vfr"] is False and info["fps"] == 30 and info["n_frames"] == 15


def test_audio_that_starts_late_is_placed_by_its_start(tmp_path: Path) -> None:
    path = tmp_path / "late_audio.mp4"
    chirp = _chirp(1.0, 16000)
    _write_timed(
        path, [3000 * k for k in range(30)], Fraction(1, 90000), audio=chirp, audio_start=4800
    )  # 0.3 s
    track = media.decode_audio_with_start(path)
    assert track.rate == 16000 and track.gaps_s == 0.0
    # AAC's 1024 priming samples are on the timeline before the first written sample
    assert track.start == pytest.approx(0.3 - 1024 / 16000, abs=1e-6)
    lag, peak = _lag(track.samples, np.concatenate([np.zeros(1024, np.float32), chirp]), 800)
    onset = track.start + (1024 + lag) / 16000
    assert onset == pytest.approx(0.3, abs=1e-3) and peak > 0.9


def test_audio_gap_is_filled_with_silence(tmp_path: Path) -> None:
    import av

    path, rate = tmp_path / "gap.mkv", 16000
    x = np.round(_tone(440, 1.0, rate, 0.3) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        st = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        for s in range(0, rate, 800):  # packets of 50 ms; a 0.25 s jump after 0.5 s
            af = av.AudioFrame.from_ndarray(
                x[None, s : s + 800].copy(), format="s16", layout="mono"
            )
            af.sample_rate, af.time_base = rate, Fraction(1, rate)
            af.pts = s + (4000 if s >= 8000 else 0)
            out.mux(st.encode(af))
        out.mux(st.encode(None))
    track = media.decode_audio_with_start(path, rate=None)
    assert track.gaps_s == pytest.approx(0.25) and track.start == 0.0
    assert len(track.samples) == 20000
    assert np.array_equal(track.samples[:8000], x[:8000] / np.float32(32768))
    assert not track.samples[8000:12000].any()
    assert np.array_equal(track.samples[12000:], x[8000:] / np.float32(32768))


# ----------------------------------------------------------------------------------------- audio


def test_stereo_48k_to_mono_16k(tmp_path: Path) -> None:
    path = tmp_path / "stereo48k.wav"
    left = _tone(440, 1.0, 48000, 0.5)
    _write_pcm_wav(path, np.stack([left, np.zeros_like(left)]), 48000)
    info = media.probe(path)
    assert (info["audio_rate"], info["channels"], info["has_video"]) == (48000, 2, False)
    mono = media.decode_audio(path, rate=16000)
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert abs(len(mono) - info["duration"] * 16000) <= 1
    freq, amp = _peak(mono[:16000], 16000)
    assert freq == pytest.approx(440, abs=1)
    assert amp == pytest.approx(0.25, rel=0.02)  # the two channels averaged: half
    both = media.decode_audio(path, rate=None, mono=False)
    assert both.shape == (2, 48000) and both.dtype == np.float32
    assert _peak(both[0], 48000)[1] == pytest.approx(0.5, rel=0.01)
    assert np.abs(both[1]).max() == 0
    assert np.allclose(media.decode_audio(path, rate=None), both.mean(axis=0), atol=1e-7)


def test_float_wav_decodes_exactly(tmp_path: Path) -> None:
    from scipy.io import wavfile

    path = tmp_path / "float.wav"
    x = (
        _tone(440, 1.0, 44100, 0.5) + 0.01 * np.random.default_rng(0).standard_normal(44100)
    ).astype(np.float32)
    wavfile.write(path, 44100, x)
    assert media.probe(path)["audio_codec"] == "pcm_f32le"
    assert np.array_equal(media.decode_audio(path, rate=None), x)
    y = media.decode_audio(path, rate=16000)
    assert abs(len(y) - 16000) <= 1
    freq, amp = _peak(y[:16000], 16000)
    assert freq == pytest.approx(440, abs=1) and amp == pytest.approx(0.5, rel=0.02)
    samples, rate = media.read_wav(path)
    assert rate == 44100 and np.array_equal(samples, x)


def test_int16_wav_decodes_exactly(tmp_path: Path) -> None:
    from scipy.io import wavfile

    path = tmp_path / "int16.wav"
    pcm = np.random.default_rng(1).integers(-32768, 32767, 8000, dtype=np.int16)
    wavfile.write(path, 8000, pcm)
    expected = pcm.astype(np.float32) / 32768
    assert np.array_equal(media.decode_audio(path, rate=None), expected)
    assert np.array_equal(media.read_wav(path)[0], expected)
    assert abs(len(media.decode_audio(path)) - 16000) <= 1


def test_write_wav_round_trip(tmp_path: Path) -> None:
    mono = _chirp(0.5, 16000)
    stereo = np.stack([mono, -mono])
    media.write_wav(tmp_path / "m.wav", mono, 16000)
    media.write_wav(tmp_path / "s.wav", stereo, 22050)
    assert np.array_equal(media.read_wav(tmp_path / "m.wav")[0], mono)
    samples, rate = media.read_wav(tmp_path / "s.wav")
    assert rate == 22050 and np.array_equal(samples, stereo)
    assert np.array_equal(media.decode_audio(tmp_path / "s.wav", None, mono=False), stereo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.wav", "s.wav"]


# ------------------------------------------------------------------------------------- round trip


def test_write_video_round_trip(av_clip) -> None:
    path, frames, audio = av_clip
    info = media.probe(path, scan_timestamps=True)
    assert (info["video_codec"], info["audio_codec"]) == ("h264", "aac")
    assert (info["width"], info["height"], info["fps"], info["n_frames"]) == (W, H, 25, 48)
    assert (info["audio_rate"], info["channels"], info["vfr"]) == (44100, 1, False)
    assert info["duration"] == pytest.approx(1.92, abs=0.03)
    decoded = list(media.iter_frames(path))
    assert len(decoded) == 48
    assert np.abs(np.array([t for t, _ in decoded]) - np.arange(48) / 25).max() < 1e-9
    assert all(img.shape == (H, W, 3) and img.dtype == np.uint8 for _, img in decoded)
    err = np.mean([np.abs(img.astype(int) - ref).mean() for (_, img), ref in zip(decoded, frames)])
    assert err < 3.0
    # audio: same start, no lag (within 1 ms) at the native rate and at 16 kHz
    native = media.decode_audio_with_start(path, rate=None)
    assert native.rate == 44100 and native.start == 0.0
    assert 0 <= len(native.samples) - len(audio) < 2048  # AAC pads to whole 1024-sample frames
    lag, peak = _lag(native.samples, audio, 4410)
    assert abs(lag) <= 44 and peak > 0.95
    from scipy.signal import resample_poly

    ref16 = resample_poly(audio.astype(np.float64), 160, 441)
    lag16, peak16 = _lag(media.decode_audio(path, 16000), ref16, 1600)
    assert abs(lag16) <= 16 and peak16 > 0.95


def test_write_video_stereo_audio(tmp_path: Path) -> None:
    path = tmp_path / "stereo.mp4"
    left, right = _tone(440, 1.0, 48000, 0.5), _tone(1000, 1.0, 48000, 0.3)
    media.write_video(
        path,
        (_image(k) for k in range(25)),
        np.stack([left, right]),
        (W, H),
        fps=25,
        audio_rate=48000,
    )
    info = media.probe(path)
    assert (info["audio_rate"], info["channels"]) == (48000, 2)
    both = media.decode_audio(path, rate=None, mono=False)
    assert both.shape[0] == 2
    assert _peak(both[0, 2048:34048], 48000)[0] == pytest.approx(440, abs=2)
    assert _peak(both[1, 2048:34048], 48000)[0] == pytest.approx(1000, abs=2)


def test_gray_scale_and_frame_at(av_clip) -> None:
    path, frames, _ = av_clip
    t, gray = next(media.iter_frames(path, gray=True))
    assert t == 0.0 and gray.shape == (H, W) and gray.dtype == np.uint8
    luma = frames[0].astype(float) @ [0.299, 0.587, 0.114]
    assert abs(gray.mean() - luma.mean()) < 4
    _, half = next(media.iter_frames(path, scale=0.5))
    assert half.shape == (H // 2, W // 2, 3)
    assert np.abs(half.astype(float).mean((0, 1)) - frames[0].mean((0, 1))).max() < 3
    threaded = [img for _, img in media.iter_frames(path, threads=True)]
    plain = [img for _, img in media.iter_frames(path)]
    assert all(np.array_equal(a, b) for a, b in zip(threaded, plain)) and len(threaded) == 48
    assert np.array_equal(media.frame_at(path, 0.5), plain[12])
    assert np.array_equal(media.frame_at(path, 0.519), plain[12])
    assert np.array_equal(media.frame_at(path, -1.0), plain[0])


def test_export_frames_png(av_clip, tmp_path: Path) -> None:
    import cv2

    path, _, _ = av_clip
    written = media.export_frames_png(path, tmp_path / "frames", every=5)
    assert [p.name for p in written] == [f"frame_{k:06d}.png" for k in range(0, 48, 5)]
    decoded = [img for _, img in media.iter_frames(path)]
    for p, k in zip(written, range(0, 48, 5)):
        png = cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(png, decoded[k])  # PNG is lossless, and RGB stays RGB
    with open(tmp_path / "frames" / "frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == list(range(0, 48, 5))
    assert (
        np.abs(np.array([float(r["time_s"]) for r in rows]) - np.arange(0, 48, 5) / 25).max() < 1e-9
    )
    assert [r["file"] for r in rows] == [p.name for p in written]
    assert len(list((tmp_path / "frames").iterdir())) == len(written) + 1  # no partial files


def test_write_video_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"

    def failing():
        for k in range(5):
            if k == 3:
                raise RuntimeError("renderer crashed")
            yield _image(k)

    with pytest.raises(RuntimeError, match="renderer crashed"):
        media.write_video(path, failing(), _tone(440, 1.0, 16000), (W, H), fps=25, audio_rate=16000)
    assert list(tmp_path.iterdir()) == []
    media.write_video(path, (_image(k) for k in range(5)), None, (W, H), fps=25)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"out\.mp4: frame 2 is uint8 \(10, 10, 3\)"):
        media.write_video(
            path,
            (_image(k) if k != 2 else np.zeros((10, 10, 3), np.uint8) for k in range(5)),
            None,
            (W, H),
            fps=25,
        )
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="even"):
        media.write_video(tmp_path / "odd.mp4", [], None, (63, 48), fps=25)


# ------------------------------------------------------------------------------------ bad input


def _message(excinfo, path: Path) -> str:
    text = str(excinfo.value)
    assert str(path) in text
    return text


@pytest.mark.parametrize(
    "call", [media.probe, media.decode_audio, lambda p: next(media.iter_frames(p))]
)
def test_empty_and_random_files(tmp_path: Path, call) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(MediaError) as e:
        call(empty)
    assert "the file is empty (0 bytes)" in _message(e, empty)
    noise = tmp_path / "noise.mpg"
    noise.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(MediaError) as e:
        call(noise)
    assert "not a media file FFmpeg can read" in _message(e, noise)
    missing = tmp_path / "missing.mp4"
    with pytest.raises(FileNotFoundError, match="missing.mp4: no such file"):
        call(missing)


def test_truncated_mp4(av_clip, tmp_path: Path) -> None:
    path, _, _ = av_clip
    data = path.read_bytes()
    # index at the end (write_video's layout): the first half has no index at all
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    for call in (media.probe, media.decode_audio, lambda p: next(media.iter_frames(p))):
        with pytest.raises(MediaError) as e:
            call(half)
        assert "not a media file FFmpeg can read" in _message(e, half)
        assert "moov atom not found" in str(e.value)
    # index first ("faststart"): it opens, and says where the data stops
    fast = tmp_path / "fast.mp4"
    _write_timed(
        fast,
        [3000 * k for k in range(60)],
        Fraction(1, 90000),
        audio=_chirp(2.0, 16000),
        options={"movflags": "faststart"},
    )
    fast_half = tmp_path / "fast_half.mp4"
    fast_half.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    cut = media.probe(fast_half)["truncated_at"]
    assert media.probe(fast)["truncated_at"] is None
    assert 0.5 < cut < 1.5
    with pytest.raises(MediaError, match=r"truncated: its video data stops at about \d\.\d\d s"):
        list(media.iter_frames(fast_half))
    with pytest.raises(MediaError, match="truncated: its audio data stops") as e:
        media.decode_audio(fast_half)
    _message(e, fast_half)


def test_missing_streams_are_named(av_clip, tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    _write_pcm_wav(wav, _tone(440, 0.5, 16000)[None], 16000)
    with pytest.raises(MediaError) as e:
        next(media.iter_frames(wav))
    assert _message(e, wav).endswith(
        "has no video stream (streams: audio pcm_s16le 16000 Hz mono)."
    )
    silent = tmp_path / "silent.mp4"
    media.write_video(silent, (_image(k) for k in range(5)), None, (W, H), fps=25)
    with pytest.raises(MediaError) as e:
        media.decode_audio(silent)
    assert _message(e, silent).endswith("has no audio stream (streams: video h264 64x48 25 fps).")
    info = media.probe(wav)  # audio-only files probe fine
    assert (
        info["has_video"],
        info["has_audio"],
        info["fps"],
        info["width"],
        info["n_frames"],
        info["video_start"],
        info["vfr"],
    ) == (False, True, None, None, 0, None, None)
    assert info["audio_start"] == 0.0 and info["duration"] == pytest.approx(0.5)
    assert media.probe(wav, scan_timestamps=True)["vfr"] is None


def test_damaged_packet_is_skipped_with_a_warning(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mp4"
    _write_timed(path, [3000 * k for k in range(30)], Fraction(1, 90000))
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(path.read_bytes())
    pos, size = packets[10]
    data[pos : pos + size] = bytes(size)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        times = [t for t, _ in media.iter_frames(damaged)]
    assert len(times) == 29 and np.all(np.diff(times) > 0)
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == [
        f"{damaged}: skipped 1 damaged video packet(s) of 30."
    ]


# ---------------------------------------------------------------------------------- real samples

REAL_VIDEOS = {  # file: (fps, width, height, audio rate, channels)
    "grid_bbaf2n.mpg": (Fraction(25), 360, 288, 44100, 2),
    "grid_lbax4n.mpg": (Fraction(25), 360, 288, 44100, 2),
    "grid_swiz3n.mpg": (Fraction(25), 360, 288, 44100, 2),
    "cremad_1001_DFA_HAP_XX.flv": (Fraction(30000, 1001), 480, 360, 44100, 1),
    "cremad_1001_DFA_SAD_XX.flv": (Fraction(30000, 1001), 480, 360, 44100, 1),
    "retalking_face2.mp4": (Fraction(25), 844, 844, 44100, 2),
    "retalking_face3.mp4": (Fraction(25), 590, 590, 44100, 2),
}
REAL_WAVS = ["ptbr_M-001.wav", "ptbr_falabrasil.wav"]


def _sample(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.mark.real_samples
@pytest.mark.parametrize("name", sorted(REAL_VIDEOS))
def test_real_video_probe_and_frames(real_samples: Path, name: str) -> None:
    path = _sample(real_samples, name)
    fps, w, h, rate, channels = REAL_VIDEOS[name]
    info = media.probe(path, scan_timestamps=True)
    assert (info["fps"], info["width"], info["height"]) == (fps, w, h)
    assert (info["audio_rate"], info["channels"], info["vfr"]) == (rate, channels, False)
    assert info["truncated_at"] is None
    times = np.array([t for t, _ in media.iter_frames(path, scale=0.25)])
    assert len(times) == info["n_frames"] > 50
    assert times[0] == pytest.approx(info["video_start"], abs=1e-9)
    assert np.all(np.diff(times) > 0)
    assert np.abs(np.diff(times) - 1 / float(fps)).max() < 1.5e-3  # 1 ms ticks in FLV
    assert times[0] <= 0.03 and times[-1] + 1 / float(fps) >= info["duration"] - 0.05
    if name.startswith("cremad"):  # FLV: a data stream, video from 27 ms, audio from 0
        assert info["streams"][0] == "data" and info["video_start"] == pytest.approx(0.027)
        assert info["audio_start"] == 0.0


@pytest.mark.real_samples
@pytest.mark.parametrize("name", sorted(REAL_VIDEOS) + REAL_WAVS)
def test_real_audio_16k_mono(real_samples: Path, name: str) -> None:
    path = _sample(real_samples, name)
    info = media.probe(path)
    track = media.decode_audio_with_start(path, rate=16000)
    x = track.samples
    assert x.dtype == np.float32 and x.ndim == 1 and np.isfinite(x).all()
    assert track.rate == 16000 and track.start == 0.0 and track.gaps_s == 0.0
    assert abs(len(x) / 16000 - info["duration"]) < 0.05
    # GRID is clipped at full scale; resampling overshoots it a little (not clipped again)
    assert 1e-3 < float(np.sqrt(np.mean(x**2))) < 0.5 and np.abs(x).max() < 1.02
