"""The model shipped inside the package: it loads safely, predicts before any study, and
reproduces the numbers it was released with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from wav2kp import cli, config
from wav2kp.training import inference, release

SHIPPED = config.shipped_dir()


@pytest.mark.parametrize("live", [False, True])
def test_the_package_ships_a_model(live) -> None:
    SHIPPED = config.shipped_dir(live=live)
    assert SHIPPED is not None, "a shipped model is missing: run `make release-model`"
    record = release.release_record(SHIPPED)
    for key in ("model", "run", "weights_sha256", "weights_bytes", "study", "check"):
        assert key in record, key
    assert record["study"]["profile"] == "full"
    assert (SHIPPED / "weights.pt").stat().st_size == record["weights_bytes"] < 5_000_000
    from wav2kp.manifest import file_sha256

    assert file_sha256(SHIPPED / "weights.pt") == record["weights_sha256"]
    state = torch.load(SHIPPED / "weights.pt", weights_only=True)  # plain tensors only
    assert state and all(torch.is_tensor(v) for v in state.values())
    assert (SHIPPED / "feature_set" / "feature_set.json").is_file()


@pytest.mark.parametrize("live", [False, True])
def test_the_shipped_model_reproduces_its_recorded_numbers(live) -> None:
    SHIPPED = config.shipped_dir(live=live)
    record = release.release_record(SHIPPED)
    numbers = release.check(inference.Predictor(SHIPPED))
    assert numbers["clip"] == record["check"]["clip"]
    assert numbers["frames"] == record["check"]["frames"]
    for key in ("mouth_corr", "mouth_mlmd_pct", "mean_open_pct"):
        assert numbers[key] == pytest.approx(record["check"][key], abs=1e-4), key
    # and it follows the clip it never saw (a held-out sentence's emotional take)
    assert numbers["mouth_corr"] > 0.6


@pytest.mark.slow  # writes a video
def test_predict_works_before_any_study(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path / "fresh"))
    predictor = inference.Predictor.default()
    assert predictor.run_dir == SHIPPED
    rate = inference.RATE
    t = np.arange(int(1.5 * rate)) / rate
    tone = (0.2 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    from wav2kp import media

    wav = tmp_path / "tone.wav"
    media.write_wav(wav, tone, rate)
    out = tmp_path / "out"
    assert cli.main(["predict", str(wav), "--out", str(out)]) == 0
    points = np.load(out / "keypoints.npy")
    assert points.shape[1:] == (68, 2) and np.isfinite(points).all()
    said = capsys.readouterr().out
    assert f"model: tcn_emotion ({SHIPPED}): the model shipped with the package" in said
    # a run of one's own predicts only when named, and says so
    run = tmp_path / "fresh" / "data" / "models" / "mine"
    shutil.copytree(SHIPPED, run)
    assert cli.main(["predict", str(wav), "--out", str(out)]) == 0
    assert "the model shipped with the package" in capsys.readouterr().out
    assert cli.main(["predict", str(wav), "--out", str(out), "--model", str(run)]) == 0
    assert f"({run}): named with --model" in capsys.readouterr().out


def test_release_model_refuses_a_study_that_is_not_full(tmp_path, monkeypatch, capsys) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"profile": "quick", "best_model": "tcn"}))
    assert cli.main(["release-model", "--results", str(results), "--run", str(SHIPPED)]) == 2
    assert "full" in capsys.readouterr().err


def test_the_shipped_live_model_is_what_live_uses_before_any_study(tmp_path, monkeypatch) -> None:
    from wav2kp import live

    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path))
    model = live.load_model(None)
    assert model.predictor.run_dir == config.shipped_dir(live=True)
    assert model.predictor.context_s[1] == pytest.approx(0.1)  # 100 ms of look-ahead
    assert model.latency_bound_ms <= 150  # issue 18's goal, before transport
    record = release.release_record(config.shipped_dir(live=True))
    assert record["run"].endswith("_live") and record["study"]["profile"] == "full"


def test_what_a_release_learned_from_and_may_ship() -> None:
    """A run of a mixed set learned from its corpora and its pre-training; shipped weights may
    learn from the bundled corpus, the synthetic talkers and GRID s1 (credited), never from a
    corpus whose licence allows experiments only."""
    from types import SimpleNamespace as NS

    from wav2kp.training import release

    fs = NS(out_dir=Path("/x/data/processed/bundled/mfcc40_timestamps_face+grid_s1+lrc_ar"),
            params={"mixed": {"sources": ["grid_s1", "lrc_ar"]}})  # fmt: skip
    model = NS(hparams={"pretrain": {"utterances": 8, "epochs": 1}})
    data = release.learned_from(model, fs)
    assert data == ["bundled", "grid_s1", "lrc_ar", "talkers"]
    assert [d for d in data if d not in release.DATA_LICENCES] == ["lrc_ar"]
    assert "CC BY 4.0" in release.DATA_LICENCES["grid_s1"]
    assert "Cooke" in release.DATA_LICENCES["grid_s1"]
    plain = NS(out_dir=Path("/x/data/processed/bundled/mfcc40_timestamps_face"), params={})
    assert release.learned_from(NS(hparams={}), plain) == ["bundled"]
