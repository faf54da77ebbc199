"""Per-clip stages on a Dask cluster: the same files as the joblib run, and a worker killed in the
middle of an extraction changes nothing but the time it takes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wav2kp import parallel
from wav2kp.extraction import landmarks


def test_parse_cluster() -> None:
    assert parallel.parse_cluster(None) is None and parallel.parse_cluster("") is None
    assert parallel.parse_cluster("local:2") == ("local", 2)
    assert parallel.parse_cluster("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", "myhost:8786"):
        with pytest.raises(ValueError, match="local:N"):
            parallel.parse_cluster(bad)
    assert parallel.describe(None) == "joblib" and parallel.describe("local:3") == "dask local:3"


def _square(x: int) -> int:
    if x == 3:
        raise RuntimeError("three")
    return x * x


# starts a local Dask cluster (8 s): make test, not make test-fast
@pytest.mark.slow
def test_imap_unordered_joblib_and_dask_agree() -> None:
    tasks = [(i,) for i in range(6) if i != 3]
    local = dict(parallel.imap_unordered(_square, tasks, n_jobs=2))
    dask = dict(parallel.imap_unordered(_square, tasks, cluster="local:2"))
    assert local == dask == {(i,): i * i for i in range(6) if i != 3}
    # a task that raises on every try becomes what on_error says
    out = dict(
        parallel.imap_unordered(
            _square, [(3,), (2,)], cluster="local:1", on_error=lambda a, e: f"failed: {e}"
        )
    )
    assert out == {(3,): "failed: three", (2,): 4}
    # several tasks per Dask task: the same results, a failure still reported per task
    batched = dict(
        parallel.imap_unordered(
            _square, [(i,) for i in range(7)], cluster="local:2", batch=3,
            on_error=lambda a, e: f"failed: {e}",
        )
    )  # fmt: skip
    assert batched == {**{(i,): i * i for i in range(7) if i != 3}, (3,): "failed: three"}
    with pytest.raises(ValueError, match="batch"):
        list(parallel.imap_unordered(_square, [(1,)], cluster="local:1", batch=0))


def _same_outputs(a: Path, b: Path, clips: list[str]) -> None:
    """Audio byte for byte; keypoint files array for array (an npz's zip headers carry a time)."""
    for clip in clips:
        wav_a, lm_a = landmarks.clip_paths(a, clip)
        wav_b, lm_b = landmarks.clip_paths(b, clip)
        assert wav_a.read_bytes() == wav_b.read_bytes(), clip
        with np.load(lm_a) as za, np.load(lm_b) as zb:
            assert set(za.files) == set(zb.files)
            for key in za.files:
                np.testing.assert_array_equal(za[key], zb[key], err_msg=f"{clip}: {key}")
    # the same QC ("cached" aside: a clip whose worker died after writing it is found done)
    qa, qb = (pd.read_csv(d / "qc.csv").drop(columns=["source", "cached"]) for d in (a, b))
    pd.testing.assert_frame_equal(qa, qb)
    for sub in ("audio", "landmarks"):
        assert not list((b / sub).glob(".*")), "a half-written file was left behind"


@pytest.fixture(scope="module")
def joblib_run(quick_clips, tmp_path_factory):
    clips = quick_clips.iloc[:6]
    out = tmp_path_factory.mktemp("joblib") / "interim"
    report = landmarks.extract(clips, corpus="t", out_dir=out, n_jobs=2, progress=False)
    assert len(report.qc) == 6 and report.failures.empty
    return clips, out


@pytest.mark.slow
def test_dask_extraction_equals_joblib(joblib_run, tmp_path) -> None:
    clips, reference = joblib_run
    bad = pd.concat(
        [clips, pd.DataFrame({"clip": ["broken"], "path": [str(tmp_path / "broken.mp4")]})],
        ignore_index=True,
    )
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    report = landmarks.extract(
        bad, corpus="t", out_dir=tmp_path / "interim", progress=False, cluster="local:2"
    )
    assert list(report.failures["clip"]) == ["broken"]  # the same failures table
    import json

    recorded = json.loads((tmp_path / "interim" / "manifest.json").read_text())["executor"]
    assert recorded == "dask local:2"  # what produced the outputs is recorded
    assert json.loads((reference / "manifest.json").read_text())["executor"] == "joblib"
    _same_outputs(reference, tmp_path / "interim", list(clips["clip"]))
    again = landmarks.extract(
        clips, corpus="t", out_dir=tmp_path / "interim", cluster="local:2", batch=4
    )
    assert again.n_cached == 6  # the same cache (and clips batched 4 to a Dask task)


@pytest.mark.slow
def test_dask_corpus_build_features_and_real_equal_joblib(joblib_run, tmp_path) -> None:
    """The other per-clip stages on 2 Dask workers: the bundled corpus build (videos, ground
    truth and corpus.json byte for byte), the feature build (every array of every utterance,
    feature_set.json and splits.csv byte for byte) and evaluate-real (the same table, the same
    failures)."""
    import shutil

    from wav2kp import config
    from wav2kp.corpus import bundled
    from wav2kp.evaluation import real
    from wav2kp.features import dataset

    # corpus build: 2 clips
    subset = {"emotions": [1], "sentences": [1]}
    a = bundled.build(tmp_path / "a", subset=subset, n_jobs=2, progress=False)
    b = bundled.build(tmp_path / "b", subset=subset, progress=False, cluster="local:2")
    assert a.n_built == b.n_built == 2 and not a.failures and not b.failures
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) == 5  # 2 videos, 2 ground truths, corpus.json
    for rel in files:
        fa, fb = tmp_path / "a" / rel, tmp_path / "b" / rel
        if rel.suffix == ".npz":
            with np.load(fa) as za, np.load(fb) as zb:
                for key in za.files:
                    np.testing.assert_array_equal(za[key], zb[key], err_msg=f"{rel}: {key}")
        else:
            assert fa.read_bytes() == fb.read_bytes(), rel

    # feature build from the same extracted clips
    clips, interim = joblib_run
    fa, _ = dataset.build_feature_set(clips, interim, tmp_path / "fa", n_jobs=2)
    fb, _ = dataset.build_feature_set(clips, interim, tmp_path / "fb", cluster="local:2")
    for name in ("feature_set.json", "splits.csv"):
        assert (tmp_path / "fa" / name).read_bytes() == (tmp_path / "fb" / name).read_bytes()
    assert fa.clips == fb.clips and len(fa.clips) == 6
    for clip in fa.clips:
        ua, ub = fa.load(clip), fb.load(clip)
        assert set(ua) == set(ub)
        for key in ua:
            np.testing.assert_array_equal(np.asarray(ua[key]), np.asarray(ub[key]), err_msg=key)

    # evaluate-real with the shipped model: one video, one broken file
    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copy(clips["path"].iloc[0], folder / "someone.mp4")
    (folder / "broken.mp4").write_bytes(b"\x00" * 2000)
    runs = {"shipped": config.shipped_dir()}
    local = real.evaluate_real(folder, runs, n_jobs=2)
    shutil.rmtree(config.interim_dir(f"real_{config.corpus_name(folder)}"))  # compute again
    dask = real.evaluate_real(folder, runs, cluster="local:2")
    pd.testing.assert_frame_equal(local["videos"], dask["videos"])
    pd.testing.assert_frame_equal(local["failures"], dask["failures"])
    assert list(dask["failures"]["file"]) == ["broken.mp4"] and len(dask["videos"]) == 1


@pytest.mark.slow
def test_a_worker_killed_mid_extraction(joblib_run, tmp_path) -> None:
    from distributed import Client, LocalCluster

    clips, reference = joblib_run
    out = tmp_path / "interim"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        killed = []

        def kill_one_when_busy() -> None:
            deadline = time.time() + 120
            while time.time() < deadline and not killed:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy and list((out / "landmarks").glob("*.npz")):
                    pids = client.run(os.getpid, workers=[busy[0]])
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.05)

        killer = threading.Thread(target=kill_one_when_busy)
        killer.start()
        report = landmarks.extract(clips, corpus="t", out_dir=out, progress=False, cluster=client)
        killer.join()
    assert killed, "no worker was killed: the test did not test anything"
    assert len(report.qc) == 6 and report.failures.empty
    _same_outputs(reference, out, list(clips["clip"]))


@pytest.mark.slow
def test_training_on_two_processes_matches_one(quick_clips, tmp_path) -> None:
    """`wav2kp train` with Lightning DDP on 2 CPU processes (gloo; the second process is the
    same command, launched by Lightning as torchrun would), 2 utterances each per step, against
    one process with 4: one run folder, the same epochs, validation M-LMD within 5 %."""
    import json
    import subprocess
    import sys

    def train(run: Path, *extra: str) -> dict:
        cmd = [sys.executable, "-m", "wav2kp", "train", "--model", "tcn", "--subset", "quick",
               "--epochs", "4", "--hidden", "16", "--run", str(run), *extra]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((run / "metrics.json").read_text())

    one = train(tmp_path / "one", "--batch-size", "4")
    two = train(tmp_path / "two", "--batch-size", "2", "--devices", "2", "--strategy", "ddp")
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "config.json",
        "history.csv",
        "metrics.json",
        "weights.pt",
    ]
    assert two["epochs"] == one["epochs"] == 4
    assert len(pd.read_csv(tmp_path / "two" / "history.csv")) == 4
    assert two["val_mlmd_pct"] == pytest.approx(one["val_mlmd_pct"], rel=0.05)
    assert two["run_key"] != one["run_key"]  # devices and strategy are part of the run
    cfg = json.loads((tmp_path / "two" / "config.json").read_text())["train"]
    assert (cfg["devices"], cfg["strategy"], cfg["batch_size"]) == (2, "ddp", 2)


@pytest.mark.slow
def test_cli_cluster_flag(joblib_run, tmp_path, capsys) -> None:
    """`wav2kp extract FILE --cluster local:1 --batch 2`: the clip extracted on Dask; a
    malformed --cluster is a usage error naming the forms it takes, before any work."""
    import json

    from wav2kp import cli

    clips, reference = joblib_run
    video = clips["path"].iloc[0]
    out = tmp_path / "interim"
    assert (
        cli.main(["extract", video, "--out", str(out), "--cluster", "local:1", "--batch", "2"]) == 0
    )
    assert json.loads((out / "manifest.json").read_text())["executor"] == "dask local:1"
    clip = clips["clip"].iloc[0]
    wav_ref, _ = landmarks.clip_paths(reference, clip)
    wav_out, _ = landmarks.clip_paths(out, Path(video).stem)
    assert wav_ref.read_bytes() == wav_out.read_bytes()
    for command in (["extract", video], ["corpus", "build"], ["evaluate-real", str(tmp_path)]):
        with pytest.raises(SystemExit) as stop:
            cli.main([*command, "--cluster", "myhost:8786"])
        assert stop.value.code == 2
        assert "local:N" in capsys.readouterr().err
