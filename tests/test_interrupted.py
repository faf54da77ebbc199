"""An interrupted study loses nothing: killed (SIGKILL, its whole process group, as a power cut or
a killed terminal would) in the middle of notebook 03 and again in notebook 04, then run again,
it finishes with the numbers of a study that was never interrupted, and no partial file was
taken for a complete one on the way."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wav2kp import config

#: A small study: the quick corpus, a few models, no extra runs (what is checked is the
#: bookkeeping, not the models).
OVERRIDES = [
    "models=[mean_face, energy, tcn]",
    "epochs=4",
    "ablations=false",
    "levers=false",
    "real_dir=null",
    "train_corpora={}",
    "experiment_corpora={}",
    "player_clips=1",
]
NOTEBOOKS = ["00", "01", "02", "03", "04"]


def _home(tmp: Path, name: str) -> Path:
    home = tmp / name
    for part in ("raw", "interim"):
        shutil.copytree(config.data_dir() / part / "bundled", home / "data" / part / "bundled")
    return home


def _command() -> list[str]:
    cmd = [sys.executable, "-m", "wav2kp", "study", "--profile", "quick", "--quiet"]
    for key in NOTEBOOKS:
        cmd += ["--only", key]
    for item in OVERRIDES:
        cmd += ["-p", item]
    return cmd


def _start(home: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "WAV2KP_HOME": str(home)}
    return subprocess.Popen(
        _command(), cwd=config.REPO_ROOT, env=env, stdout=log.open("w"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600.0) -> None:
    """SIGKILL the study's whole process group (runner, kernel, workers) once ``ready()``."""
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, "the study ended before it could be interrupted"
        assert time.monotonic() - t0 < timeout, "the study never reached the point to kill"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _numbers(record, path=""):
    """Every number of a record, by its path (timings and commit left out)."""
    if isinstance(record, dict):
        for k, v in record.items():
            if not any(t in str(k) for t in ("wall", "time_s", "commit", "versions")):
                yield from _numbers(v, f"{path}/{k}")
    elif isinstance(record, list):
        for i, v in enumerate(record):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(record, (int, float)) and not isinstance(record, bool):
        yield path, float(record)


@pytest.mark.slow
def test_a_study_killed_in_03_and_in_04_finishes_with_the_same_numbers(
    quick_clips, tmp_path: Path
) -> None:
    # two homes of names of one length: manifests record paths, so a set's bytes on disk
    # (a number of 02's record) depend on the home's name
    calm = _home(tmp_path, "calm")
    rough = _home(tmp_path, "hurt")
    # the undisturbed study runs beside the interrupted one (a study is mostly one core's work;
    # the numbers do not depend on the machine's load)
    calm_log = tmp_path / "calm.log"
    undisturbed = _start(calm, calm_log)

    models = rough / "data" / "models"
    log = tmp_path / "rough.log"
    # killed while notebook 03 trains (its checkpoints being written)
    proc = _start(rough, log)
    _kill_when(
        proc, lambda: "03_training" in log.read_text() and any(models.glob("*/checkpoints/*"))
    )
    assert not (rough / "reports" / "training" / "03_training.json").exists()  # killed in 03
    # killed in notebook 04 (its first predictions kept, scoring under way)
    proc = _start(rough, log)
    _kill_when(
        proc,
        lambda: (
            "04_evaluation.ipynb" in log.read_text() and any(models.glob("*/predictions/*.npz"))
        ),
    )
    # and run to the end
    env = {**os.environ, "WAV2KP_HOME": str(rough)}
    done = subprocess.run(_command(), cwd=config.REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert undisturbed.wait(600) == 0, calm_log.read_text()[-3000:]

    a = dict(_numbers(json.loads((calm / "reports" / "results.json").read_text())))
    b = dict(_numbers(json.loads((rough / "reports" / "results.json").read_text())))
    assert a.keys() == b.keys() and len(a) > 100
    differ = {
        k: (a[k], b[k]) for k in a if not (a[k] == b[k] or math.isnan(a[k]) and math.isnan(b[k]))
    }
    assert not differ, differ
    for name in ("01_extraction", "02_features", "03_training"):
        stage = name.split("_", 1)[1]
        ra = dict(_numbers(json.loads((calm / "reports" / stage / f"{name}.json").read_text())))
        rb = dict(_numbers(json.loads((rough / "reports" / stage / f"{name}.json").read_text())))
        assert ra == rb, name
    # what the killed runs left is not taken for anything: no temporary is left once done
    left = [p for p in (rough / "data").rglob("*") if ".partial" in p.name]
    assert not left, left


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path: Path) -> None:
    from wav2kp.manifest import atomic_path, remove_stale_partials

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)  # a process that has ended
    (tmp_path / "models" / "run").mkdir(parents=True)
    stale = tmp_path / "models" / "run" / f".weights.pt.{pid}.partial"
    stale.write_bytes(b"half")
    stale_dir = tmp_path / f".vid2vid.{pid}.partial-abc"
    stale_dir.mkdir()
    with atomic_path(tmp_path / "mine.json") as ours:
        ours.write_text("{")  # being written by this process
        keep = tmp_path / ".notes.partial.txt"  # no writer's id: not ours to judge
        keep.write_text("x")
        removed = remove_stale_partials(tmp_path)
        assert sorted(removed) == sorted([stale, stale_dir]) and ours.exists() and keep.exists()
        ours.write_text("{}")
    assert (tmp_path / "mine.json").read_text() == "{}"
