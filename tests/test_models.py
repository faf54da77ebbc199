"""Every model trains on the quick feature set, predicts the right shapes, saves and reloads to
the same numbers; the baselines order as they must; training is deterministic."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from wav2kp import config, training
from wav2kp.features import dataset
from wav2kp.training import models

pytestmark = pytest.mark.slow

#: tiny networks and few epochs: the whole module must stay well under ~90 s on 2 cores
TINY = {
    "mean_face": {},
    "energy": {},
    "ridge": {},
    "lstm_original": {"hidden": 16, "layers": 2},
    "lstm": {"hidden": 16, "layers": 1},
    "tcn": {"channels": 32},
    "tcn_emotion": {"channels": 32, "emotion_dim": 4},
    "phones": {},
    "transformer": {"channels": 32, "heads": 2, "layers": 1},
}
EPOCHS = {"lstm_original": 2, "lstm": 3, "tcn": 25, "tcn_emotion": 5, "transformer": 3}


def _cfg(name: str, **kw) -> training.TrainConfig:
    utterances = name.startswith("tcn") or name == "transformer"
    base = dict(
        max_epochs=EPOCHS.get(name, 1),
        batch_size=4 if utterances else 128,
        lr=3e-3,
        patience=50,
        progress="none",
        seed=0,
    )
    return training.TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def fs(quick_clips):
    out = config.processed_dir("bundled", "test_models")
    feature_set, _ = dataset.build_feature_set(quick_clips, config.interim_dir("bundled"), out)
    return feature_set


@pytest.fixture(scope="module")
def runs(fs, tmp_path_factory):
    """{name: (model, metrics, run_dir)} for every registered model."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name in models.MODELS:
        model, metrics = training.train_model(
            name, fs, _cfg(name), run_dir=root / name, **TINY[name]
        )
        out[name] = (model, metrics, root / name)
    return out


def test_registry_and_errors() -> None:
    assert set(models.MODELS) == {
        "mean_face",
        "energy",
        "ridge",
        "lstm_original",
        "lstm",
        "tcn",
        "tcn_emotion",
        "phones",
        "transformer",
    }
    with pytest.raises(ValueError, match="Unknown model"):
        models.create("nope")
    with pytest.raises(TypeError, match="unknown hyper-parameters"):
        models.create("tcn", chanels=3)


def test_every_model_predicts_shapes_and_finite_metrics(fs, runs) -> None:
    clip = fs.split_clips("val")[0]
    utt = fs.load(clip)
    n, d = utt["targets"].shape
    for name, (model, metrics, _) in runs.items():
        pred = model.predict(fs, clip)
        assert pred.shape == (n, d) and pred.dtype == np.float32, name
        assert np.isfinite(pred).all(), name
        px = model.predict_pixels(fs, clip)
        assert px.shape == (len(utt["video_times"]), 68, 2), name
        for key in ("val_mse", "val_mlmd_pct", "val_lmd_pct", "wall_s"):
            assert np.isfinite(metrics[key]), (name, key)
        assert 0.5 < metrics["val_mlmd_pct"] < 10.0, name
        assert metrics["val_frames"] > 100, name


def test_run_dir_artefacts_and_history(runs) -> None:
    for name, (_, metrics, run_dir) in runs.items():
        for f in ("weights.pt", "config.json", "history.csv", "metrics.json"):
            assert (run_dir / f).is_file(), (name, f)
        assert not (run_dir / "checkpoints").exists(), name
        state = torch.load(run_dir / "weights.pt", weights_only=True)
        assert all(torch.is_tensor(v) for v in state.values()) and state, name
        cfg = json.loads((run_dir / "config.json").read_text())
        assert cfg["model"] == name and cfg["train"]["seed"] == 0
        assert cfg["feature_set"]["params"]["alignment"] == "timestamps"
        assert "torch" in cfg["versions"]
        history = pd.read_csv(run_dir / "history.csv")
        assert list(history.columns[:3]) == ["epoch", "train_loss", "val_loss"]
        assert len(history) == metrics["epochs"]
        if runs[name][0].uses_loop:
            assert len(history) == EPOCHS[name]  # patience 50: no early stop
            assert (np.diff(history["epoch"]) == 1).all() and history["epoch"].iloc[0] == 0
            assert np.isfinite(history[["train_loss", "val_loss", "lr"]]).all().all()
        else:
            assert len(history) == 1
        saved = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["cached"] is False
        assert saved == {k: v for k, v in metrics.items() if k != "cached"}
        assert len(saved["run_key"]) == 64


def test_a_finished_run_is_not_trained_again(fs, runs, tmp_path) -> None:
    """Same model, settings, features and code: the run is loaded, not retrained (same weights,
    same metrics). A change the model reads retrains it; a change it does not read (the loop's
    epochs for a baseline, the progress display) does not; force=True always retrains."""
    for name in ("ridge", "tcn"):
        _, metrics, run_dir = runs[name]
        weights = (run_dir / "weights.pt").read_bytes()
        model, again = training.train_model(
            name, fs, _cfg(name, progress="log"), run_dir, **TINY[name]
        )
        assert again["cached"] is True and again["run_key"] == metrics["run_key"]
        assert {k: v for k, v in again.items() if k != "cached"} == {
            k: v for k, v in metrics.items() if k != "cached"
        }
        assert (run_dir / "weights.pt").read_bytes() == weights
    # the loop's settings: a new key for the TCN, the same for ridge
    more = {"tcn": _cfg("tcn", max_epochs=EPOCHS["tcn"] + 1), "ridge": _cfg("ridge", max_epochs=7)}
    assert training.runs.run_key("tcn", fs, more["tcn"], TINY["tcn"]) != runs["tcn"][1]["run_key"]
    assert training.runs.run_key("ridge", fs, more["ridge"], {}) == runs["ridge"][1]["run_key"]
    # the model's own settings and the seed always count
    assert (
        training.runs.run_key("ridge", fs, _cfg("ridge", past_ms=100.0), {})
        != runs["ridge"][1]["run_key"]
    )
    assert (
        training.runs.run_key("ridge", fs, _cfg("ridge"), {"alpha": 2.0})
        != runs["ridge"][1]["run_key"]
    )
    assert (
        training.runs.run_key("ridge", fs, _cfg("ridge", seed=1), {}) != runs["ridge"][1]["run_key"]
    )
    # force: trained again into a copy of the run
    import shutil

    copy = tmp_path / "ridge"
    shutil.copytree(runs["ridge"][2], copy)
    _, forced = training.train_model("ridge", fs, _cfg("ridge"), copy, force=True)
    assert forced["cached"] is False and forced["val_mlmd_pct"] == runs["ridge"][1]["val_mlmd_pct"]


def test_load_run_reproduces_predictions_and_metrics(fs, runs) -> None:
    clip = fs.split_clips("test")[0]
    for name, (model, metrics, run_dir) in runs.items():
        again = models.load_run(run_dir)
        assert type(again) is type(model)
        np.testing.assert_array_equal(again.predict(fs, clip), model.predict(fs, clip))
        val = training.split_metrics(again, fs, "val")
        assert val["mlmd_pct"] == pytest.approx(metrics["val_mlmd_pct"], abs=1e-6), name
        assert val["mse"] == pytest.approx(metrics["val_mse"], rel=1e-9, abs=1e-12), name


def test_mean_face_predicts_the_training_mean(fs, runs) -> None:
    model = runs["mean_face"][0]
    rows = [fs.load(c) for c in fs.split_clips("train")]
    mean = np.concatenate([u["targets"][u["valid"]] for u in rows]).astype(np.float64).mean(0)
    pred = model.predict(fs, fs.split_clips("val")[0])
    np.testing.assert_allclose(pred, np.broadcast_to(mean, pred.shape), atol=1e-6)


def test_baselines_and_models_beat_the_mean_face(fs, runs) -> None:
    floor = runs["mean_face"][1]["val_mlmd_pct"]
    assert runs["ridge"][1]["val_mlmd_pct"] < floor - 0.1
    assert runs["energy"][1]["val_mlmd_pct"] < floor
    # energy drives the mode that tracks the mouth opening
    assert runs["energy"][0].dims["mode_corr_with_opening"] > 0.5
    # the TCN learns something within a few epochs (on the data it saw, at least)
    tcn_train = training.split_metrics(runs["tcn"][0], fs, "train")["mlmd_pct"]
    mean_train = training.split_metrics(runs["mean_face"][0], fs, "train")["mlmd_pct"]
    assert tcn_train < 0.9 * mean_train


def test_emotion_indices(fs, runs) -> None:
    model = runs["tcn_emotion"][0]
    emotions = [1, 8, 14, 20]  # the quick subset's
    assert model.dims["emotions"] == emotions
    for clip in fs.clips:
        idx = model.emotion_index(fs, clip)
        assert idx == (0 if "Neutra" in clip else 2 + emotions.index(int(clip[2:].split("_")[0])))
    assert model.emotion_index(fs, "not_a_clip") == 1


def test_training_is_deterministic(fs, tmp_path) -> None:
    cfg = _cfg("tcn", max_epochs=3)
    weights = []
    for i in range(2):
        model, metrics = training.train_model(
            "tcn", fs, cfg, run_dir=tmp_path / str(i), channels=16
        )
        weights.append(torch.load(tmp_path / str(i) / "weights.pt", weights_only=True))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    h0, h1 = (pd.read_csv(tmp_path / str(i) / "history.csv") for i in range(2))
    np.testing.assert_allclose(h0["val_loss"], h1["val_loss"], rtol=0, atol=1e-9)


def test_mouth_weight_and_velocity_losses(fs, tmp_path) -> None:
    """The extra loss terms run and change the objective (mouth points weighted 1 + w)."""
    model, metrics = training.train_model(
        "tcn",
        fs,
        _cfg("tcn", max_epochs=2, mouth_weight=3.0, velocity_weight=1.0),
        run_dir=tmp_path,
        channels=16,
    )
    w = model.head.weights.numpy().reshape(68, 2)
    assert (w[48:] == 4.0).all() and (w[:48] == 1.0).all()
    assert np.isfinite(metrics["val_mlmd_pct"])


def test_cli_train(quick_clips, tmp_path) -> None:
    """`wav2kp train` trains one model on the quick corpus' processed sets and reports the
    validation metrics of the saved run."""
    from wav2kp import cli

    run = tmp_path / "cli_run"
    code = cli.main(["train", "--model", "mean_face", "--subset", "quick", "--run", str(run)])
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    ((model, trained_on),) = training.load_runs({"cli_run": run}).values()
    reloaded = training.split_metrics(model, trained_on, "val")
    assert reloaded["mlmd_pct"] == pytest.approx(metrics["val_mlmd_pct"], abs=1e-9)
    assert cli.main(["train", "--model", "nope", "--subset", "quick"]) == 2


def test_window_lstms_stop_sooner_without_touching_the_schedule(fs, tmp_path, monkeypatch) -> None:
    """A model's stop_patience ends training that many epochs after the best one (the weights
    restored are the best epoch's), while the learning-rate schedule keeps cfg.patience."""
    assert models.WindowLSTM.stop_patience == 3 and models.TCN.stop_patience is None
    monkeypatch.setattr(models.WindowLSTM, "stop_patience", 1)
    cfg = _cfg("lstm", max_epochs=6, patience=50)
    _, metrics = training.train_model("lstm", fs, cfg, tmp_path / "lstm", **TINY["lstm"])
    history = pd.read_csv(tmp_path / "lstm" / "history.csv")
    assert len(history) == metrics["epochs"]
    assert len(history) == 6 or len(history) == metrics["best_epoch"] + 2
    assert (history["lr"] == history["lr"].iloc[0]).all()  # plateau patience 25: no halving


def test_a_finished_run_keeps_its_predictions(fs, runs) -> None:
    """Predictions of a loaded run are kept per clip in <run>/predictions and reused while the
    run and the clip's stored features are the same; a model not loaded from a run computes."""
    _, _, run_dir = runs["lstm"]
    clip = fs.split_clips("test")[0]
    model = models.load_run(run_dir)
    first = training.runs.predict_pixels(model, fs, clip)
    np.testing.assert_array_equal(first, model.predict_pixels(fs, clip))  # the model's own
    path = run_dir / "predictions" / f"clip-{clip}.npz"
    assert path.is_file()
    calls = []
    model.predict = lambda *a, **k: calls.append(a)  # would break if the networks ran again
    np.testing.assert_array_equal(training.runs.predict_pixels(model, fs, clip), first)
    assert calls == []
    # another key (here: the stored file is from another run) -> computed again
    np.savez(path, values=first + 1, key=np.array("another run"))
    fresh = models.load_run(run_dir)
    np.testing.assert_array_equal(training.runs.predict_pixels(fresh, fs, clip), first)
    # not a finished run: nothing kept
    plain = models.create("mean_face")
    assert plain.run_dir is None and plain.run_key is None
    assert training.runs.cached(plain, "x", (1,), lambda: np.zeros(3)).tolist() == [0, 0, 0]


def test_runs_trained_side_by_side_equal_runs_trained_alone(fs, tmp_path) -> None:
    """train_runs in 2 worker processes gives the weights and metrics of training each run alone
    (each run is seeded and trains on one torch thread); a second call loads every run."""

    def jobs(root):
        return [training.RunJob(n, n, fs, root / n, TINY[n]) for n in ("lstm", "tcn")]

    cfg = _cfg("lstm")  # one TrainConfig for both (batch 128, 3 epochs)
    alone = training.train_runs(jobs(tmp_path / "alone"), cfg, n_jobs=1)
    side = training.train_runs(jobs(tmp_path / "side"), cfg, n_jobs=2)
    for name in ("lstm", "tcn"):
        assert side[name]["val_mlmd_pct"] == alone[name]["val_mlmd_pct"], name
        a = torch.load(tmp_path / "alone" / name / "weights.pt", weights_only=True)
        b = torch.load(tmp_path / "side" / name / "weights.pt", weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    again = training.train_runs(jobs(tmp_path / "side"), cfg, n_jobs=2)
    assert all(m["cached"] for m in again.values())


def test_phones_reads_the_audio_and_cannot_take_features(fs, runs) -> None:
    model = runs["phones"][0]
    clip = fs.split_clips("val")[0]
    utt = fs.load(clip)
    with pytest.raises(TypeError, match="predicts from audio"):
        model.predict_features(fs, utt["features"])
    from wav2kp import media

    audio, _ = media.read_wav(config.interim_dir("bundled") / "audio" / f"{clip}.wav")
    direct = model.predict_audio(fs, audio, utt["feature_times"])
    np.testing.assert_allclose(direct, model.predict(fs, clip), atol=1e-6)
    # the recognised phones open and close the mouth with the speech
    opening = models._opening(direct.astype(np.float64), fs.point_idx)
    truth = models._opening(utt["targets"].astype(np.float64), fs.point_idx)
    assert np.corrcoef(opening, truth)[0, 1] > 0.4
    assert runs["phones"][1]["val_mlmd_pct"] < runs["mean_face"][1]["val_mlmd_pct"]


def test_transformer_is_local_and_padding_free(fs, runs) -> None:
    model = runs["transformer"][0]
    assert model.receptive_field() == 1 + 2 + 1 * 10
    net = model.net
    x = torch.randn(2, 60, model.dims["n_features"])
    mask = torch.ones(2, 60, dtype=torch.bool)
    mask[1, 35:] = False
    with torch.no_grad():
        both = net(x, mask)
        alone = net(x[1:, :35], None)
        np.testing.assert_allclose(both[1, :35].numpy(), alone[0].numpy(), atol=1e-5)
        moved = x.clone()
        moved[0, 50] += 1.0
        changed = (net(moved, None) - net(x, None))[0].abs().sum(-1) > 1e-7
    reach = np.flatnonzero(changed.numpy())
    assert reach.min() >= 50 - model.receptive_field() and reach.max() <= 50 + 13


def test_pretraining_on_synthetic_talkers(fs, tmp_path) -> None:
    hp = {"channels": 16, "pretrain": {"utterances": 6, "epochs": 2}}
    cfg = _cfg("tcn", max_epochs=2)
    model, out = training.train_model("tcn", fs, cfg, tmp_path / "pre", **hp)
    history = pd.read_csv(tmp_path / "pre" / "history.csv")
    assert list(history["stage"]) == ["pretrain"] * 2 + ["train"] * 2
    assert out["epochs"] == 4 and out["best_epoch"] in (0, 1)
    talk = models.pretrain_set(fs, hp["pretrain"])
    assert talk.out_dir.name.startswith("talkers-") and talk.out_dir.name.endswith("-n6-s0")
    assert len(talk.clips) == 6
    assert talk.split_clips("train") == talk.clips
    np.testing.assert_array_equal(talk.reference, fs.reference)  # the same face coordinates
    kept = list((talk.out_dir / "pretrained").glob("*.pt"))
    assert len(kept) == 1  # the pre-training, kept for every run that pre-trains the same way
    again, _ = training.train_model("tcn", fs, cfg, tmp_path / "again", **hp)
    assert list((talk.out_dir / "pretrained").glob("*.pt")) == kept  # loaded, not redone
    clip = fs.split_clips("val")[0]
    np.testing.assert_array_equal(again.predict(fs, clip), model.predict(fs, clip))
    again_history = pd.read_csv(tmp_path / "again" / "history.csv")
    pretrain = history["stage"] == "pretrain"
    np.testing.assert_array_equal(
        again_history.loc[pretrain, "val_loss"], history.loc[pretrain, "val_loss"]
    )
    key = training.runs.run_key("tcn", fs, cfg, hp)
    assert key != training.runs.run_key("tcn", fs, cfg, {"channels": 16})


def test_runs_side_by_side_that_pretrain_alike_compute_it_once(fs, tmp_path) -> None:
    """Two runs that pre-train the same way, started together: one computes the pre-training,
    the other waits for it (a file lock) and loads it; both start from the same weights."""
    hp = {"channels": 16, "pretrain": {"utterances": 6, "epochs": 2, "seed": 1}}
    cfg = _cfg("tcn", max_epochs=1)
    jobs = [
        training.RunJob("a", "tcn", fs, tmp_path / "a", hp),
        training.RunJob("b", "tcn", fs, tmp_path / "b", dict(hp)),
    ]
    assert models.pretraining("tcn", hp) != models.pretraining("tcn", {**hp, "dropout": 0.2})
    talk = models.pretrain_set(fs, hp["pretrain"])  # built first, as lever_jobs does
    training.train_runs(jobs, cfg, n_jobs=2)
    assert len(list((talk.out_dir / "pretrained").glob("*.pt"))) == 1
    first, second = (pd.read_csv(tmp_path / j / "history.csv") for j in ("a", "b"))
    pre = first["stage"] == "pretrain"
    assert pre.sum() == 2
    np.testing.assert_array_equal(second.loc[pre, "val_loss"], first.loc[pre, "val_loss"])
    # a run that recomputed it would have spent seconds on it: the loaded one spent none
    assert second.loc[pre, "time_s"].tolist() == first.loc[pre, "time_s"].tolist()


def test_a_run_that_pretrains_starts_first_then_the_slow_then_the_larger_sets() -> None:
    pre = {"pretrain": {"utterances": 6, "epochs": 2}}
    jobs = [
        training.RunJob("ridge", "ridge", None, "r"),
        training.RunJob("lstm", "lstm", None, "l"),
        training.RunJob("live", "tcn", None, "v", {**pre, "future_frames": 4}),
        training.RunJob("talkers", "tcn", None, "t", pre),
        training.RunJob("again", "tcn", None, "g", dict(pre)),
        training.RunJob("live2", "tcn", None, "w", {**pre, "future_frames": 4}),
    ]
    # one run of each pre-training first, then the slow, then the rest in their order
    order = [j.label for j in training.runs.schedule(jobs)]
    assert order == ["live", "talkers", "lstm", "ridge", "again", "live2"]


def test_context_frames_is_what_the_predictions_depend_on(fs, runs) -> None:
    """Every model's ``context_frames`` (what Predictor pads by and the stream waits for):
    changing the features of frame ``n`` changes the outputs ``n - future .. n + past`` and no
    others, the extremes included. The utterance models are perturbed after their (causal)
    normaliser, whose running statistics the stream carries on itself; ``phones`` reads the
    audio, not feature frames (context 0, 0). A window LSTM forgets the oldest frames of its
    window below float32's resolution (changes of ~1e-8, or none, measured), so for the LSTMs
    only the newest side (the output whose window ends at ``n``) must be reached."""
    clip = fs.split_clips("val")[0]
    raw = np.asarray(fs.load(clip)["features"], dtype=np.float32)
    n = len(raw) // 2
    for name, (model, _, _) in runs.items():
        past, future = model.context_frames(fs)
        if name == "phones":
            assert (past, future) == (0, 0)
            continue
        assert n - future - past > 0 and n + past + future < len(raw), name
        condition = model._clip_condition(fs, clip)  # the emotion of tcn_emotion
        if isinstance(model, models.UtteranceModel):
            x = np.asarray(model.normalizer(fs)(raw), dtype=np.float32)
            predict = lambda v: model.predict_normalised(v, **condition)  # noqa: B023
        else:
            x = raw
            predict = lambda v: model.predict_features(fs, v, **condition)  # noqa: B023
        moved = x.copy()
        moved[n] += 3.0
        changed = np.flatnonzero(np.abs(predict(moved) - predict(x)).max(axis=1) > 0)
        if name == "mean_face":
            assert changed.size == 0 and (past, future) == (0, 0)
            continue
        assert changed.min() >= n - future and changed.max() <= n + past, (name, past, future)
        assert changed.min() == n - future, (name, past, future)
        if not isinstance(model, models.WindowLSTM):
            assert changed.max() == n + past, (name, past, future)


def test_the_plan_before_training_measures_and_changes_nothing(fs, runs, tmp_path, capsys) -> None:
    """train_runs says what it is about to train and an upper bound of its time, measured on
    this machine (a few batches of each run's own loader); the weights are those of a run
    trained without it (every fit seeds itself)."""
    from wav2kp.training import estimate

    jobs = [training.RunJob(n, n, fs, tmp_path / n, TINY[n]) for n in ("mean_face", "tcn")]
    cfg = _cfg("tcn")
    frame = estimate.plan(jobs, cfg, workers=1)
    assert list(frame.index) == ["mean_face", "tcn"]
    assert frame.loc["mean_face", "at_most_s"] == 0 and frame.loc["tcn", "s an epoch"] > 0
    assert frame.loc["tcn", "at_most_s"] >= frame.loc["tcn", "s an epoch"] * cfg.max_epochs - 1
    text = estimate.describe(frame, 1)
    assert "about to train 2 run(s)" in text and "closed form" in text and "at most" in text
    assert f"tcn on {fs.out_dir.name}," in text  # the set by its name
    assert estimate.schedule_s([5, 3, 3, 1], 2) == 6 and estimate.schedule_s([5], 4) == 5
    # trained in this process after the plan (progress "log": the plan is printed), the same
    # weights as the module's run trained without one
    logged = dataclasses.replace(cfg, progress="log")
    training.train_runs([jobs[1]], logged, n_jobs=1)
    assert "about to train 1 run(s)" in capsys.readouterr().out
    a = torch.load(tmp_path / "tcn" / "weights.pt", weights_only=True)
    b = torch.load(runs["tcn"][2] / "weights.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
