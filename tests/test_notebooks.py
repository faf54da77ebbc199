"""The notebooks, run for real: plain papermill with parameters, and the study runner pointed at a
generic folder of videos. Results are read from the JSON the notebooks write (not cell text)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wav2kp import config, study
from wav2kp.corpus import bundled

pytestmark = pytest.mark.slow

NB00 = config.NOTEBOOKS_DIR / "00_corpus.ipynb"


def _results(name: str) -> dict:
    return json.loads((config.reports_dir() / "corpus" / name).read_text())


def test_plain_papermill_rerun_with_parameters(quick_corpus, tmp_path: Path) -> None:
    """The README's papermill example: parameters on the command line, repo root as cwd."""
    papermill = Path(sys.executable).with_name("papermill")
    out = tmp_path / "00_corpus.ipynb"
    cmd = [
        str(papermill),
        str(NB00),
        str(out),
        "-p",
        "corpus",
        "bundled",
        "-p",
        "subset",
        "quick",
        "-k",
        "python3",
        "--cwd",
        str(config.REPO_ROOT),
        "--no-progress-bar",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file()

    numbers = _results("00_corpus.json")
    stats = bundled.statistics(quick_corpus.out_dir, bundled.subset_names("quick"))
    assert numbers["corpus"] == "bundled" and numbers["subset"] == "quick"
    assert numbers["clips"] == 24
    assert numbers["emotions"] == 4
    assert numbers["neutral_takes"] == 12
    assert numbers["speakers"] == [bundled.SPEAKER]
    assert numbers["voice_variants"] >= 3
    assert numbers["min_face_width_px"] >= 200
    assert numbers["frames"] == int(stats["frames"].sum())
    assert numbers["total_duration_s"] == pytest.approx(stats["duration_s"].sum(), rel=1e-9)
    # the notebook found the corpus already built: nothing rebuilt
    assert numbers["build_wall_s"] < 30

    # `make repro`: nbval re-runs the executed notebook and compares the cells marked
    # NBVAL_CHECK_OUTPUT with the outputs recorded in it; a tampered record fails.
    def nbval(notebook: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "--nbval-lax",
                "-p",
                "no:cacheprovider",
                str(notebook),
            ],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            cwd=config.REPO_ROOT,
            timeout=300,
        )

    assert nbval(out).returncode == 0
    record = json.loads(out.read_text())
    checked = [c for c in record["cells"] if "NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    assert checked and "'clips': 24" in "".join(checked[0]["outputs"][0]["text"])
    checked[0]["outputs"][0]["text"] = ["{'clips': 25}\n"]
    tampered = tmp_path / "tampered.ipynb"
    tampered.write_text(json.dumps(record))
    assert nbval(tampered).returncode == 1


def test_study_runner_on_a_generic_folder(quick_corpus, tmp_path: Path) -> None:
    """`wav2kp study -p corpus=<folder>`: a folder of videos with non-CH-Unicamp names runs
    notebook 00 through the generic path (unknown emotions, no ground truth)."""
    folder = tmp_path / "my videos"
    folder.mkdir()
    for src, name in [("Em1_Fala1_Sintetica", "talk_a.mp4"), ("Em20_Fala2_Sintetica", "b.mp4")]:
        shutil.copy(quick_corpus.out_dir / f"{src}.mp4", folder / name)
    (folder / "notes.txt").write_text("not a video")

    runs = study.run_study(profile="quick", only=["00"], overrides={"corpus": str(folder)})
    assert [r.status for r in runs] == ["ok"]
    assert runs[0].parameters["corpus"] == str(folder)
    assert runs[0].html_path.is_file()

    numbers = _results("00_corpus.json")
    assert numbers["corpus"] == str(folder)
    assert numbers["subset"] is None
    assert numbers["clips"] == 2
    assert numbers["emotions"] == 0  # no CH-Unicamp names: emotion unknown
    assert numbers["speakers"] == ["unknown"]
    stats = bundled.statistics(
        quick_corpus.out_dir, ["Em1_Fala1_Sintetica", "Em20_Fala2_Sintetica"]
    )
    # durations come from probing the files: the container's duration, within a frame
    assert numbers["total_duration_s"] == pytest.approx(stats["duration_s"].sum(), abs=0.1)

    index = (config.reports_dir() / "html" / "index.html").read_text()
    assert "00_corpus.html" in index and "quick" in index
    manifest = json.loads((config.reports_dir() / "html" / "study.json").read_text())
    assert manifest["profile"] == "quick"


def test_notebook_02_parameters_reach_training_and_evaluation(
    quick_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wav2kp study -p n_mfcc=20 -p pca_variance=0.95``: notebook 02 builds and records sets
    with those settings, notebook 03 trains on them (each run's feature set carries them) and
    notebook 04 scores those runs, so the results move. Run on a copy of the session's quick
    corpus and extraction (its study stays as it is), with a few models and no extra runs."""
    from wav2kp import results, training

    before = results.study()
    for part in ("raw", "interim"):
        shutil.copytree(config.data_dir() / part / "bundled", tmp_path / "data" / part / "bundled")
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path))
    overrides = {
        "n_mfcc": 20,
        "pca_variance": 0.95,
        "models": ["mean_face", "energy", "ridge", "tcn"],
        "epochs": 2,
        "ablations": False,
        "levers": False,
        "real_dir": None,
        "player_clips": 1,
    }
    runs = study.run_study(
        profile="quick", only=["02", "03", "04"], overrides=overrides, live=False
    )
    assert [r.status for r in runs] == ["ok"] * 3
    recorded = results.load("02_features")["feature_sets"]
    assert recorded["spec"]["n_mfcc"] == 20 and recorded["spec"]["pca_variance"] == 0.95
    assert recorded["sets"]["default"]["name"] == "mfcc20_timestamps_face"
    trained = training.study_training("bundled", "quick")
    assert trained.models == overrides["models"] and trained.cfg.max_epochs == 2
    for name, run in trained.runs.items():
        params = json.loads((run / "config.json").read_text())["feature_set"]["params"]
        assert params["mfcc"]["n_mfcc"] == 20 and params["pca_variance"] == 0.95, name
    after = results.study()
    assert set(after["models"]) == set(overrides["models"])
    # ridge reads every coefficient of the window (energy reads c0 alone, which 20 MFCCs from
    # the same 40 mel bands leave as it was); the TCN trained 2 epochs instead of 15 as well
    for name in ("ridge", "tcn"):
        assert after["models"][name]["mlmd"] != pytest.approx(before["models"][name]["mlmd"])


def test_the_study_on_a_real_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``wav2kp study -p corpus=../shared/real_corpora/grid_s1``: every notebook runs on a real
    corpus without ground truth (a handful of GRID s1 sentences, a few models): split by
    sentence, scored against the extracted keypoints, the mirrored-dlib stand-in for the noise
    floor, the pages written."""
    from wav2kp import results

    grid = config.REPO_ROOT.parent / "shared" / "real_corpora" / "grid_s1"
    if not grid.is_dir():
        pytest.skip(f"real corpora not available ({grid} is absent)")
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path))
    overrides = {
        "corpus": str(grid),
        "subset": 12,
        "models": ["mean_face", "energy", "ridge", "tcn"],
        "epochs": 2,
        "ablations": False,
        "levers": False,
        "real_dir": None,
        "train_corpora": {},
        "experiment_corpora": {},
        "player_clips": 1,
    }
    runs = study.run_study(profile="quick", overrides=overrides, live=False)
    assert [r.status for r in runs] == ["ok"] * 6 and all(r.html_path.is_file() for r in runs)
    corpus = results.load("00_corpus")
    assert corpus["clips"] == 12 and corpus["speakers"] == ["s1"]
    extraction = results.load("01_extraction")
    assert extraction["extracted"] == 12 and "noise_floor" not in extraction
    assert 0 < extraction["mirror_floor"]["mouth"] < 5  # dlib against itself, % IOD
    record = results.study()
    assert record["reference"] == "extracted" and record["clips"] >= 1
    assert record["noise_floor_kind"].startswith("stand-in")
    assert 0 < record["noise_floor"]["mlmd"] < record["models"]["mean_face"]["mlmd"]
    assert set(record["models"]) == set(overrides["models"])
    assert results.load("05_synthesis")["new_sentence_frames"] > 30
