"""wav2kp.results: one record per notebook, results.json merged from them, and the runs they
choose (default, live, motion)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wav2kp import config, results


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path))
    return tmp_path


def _finished_run(label: str, subset: str = "quick") -> Path:
    run = config.run_dir("bundled", subset, label)
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "metrics.json").write_text("{}")
    return run


def test_each_notebook_has_one_record_path(home: Path) -> None:
    assert results.record_path("00_corpus") == home / "reports" / "corpus" / "00_corpus.json"
    assert (
        results.record_path("04_evaluation")
        == home / "reports" / "evaluation" / "04_evaluation.json"
    )
    assert len({results.record_path(n) for n in results.NOTEBOOKS}) == len(results.NOTEBOOKS)
    with pytest.raises(ValueError, match="Unknown notebook '07_other'"):
        results.record_path("07_other")


def test_save_and_load_plain_json(home: Path) -> None:
    path = results.save("02_features", {"frames": np.int64(3), "arr": np.arange(2), "x": 0.5})
    assert json.loads(path.read_text()) == {"frames": 3, "arr": [0, 1], "x": 0.5}
    assert results.load("02_features") == {"frames": 3, "arr": [0, 1], "x": 0.5}
    assert results.load("03_training") is None
    assert not list(path.parent.glob(".*"))  # no temporary left behind


def test_results_json_merges_and_survives_a_rerun_of_04(home: Path) -> None:
    study = {"corpus": "bundled", "subset": "quick", "models": {"tcn": {"mlmd": 2.0}}}
    results.save("05_synthesis", {"corpus": "bundled", "subset": "quick", "motion": {"m": 1}})
    assert not results.results_path().exists()  # no 04 record yet: nothing to merge into
    results.save("04_evaluation", study, markdown="| table |")
    assert json.loads(results.results_path().read_text()) == {**study, "motion": {"m": 1}}
    assert results.markdown_path().read_text() == "| table |"
    # re-running 04 alone keeps 05's section (it patched 04's file before)
    results.save("04_evaluation", {**study, "models": {"tcn": {"mlmd": 1.5}}})
    merged = json.loads(results.results_path().read_text())
    assert merged["models"]["tcn"]["mlmd"] == 1.5 and merged["motion"] == {"m": 1}
    assert results.study() == merged
    # 04's own record holds only its own numbers
    assert "motion" not in results.load("04_evaluation")
    # a 05 record of another study is not merged
    results.save("05_synthesis", {"corpus": "bundled", "subset": "full", "motion": {"m": 2}})
    assert "motion" not in results.study()


def test_require_names_the_notebook_to_run(home: Path) -> None:
    with pytest.raises(
        results.RecordError, match=r"Notebook 02_features has not run yet.*--only 02"
    ):
        results.require("02_features", "bundled", "quick", need="the feature sets")
    results.save("02_features", {"corpus": "bundled", "subset": "full"})
    with pytest.raises(results.RecordError, match="is for corpus 'bundled', subset 'full'"):
        results.require("02_features", "bundled", "quick")
    assert results.require("02_features", "bundled", "full")["subset"] == "full"


def test_default_live_and_motion_choices(home: Path) -> None:
    assert results.default_run() is None and results.live_run() is None
    assert results.motion_file() is None
    record = {
        "corpus": "bundled", "subset": "quick", "profile": "quick", "commit": "abc123",
        "best_model": "tcn", "default_model": "tcn_talkers",
        "levers": {"live_model": "tcn_live"},
    }  # fmt: skip
    results.save("04_evaluation", record)
    assert results.default_run() is None  # the chosen run is not there: never another one
    run = _finished_run("tcn_talkers")
    choice = results.default_run()
    assert choice.run == run and choice.label == "tcn_talkers"
    assert "notebook 04 chose" in choice.reason and "commit abc123" in choice.reason
    (run / "metrics.json").unlink()  # being retrained: not finished
    assert results.default_run() is None
    live = _finished_run("tcn_live")
    assert results.live_run().run == live
    results.save("04_evaluation", {**record, "default_model": None})
    best = _finished_run("tcn")
    assert results.default_run().run == best and "best model" in results.default_run().reason
    motion = home / "m.json"
    motion.write_text("{}")
    results.save(
        "05_synthesis", {"corpus": "bundled", "subset": "quick", "motion": {"file": str(motion)}}
    )
    assert results.motion_file() == motion
