"""The processed feature set built from the quick corpus: alignment by timestamps against the
ground truth, the original pairing's drift, invertibility back to pixels, caching, splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wav2kp import config, shapes
from wav2kp.corpus import bundled
from wav2kp.extraction import landmarks
from wav2kp.features import acoustic as features
from wav2kp.features import dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def face_set(quick_clips):
    out = config.processed_dir("bundled", "test_face")
    return dataset.build_feature_set(quick_clips, config.interim_dir("bundled"), out)


def _lag_frames(a: np.ndarray, b: np.ndarray, max_lag: int = 30) -> int:
    """The shift of ``a`` against ``b`` (frames) that maximises their correlation."""
    a, b = a - a.mean(), b - b.mean()
    best = max(
        range(-max_lag, max_lag + 1),
        key=lambda k: np.dot(
            a[max(k, 0) : len(a) + min(k, 0)], b[max(-k, 0) : len(b) + min(-k, 0)]
        ),
    )
    return best


def test_set_layout_splits_and_manifest(face_set, quick_clips) -> None:
    fs, stats = face_set
    assert stats["clips"] == 24 and not stats["missing"]
    assert set(fs.clips) == set(quick_clips["clip"])
    dataset.check_no_leak(fs.splits)
    assert set(fs.splits["split"]) == {"train", "val", "test"}
    manifest = json.loads((fs.out_dir / "manifest.json").read_text())
    assert set(manifest["inputs"]) == set(fs.clips)
    assert manifest["params"]["alignment"] == "timestamps"
    assert (fs.out_dir / "splits.csv").is_file()
    assert sum(stats["frames"].values()) > 2000
    for clip in fs.clips:
        utt = fs.load(clip)
        n = len(utt["feature_times"])
        assert utt["features"].shape == (n, 40) and utt["targets"].shape == (n, 136)
        np.testing.assert_allclose(utt["feature_times"], np.arange(n) * 0.01, atol=1e-12)
        assert utt["valid"].mean() > 0.95
        assert np.isfinite(utt["targets"]).all()


def test_targets_follow_the_ground_truth_without_lag(face_set) -> None:
    """Aligned by timestamps, the targets' mouth opening matches the ground truth's at the same
    instants: high correlation and zero lag."""
    fs, _ = face_set
    for clip in fs.clips[:4]:
        utt = fs.load(clip)
        gt = bundled.load_groundtruth(bundled.gt_path(config.raw_dir("bundled"), clip))
        ok = utt["valid"]
        pred = shapes.mouth_opening(utt["targets"].reshape(len(ok), 68, 2))[ok]
        true_open = shapes.mouth_opening(gt["points"]) / shapes.inter_ocular(gt["points"])
        truth = features.align_to_times(true_open, gt["times"], utt["feature_times"])[ok]
        assert np.corrcoef(pred, truth)[0, 1] > 0.9, clip
        assert _lag_frames(pred, truth) == 0, clip


def test_original_pairing_lags_more_and_more(quick_clips) -> None:
    out = config.processed_dir("bundled", "test_orig")
    fs, _ = dataset.build_feature_set(
        quick_clips, config.interim_dir("bundled"), out, alignment="original_x3"
    )
    clip = max(fs.clips, key=lambda c: len(fs.load(c)["feature_times"]))
    utt = fs.load(clip)
    # rows pair audio frame i with a target row whose true time runs ahead of the audio
    drift = utt["target_times"] - utt["feature_times"]
    assert drift[0] == pytest.approx(0.0, abs=1e-9)
    assert drift[-1] > 0.2  # hundreds of ms after ~4 s
    assert np.all(np.diff(drift) >= -1e-9)  # it only grows


def test_targets_return_to_pixels_exactly(face_set) -> None:
    fs, _ = face_set
    for clip in fs.clips[:3]:
        utt = fs.load(clip)
        lm = landmarks.load_landmarks(landmarks.clip_paths(config.interim_dir("bundled"), clip)[1])
        back = fs.to_pixels(clip, utt["targets"])
        ok = lm.found | lm.interpolated
        assert back.shape == lm.points.shape
        # all video frames inside the audio's span come back to the extracted keypoints
        assert np.nanmax(np.abs(back[ok] - lm.points[ok])) < 1e-3


def test_mouth_targets_cache_and_train_only_fits(face_set, quick_clips) -> None:
    fs, stats = face_set
    again, stats2 = dataset.build_feature_set(
        quick_clips, config.interim_dir("bundled"), fs.out_dir
    )
    assert stats2["cached"] and not stats["cached"]
    # the normaliser's statistics come from the training clips alone
    train = [fs.load(c)["features"] for c in fs.split_clips("train")]
    pooled = np.concatenate(train)
    state = fs.normalizer.state_dict()
    np.testing.assert_allclose(state["mean"], pooled.mean(axis=0), rtol=1e-5, atol=1e-5)
    windows = fs.window_dataset("train", 200, 200)
    assert len(windows) == sum(int(fs.load(c)["valid"].sum()) for c in fs.split_clips("train"))
    window, target = windows[0]
    assert tuple(window.shape) == (41, 40) and tuple(target.shape) == (136,)
    assert abs(float(window.mean())) < 1.0  # normalised features

    mouth, _ = dataset.build_feature_set(
        quick_clips,
        config.interim_dir("bundled"),
        config.processed_dir("bundled", "test_mouth"),
        targets="mouth",
    )
    utt = mouth.load(mouth.clips[0])
    assert utt["targets"].shape[1] == 40
    assert mouth.to_pixels(mouth.clips[0], utt["targets"]).shape[1:] == (68, 2)


# ----------------------------------------------------------------- the study's sets (notebook 02)


def test_feature_spec_roles_and_checks() -> None:
    from wav2kp.features import FeatureSpec

    spec = FeatureSpec(n_mfcc=20, hop_ms=12.5, targets="mouth")
    mfcc, alignment = spec.role("default")
    assert (mfcc.n_mfcc, mfcc.n_mels, mfcc.hop_ms, alignment) == (20, 40, 12.5, "timestamps")
    assert spec.role("original") == (features.MFCCConfig.original(), "original_x3")
    assert spec.role("original_timestamps") == (features.MFCCConfig.original(), "timestamps")
    assert FeatureSpec().mfcc() == features.MFCCConfig()  # the defaults are the study's features
    assert FeatureSpec(mfcc_preset="original").mfcc() == features.MFCCConfig.original()
    for bad, message in (
        ({"mfcc_preset": "theirs"}, "mfcc_preset"),
        ({"alignment": "x2"}, "alignment"),
        ({"targets": "eyes"}, "targets"),
        ({"pca_variance": 1.5}, "pca_variance"),
    ):
        with pytest.raises(ValueError, match=message):
            FeatureSpec(**bad)


def test_study_sets_are_recorded_opened_and_refused_when_stale(
    quick_clips, tmp_path, monkeypatch
) -> None:
    """What notebook 02 records, notebooks 03 and 04 open; a missing record, another subset, an
    extraction output changed since, or a set rebuilt with other parameters is a clear error
    naming notebook 02."""
    import shutil

    from wav2kp import results
    from wav2kp.features import FeatureSpec, build_study_sets, open_study_sets, sets

    shutil.copytree(config.interim_dir("bundled"), tmp_path / "data" / "interim" / "bundled")
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path))
    with pytest.raises(results.RecordError, match="Notebook 02_features has not run yet"):
        open_study_sets("bundled", "quick", roles=("default",))
    spec = FeatureSpec(n_mfcc=20, pca_variance=0.95)
    built = build_study_sets(quick_clips, "bundled", "quick", spec, roles=("default",))
    assert built["default"].out_dir.name == "mfcc20_timestamps_face"
    assert built["default"].params["mfcc"]["n_mfcc"] == 20
    assert built["default"].params["pca_variance"] == 0.95
    results.save(
        "02_features", {"corpus": "bundled", "subset": "quick", "feature_sets": built.record()}
    )
    opened = open_study_sets("bundled", "quick", roles=("default",))
    assert opened.spec == spec and opened["default"].out_dir == built["default"].out_dir
    with pytest.raises(
        sets.StaleFeatureSets,
        match="names no original, original_timestamps feature set \\(it has: default\\)",
    ):
        open_study_sets("bundled", "quick")
    with pytest.raises(results.RecordError, match="subset 'quick', not 'bundled', 'full'"):
        open_study_sets("bundled", "full", roles=("default",))
    # an extraction output changed after notebook 02 built the set
    clip = built["default"].clips[0]
    wav, _ = landmarks.clip_paths(config.interim_dir("bundled"), clip)
    wav.write_bytes(wav.read_bytes() + b"\0\0")
    with pytest.raises(sets.StaleFeatureSets, match=f"Clip '{clip}'.*re-run notebook 02"):
        open_study_sets("bundled", "quick", roles=("default",))
    # the set rebuilt in place with other parameters (another notebook 02 run, not recorded)
    manifest = built["default"].out_dir / "manifest.json"
    record = json.loads(manifest.read_text())
    record["params"]["pca_variance"] = 0.9
    manifest.write_text(json.dumps(record))
    with pytest.raises(sets.StaleFeatureSets, match="rebuilt with other parameters"):
        open_study_sets("bundled", "quick", roles=("default",))
