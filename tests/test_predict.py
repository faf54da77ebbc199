"""Prediction from any recording: decoding and its errors, padding of short input, streaming
equal to offline, and `wav2kp predict` end to end (keypoints, sketch video, face video, vid2vid
export)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from wav2kp import cli, config, media, training
from wav2kp.features import acoustic as features
from wav2kp.features import dataset
from wav2kp.training import inference

pytestmark = pytest.mark.slow
RATE = 16000


def tone_speech(seconds: float = 2.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Speech-like audio: a 140 Hz buzz with harmonics, amplitude-modulated at syllable rate,
    with a silent second in the middle third."""
    t = np.arange(int(seconds * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
    x = 0.2 * buzz * envelope + 0.002 * np.random.default_rng(seed).normal(size=len(t))
    third = len(t) // 3
    x[third : 2 * third] = 0.0
    return x.astype(np.float32)


def encode(
    path: Path, audio: np.ndarray, rate: int, codec: str, channels: int = 1, fmt: str | None = None
) -> Path:
    """Write ``audio`` with PyAV's encoder ``codec`` (flac, libmp3lame, aac, libopus, ...)."""
    import av

    layout = "mono" if channels == 1 else "stereo"
    data = np.tile(audio[None], (channels, 1)).astype(np.float32)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def runs(quick_clips, tmp_path_factory):
    """Tiny trained runs on the quick corpus: {name: run dir}."""
    root = tmp_path_factory.mktemp("predict_runs")
    fs, _ = dataset.build_feature_set(
        quick_clips, config.interim_dir("bundled"), config.processed_dir("bundled", "test_models")
    )
    orig, _ = dataset.build_feature_set(
        quick_clips,
        config.interim_dir("bundled"),
        config.processed_dir("bundled", "test_orig"),
        mfcc_cfg=features.MFCCConfig.original(),
        alignment="original_x3",
    )
    cfg = training.TrainConfig(max_epochs=3, batch_size=4, lr=3e-3, progress="none")
    out = {}
    for name, f, hp in (
        ("tcn", fs, {"channels": 16}),
        ("tcn_causal", fs, {"channels": 16, "feature_norm": "causal"}),
        ("tcn_live", fs, {"channels": 16, "future_frames": 4}),
        ("tcn_utterance", fs, {"channels": 16, "feature_norm": "utterance"}),
        ("tcn_emotion", fs, {"channels": 16, "emotion_dim": 4}),
        ("mean_face", fs, {}),
        ("lstm_original", orig, {"hidden": 8}),
    ):
        c = (
            cfg
            if name != "lstm_original"
            else training.TrainConfig(max_epochs=1, batch_size=256, progress="none")
        )
        training.train_model(
            name.split("_")[0] if name.startswith("tcn_") and name != "tcn_emotion" else name,
            f,
            c,
            run_dir=root / name,
            **hp,
        )
        out[name] = root / name
    return out


def test_load_speech_reads_many_formats(tmp_path: Path) -> None:
    x = tone_speech(1.5, 44100)
    ref = tone_speech(1.5, RATE)
    files = {
        "stereo int16 wav 44.1 kHz": tmp_path / "a.wav",
        "flac 22.05 kHz": encode(tmp_path / "a.flac", tone_speech(1.5, 22050), 22050, "flac"),
        "mp3 stereo": encode(tmp_path / "a.mp3", x, 44100, "libmp3lame", channels=2),
        "m4a aac": encode(tmp_path / "a.m4a", x, 44100, "aac", fmt="mp4"),
        "ogg opus 48 kHz": encode(tmp_path / "a.ogg", tone_speech(1.5, 48000), 48000, "libopus"),
    }
    from scipy.io import wavfile

    wavfile.write(
        files["stereo int16 wav 44.1 kHz"], 44100, (np.stack([x, x], 1) * 32767).astype(np.int16)
    )
    mp4 = tmp_path / "talk.mp4"
    frames = (np.full((64, 64, 3), 90, np.uint8) for _ in range(45))
    media.write_video(mp4, frames, x, (64, 64), fps=Fraction(30), audio_rate=44100)
    files["mp4 video"] = mp4
    for what, path in files.items():
        audio = inference.load_speech(path)
        assert audio.dtype == np.float32 and audio.ndim == 1, what
        assert abs(len(audio) - len(ref)) < 0.08 * RATE, what  # codecs pad a little
        n = min(len(audio), len(ref)) - 1600
        env = lambda a: np.convolve(np.abs(a), np.ones(400) / 400, "same")  # noqa: E731
        ea, er = env(audio), env(ref)[:n]
        # lossy encoders delay the signal (AAC priming: ~1024 samples): best lag within 100 ms
        best = max(np.corrcoef(ea[lag : lag + n], er)[0, 1] for lag in range(0, 1600, 40))
        assert best > 0.9, what


def test_load_speech_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(inference.PredictError, match="nope.wav: no such file"):
        inference.load_speech(tmp_path / "nope.wav")
    silent = tmp_path / "silent.wav"
    media.write_wav(silent, np.zeros(RATE, np.float32), RATE)
    with pytest.raises(inference.PredictError, match="silent.wav: the recording is silent"):
        inference.load_speech(silent)
    mute = tmp_path / "mute.mp4"
    media.write_video(
        mute, (np.zeros((32, 32, 3), np.uint8) for _ in range(10)), None, (32, 32), fps=Fraction(25)
    )
    with pytest.raises(inference.PredictError, match="mute.mp4: the file has no audio stream"):
        inference.load_speech(mute)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio" * 50)
    with pytest.raises(inference.PredictError, match="junk.mp3"):
        inference.load_speech(junk)


def test_offline_prediction_frames_padding_and_silence(runs) -> None:
    p = inference.Predictor(runs["tcn"])
    assert (p.past, p.future) == (30, 30) == (p.model.receptive_field(),) * 2
    audio = tone_speech(2.0)
    pred = p.predict_audio(audio, fps=Fraction(30000, 1001))
    assert pred.normalised.shape == (60, 68, 2) and np.isfinite(pred.normalised).all()
    np.testing.assert_allclose(np.diff(pred.times), 1001 / 30000)
    assert pred.padded_s == 0.0
    assert len(p.predict_audio(audio, fps=25).times) == 51
    # shorter than the context (0.3 s + 0.3 s + the 32 ms window): padded, then cut again
    short = p.predict_audio(audio[: RATE // 10], fps=25)
    assert short.padded_s > 0 and len(short.times) == 3 and np.isfinite(short.normalised).all()
    assert len(short.audio) == RATE // 10
    # the canvas: IOD 0.3 x size
    px = inference.canvas_transform(pred.normalised[0], 200).apply(pred.normalised)
    iod = np.linalg.norm(px[:, 36] - px[:, 45], axis=-1)
    np.testing.assert_allclose(iod, 60, rtol=0.1)


@pytest.mark.parametrize("run", ["tcn", "tcn_causal", "tcn_live"])
def test_streaming_equals_offline(runs, run) -> None:
    p = inference.Predictor(runs[run])
    audio = tone_speech(3.0, seed=1)
    offline = p.predict_audio(audio)
    for chunk_ms in (20.0, 7.0, 250.0):
        times, pts, s = inference.stream(p, audio, chunk_ms)
        np.testing.assert_allclose(times, offline.times, atol=1e-9)
        np.testing.assert_allclose(pts, offline.normalised, atol=1e-5)
        lat = s.latencies_s()
        bound = p.context_s[1] + p.fs.mfcc.fft_size / 2 / RATE + p.fs.mfcc.hop_s + chunk_ms / 1000
        body = lat[:-30]  # the last frames come at the flush
        assert body.max() <= bound + 1e-9, chunk_ms
        assert body.min() >= p.context_s[1] - 1e-9  # never before the audio it needs
    # the original MFCC (clip-wide dB floor) and whole-utterance normalisation cannot stream
    with pytest.raises(inference.PredictError, match="clip-wide dB floor"):
        inference.StreamingPredictor(inference.Predictor(runs["lstm_original"]))
    with pytest.raises(inference.PredictError, match="feature_norm='causal'"):
        inference.StreamingPredictor(inference.Predictor(runs["tcn_utterance"]))


@pytest.mark.parametrize("run", ["tcn_causal", "tcn_live"])
def test_a_long_stream_keeps_bounded_history_and_stays_exact(runs, run) -> None:
    """20 s in 20 ms chunks: the streamer drops what it no longer needs (audio, features,
    frames; the running normalisation carries the dropped frames' sums) and still equals the
    offline prediction."""
    p = inference.Predictor(runs[run])
    audio = tone_speech(20.0, seed=3)
    offline = p.predict_audio(audio)
    times, pts, s = inference.stream(p, audio, 20.0)
    np.testing.assert_allclose(times, offline.times, atol=1e-9)
    np.testing.assert_allclose(pts, offline.normalised, atol=1e-5)
    assert s.a0 > 0 and s.f0 > 0 and s.p0 > 0  # history was dropped
    assert len(s.audio) < 9 * RATE and len(s.features) < 900 and len(s.points) < 900


def test_a_live_model_looks_ahead_only_as_far_as_it_says(runs) -> None:
    """``future_frames=4``: the prediction of a frame depends on the features up to 4 frames
    after it and no further, and streams with about 40 ms of future context, not 300."""
    import torch

    p = inference.Predictor(runs["tcn_live"])
    assert p.past + p.future == 60 and p.future == 4
    assert p.context_s == pytest.approx((0.56, 0.04))
    net = p.model.net.eval()
    x = torch.randn(1, 80, p.fs.mfcc.n_features)
    with torch.no_grad():
        base = net(x)[0, 30]
        later = x.clone()
        later[0, 35:] += 5  # beyond the look-ahead: frame 30 unchanged
        assert torch.allclose(net(later)[0, 30], base, atol=1e-6)
        near = x.clone()
        near[0, 34] += 5  # within it: frame 30 moves
        assert (net(near)[0, 30] - base).abs().max() > 1e-6
    assert inference.Predictor(runs["tcn"]).future == 30


def test_emotion_conditioning(runs) -> None:
    p = inference.Predictor(runs["tcn_emotion"])
    audio = tone_speech(1.5)
    joy = p.predict_audio(audio, emotion="Joy").normalised
    anger = p.predict_audio(audio, emotion="anger").normalised
    assert not np.allclose(joy, anger)
    np.testing.assert_allclose(p.predict_audio(audio, emotion=1).normalised, joy)
    with pytest.raises(ValueError, match="Unknown emotion 'Glee'"):
        p.predict_audio(audio, emotion="Glee")


def test_cli_predict_end_to_end(runs, tmp_path: Path, capsys) -> None:
    speech = tmp_path / "minha fala.wav"
    media.write_wav(speech, tone_speech(2.0, 44100), 44100)
    out = tmp_path / "out"
    code = cli.main(
        [
            "predict",
            str(speech),
            "--model",
            str(runs["tcn"]),
            "--out",
            str(out),
            "--face",
            "corpus",
            "--vid2vid",
            "--fps",
            "25",
        ]
    )
    assert code == 0, capsys.readouterr().err
    points = np.load(out / "keypoints.npy")
    assert points.shape == (51, 68, 2) and np.isfinite(points).all()
    rows = (out / "keypoints.csv").read_text().splitlines()
    assert len(rows) == 52 and rows[0].startswith("frame,time,x0,y0")
    assert rows[-1].split(",")[:2] == ["50", "2.000000"]
    for name in ("sketch.mp4", "face.mp4"):
        info = media.probe(out / name)
        assert info["has_audio"] and info["has_video"], name
        assert info["fps"] == 25
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "tcn" and manifest["frames"] == 51 and manifest["fps"] == "25"
    assert len(list((out / "vid2vid" / "test_keypoints").rglob("*.txt"))) == 51
    assert not list(out.rglob("*partial*"))
    # a file without audio, and no model trained: clear messages, exit code 2
    mute = tmp_path / "mute.mp4"
    media.write_video(
        mute, (np.zeros((32, 32, 3), np.uint8) for _ in range(5)), None, (32, 32), fps=Fraction(25)
    )
    assert cli.main(["predict", str(mute), "--model", str(runs["tcn"])]) == 2
    assert "no audio stream" in capsys.readouterr().err


def test_default_model_needs_a_trained_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(config, "SHIPPED_DIR", tmp_path / "no_shipped_model")
    with pytest.raises(inference.PredictError, match="No study has chosen a default model"):
        inference.Predictor.default()


def test_default_model_is_the_studys_choice_else_the_shipped_one(
    runs, tmp_path: Path, monkeypatch
) -> None:
    from wav2kp.training import release

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "motion.json").write_text('{"head": "kept"}')  # shipped apart from the model
    (shipped / "weights.pt").write_text("an older release")
    release.release(runs["tcn"], out_dir=shipped)
    assert (shipped / "motion.json").read_text() == '{"head": "kept"}'
    monkeypatch.setattr(config, "SHIPPED_DIR", shipped)
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path / "fresh"))
    default = inference.Predictor.default()
    assert default.run_dir == shipped and "shipped" in default.why  # no study: the shipped one
    import shutil

    from wav2kp import results

    mine = config.run_dir("bundled", "quick", "mine")
    shutil.copytree(runs["tcn_emotion"], mine)
    assert inference.Predictor.default().run_dir == shipped  # a run nobody chose: never used
    results.save("04_evaluation", {"corpus": "bundled", "subset": "quick", "default_model": "mine"})
    chosen = inference.Predictor.default()
    assert chosen.run_dir == mine and "notebook 04 chose" in chosen.why


# ------------------------------------------------------------------- real speech (issue 8)


def test_generated_inputs_are_finite_and_the_mouth_rests_in_silence(runs) -> None:
    from wav2kp import metrics
    from wav2kp.corpus import speech

    p = inference.Predictor(runs["tcn"])
    t = np.arange(int(1.5 * RATE)) / RATE
    voice = speech.synthesize(
        "Amanhã vamos ao mercado comprar frutas.",
        variant="f1",
        prosody=speech.Prosody(pitch=85, rate=200),
    )
    from scipy.signal import resample_poly

    inputs = {
        "tone": (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
        "noise": (0.1 * np.random.default_rng(0).normal(size=len(t))).astype(np.float32),
        "voice at another pitch": resample_poly(voice.audio, 160, 220).astype(np.float32),
    }
    for what, audio in inputs.items():
        pred = p.predict_audio(audio)
        assert np.isfinite(pred.normalised).all(), what
    # speech, 1.5 s of digital silence, speech: beyond the receptive field the silent frames
    # are the model's rest face (to 0.1 % IOD: the running feature normalisation still
    # remembers the speech before, measured 0.014 %)
    burst = tone_speech(0.8)
    audio = np.concatenate([burst, np.zeros(int(1.5 * RATE), np.float32), burst])
    pred = p.predict_audio(audio, fps=25)
    inside = (pred.times > 0.8 + 0.35) & (pred.times < 2.3 - 0.35)
    rest = metrics.opening(p.rest()[None])[0]
    np.testing.assert_allclose(metrics.opening(pred.normalised[inside]), rest, atol=1e-3)


def test_evaluate_real_folder(runs, quick_corpus, tmp_path: Path, capsys) -> None:
    import shutil

    from wav2kp.evaluation import real as realeval

    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copy(quick_corpus.out_dir / "Em1_Fala1_Sintetica.mp4", folder / "someone.mp4")
    media.write_wav(folder / "just_audio.wav", tone_speech(2.0), RATE)
    (folder / "broken.mp4").write_bytes(b"\x00" * 2000)
    result = realeval.evaluate_real(
        folder, {"tcn": runs["tcn"], "mean_face": runs["mean_face"]}, n_jobs=1
    )
    videos = result["videos"].set_index(["file", "model"])
    assert set(videos.index) == {("someone.mp4", "tcn"), ("someone.mp4", "mean_face")}
    row = videos.loc[("someone.mp4", "tcn")]
    assert -1 <= row["mouth_corr"] <= 1 and np.isfinite(row["offset_ms"])
    assert row["scored"] == row["frames"] > 50
    assert np.isnan(videos.loc[("someone.mp4", "mean_face"), "mouth_corr"])  # constant
    speech_rows = result["speech"].set_index(["file", "model"])
    assert ("just_audio.wav", "tcn") in speech_rows.index
    assert speech_rows.loc[("just_audio.wav", "tcn"), "silent_frames"] > 10
    assert list(result["failures"]["file"]) == ["broken.mp4"]
    summary = realeval.summary(result["videos"])
    assert summary.loc["tcn", "files"] == 1
    # the command: tables printed, files written, exit 0
    out = tmp_path / "report"
    assert (
        cli.main(
            [
                "evaluate-real",
                str(folder),
                "--model",
                str(runs["tcn"]),
                "--out",
                str(out),
                "--jobs",
                "1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "someone.mp4" in text and "mean over files" in text
    record = json.loads((out / "real.json").read_text())
    assert record["summary"][0]["model"] == "tcn" and record["failures"]


def test_augmented_training_is_reproducible(quick_clips, tmp_path: Path) -> None:
    import torch

    from wav2kp.training import models

    fs, _ = dataset.build_feature_set(
        quick_clips, config.interim_dir("bundled"), config.processed_dir("bundled", "test_models")
    )

    def train(tag: str, **kw) -> dict:
        cfg = training.TrainConfig(max_epochs=2, batch_size=4, lr=3e-3, progress="none", **kw)
        training.train_model("tcn", fs, cfg, run_dir=tmp_path / tag, channels=8)
        return torch.load(tmp_path / tag / models.WEIGHTS_FILE, weights_only=True)

    a, b = train("a", seed=0), train("b", seed=0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = train("c", seed=0, augment=False)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    config_json = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config_json["train"]["augment"] is True


@pytest.mark.slow
def test_a_long_recording_streams_to_the_same_outputs(tmp_path: Path, monkeypatch) -> None:
    """Past LONG_RECORDING_S a recording is predicted as a stream (decoding in blocks, the
    streaming predictor, head motion and blinks as a stream, the video frame by frame): the
    keypoints are the whole-recording ones, the video has every frame and the recording's own
    stereo 48 kHz sound, and a damaged sample deep in the file is still a clear error."""
    from wav2kp.synthesis import outputs

    speech = tone_speech(8.0, rate=48000, seed=4)
    wav = tmp_path / "long.wav"
    media.write_wav(wav, np.stack([speech, 0.5 * speech]), 48000)
    p = inference.Predictor.default()
    kw = {"head_motion": "natural", "blinks": True, "seed": 3}
    monkeypatch.setattr(outputs, "LONG_RECORDING_S", 5.0)
    monkeypatch.setattr(outputs, "BLOCK_FRAMES", 100)  # 240 frames: written in three blocks
    assert outputs.can_stream(p, wav)
    streamed, paths = outputs.predict_recording(p, wav, tmp_path / "streamed", **kw)
    assert streamed.info["streamed"] and json.loads(paths["manifest"].read_text())["streamed"]
    monkeypatch.setattr(outputs, "LONG_RECORDING_S", 1e9)
    whole, _ = outputs.predict_recording(p, wav, tmp_path / "whole", **kw)
    a = np.load(tmp_path / "streamed" / "keypoints.npy")
    b = np.load(tmp_path / "whole" / "keypoints.npy")
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-3  # pixels
    np.testing.assert_allclose(streamed.times, whole.times)
    got, want = (media.probe(tmp_path / d / "sketch.mp4") for d in ("streamed", "whole"))
    assert got["n_frames"] == want["n_frames"] == len(a)
    assert (got["channels"], got["audio_rate"]) == (2, 48000)
    assert abs(got["duration"] - want["duration"]) < 0.05
    csv_rows = (tmp_path / "streamed" / "keypoints.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + len(a) and csv_rows[-1].startswith(f"{len(a) - 1},")
    # the keypoints went through a temporary file on the way: nothing of it is left
    assert sorted(q.name for q in (tmp_path / "streamed").iterdir()) == [
        "keypoints.csv", "keypoints.npy", "manifest.json", "sketch.mp4"]  # fmt: skip
    bad = speech.copy()
    bad[7 * 48000] = np.nan
    media.write_wav(wav, bad, 48000)
    monkeypatch.setattr(outputs, "LONG_RECORDING_S", 5.0)
    with pytest.raises(inference.PredictError, match="NaN or infinite"):
        outputs.predict_recording(p, wav, tmp_path / "bad")
    assert not (tmp_path / "bad" / "sketch.mp4").exists()
