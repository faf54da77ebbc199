"""wav2kp.synthesis.motion: measuring pose and blinks, the fitted generator, its stream, the
statistics, and `wav2kp predict --head-motion natural --blinks`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wav2kp import results, shapes
from wav2kp.synthesis import motion

RATE = 16000
FPS = 30.0


def _face() -> np.ndarray:
    """The shipped feature set's reference face (unit inter-ocular distance)."""
    from wav2kp.training import inference

    return inference.Predictor.default().fs.reference


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Bursts of a 150 Hz buzz (voiced, loud) separated by silences."""
    t = np.arange(int(seconds * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    on = (np.sin(2 * np.pi * 0.35 * t + seed) > -0.2).astype(float)
    return (0.2 * buzz * on).astype(np.float32)


def test_measures_recover_a_known_pose_and_a_blink() -> None:
    ref = _face()
    n = 60
    angles = np.linspace(-4, 4, n)
    pts = []
    for a in angles:
        th = np.radians(a)
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        pts.append(100 * (ref @ rot.T) + [200, 150])
    track = motion.pose_track(np.array(pts), ref)
    np.testing.assert_allclose(track[:, 0], angles - np.median(angles), atol=0.05)
    np.testing.assert_allclose(track[:, 1:], 0, atol=1e-6)
    # a blink: closure 1 for 4 frames
    closure = np.zeros(n)
    closure[20:24] = 1.0
    shut = motion.apply(np.repeat(ref[None], n, 0), np.zeros((n, 4)), closure)
    openness = motion.eye_openness(shut)
    assert openness[21] < 0.3 * openness[0]
    assert motion.find_blinks(openness, FPS) == [(20 / FPS, 4 / FPS)]
    assert motion.find_blinks(np.full(10, np.nan), FPS) == []


def _model(ref: np.ndarray) -> motion.MotionModel:
    """Fitted on clips made by the shipped model's own generator (a known process)."""
    rng = np.random.default_rng(0)
    shipped = motion.MotionModel.load(motion.SHIPPED_FILE)
    clips = []
    for k in range(6):
        audio = _speech(6.0, seed=k)
        times = np.arange(int(6.0 * FPS)) / FPS
        pts = motion.animate(np.repeat(ref[None], len(times), 0), times, audio, shipped, seed=k)
        pts = 120 * pts + [160 + rng.normal(), 140]
        clips.append((pts, times, audio))
    return motion.fit(clips, ref, FPS)


def test_fit_generate_and_stream_exactly_alike() -> None:
    ref = _face()
    model = _model(ref)
    assert model.fitted_on["clips"] == 6 and model.fitted_on["blinks"] > 3
    for a1, a2 in model.head.ar:  # a stationary process
        assert np.all(np.abs(np.roots([1, -a1, -a2])) < 1)
    audio = _speech(20.0, seed=9)
    times = np.arange(int(20.0 * FPS)) / FPS
    still = np.repeat(ref[None], len(times), 0)
    a = motion.animate(still, times, audio, model, seed=3)
    b = motion.animate(still, times, audio, model, seed=3)
    c = motion.animate(still, times, audio, model, seed=4)
    np.testing.assert_array_equal(a, b)  # seeded
    assert np.abs(a - c).max() > 1e-3
    none = motion.animate(still, times, audio, model, head_motion="none", blinks=False)
    np.testing.assert_allclose(none, still)
    half = motion.animate(still, times, audio, model, strength=0.5, blinks=False, seed=3)
    full = motion.animate(still, times, audio, model, strength=1.0, blinks=False, seed=3)
    assert np.abs(half - still).max() < np.abs(full - still).max()
    with pytest.raises(ValueError, match="head_motion"):
        motion.animate(still, times, audio, model, head_motion="wild")
    # a stream (audio in 20 ms chunks, frames in batches behind it) draws the same
    stream = motion.MotionStream(model, seed=3)
    out, k = [], 0
    for i in range(0, len(audio), 320):
        stream.push_audio(audio[i : i + 320])
        heard = (i + 320) / RATE - 0.1  # frames come out ~100 ms behind the audio
        j = k
        while j < len(times) and times[j] <= heard:
            j += 1
        out.append(stream.apply(times[k:j], still[k:j]))
        k = j
    out.append(stream.apply(times[k:], still[k:]))
    np.testing.assert_allclose(np.concatenate(out), a, atol=1e-9)
    # statistics of the generated motion: it moves, it blinks, and not like a metronome
    stats = motion.motion_statistics(a, times, audio, ref)
    assert stats["rotation_range_deg"] > 0.3 and stats["blinks_per_min"] > 3
    assert stats["blink_interval_cv"] > 0.15 and 60 <= stats["blink_ms"] <= 450
    table = motion.compare([stats, stats], [stats], stats)
    assert table["inside real range"].all() and "blink_ms" in table.index


def test_the_shipped_model_loads_and_round_trips(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path))
    m = motion.MotionModel.load(motion.SHIPPED_FILE)
    assert len(m.head.ar) == 4 and m.blinks.interval_sigma > 0
    back = motion.MotionModel.load(m.save(tmp_path / "m.json"))
    assert back == m
    assert motion.load_default() == m  # no study: the shipped one
    # once notebook 05 has fitted one, that one
    fitted = dataclasses.replace(m, fitted_on={"feature_set": "a study's"})
    path = fitted.save(tmp_path / "fitted" / "motion.json")
    results.save(
        "05_synthesis", {"corpus": "bundled", "subset": "quick", "motion": {"file": str(path)}}
    )
    assert motion.load_default() == fitted


@pytest.mark.slow  # writes videos
def test_cli_predict_with_head_motion_and_blinks(tmp_path) -> None:
    from wav2kp import cli, media

    speech = tmp_path / "fala.wav"
    media.write_wav(speech, _speech(4.0), RATE)
    runs = {}
    for name, extra in (
        ("still", []),
        ("alive", ["--head-motion", "natural", "--blinks"]),
        ("again", ["--head-motion", "natural", "--blinks"]),
        ("other", ["--head-motion", "natural", "--blinks", "--seed", "7"]),
    ):
        out = tmp_path / name
        assert cli.main(["predict", str(speech), "--out", str(out), *extra]) == 0
        runs[name] = np.load(out / "keypoints.npy")
    np.testing.assert_array_equal(runs["alive"], runs["again"])
    assert np.abs(runs["alive"] - runs["still"]).max() > 1.0  # px on a 256 px canvas
    assert np.abs(runs["alive"] - runs["other"]).max() > 0.5
    # the mouth's shape is the model's: motion moves the face, it does not reshape the mouth
    gap = lambda p: shapes.mouth_opening(p) / shapes.inter_ocular(p)  # noqa: E731
    np.testing.assert_allclose(gap(runs["alive"]), gap(runs["still"]), atol=0.02)


def test_fit_study_falls_back_to_the_shipped_model(tmp_path, capsys) -> None:
    """Notebook 05 with a feature set whose clips were never extracted here (the shipped
    model's): the shipped motion model, said on the output, and nothing written."""

    class NoClips:
        out_dir = tmp_path / "set"

        def split_clips(self, split):
            return []

    out = tmp_path / "motion.json"
    model = motion.fit_study(NoClips(), tmp_path / "interim", out)
    assert model == motion.MotionModel.load(motion.SHIPPED_FILE)
    assert "shipped motion model is used" in capsys.readouterr().out and not out.exists()


def test_comparison_record_is_plain_json() -> None:
    import json

    import pandas as pd

    table = pd.DataFrame(
        {
            "real min": [0.1, float("nan")],
            "generated": [0.2, 3.0],
            "inside real range": [True, False],
        },
        index=pd.Index(["rotation_speed_deg_s", "blink_ms"], name="statistic"),
    )
    rec = motion.Comparison(table, real_videos=23, corpus_clips=8, generated_seconds=30.0).record()
    assert rec["inside_real_range"] == 1 and rec["statistics"] == 2 and rec["real_videos"] == 23
    assert rec["table"]["blink_ms"]["real min"] is None  # NaN as null
    json.dumps(rec, allow_nan=False)
