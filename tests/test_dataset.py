"""Splits, processed-set storage and the torch datasets (wav2kp.features.dataset)."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from wav2kp.corpus.discovery import CLIP_COLUMNS
from wav2kp.features import dataset as ds


def chu_table(emotions, sentences, speaker="Alice") -> pd.DataFrame:
    """A clip table shaped as discover() returns it for CH-Unicamp names (both takes)."""
    rows = []
    for e in emotions:
        for s in sentences:
            for neutral in (False, True):
                clip = f"Em{e}_Fala{s}{'_Neutra' if neutral else ''}_{speaker}"
                rows.append(
                    {
                        "clip": clip,
                        "emotion": e,
                        "emotion_name": f"emotion{e}",
                        "sentence": s,
                        "neutral": neutral,
                        "speaker": speaker,
                        "path": f"/corpus/{clip}.mp4",
                    }
                )
    return _typed(rows)


def generic_table(n: int) -> pd.DataFrame:
    rows = [
        {
            "clip": f"talk_{i:02d}",
            "emotion": None,
            "emotion_name": "unknown",
            "sentence": None,
            "neutral": False,
            "speaker": "unknown",
            "path": f"/videos/talk_{i:02d}.mp4",
        }
        for i in range(n)
    ]
    return _typed(rows)


def _typed(rows) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=CLIP_COLUMNS)
    table["emotion"] = table["emotion"].astype("Int64")
    table["sentence"] = table["sentence"].astype("Int64")
    table["neutral"] = table["neutral"].astype(bool)
    return table


def splits_per_emotion(table: pd.DataFrame) -> dict[int, dict[str, set]]:
    out: dict[int, dict[str, set]] = {}
    for e, s, split in zip(table["emotion"], table["sentence"], table["split"]):
        out.setdefault(int(e), {}).setdefault(split, set()).add(int(s))
    return out


# ---------------------------------------------------------------------------------------- splits


def test_full_chu_table_one_sentence_per_holdout_per_emotion():
    clips = chu_table(range(1, 23), (1, 2, 3))
    table = ds.make_splits(clips, seed=0)
    assert list(table["clip"]) == list(clips["clip"])  # same rows, same order
    assert table["split"].value_counts().to_dict() == {"train": 44, "val": 44, "test": 44}
    for _emotion, by_split in splits_per_emotion(table).items():
        assert {k: len(v) for k, v in by_split.items()} == {"train": 1, "val": 1, "test": 1}
    # each neutral take shares the split (and group) of its emotional take
    paired = table.groupby(["emotion", "sentence"])
    assert (paired["split"].nunique() == 1).all()
    assert (paired["group"].nunique() == 1).all()
    assert table.loc[table["clip"] == "Em3_Fala2_Neutra_Alice", "group"].item() == "Em3_Fala2"
    ds.check_no_leak(table)
    # deterministic: same seed, same table; another seed moves some emotions' sentences
    pd.testing.assert_frame_equal(table, ds.make_splits(clips.copy(), seed=0))
    other = ds.make_splits(clips, seed=1)
    ds.check_no_leak(other)
    changed = [
        e for e in range(1, 23) if splits_per_emotion(table)[e] != splits_per_emotion(other)[e]
    ]
    assert len(changed) >= 5
    # row order of the input does not matter
    shuffled = ds.make_splits(clips.sample(frac=1, random_state=3), seed=0)
    merged = table.merge(shuffled, on="clip", suffixes=("", "_shuffled"))
    assert (merged["split"] == merged["split_shuffled"]).all()


def test_two_sentences_per_emotion_quick_subset():
    # two sentences per emotion (the quick subset of earlier versions): 8 clips
    table = ds.make_splits(chu_table((1, 20), (1, 2)), seed=0)
    ds.check_no_leak(table)
    for _emotion, by_split in splits_per_emotion(table).items():
        assert len(by_split["test"]) == 1  # every emotion keeps a test sentence
    # rule: per emotion test + train; then one train group moves to val (fallback)
    assert table["split"].value_counts().to_dict() == {"test": 4, "val": 2, "train": 2}
    assert (table.groupby("group")["split"].nunique() == 1).all()
    for seed in range(5):
        ds.check_no_leak(ds.make_splits(chu_table((1, 20), (1, 2)), seed=seed))


def test_one_sentence_goes_to_train_and_val_fraction_zero_switches_val_off():
    table = ds.make_splits(chu_table((5,), (1,)), seed=0)
    assert set(table["split"]) == {"train"}
    table = ds.make_splits(chu_table(range(1, 4), (1, 2, 3)), val_fraction=0)
    assert table["split"].value_counts().to_dict() == {"train": 12, "test": 6}


def test_generic_folder_split_by_clip_with_fractions():
    clips = generic_table(10)
    table = ds.make_splits(clips, seed=0)
    # quotas 7 / 1.5 / 1.5, largest remainder with ties to test: 7 train, 1 val, 2 test
    assert table["split"].value_counts().to_dict() == {"train": 7, "test": 2, "val": 1}
    assert list(table["group"]) == list(clips["clip"])
    pd.testing.assert_frame_equal(table, ds.make_splits(clips, seed=0))
    assert list(ds.make_splits(clips, seed=4)["split"]) != list(table["split"])
    # small folders still get one clip per split
    for n in (3, 4, 5):
        counts = ds.make_splits(generic_table(n), seed=0)["split"].value_counts()
        assert set(counts.index) == {"train", "val", "test"} and counts["train"] == n - 2
    assert set(ds.make_splits(generic_table(2))["split"]) == {"train"}
    assert ds.make_splits(generic_table(100))["split"].value_counts().to_dict() == {
        "train": 70,
        "val": 15,
        "test": 15,
    }


def test_mixed_table_splits_each_part_by_its_rule():
    clips = pd.concat([chu_table(range(1, 4), (1, 2, 3)), generic_table(10)], ignore_index=True)
    table = ds.make_splits(clips, seed=0)
    chu = table["emotion"].notna()
    assert table[chu]["split"].value_counts().to_dict() == {"train": 6, "val": 6, "test": 6}
    assert table[~chu]["split"].value_counts().to_dict() == {"train": 7, "test": 2, "val": 1}
    ds.check_no_leak(table)


def test_leak_is_reported_with_the_group():
    table = ds.make_splits(chu_table(range(1, 4), (1, 2, 3)), seed=0)
    row = table.index[table["clip"] == "Em2_Fala3_Neutra_Alice"][0]
    table.loc[row, "split"] = next(s for s in ds.SPLITS if s != table.loc[row, "split"])
    with pytest.raises(ValueError, match="Em2_Fala3"):
        ds.check_no_leak(table)
    # a second speaker's take of the same sentence is the same sentence
    alice = ds.make_splits(chu_table((2,), (1, 2, 3)))
    elsewhere = next(
        s for s in ds.SPLITS if s != alice.loc[alice["sentence"] == 3, "split"].iloc[0]
    )
    bob = chu_table((2,), (3,), speaker="Bob").assign(group="Em2_Fala3", split=elsewhere)
    with pytest.raises(ValueError, match=r"Em2_Fala3 \(.*Bob"):
        ds.check_no_leak(pd.concat([alice, bob], ignore_index=True))
    with pytest.raises(ValueError, match="split names"):
        ds.check_no_leak(table.assign(split="training"))


def test_splits_csv_round_trip(tmp_path):
    clips = pd.concat([chu_table((1, 20), (1, 2)), generic_table(4)], ignore_index=True)
    clips.loc[8, "clip"] = "NA"  # a clip named like a missing value stays a string
    table = ds.make_splits(clips, seed=2)
    path = ds.write_splits(table, tmp_path / "splits.csv")
    assert not list(tmp_path.glob(".*partial*"))
    back = ds.read_splits(path)
    assert list(back.columns) == [c for c in ds.SPLIT_COLUMNS if c in table.columns]
    expected = table[[c for c in ds.SPLIT_COLUMNS if c in table.columns]]
    assert str(back["emotion"].dtype) == "Int64" and str(back["sentence"].dtype) == "Int64"
    assert back["neutral"].dtype == bool
    assert back["clip"].tolist() == expected["clip"].tolist() and "NA" in back["clip"].tolist()
    for column in ("emotion", "sentence"):
        assert back[column].isna().tolist() == expected[column].isna().tolist()
        assert back[column].dropna().tolist() == expected[column].dropna().tolist()
    for column in ("emotion_name", "neutral", "group", "split"):
        assert back[column].tolist() == expected[column].tolist()
    assert ds.clips_in(back, "test") == ds.clips_in(table, "test")
    leaking = table.copy()
    leaking.loc[leaking["clip"] == "Em1_Fala1_Alice", "split"] = "val"
    leaking.loc[leaking["clip"] == "Em1_Fala1_Neutra_Alice", "split"] = "test"
    with pytest.raises(ValueError, match="Em1_Fala1"):
        ds.write_splits(leaking, tmp_path / "other.csv")
    assert not (tmp_path / "other.csv").exists()


# --------------------------------------------------------------------------------------- storage


def utterance(n: int, f: int = 3, d: int = 4, seed: int = 0, invalid=()) -> dict:
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=(n, d)).astype(np.float32)
    valid = np.ones(n, bool)
    valid[list(invalid)] = False
    targets[~valid] = np.nan
    return {
        "features": rng.normal(size=(n, f)).astype(np.float32),
        "feature_times": np.arange(n) * 0.01,
        "targets": targets,
        "video_times": np.arange(n // 4) / 25.0,
        "valid": valid,
        "pose": rng.normal(size=(n // 4, 2, 3)),
    }


def test_save_and_load_utterances(tmp_path):
    utts = {"Em1_Fala1_Alice": utterance(50, seed=1), "talk_00": utterance(9, seed=2)}
    paths = ds.save_utterances(tmp_path, utts)
    assert [p.name for p in paths] == ["Em1_Fala1_Alice.npz", "talk_00.npz"]
    assert not list((tmp_path / "utterances").glob(".*"))
    assert ds.list_utterances(tmp_path) == ["Em1_Fala1_Alice", "talk_00"]
    back = ds.load_utterance(tmp_path, "Em1_Fala1_Alice")
    assert set(back) == set(utts["Em1_Fala1_Alice"])
    for key, value in utts["Em1_Fala1_Alice"].items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == value.dtype
    with pytest.raises(FileNotFoundError, match="missing_clip"):
        ds.load_utterance(tmp_path, "missing_clip")
    with pytest.raises(ValueError, match="video_times"):
        ds.save_utterances(
            tmp_path, {"bad": {k: v for k, v in utterance(5).items() if k != "video_times"}}
        )
    bad = utterance(5)
    bad["targets"] = bad["targets"][:4]
    with pytest.raises(ValueError, match="targets"):
        ds.save_utterances(tmp_path, {"bad": bad})


def test_manifest_matches_only_same_params_and_inputs(tmp_path):
    params = {"n_mfcc": 13, "hop_s": 0.01, "window": (7, 7)}
    inputs = {"a": "0" * 64, "b": "1" * 64}
    assert not ds.manifest_matches(tmp_path, params, inputs)  # nothing there yet
    ds.save_utterances(tmp_path, {c: utterance(6) for c in inputs})
    ds.write_manifest(tmp_path, params, inputs, corpus="bundled", wall_s=1.5)
    manifest = ds.read_manifest(tmp_path)
    assert manifest["params"]["window"] == [7, 7] and manifest["corpus"] == "bundled"
    assert manifest["versions"]["numpy"] == np.__version__
    assert ds.manifest_matches(tmp_path, dict(params), dict(inputs))
    assert not ds.manifest_matches(tmp_path, {**params, "n_mfcc": 20}, inputs)
    assert not ds.manifest_matches(tmp_path, params, {**inputs, "b": "2" * 64})
    assert not ds.manifest_matches(tmp_path, params, {**inputs, "c": "3" * 64})
    (tmp_path / "utterances" / "b.npz").unlink()  # an output went missing
    assert not ds.manifest_matches(tmp_path, params, inputs)
    ds.save_utterances(tmp_path, {"b": utterance(6)})
    edited = json.loads((tmp_path / "manifest.json").read_text())
    edited["versions"]["numpy"] = "0.0"
    (tmp_path / "manifest.json").write_text(json.dumps(edited))
    assert not ds.manifest_matches(tmp_path, params, inputs)
    (tmp_path / "manifest.json").write_text("{not json")
    assert not ds.manifest_matches(tmp_path, params, inputs)


# -------------------------------------------------------------------------------------- datasets


def test_window_dataset_items_padding_and_skipped_frames(tmp_path):
    p, f = 3, 2
    utts = {"a": utterance(10, seed=1, invalid=(4,)), "b": utterance(6, seed=2, invalid=(0, 5))}
    for source in (utts, tmp_path):
        if source is tmp_path:
            ds.save_utterances(tmp_path, utts)
        data = ds.WindowDataset(source, ["a", "b"], n_past=p, n_future=f)
        assert len(data) == 9 + 4
        assert data.window == 6 and data.n_features == 3 and data.n_targets == 4
        assert list(data.index) == (
            [("a", n) for n in range(10) if n != 4] + [("b", n) for n in range(1, 5)]
        )
        for i, (clip, n) in enumerate(data.index):
            window, target = data[i]
            assert window.dtype == torch.float32 and window.shape == (6, 3)
            feats = utts[clip]["features"]
            rows = np.clip(np.arange(n - p, n + f + 1), 0, len(feats) - 1)  # edge padding
            np.testing.assert_array_equal(window.numpy(), feats[rows])
            np.testing.assert_array_equal(target.numpy(), utts[clip]["targets"][n])
    # both ends, by hand: frame 0 repeats frame 0 three times, frame 9 repeats frame 9 twice
    first, _ = data[0]
    a = utts["a"]["features"]
    np.testing.assert_array_equal(first.numpy(), a[[0, 0, 0, 0, 1, 2]])
    last, _ = data[8]
    assert data.index[8] == ("a", 9)
    np.testing.assert_array_equal(last.numpy(), a[[6, 7, 8, 9, 9, 9]])
    zero = ds.WindowDataset(utts, ["a"], n_past=p, n_future=f, pad="zero")
    np.testing.assert_array_equal(zero[0][0].numpy()[:3], 0)
    np.testing.assert_array_equal(zero[0][0].numpy()[3:], a[:3])
    # the dataset does not hand out views of its storage
    window, _ = data[0]
    window.zero_()
    np.testing.assert_array_equal(data[0][0].numpy(), a[[0, 0, 0, 0, 1, 2]])
    frame = data.index.to_frame()
    assert frame.shape == (13, 2) and frame["clip"].tolist()[-1] == "b"


def test_window_dataset_normalizer_and_errors():
    class Standardise:
        def __call__(self, x):
            return (x - 1.0) / 2.0

    utts = {"a": utterance(8, seed=3)}
    data = ds.WindowDataset(utts, ["a"], n_past=1, n_future=1, normalizer=Standardise())
    np.testing.assert_allclose(data[0][0].numpy()[1], (utts["a"]["features"][0] - 1) / 2)
    no_valid = {"a": {k: v for k, v in utts["a"].items() if k != "valid"}}
    no_valid["a"]["targets"] = no_valid["a"]["targets"].copy()
    no_valid["a"]["targets"][2, 1] = np.nan  # without `valid`, non-finite targets are skipped
    assert [n for _, n in ds.WindowDataset(no_valid, ["a"], 0, 0).index] == [0, 1, 3, 4, 5, 6, 7]
    broken = {"a": {**no_valid["a"], "valid": np.ones(8, bool)}}
    with pytest.raises(ValueError, match="marked valid"):
        ds.WindowDataset(broken, ["a"], 1, 1)
    with pytest.raises(ValueError, match="more than once"):
        ds.WindowDataset(utts, ["a", "a"], 1, 1)
    with pytest.raises(KeyError, match="zzz"):
        ds.WindowDataset(utts, ["zzz"], 1, 1)
    with pytest.raises(ValueError, match="pad"):
        ds.WindowDataset(utts, ["a"], 1, 1, pad="reflect")
    mixed = {"a": utts["a"], "b": utterance(8, f=5)}
    with pytest.raises(ValueError, match="F=5"):
        ds.WindowDataset(mixed, ["a", "b"], 1, 1)
    assert len(ds.WindowDataset(utts, [], 1, 1)) == 0


def test_window_dataset_memory_does_not_grow_with_the_window():
    utts = {
        "long": {
            "features": np.random.default_rng(0).normal(size=(2000, 40)).astype(np.float32),
            "targets": np.zeros((2000, 6), np.float32),
        }
    }
    feature_bytes = utts["long"]["features"].nbytes
    tracemalloc.start()
    try:
        data = ds.WindowDataset(utts, ["long"], n_past=40, n_future=40)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) == 2000 and data.window == 81
    # all windows materialised would be 81x the feature bytes
    assert peak < 3 * feature_bytes, f"peak {peak} B for {feature_bytes} B of features"
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=False)
    batches = list(loader)
    assert len(batches) == 32
    windows, targets = batches[0]
    assert windows.shape == (64, 81, 40) and targets.shape == (64, 6)
    assert batches[-1][0].shape == (2000 - 31 * 64, 81, 40)
    np.testing.assert_array_equal(batches[-1][0][-1, 40].numpy(), utts["long"]["features"][-1])


def test_utterance_dataset_and_collate_padded(tmp_path):
    utts = {
        "a": utterance(7, seed=1, invalid=(2,)),
        "b": utterance(4, seed=2),
        "c": utterance(5, seed=3, invalid=(0, 4)),
    }
    ds.save_utterances(tmp_path, utts)
    data = ds.UtteranceDataset(tmp_path, ["b", "a", "c"])
    assert len(data) == 3 and data.clips == ["b", "a", "c"]
    features, targets, valid = data[1]
    assert features.shape == (7, 3) and targets.shape == (7, 4) and valid.shape == (7,)
    assert features.dtype == torch.float32 and valid.dtype == torch.bool
    assert torch.isfinite(targets).all() and (targets[2] == 0).all()  # invalid: 0, not NaN
    np.testing.assert_array_equal(targets[valid].numpy(), utts["a"]["targets"][utts["a"]["valid"]])
    batch = ds.collate_padded([data[i] for i in range(3)])
    assert batch.features.shape == (3, 7, 3) and batch.targets.shape == (3, 7, 4)
    assert batch.lengths.tolist() == [4, 7, 5]
    assert batch.mask.sum(dim=1).tolist() == [4, 7, 5] and batch.mask.dtype == torch.bool
    assert batch.valid.sum(dim=1).tolist() == [4, 6, 3]
    assert not (batch.valid & ~batch.mask).any()
    assert (batch.features[0, 4:] == 0).all()
    np.testing.assert_array_equal(batch.features[2, :5].numpy(), utts["c"]["features"])
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=ds.collate_padded)
    shapes = [(tuple(b.features.shape), b.lengths.tolist()) for b in loader]
    assert shapes == [((2, 7, 3), [4, 7]), ((1, 5, 3), [5])]


# ------------------------------------------------------------------------ identity removal


def _two_speaker_interim(tmp_path):
    """Two speakers with different faces (speaker B: a wider mouth and a longer jaw) say the
    same four motion sequences, each frame under its own head pose; their clips are written
    as the extraction stage writes them (16 kHz WAV + landmarks)."""
    from fractions import Fraction

    from wav2kp import media, shapes
    from wav2kp.extraction import landmarks
    from wav2kp.training import release

    info = json.loads((release.SHIPPED_DIR / "feature_set" / "feature_set.json").read_text())
    face = np.asarray(info["reference"], np.float64)  # a real mean face, unit IOD
    identity = np.zeros_like(face)
    identity[shapes.MOUTH, 0] = 0.12 * (face[shapes.MOUTH, 0] - face[shapes.MOUTH, 0].mean())
    identity[:17, 1] = 0.08  # the jaw lower
    rng = np.random.default_rng(3)
    fps, n = Fraction(25), 50
    times = np.arange(n) / 25.0
    rows, interim = [], tmp_path / "interim"
    for k in range(4):
        motion = np.zeros((n, 68, 2))
        opening = (0.05 + 0.04 * k) * np.sin(2 * np.pi * (1 + k) * times / 2.0) ** 2
        motion[:, 57, 1] = motion[:, 66, 1] = opening[:]  # lower lip down
        motion[:, 8, 1] = 0.5 * opening
        for who, shape in (("A", face), ("B", face + identity)):
            clip = f"{who}{k}"
            angle = rng.uniform(-0.2, 0.2, n)
            scale = rng.uniform(80, 120, n)
            shift = rng.uniform(100, 200, (n, 2))
            pts = shape[None] + motion
            c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
            x = scale[:, None] * (c * pts[..., 0] - s * pts[..., 1]) + shift[:, :1]
            y = scale[:, None] * (s * pts[..., 0] + c * pts[..., 1]) + shift[:, 1:]
            track = landmarks.ClipLandmarks(
                np.stack([x, y], -1).astype(np.float32), times, np.ones(n, bool),
                np.zeros(n, bool), fps, (320, 320),
            )  # fmt: skip
            wav, lm_path = landmarks.clip_paths(interim, clip)
            lm_path.parent.mkdir(parents=True, exist_ok=True)
            landmarks.save_landmarks(lm_path, track)
            media.write_wav(wav, rng.normal(0, 0.05, 32000).astype(np.float32), 16000)
            rows.append({"clip": clip, "emotion": None, "emotion_name": "unknown",
                         "sentence": None, "neutral": False, "speaker": who,
                         "path": f"/x/{clip}.mp4"})  # fmt: skip
    return _typed(rows), interim


def test_identity_removal_is_exact_for_two_speakers(tmp_path) -> None:
    """The same motion said by two faces gives the same targets once each speaker's mean shape
    is removed (and not without), and the pixels come back exactly, each on its own face."""
    from wav2kp.extraction import landmarks

    clips, interim = _two_speaker_interim(tmp_path)
    fs, _ = ds.build_feature_set(clips, interim, tmp_path / "speaker", identity="speaker")
    plain, _ = ds.build_feature_set(clips, interim, tmp_path / "none", identity="none")
    assert fs.params["identity"] == "speaker" and "identity" not in plain.params
    for k in range(4):
        a, b = fs.load(f"A{k}")["targets"], fs.load(f"B{k}")["targets"]
        np.testing.assert_allclose(a, b, atol=2e-6)
        pa, pb = plain.load(f"A{k}")["targets"], plain.load(f"B{k}")["targets"]
        assert np.abs(pa - pb).max() > 0.02  # without removal: two faces
        for clip in (f"A{k}", f"B{k}"):  # back to pixels: each speaker's own face
            truth = landmarks.load_landmarks(landmarks.clip_paths(interim, clip)[1]).points
            back = fs.to_pixels(clip, fs.load(clip)["targets"])
            np.testing.assert_allclose(back, truth, atol=2e-3)
    # per speaker one identity; per clip (how an unknown speaker's clips are treated) each its own
    assert np.array_equal(fs.load("A0")["identity_offset"], fs.load("A3")["identity_offset"])
    per_clip, _ = ds.build_feature_set(clips, interim, tmp_path / "clip", identity="clip")
    a0, a3 = (per_clip.load(c)["identity_offset"] for c in ("A0", "A3"))
    assert np.abs(a0 - a3).max() > 1e-3
    with pytest.raises(ValueError, match="identity must be one of"):
        ds.build_feature_set(clips, interim, tmp_path / "bad", identity="face")
