"""Keypoint extraction: tracking, gaps, QC, per-clip outputs, bad input, real recordings."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from wav2kp import cli, face68, media, shapes
from wav2kp.corpus import bundled
from wav2kp.corpus.face import load_template
from wav2kp.extraction import landmarks
from wav2kp.metrics import point_errors

FPS = Fraction(30000, 1001)


# --------------------------------------------------------------------------- pure functions


def test_interpolate_gaps_fills_short_gaps_linearly_and_flags_them() -> None:
    times = np.arange(12) / 10.0
    truth = np.zeros((12, 68, 2))
    truth[..., 0] = (np.arange(12) * 3.0)[:, None]  # x moves 3 px per frame
    found = np.ones(12, bool)
    found[[0, 3, 4, 7, 8, 9]] = False  # lead gap, 2-gap, 3-gap
    pts = np.where(found[:, None, None], truth, np.nan)
    filled, interp = landmarks.interpolate_gaps(pts, found, times, max_gap=2)
    np.testing.assert_allclose(filled[3:5], truth[3:5])  # filled exactly (linear motion)
    assert interp.tolist() == [False, False, False, True, True] + [False] * 7
    assert np.isnan(filled[0]).all()  # a gap at an end stays NaN
    assert np.isnan(filled[7:10]).all()  # longer than max_gap stays NaN
    filled3, interp3 = landmarks.interpolate_gaps(pts, found, times, max_gap=3)
    np.testing.assert_allclose(filled3[7:10], truth[7:10])
    assert interp3.sum() == 5


def test_interpolation_uses_timestamps_not_indices() -> None:
    times = np.array([0.0, 0.1, 0.4])  # uneven spacing (VFR)
    pts = np.zeros((3, 68, 2))
    pts[2] = 40.0
    pts[1] = np.nan
    filled, _ = landmarks.interpolate_gaps(pts, np.array([True, False, True]), times, 5)
    np.testing.assert_allclose(filled[1], 10.0)  # a quarter of the way, not half


def test_longest_run_and_still_jitter() -> None:
    assert landmarks.longest_run(np.array([0, 1, 1, 0, 1, 1, 1, 0], bool)) == 3
    assert landmarks.longest_run(np.zeros(4, bool)) == 0
    rest = load_template().rest
    still = np.repeat(rest[None], 40, axis=0)
    assert landmarks.still_jitter(still) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    iod = float(shapes.inter_ocular(rest))
    shaky = still + rng.normal(0, 0.01 * iod, size=still.shape)  # 1 % IOD per axis
    # frame-to-frame displacement of two independent 2-D draws: mean of a Rayleigh(sqrt 2 sigma)
    expected = 100 * 0.01 * np.sqrt(2) * np.sqrt(np.pi / 2)
    assert landmarks.still_jitter(shaky) == pytest.approx(expected, rel=0.35)
    moving = still.copy()
    moving[20:] += 50.0  # a jump after frame 20
    assert landmarks.still_jitter(moving) == pytest.approx(0.0, abs=1e-9)


def test_box_from_points_gives_the_detectors_keypoints() -> None:
    """A tracked box (from keypoints) feeds the predictor like the detector's box does."""
    tpl = load_template()
    box, _ = face68.detect_faces(tpl.image, 0)[0]
    detected = face68.predict_points(tpl.image, box)
    tracked = face68.predict_points(tpl.image, landmarks.box_from_points(detected))
    err = point_errors(tracked, detected)
    # within dlib's own sensitivity to its box (~2 % IOD between detector scales)
    assert err.mean() < 2.5  # % IOD
    assert landmarks.box_from_points(detected)[2] - landmarks.box_from_points(detected)[
        0
    ] == pytest.approx(box[2] - box[0], rel=0.1)


# --------------------------------------------------------------------------- tracking


def _scene(
    face: np.ndarray, size=(640, 384), at=(0, 0), scale=1.0, second: tuple | None = None
) -> np.ndarray:
    """A grey canvas with the face pasted at ``at`` (scaled), and optionally a second one."""
    canvas = np.full((size[1], size[0], 3), 128, np.uint8)
    for img, (x, y), s in [(face, at, scale)] + ([second] if second else []):
        small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        h, w = small.shape[:2]
        canvas[y : y + h, x : x + w] = small
    return canvas


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return load_template().image


def test_tracker_keeps_the_largest_central_face_then_follows_it(face) -> None:
    # full-resolution detection, so the detector sees both faces
    tracker = landmarks.FaceTracker(landmarks.TrackerConfig(detect_max_side=1000))
    # a large face left of centre, a smaller one at the right edge
    frames = [
        _scene(face, size=(720, 384), at=(60 + 4 * k, 0), scale=1.0, second=(face, (470, 140), 0.6))
        for k in range(6)
    ]
    assert len(face68.detect_faces(frames[0], 0)) == 2
    pts = [tracker.update(f) for f in frames]
    assert all(p is not None for p in pts)
    centres = np.array([p.mean(axis=0) for p in pts])
    assert np.all(centres[:, 0] < 400)  # always the large face
    np.testing.assert_allclose(np.diff(centres[:, 0]), 4.0, atol=1.5)  # and it follows it
    assert tracker.redetections == 0


def test_tracker_redetects_after_a_lost_face_and_a_jump(face, tmp_path: Path) -> None:
    frames = (
        [_scene(face, at=(40, 0))] * 4
        + [np.full((384, 640, 3), 128, np.uint8)] * 3
        + [_scene(face, at=(40, 0))] * 3
        + [_scene(face, at=(250, 0))] * 3
    )
    video = tmp_path / "lost.mp4"
    media.write_video(video, frames, None, (640, 384), FPS)
    track = landmarks.track_video(video)
    assert track.found.tolist() == [True] * 4 + [False] * 3 + [True] * 6
    assert track.redetections >= 2  # lost at 4, jumped at 10
    # after the jump the points are on the moved face
    assert track.points[-1, :, 0].mean() - track.points[0, :, 0].mean() == pytest.approx(210, abs=6)
    qc = track.qc()
    assert qc["longest_gap"] == 3 and qc["detection_rate"] == pytest.approx(10 / 13)


# --------------------------------------------------------------------------- extraction


def test_extraction_outputs_follow_the_contract(quick_corpus, tmp_path: Path) -> None:
    names = bundled.subset_names("quick")[:2]
    table = pd.DataFrame(
        {"clip": names, "path": [str(quick_corpus.out_dir / f"{n}.mp4") for n in names]}
    )
    report = landmarks.extract(table, corpus="t", out_dir=tmp_path, n_jobs=2, progress=False)
    assert len(report.failures) == 0 and len(report.qc) == 2
    for name in names:
        audio_path, lm_path = landmarks.clip_paths(tmp_path, name)
        gt = bundled.load_groundtruth(bundled.gt_path(quick_corpus.out_dir, name))
        lm = landmarks.load_landmarks(lm_path)
        assert lm.points.dtype == np.float32 and lm.points.shape == (len(gt["times"]), 68, 2)
        np.testing.assert_allclose(lm.times, gt["times"], atol=1e-4)
        assert lm.fps == FPS and lm.size == (384, 384)
        assert lm.found.all() and not lm.interpolated.any()
        err = point_errors(lm.points, gt["points"])
        assert np.nanmean(err) < 5.0 and np.nanmean(err[:, shapes.MOUTH]) < 4.0
        audio = media.decode_audio(audio_path, None)
        assert abs(len(audio) / 16000 - gt["duration"]) < 0.03
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["clips"]) == set(names) and manifest["failures"] == []
    assert (tmp_path / "qc.csv").is_file() and (tmp_path / "failures.csv").is_file()
    assert not list(tmp_path.rglob(".*partial*"))
    # cached: same bytes, same settings -> nothing redone
    again = landmarks.extract(table, corpus="t", out_dir=tmp_path, n_jobs=1, progress=False)
    assert again.n_cached == 2
    # other settings -> redone
    other = landmarks.extract(
        table,
        corpus="t",
        out_dir=tmp_path,
        n_jobs=1,
        progress=False,
        config=landmarks.TrackerConfig(max_gap=3),
    )
    assert other.n_cached == 0


def test_tracked_is_no_less_accurate_than_detecting_every_frame(quick_corpus) -> None:
    name = "Em20_Fala1_Sintetica"
    video = quick_corpus.out_dir / f"{name}.mp4"
    gt = bundled.load_groundtruth(bundled.gt_path(quick_corpus.out_dir, name))
    tracked = np.nanmean(point_errors(landmarks.track_video(video).points, gt["points"]))
    every = np.nanmean(point_errors(landmarks.detect_every_frame(video).points, gt["points"]))
    print(f"tracked {tracked:.2f} % IOD, detection on every frame {every:.2f} % IOD")
    assert tracked <= every + 0.25


def _bad_folder(root: Path, good: Path, face: np.ndarray) -> Path:
    folder = root / "mixed"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(good.read_bytes())
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    media.write_video(folder / "silent_film.mp4", [face] * 10, None, (384, 384), FPS)
    media.write_video(
        folder / "nobody.mp4",
        [np.full((384, 384, 3), 90, np.uint8)] * 10,
        np.zeros(16000, np.float32),
        (384, 384),
        FPS,
        audio_rate=16000,
    )
    import av

    with av.open(str(folder / "radio.mp4"), "w", format="mp4") as out:  # audio, no video
        stream = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 16000), np.float32), format="flt", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = 16000, 0, Fraction(1, 16000)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return folder


def test_bad_clips_become_failure_rows_and_the_rest_completes(
    quick_corpus, face, tmp_path: Path
) -> None:
    good = quick_corpus.out_dir / "Em1_Fala1_Sintetica.mp4"
    folder = _bad_folder(tmp_path, good, face)
    report = landmarks.extract(folder, out_dir=tmp_path / "out", n_jobs=2, progress=False)
    assert report.qc["clip"].tolist() == ["good"]
    reasons = dict(zip(report.failures["clip"], report.failures["reason"]))
    assert set(reasons) == {"empty", "garbage", "truncated", "silent_film", "nobody", "radio"}
    for clip, reason in reasons.items():
        assert f"{clip}.mp4" in reason, reason  # names the file
    assert "empty" in reasons["empty"] and "0 bytes" in reasons["empty"]
    assert "no audio stream" in reasons["silent_film"]
    assert "no face found" in reasons["nobody"]
    assert "no video stream" in reasons["radio"]
    assert not report.all_failed
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert len(failures) == 6
    # the CLI exits 0 while one clip succeeded...
    assert cli.main(["extract", str(folder), "--out", str(tmp_path / "cli"), "--jobs", "1"]) == 0
    # ...and 1 when every clip failed
    (folder / "good.mp4").unlink()
    assert cli.main(["extract", str(folder), "--out", str(tmp_path / "cli2"), "--jobs", "1"]) == 1


def test_cli_on_a_single_file(quick_corpus, tmp_path: Path) -> None:
    video = quick_corpus.out_dir / "Em20_Fala2_Sintetica.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wav2kp",
            "extract",
            str(video),
            "--out",
            str(tmp_path),
            "--jobs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 clips extracted" in proc.stdout
    assert landmarks.clip_paths(tmp_path, video.stem)[1].is_file()


# --------------------------------------------------------------------------- real recordings


@pytest.mark.real_samples
@pytest.mark.slow
def test_real_recordings(real_samples: Path, tmp_path: Path) -> None:
    report = landmarks.extract(
        real_samples, corpus="real", out_dir=tmp_path, n_jobs=2, progress=False
    )
    assert len(report.failures) == 0, report.failures.to_dict("records")
    videos = sorted(
        p.stem for p in real_samples.iterdir() if p.suffix.lower() in (".mp4", ".mpg", ".flv")
    )
    assert sorted(report.qc["clip"]) == videos  # every video the folder holds
    for row in report.qc.itertuples():
        lm = landmarks.load_landmarks(landmarks.clip_paths(tmp_path, row.clip)[1])
        info = media.probe(row.source)
        assert row.detection_rate >= 0.95, row.clip
        assert np.all(np.diff(lm.times) > 0)
        assert lm.size == (info["width"], info["height"])
        assert abs(float(lm.fps) - float(info["fps"])) < 0.01
        audio = media.decode_audio(landmarks.clip_paths(tmp_path, row.clip)[0], None)
        assert abs(len(audio) / 16000 - info["duration"]) < 0.1, row.clip


def test_extracted_audio_shares_the_frames_clock(tmp_path: Path, face) -> None:
    """Audio that starts 0.5 s into the container is written with 0.5 s of silence first, so
    sample i is at i / 16000 s like the frame times."""
    import av

    rate, n = 16000, 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
    video = tmp_path / "late_audio.mp4"
    with av.open(str(video), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width = vs.height = 384
        vs.pix_fmt = "yuv420p"
        aus = out.add_stream("aac", rate=rate, layout="mono")
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + 1024], format="flt", layout="mono"
            )
            frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
            frame.pts = start + rate // 2  # the audio starts at 0.5 s
            out.mux(aus.encode(frame))
        out.mux(aus.encode(None))
        for k in range(45):
            vf = av.VideoFrame.from_ndarray(face, format="rgb24")
            vf.pts, vf.time_base = k, 1 / FPS
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    row = landmarks.extract_clip(video, "late_audio", tmp_path / "out")
    assert row["detection_rate"] == 1.0
    audio = media.decode_audio(landmarks.clip_paths(tmp_path / "out", "late_audio")[0], None)
    onset = np.flatnonzero(np.abs(audio) > 0.05)[0] / rate
    assert onset == pytest.approx(0.5, abs=0.005)
