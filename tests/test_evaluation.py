"""Evaluation: per-clip scoring on hand-made references, and the study's ``results.json`` from a
quick-profile run of notebooks 03 and 04 with its invariants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_metrics import FPS, talking
from wav2kp import config, evaluation, manifest, metrics, results, training


def reference(points: np.ndarray, good: np.ndarray | None = None) -> evaluation.Reference:
    n = len(points)
    silent = np.zeros(n, bool)
    silent[:10] = True
    return evaluation.Reference(
        clip="c",
        times=np.arange(n) / FPS,
        points=points,
        good=np.ones(n, bool) if good is None else good,
        source="groundtruth",
        extracted=None,
        extracted_good=None,
        silent=silent,
        fps=FPS,
        info={"emotion_name": "Joy", "neutral": False},
    )


def test_score_clip_perfect_prediction() -> None:
    seq, _ = talking(120)
    s = evaluation.score_clip(seq, reference(seq))
    assert (s["lmd"], s["mlmd"], s["velocity"], s["mouth_area"]) == (0.0, 0.0, 0.0, 0.0)
    assert s["mouth_corr"] == pytest.approx(1.0) and s["offset_ms"] == pytest.approx(0.0)
    assert s["jitter"] == pytest.approx(s["jitter_reference"])
    assert (s["frames"], s["scored"], s["flagged"], s["silent_frames"]) == (120, 120, 0, 10)
    assert s["emotion_name"] == "Joy"


def test_flagged_reference_frames_are_not_scored_and_are_counted() -> None:
    seq, _ = talking(120)
    good = np.ones(120, bool)
    good[40:50] = False
    pred = seq + [0.0, 2.0]  # 2 % of the 100 px IOD everywhere ...
    pred[40:50] += 300.0  # ... and garbage where the reference is bad
    ref = reference(seq, good)
    s = evaluation.score_clip(pred, ref)
    assert s["scored"] == 110 and s["flagged"] == 10
    assert s["lmd"] == pytest.approx(2.0) and s["mlmd"] == pytest.approx(2.0)
    # a prediction without a pose (NaN rows) is flagged too, never scored as zero
    pred[0] = np.nan
    assert evaluation.score_clip(pred, ref)["flagged"] == 11
    with pytest.raises(ValueError, match="c: prediction has shape"):
        evaluation.score_clip(pred[:5], ref)


def test_late_prediction_has_a_positive_offset() -> None:
    seq, _ = talking(300)
    late = np.roll(seq, 3, axis=0)
    s = evaluation.score_clip(late, reference(seq))
    assert s["offset_ms"] == pytest.approx(3000 / FPS, abs=0.25 * 1000 / FPS)


def test_invariants_checker() -> None:
    ok = {
        "models": {
            "mean_face": {"mlmd": 3.0, "offset_ms": None},
            "ridge": {"mlmd": 2.0, "offset_ms": 10.0},
            "tcn": {"mlmd": 2.5, "offset_ms": -30.0},
        }
    }
    assert evaluation.check_invariants(ok) == []
    bad = json.loads(json.dumps(ok))
    bad["models"]["tcn"] = {"mlmd": 3.1, "offset_ms": 40.0}
    problems = evaluation.check_invariants(bad)
    assert len(problems) == 2 and all(p.startswith("tcn") for p in problems)


def _notebook_results(name: str) -> dict:
    return results.load(name)


def test_real_record_is_plain_json() -> None:
    from wav2kp.evaluation import real

    videos = pd.DataFrame(
        {
            "file": ["a.mp4", "a.mp4", "b.mp4", "b.mp4"],
            "model": ["energy", "tcn", "energy", "tcn"],
            "mouth_corr": [0.4, 0.6, 0.5, np.nan],
            "offset_ms": [40.0, 0.0, -40.0, 20.0],
            "area_corr": [0.3, 0.5, 0.4, 0.6],
        }
    )
    result = {"videos": videos, "speech": pd.DataFrame(), "failures": pd.DataFrame()}
    rec = real.record(result, "/some/folder")
    assert rec["folder"] == "/some/folder" and rec["files"] == 2
    assert rec["models"]["energy"]["mouth_corr"] == pytest.approx(0.45)
    assert rec["models"]["tcn"]["mouth_corr"] == pytest.approx(0.6)  # NaN left out of the mean
    assert rec["models"]["energy"]["median_offset_ms"] == 0.0
    json.dumps(rec, allow_nan=False)
    assert real.record({**result, "videos": videos.iloc[:0]}, "/x") is None


def test_an_offset_at_the_end_of_the_search_says_nothing() -> None:
    from wav2kp.evaluation import real

    assert real.at_search_edge(320.0, 25.0) and real.at_search_edge(-320.0, 25.0)  # 8 frames
    assert not real.at_search_edge(300.0, 25.0) and not real.at_search_edge(float("nan"), 25.0)
    assert real.at_search_edge(1000 * 9 / (30000 / 1001), 30000 / 1001)  # 9 frames at 29.97
    videos = pd.DataFrame(
        {"file": ["a", "b", "c"], "model": ["m"] * 3, "mouth_corr": [0.5, 0.1, 0.6],
         "offset_ms": [20.0, 320.0, 0.0], "area_corr": [0.4] * 3, "at_edge": [False, True, False]}
    )  # fmt: skip
    assert int(real.summary(videos).loc["m", "at_edge"]) == 1


def test_levers_need_a_base_among_the_study_runs() -> None:
    from wav2kp.evaluation import levers

    with pytest.raises(ValueError, match="lever_base 'tcn_emotion' is not one of the study's runs"):
        levers.measure(
            {"tcn": (None, None)}, pd.DataFrame(), None, [], study_models=["tcn"], cfg=None,
            hidden=None, base="tcn_emotion", talkers=4, pretrain_epochs=1, corpus="bundled",
            subset="quick",
        )  # fmt: skip


def test_levers_are_chosen_by_number() -> None:
    from wav2kp.evaluation import levers

    every = levers.selected(True)
    assert every == frozenset(range(1, 8)) and levers.selected(False) == frozenset()
    assert levers.selected([7]) == {7} and levers.selected("6") == {6}
    with pytest.raises(ValueError, match=r"no lever \[9\]"):
        levers.selected([7, 9])
    with pytest.raises(ValueError, match="a list of lever numbers"):
        levers.selected(["phones"])
    # every run of lever_runs has its number; lever 7 is the scratch run and the extras
    runs = levers.lever_runs("tcn_emotion", 4, 1, None)
    seven = {r for r in runs if levers._number(r, "tcn_emotion") == 7}
    assert seven == {"tcn_emotion_real_scratch", "tcn_emotion_real_phones",
                     "tcn_emotion_real_formants"}  # fmt: skip
    assert levers._number("tcn_emotion+pose", "tcn_emotion") == 3


def test_the_default_model_keeps_the_invariants_ships_and_streams() -> None:
    """choose_default: the best real correlation among runs that keep the bundled invariants,
    learned from licensed data and stream; within REAL_TIE the lower bundled M-LMD wins."""
    from wav2kp.evaluation import levers

    rows = {  # run: (real corr, test M-LMD, keeps invariants, streams)
        "tcn_emotion": (0.46, 2.37, True, True),
        "tcn_emotion_real": (0.514, 2.24, True, True),
        "tcn_emotion_real_scratch": (0.519, 2.45, False, True),  # bundled invariants broken
        "tcn_emotion_real_phones": (0.579, 2.44, True, False),  # needs the whole recording
        "tcn_emotion_real_experiment": (0.556, 2.27, True, True),  # lrc_ar: never shipped
        "tcn_emotion+pose": (0.60, 2.20, True, True),  # a way of placing, not a run
        "tcn_emotion_real_live": (0.53, 2.34, True, True),  # live: not the offline default
    }
    table = pd.DataFrame(
        [
            {
                "run": r,
                "real mouth corr": c,
                "test M-LMD": m,
                "keeps bundled invariants": k,
                "streams": st,
            }
            for r, (c, m, k, st) in rows.items()
        ]  # fmt: skip
    ).set_index("run")
    assert levers.choose_default(table, "x") == "tcn_emotion_real"
    assert levers.live_run(table) == "tcn_emotion_real_live"
    # where streaming is not known (an older table) the phones run would win
    assert levers.choose_default(table.drop(columns="streams"), "x") == "tcn_emotion_real_phones"
    # a tie within REAL_TIE goes to the lower bundled M-LMD
    tie = table.copy()
    tie.loc["tcn_emotion", "real mouth corr"] = 0.514 - levers.REAL_TIE / 2
    tie.loc["tcn_emotion", "test M-LMD"] = 2.0
    assert levers.choose_default(tie, "x") == "tcn_emotion"
    assert levers.choose_default(table.iloc[0:0], "fallback") == "fallback"


@pytest.mark.slow
def test_quick_study_results(quick_study) -> None:
    """The whole quick study through the study runner, once for the test session (nbval then
    re-executes the notebooks on the same data and finds every run trained): each notebook's
    JSON holds what it promises, results.json every number the issues name, and the
    invariants hold."""
    assert [r.status for r in quick_study] == ["ok"] * 6
    # 01: every clip extracted, dlib close to the ground truth
    nb01 = _notebook_results("01_extraction")
    assert nb01["clips"] == nb01["extracted"] == 24 and nb01["failed"] == 0
    assert nb01["detection_rate"] == 1.0 and nb01["frames"] > 2000
    assert 0 < nb01["noise_floor"]["mouth"] < 5 and 0 < nb01["noise_floor"]["all"] < 5
    # 02: the default feature set, its splits, the original pairing's drift, exact round trip
    nb02 = _notebook_results("02_features")
    assert nb02["feature_set"] == "mfcc40_timestamps_face" and nb02["clips"] == 24
    assert set(nb02["frames"]) == {"train", "val", "test"} and min(nb02["frames"].values()) > 500
    assert nb02["context_frames"] == [20, 20]
    assert 400 < nb02["original_drift_end_of_clip_ms"] < 600  # 11 % of a ~4.4 s clip
    assert nb02["round_trip_max_px"] < 1e-3
    # 03: every model trained, scored on validation, its run folder there
    nb03 = _notebook_results("03_training")
    assert set(nb03["models"]) == {
        "mean_face", "energy", "ridge", "lstm_original", "lstm", "tcn", "tcn_emotion"
    }  # fmt: skip
    for name, rec in nb03["models"].items():
        assert 0.5 < rec["val_mlmd_pct"] < 10, name
        assert Path(rec["run"]) == config.run_dir("bundled", "quick", name)
    assert nb03["models"]["ridge"]["val_mlmd_pct"] < nb03["models"]["mean_face"]["val_mlmd_pct"]
    # 05: a new sentence rendered, streaming equal to offline
    nb05 = _notebook_results("05_synthesis")
    assert nb05["new_sentence_frames"] > 30 and -1 <= nb05["clip_mouth_corr"] <= 1
    for path in nb05["outputs"].values():
        assert Path(path).exists(), path
    assert nb05["streaming"]["max_abs_diff_vs_offline"] < 1e-5
    assert nb05["streaming"]["realtime_factor"] > 1
    record = results.study()
    assert record == json.loads(results.results_path().read_text())
    assert record["profile"] == "quick" and record["commit"] == manifest.git_commit()
    assert record["corpus"] == "bundled" and record["split"] == "test"
    assert record["reference"] == "groundtruth"
    assert record["clips"] == 8 and not record["failures"]
    assert record["frames_scored"] > 500 and record["frames_flagged"] == 0
    floor = record["noise_floor"]
    assert 0 < floor["mlmd"] < 5 and 0 < floor["lmd"] < 5  # dlib vs ground truth
    names = {"mean_face", "energy", "ridge", "lstm_original", "lstm", "tcn", "tcn_emotion"}
    assert set(record["models"]) == names
    for name, rec in record["models"].items():
        for key in ("lmd", "mlmd", "velocity", "mouth_area"):
            assert rec[key] is not None and rec[key] > 0, (name, key)
            lo, hi = rec["ci95"][key]
            assert lo <= rec[key] <= hi
        if name != "mean_face":
            assert -1 <= rec["mouth_corr"] <= 1 and rec["offset_ms"] is not None
    assert record["models"]["mean_face"]["mouth_corr"] is None  # a constant: undefined
    assert evaluation.check_invariants(record) == []
    best = record["best_model"]
    assert record["ratios"]["best_to_mean_face"] == pytest.approx(
        record["models"][best]["mlmd"] / record["models"]["mean_face"]["mlmd"]
    )
    assert set(record["ablations"]) == {
        "context",
        "alignment",
        "targets",
        "architecture",
        "emotion",
    }
    for rec in record["ablations"].values():
        d, lo, hi = rec["delta_mlmd"]
        assert lo <= d <= hi and rec["clips"] == 8 and rec["sentence"]
        assert d == pytest.approx(rec["b_metrics"]["mlmd"] - rec["a_metrics"]["mlmd"])
    per_emotion = pd.DataFrame(record["per_emotion_mlmd"])
    assert len(per_emotion) == 4 and set(per_emotion.columns) >= names
    assert set(pd.DataFrame(record["emotional_vs_neutral_mlmd"]).index) == {"emotional", "neutral"}
    md = (config.reports_dir() / "results.md").read_text()
    assert best in md and "M-LMD" in md and record["commit"][:12] in md
    # the real-speech levers: one row each, and the default model they chose
    levers = record["levers"]["rows"]
    assert {"tcn_emotion_talkers", "phones", "tcn_emotion+pose", "transformer"} <= set(levers)
    assert levers["tcn_emotion+pose"]["test mouth corr"] == pytest.approx(
        levers["tcn_emotion"]["test mouth corr"], abs=1e-6
    )  # the pose moves the face, not the mouth's opening
    for row in levers.values():
        assert row["test M-LMD"] > 0 and isinstance(row["keeps bundled invariants"], bool)
    default = record["default_model"]
    assert default == record["levers"]["default_model"] and "+" not in default
    if any(r["keeps bundled invariants"] for r in levers.values()):
        assert levers[default]["keeps bundled invariants"]
    else:  # nothing keeps them (the quick profile's tiny runs): the best on the test split
        assert default == best
    assert f"Default model (`wav2kp predict`): `{default}`" in md
    reports = config.reports_dir()
    assert (reports / "figures" / "04_boxplots.png").stat().st_size > 10_000
    assert (reports / "media" / "04_comparison.mp4").stat().st_size > 10_000
    # the scores are a pure function of the runs: scoring again gives the same numbers
    loaded = training.load_runs(
        {n: config.models_dir() / f"bundled_quick_{n}" for n in ("mean_face", "ridge")}
    )
    fs = loaded["ridge"][1]
    from wav2kp import corpus as corpora

    ev = evaluation.evaluate_runs(
        loaded, fs.split_clips("test"), "bundled", corpora.discover("bundled")
    )
    again = evaluation.summarise(ev)
    assert again.loc["ridge", "mlmd"] == pytest.approx(record["models"]["ridge"]["mlmd"], rel=1e-12)
    assert again.loc[evaluation.NOISE_FLOOR, "mlmd"] == pytest.approx(floor["mlmd"], rel=1e-12)


@pytest.mark.slow
def test_a_bad_clip_is_listed_and_the_others_are_scored(quick_clips, tmp_path) -> None:
    from wav2kp.features import dataset

    out = config.processed_dir("bundled", "test_models")
    fs, _ = dataset.build_feature_set(quick_clips, config.interim_dir("bundled"), out)
    from wav2kp import training
    from wav2kp.training import models

    run = tmp_path / "mean_face"
    training.train_model("mean_face", fs, training.TrainConfig(progress="none"), run_dir=run)
    loaded = training.load_runs({"mean_face": run})
    clips = fs.split_clips("test")[:2] + ["Em99_Fala1_Nowhere"]
    ev = evaluation.evaluate_runs(loaded, clips, "bundled", quick_clips)
    assert list(ev.failures["clip"]) == ["Em99_Fala1_Nowhere"]
    assert "no extracted keypoints" in ev.failures["error"].iloc[0]
    assert set(ev.clips["clip"]) == set(clips[:2])
    assert isinstance(models.load_run(run), models.MeanFace)
    with pytest.raises(FileNotFoundError, match="no trained run for 'nope'"):
        training.load_runs({"nope": tmp_path / "nope"})
    assert np.isfinite(metrics.bootstrap_ci(ev.clips["mlmd"])[0])
