"""Bad input, generated, through the commands a user runs (``predict``, ``extract``,
``evaluate-real``, ``corpus list``): each file gets one line that names it and says what is
wrong, a non-zero exit for a single-file command or a failure row in a batch, never a
traceback, and nothing half-written. Odd names (spaces, ``#``, quotes, non-ASCII) just work."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wav2kp import cli, config, media

#: each case runs a whole command (predict writes a video): `make test`, not `make test-fast`
pytestmark = pytest.mark.slow
RATE = 16000

#: file -> what its one line must say, for predict (audio of a file) ...
PREDICT_BAD = {
    "trunc10.wav": "not a media file FFmpeg can read",
    "trunc44.wav": "not a media file FFmpeg can read",
    "trunc1000.wav": "truncated: it holds 0.01 s of audio where its header declares 1.50 s",
    "trunc10.mp4": "not a media file FFmpeg can read",
    "trunc50.mp4": "not a media file FFmpeg can read",
    "trunc90.mp4": "not a media file FFmpeg can read",
    "zero.wav": "the file is empty (0 bytes)",
    "zero.mp4": "the file is empty (0 bytes)",
    "header_only.wav": "no audio could be decoded",
    "text.wav": "not a media file FFmpeg can read",
    "nan.wav": "101 of its 24000 samples are NaN or infinite",
    "allnan.wav": "16000 of its 16000 samples are NaN or infinite",
    "noaudio.mp4": "has no audio stream",
    "dir.wav": "is a folder",
}
#: ... for extract (a video's frames and sound) ...
EXTRACT_BAD = {
    **{k: v for k, v in PREDICT_BAD.items() if k not in ("nan.wav", "allnan.wav", "dir.wav")},
    "noaudio.mp4": "has no audio stream",
    "good.wav": "has no video stream",  # audio without video
    "audio_named.mp4": "has no video stream",  # a WAV named .mp4
    "zeroframes.mkv": "no video frame could be decoded",  # a video stream that holds none
    "grey.mp4": "no face found in any of its 30 frames",
}
#: ... and what predicts (the file's content decides, not its name)
PREDICT_OK = [
    "good.wav",
    "streamed_header.wav",  # a recorder's WAV whose sizes were never filled in
    "video_named.wav",
    "audio_named.mp4",
    "zeroframes.mkv",  # its audio is fine
    "with space.wav",
    "hash#1.wav",
    "quo'te\".wav",
    "não_ção.wav",
]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    import av

    root = tmp_path_factory.mktemp("bad") / "in"
    root.mkdir()
    t = np.arange(int(1.5 * RATE)) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    media.write_wav(root / "good.wav", tone, RATE)
    grey = [np.full((64, 64, 3), 120, np.uint8)] * 30
    media.write_video(root / "grey.mp4", grey, tone, (64, 64), fps=25, audio_rate=RATE)
    media.write_video(root / "noaudio.mp4", grey, None, (64, 64), fps=25)
    wav, mp4 = (root / "good.wav").read_bytes(), (root / "grey.mp4").read_bytes()
    files = {f"trunc{n}.wav": wav[:n] for n in (10, 44, 1000)}
    files |= {f"trunc{int(f * 100)}.mp4": mp4[: int(len(mp4) * f)] for f in (0.1, 0.5, 0.9)}
    files |= {"zero.wav": b"", "zero.mp4": b"", "text.wav": b"not audio\n" * 100}
    data = wav.index(b"data")
    files["header_only.wav"] = wav[: data + 8]
    streamed = bytearray(wav)
    streamed[4:8] = streamed[data + 4 : data + 8] = b"\xff\xff\xff\xff"
    files["streamed_header.wav"] = bytes(streamed)
    files |= {"video_named.wav": mp4, "audio_named.mp4": wav}
    for name in ("with space.wav", "hash#1.wav", "quo'te\".wav", "não_ção.wav"):
        files[name] = wav
    for name, blob in files.items():
        (root / name).write_bytes(blob)
    nan = tone.copy()
    nan[100:200], nan[300] = np.nan, np.inf
    media.write_wav(root / "nan.wav", nan, RATE)
    media.write_wav(root / "allnan.wav", np.full(RATE, np.nan, np.float32), RATE)
    with av.open(str(root / "zeroframes.mkv"), "w") as c:  # a video stream, no frame in it
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        a = c.add_stream("aac", rate=RATE, layout="mono")
        for i in range(0, len(tone) - 1024, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, i : i + 1024].copy(), "fltp", "mono")
            frame.sample_rate, frame.pts = RATE, i
            c.mux(a.encode(frame))
        c.mux(a.encode(None))
        c.mux(v.encode(None))
    (root / "dir.wav").mkdir()
    return root


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


def _written(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(PREDICT_BAD))
def test_predict_names_the_file_and_the_problem(cases: Path, tmp_path: Path, name: str) -> None:
    path, out = cases / name, tmp_path / "out"
    rc, said, err = _run(["predict", str(path), "--out", str(out)])
    assert rc == 2 and "Traceback" not in said + err
    assert _lines(err) == [f"wav2kp predict: {path}: {_lines(err)[0].split(f'{path}: ', 1)[1]}"]
    assert PREDICT_BAD[name] in err
    assert _written(out) == []  # nothing half-written


@pytest.mark.parametrize("name", PREDICT_OK)
def test_predict_reads_odd_names_and_misnamed_files(cases: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    rc, said, err = _run(["predict", str(cases / name), "--out", str(out)])
    assert rc == 0, err
    points = np.load(out / "keypoints.npy")
    assert points.shape[1:] == (68, 2) and np.isfinite(points).all()
    assert not [p for p in _written(out) if ".partial" in p.name]


@pytest.mark.parametrize("name", sorted(EXTRACT_BAD))
def test_extract_one_bad_file(cases: Path, tmp_path: Path, name: str) -> None:
    path, out = cases / name, tmp_path / "out"
    rc, said, err = _run(["extract", str(path), "--out", str(out)])
    assert rc != 0 and "Traceback" not in said + err
    failed = [line for line in _lines(err) if line.startswith("FAILED")]
    assert len(failed) == 1 and str(path) in failed[0] and EXTRACT_BAD[name] in failed[0], err
    assert not [p for p in _written(out) if p.suffix in (".npz", ".wav") or ".partial" in p.name]


def test_a_folder_of_bad_files_is_a_failures_table(cases: Path, tmp_path: Path) -> None:
    """evaluate-real over the whole folder: the good files are scored, each bad one is a row of
    the failures table with its reason, and the command still succeeds; corpus list flags each
    unusable video."""
    rc, said, err = _run(["evaluate-real", str(cases), "--out", str(tmp_path / "real")])
    assert rc == 0 and "Traceback" not in said + err
    scored, failures = said.split("failures:")
    for name in ("good.wav", "with space.wav", "hash#1.wav", "quo'te\".wav", "não_ção.wav"):
        assert any(line.split()[0:1] == [name.split()[0]] for line in _lines(scored)), name
    for name in ("trunc1000.wav", "trunc50.mp4", "zero.mp4", "nan.wav", "dir.wav", "grey.mp4"):
        row = [line for line in _lines(failures) if line.strip().startswith(name)]
        assert len(row) == 1 and (PREDICT_BAD | EXTRACT_BAD)[name] in row[0], name

    rc, said, err = _run(["corpus", "list", str(cases)])
    unusable = [line.strip() for line in _lines(err) if "UNUSABLE" in line]
    assert rc == 1 and "Traceback" not in said + err
    for name in ("trunc10.mp4", "zero.mp4", "noaudio.mp4", "audio_named.mp4"):
        assert len([u for u in unusable if f"{cases / name}:" in u]) == 1, (name, unusable)
    assert not [u for u in unusable if "grey.mp4" in u]  # readable: its problem is the face


def test_an_unreadable_file_says_so(cases: Path, tmp_path: Path) -> None:
    """A file this user may not read. As root (CI), the process drops the capability that lets
    root read anything, so the permission really is refused."""
    locked = tmp_path / "locked.wav"
    shutil.copy(cases / "good.wav", locked)
    locked.chmod(0)
    cmd = [sys.executable, "-m", "wav2kp", "predict", str(locked), "--out", str(tmp_path / "o")]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: every file is readable")
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=config.REPO_ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert _lines(done.stderr) == [f"wav2kp predict: {locked}: cannot be read (permission denied)."]
    assert not (tmp_path / "o").exists()
