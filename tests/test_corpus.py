"""The clip table (wav2kp.corpus.discovery) and the bundled synthetic corpus (corpus.bundled).

Discovery runs on folders of empty files named like videos (it never opens them). The built
corpus tests share the session's quick corpus (``quick_corpus`` in conftest.py, ~20 s to build)
and check what the files hold: codecs, clock, audio alignment, ground truth, caching, and how
well dlib finds the ground-truth keypoints in the rendered frames (the corpus' acceptance number).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wav2kp import face68, media, shapes
from wav2kp.corpus import (
    CLIP_COLUMNS,
    bundled,
    describe,
    discover,
    emotion_names,
    emotion_table,
    parse_name,
)

QUICK_NAMES = bundled.subset_names("quick")
slow = pytest.mark.slow


def _touch(folder: Path, *names: str) -> Path:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return folder


# =========================================================================== discovery


def test_emotion_table_has_the_22_occ_categories() -> None:
    table = emotion_table()
    assert len(table) == 22
    assert table["id"].tolist() == list(range(1, 23))
    assert table["key"].is_unique and table["en"].is_unique
    assert {"id", "key", "en", "pt", "valence", "arousal", "brow", "eyes"} <= set(table.columns)
    names = emotion_names()
    assert names[1] == "Joy" and names[20] == "Anger" and len(names) == 22


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        (
            "Em1_Fala1_CarolinaHolly.mp4",
            {"emotion": 1, "sentence": 1, "neutral": False, "speaker": "CarolinaHolly"},
        ),
        (
            "Em1_Fala1_Neutra_CarolinaHolly.mp4",
            {"emotion": 1, "sentence": 1, "neutral": True, "speaker": "CarolinaHolly"},
        ),
        (
            "em12_fala3_neutra_x.MP4",
            {"emotion": 12, "sentence": 3, "neutral": True, "speaker": "x"},
        ),
        (
            "EM20_FALA2_Ana_Maria.avi",
            {"emotion": 20, "sentence": 2, "neutral": False, "speaker": "Ana_Maria"},
        ),
        (
            "some/dir/Em7_Fala10_Neutra_Bob.mkv",
            {"emotion": 7, "sentence": 10, "neutral": True, "speaker": "Bob"},
        ),
    ],
)
def test_parse_name(name: str, fields: dict) -> None:
    assert parse_name(name) == fields


@pytest.mark.parametrize(
    "name",
    [
        "Fala1_Em1_X.mp4",
        "Em1_Fala_X.mp4",
        "Em1Fala1_X.mp4",
        "Em1_Fala1.mp4",
        "Emx_Fala1_X.mp4",
        "grid_bbaf2n.mpg",
    ],
)
def test_parse_name_rejects_other_names(name: str) -> None:
    assert parse_name(name) is None


def test_discover_chunicamp_names(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "Em1_Fala1_CarolinaHolly.mp4",
        "Em1_Fala1_Neutra_CarolinaHolly.mp4",
        "em12_fala3_neutra_x.MP4",
        "Em20_Fala2_CarolinaHolly.mp4",
    )
    clips = discover(tmp_path)
    assert list(clips.columns) == CLIP_COLUMNS
    assert clips["clip"].tolist() == [
        "Em1_Fala1_CarolinaHolly",
        "Em1_Fala1_Neutra_CarolinaHolly",
        "em12_fala3_neutra_x",
        "Em20_Fala2_CarolinaHolly",
    ]
    assert clips["emotion"].tolist() == [1, 1, 12, 20]
    assert clips["emotion_name"].tolist() == ["Joy", "Joy", "Disappointment", "Anger"]
    assert clips["sentence"].tolist() == [1, 1, 3, 2]
    assert clips["neutral"].tolist() == [False, True, True, False]
    assert clips["speaker"].tolist() == ["CarolinaHolly", "CarolinaHolly", "x", "CarolinaHolly"]
    assert str(clips["emotion"].dtype) == "Int64" and str(clips["sentence"].dtype) == "Int64"
    assert clips["neutral"].dtype == bool
    for path in clips["path"]:
        assert Path(path).is_absolute() and Path(path).is_file()


def _two_emotions(tmp_path: Path) -> Path:
    return _touch(tmp_path / "videos", "Em1_Fala1_A.mp4", "Em20_Fala1_A.mp4")


def test_emotion_names_from_a_mapping(tmp_path: Path) -> None:
    clips = discover(_two_emotions(tmp_path), emotions={1: "Alegria"})
    assert clips["emotion_name"].tolist() == ["Alegria", "unknown"]  # 20 has no name here
    assert clips["emotion"].tolist() == [1, 20]


def test_emotion_names_from_yaml_files(tmp_path: Path) -> None:
    folder = _two_emotions(tmp_path)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("1: Alegria\n20: Raiva\n", encoding="utf-8")
    assert discover(folder, emotions=mapping)["emotion_name"].tolist() == ["Alegria", "Raiva"]
    rows = tmp_path / "rows.yaml"
    rows.write_text("- {id: 1, en: Happiness}\n- {id: 20, name: Fury}\n", encoding="utf-8")
    assert discover(folder, emotions=str(rows))["emotion_name"].tolist() == ["Happiness", "Fury"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("just a string\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.yaml"):
        discover(folder, emotions=bad)


def test_emotion_names_from_a_csv_file(tmp_path: Path) -> None:
    folder = _two_emotions(tmp_path)
    table = tmp_path / "emotions.csv"
    table.write_text("id,name\n1,Alegria\n20,Raiva\n", encoding="utf-8")
    assert discover(folder, emotions=table)["emotion_name"].tolist() == ["Alegria", "Raiva"]
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("number,label\n1,Alegria\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'id' and 'name'"):
        emotion_names(wrong)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        emotion_names(tmp_path / "missing.yaml")


def test_generic_videos_have_unknown_emotion(tmp_path: Path) -> None:
    exts = [".avi", ".mov", ".mkv", ".mpg", ".webm", ".flv"]
    _touch(tmp_path, *[f"clip{i}{ext}" for i, ext in enumerate(exts)])
    clips = discover(tmp_path)
    assert clips["clip"].tolist() == [f"clip{i}" for i in range(len(exts))]
    assert clips["emotion"].isna().all() and clips["sentence"].isna().all()
    assert (clips["emotion_name"] == "unknown").all() and (clips["speaker"] == "unknown").all()
    assert not clips["neutral"].any()
    assert sorted(Path(p).suffix for p in clips["path"]) == sorted(exts)


def test_non_videos_are_ignored(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "a.mp4",
        "notes.txt",
        "speech.wav",
        "face.jpg",
        "README.md",
        ".hidden.mp4",
        "mp4",
        "b.mp4.txt",
    )
    (tmp_path / "folder.mp4").mkdir()
    assert discover(tmp_path)["clip"].tolist() == ["a"]


def test_subfolders_and_duplicate_stems_get_unique_ids(tmp_path: Path) -> None:
    _touch(tmp_path, "Em1_Fala1_X.mov", "a/Em1_Fala1_X.mp4", "b/Em1_Fala1_X.mp4", "b/c/other.mkv")
    clips = discover(tmp_path)
    assert len(clips) == 4 and clips["clip"].is_unique
    assert clips["path"].is_unique
    assert set(clips["clip"]) == {"Em1_Fala1_X", "a__Em1_Fala1_X", "b__Em1_Fala1_X", "other"}
    # ids are stable: the same folder gives the same table
    pd.testing.assert_frame_equal(clips, discover(tmp_path))
    flat = discover(tmp_path, recursive=False)
    assert flat["clip"].tolist() == ["Em1_Fala1_X"]


def test_same_stem_with_two_extensions_gets_unique_ids(tmp_path: Path) -> None:
    _touch(tmp_path, "clip.avi", "clip.mp4")
    assert discover(tmp_path)["clip"].is_unique


def test_discover_sort_order(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "zeta.mp4",
        "Em2_Fala1_B.mp4",
        "Em10_Fala1_A.mp4",
        "alpha.avi",
        "Em2_Fala1_Neutra_A.mp4",
        "Em2_Fala2_A.mp4",
        "Em2_Fala1_A.mp4",
    )
    assert discover(tmp_path)["clip"].tolist() == [
        "Em2_Fala1_A",
        "Em2_Fala1_B",
        "Em2_Fala1_Neutra_A",
        "Em2_Fala2_A",
        "Em10_Fala1_A",
        "alpha",
        "zeta",
    ]  # emotion, sentence, neutral, clip; unknown emotions last


def test_discover_errors_name_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        discover(missing)
    a_file = _touch(tmp_path, "video.mp4") / "video.mp4"
    with pytest.raises(NotADirectoryError, match="video.mp4"):
        discover(a_file)
    empty = tmp_path / "empty"
    _touch(empty, "notes.txt")
    with pytest.raises(ValueError, match="empty"):
        discover(empty)


@pytest.mark.real_samples
def test_real_samples_folder(real_samples: Path) -> None:
    clips = discover(real_samples)
    videos = sorted(
        p.stem for p in real_samples.iterdir() if p.suffix.lower() in (".mp4", ".mpg", ".flv")
    )
    assert videos, f"no videos in {real_samples}"
    assert sorted(clips["clip"]) == videos  # every video the folder holds, nothing else
    assert clips["emotion"].isna().all() and (clips["emotion_name"] == "unknown").all()
    assert clips["clip"].tolist() == sorted(clips["clip"])


# =========================================================================== bundled specs


def test_full_corpus_specs() -> None:
    specs = bundled.clip_specs("full")
    assert len(specs) == 132
    assert len({s.name for s in specs}) == 132
    texts = {s.text for s in specs}
    assert len(texts) == 66
    assert all(len(t.split()) >= 6 for t in texts)
    for e in range(1, 23):
        mine = [s for s in specs if s.emotion == e]
        assert sorted((s.sentence, s.neutral) for s in mine) == [
            (s, n) for s in (1, 2, 3) for n in (False, True)
        ]
        assert len({s.text for s in mine}) == 3
    for s in specs:
        assert parse_name(f"{s.name}.mp4") == {
            "emotion": s.emotion,
            "sentence": s.sentence,
            "neutral": s.neutral,
            "speaker": bundled.SPEAKER,
        }
    # both takes of a sentence: same words, same voice
    pairs = {}
    for s in specs:
        pairs.setdefault((s.emotion, s.sentence), set()).add((s.text, s.variant))
    assert all(len(v) == 1 for v in pairs.values())
    assert len({s.variant for s in specs}) >= 3


def test_quick_subset_specs() -> None:
    specs = bundled.clip_specs("quick")
    assert len(specs) == 24
    assert len({s.emotion for s in specs}) == 4
    assert {s.neutral for s in specs} == {False, True}
    assert len({s.variant for s in specs}) >= 3
    assert {s.name for s in specs} <= {s.name for s in bundled.clip_specs("full")}
    assert [s.name for s in specs] == QUICK_NAMES
    custom = bundled.clip_specs({"emotions": [3], "sentences": [1]})
    assert [s.name for s in custom] == ["Em3_Fala1_Sintetica", "Em3_Fala1_Neutra_Sintetica"]


@pytest.mark.parametrize(
    ("subset", "message"),
    [
        ("medium", "subset"),
        (5, "subset"),
        ({"emotions": [23]}, "emotion 23"),
        ({"emotions": [0]}, "emotion 0"),
        ({"emotions": [1], "sentences": [4]}, "sentence 4"),
        ({"emotions": [1], "sentences": [0]}, "sentence 0"),
    ],
)
def test_invalid_subsets_are_rejected(subset, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bundled.clip_specs(subset)


# =========================================================================== built corpus


@pytest.fixture(scope="module")
def built(quick_corpus) -> Path:
    return Path(quick_corpus.out_dir)


@pytest.fixture(scope="module")
def truth(built: Path) -> dict[str, dict]:
    return {name: bundled.load_groundtruth(bundled.gt_path(built, name)) for name in QUICK_NAMES}


def _spec(name: str) -> bundled.ClipSpec:
    return next(s for s in bundled.clip_specs("quick") if s.name == name)


@slow
def test_discover_bundled_lists_the_quick_clips(built: Path) -> None:
    clips = discover("bundled")
    assert sorted(clips["clip"]) == sorted(QUICK_NAMES)
    by_name = clips.set_index("clip")
    for spec in bundled.clip_specs("quick"):
        row = by_name.loc[spec.name]
        assert (row["emotion"], row["sentence"], row["neutral"]) == (
            spec.emotion,
            spec.sentence,
            spec.neutral,
        )
        assert row["emotion_name"] == {1: "Joy", 8: "Fear", 14: "Shame", 20: "Anger"}[spec.emotion]
        assert row["speaker"] == bundled.SPEAKER
        assert Path(row["path"]).parent == built.resolve()
    info = describe(clips)
    assert (info["problem"] == "").all()
    assert set(info["video_codec"]) == {"h264"} and set(info["audio_codec"]) == {"aac"}


@slow
@pytest.mark.parametrize("name", QUICK_NAMES)
def test_clip_media_and_clock(built: Path, truth: dict, name: str) -> None:
    path = built / f"{name}.mp4"
    info = media.probe(path)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert info["fps"] == Fraction(30000, 1001)
    assert (info["width"], info["height"]) == (bundled.FRAME_SIZE, bundled.FRAME_SIZE)
    assert info["audio_rate"] == 44100 and info["channels"] == 1
    gt = truth[name]
    times = np.array([t for t, _ in media.iter_frames(path)])
    assert len(times) == len(gt["times"]) == info["n_frames"]
    k = np.arange(len(times))
    assert np.abs(times - k * 1001 / 30000).max() < 1e-4
    assert np.abs(gt["times"] - k * 1001 / 30000).max() < 1e-9
    assert gt["fps"] == Fraction(30000, 1001)
    assert info["duration"] == pytest.approx(gt["duration"], abs=0.05)


@slow
@pytest.mark.parametrize("name", QUICK_NAMES)
def test_groundtruth(truth: dict, name: str) -> None:
    gt, spec = truth[name], _spec(name)
    pts = gt["points"]
    assert pts.dtype == np.float32 and pts.shape == (len(gt["times"]), 68, 2)
    assert np.isfinite(pts).all()
    assert (pts >= 0).all() and (pts < bundled.FRAME_SIZE).all()
    jaw_width = np.linalg.norm(pts[:, 16] - pts[:, 0], axis=-1)
    assert jaw_width.min() >= 200
    assert len(gt["times"]) == len(bundled.frame_times(gt["duration"]))
    start, end = gt["phoneme_start"], gt["phoneme_end"]
    assert len(start) == len(end) == len(gt["phoneme_symbol"]) > 10
    assert np.all(np.diff(start) > 0) and np.all(end > start)
    assert np.all(end[:-1] <= start[1:] + 1e-9)
    assert start[0] >= bundled.LEAD_S - 1e-9
    assert end[-1] <= gt["duration"] - bundled.TAIL_S + 2e-3
    assert (
        gt["emotion"],
        gt["sentence"],
        gt["neutral"],
        gt["speaker"],
        gt["text"],
        gt["variant"],
    ) == (spec.emotion, spec.sentence, spec.neutral, spec.speaker, spec.text, spec.variant)
    assert gt["key"] == bundled.clip_key(spec, 0)


@slow
@pytest.mark.parametrize("name", QUICK_NAMES)
def test_audio_track_is_the_synthesized_audio(built: Path, truth: dict, name: str) -> None:
    from scipy.signal import correlate

    clip = bundled.synthesize_clip(_spec(name))
    again = bundled.synthesize_clip(_spec(name))
    for field in ("audio", "times", "points", "params", "blink", "head"):
        assert np.array_equal(getattr(clip, field), getattr(again, field)), field
    assert clip.phonemes == again.phonemes
    # what was written is what synthesize_clip makes
    assert np.array_equal(truth[name]["points"], clip.points)

    decoded = media.decode_audio(built / f"{name}.mp4", 44100)
    syn = clip.audio.astype(np.float64)
    # AAC pads to whole 1024-sample frames; the muxer may also end the track a few samples
    # early (24 samples, 0.5 ms, measured on one clip): compare over the common length
    assert abs(len(decoded) - len(syn)) < 2048
    n = min(len(decoded), len(syn))
    dec, syn = decoded[:n].astype(np.float64), syn[:n]
    corr = correlate(dec, syn, mode="full", method="fft")
    max_lag = 4410  # search +-100 ms
    centre = len(syn) - 1
    window = corr[centre - max_lag : centre + max_lag + 1]
    lag = int(np.argmax(window)) - max_lag
    peak = window.max() / np.sqrt(np.dot(dec, dec) * np.dot(syn, syn))
    assert abs(lag) <= 44, f"audio offset {lag / 44.1:.2f} ms"
    assert peak > 0.95


@slow
def test_rebuild_is_a_noop_and_seed_invalidates(built: Path) -> None:
    files = sorted(built.glob("*.mp4")) + sorted((built / "groundtruth").glob("*.npz"))
    assert len(files) >= 16
    before = {p: p.stat().st_mtime_ns for p in files}
    report = bundled.build(out_dir=built, subset="quick", n_jobs=2, progress=False)
    assert (report.n_cached, report.n_built, report.failures) == (24, 0, [])
    assert {p: p.stat().st_mtime_ns for p in files} == before
    for spec in bundled.clip_specs("quick"):
        assert bundled.is_current(built, spec, seed=0)
        assert not bundled.is_current(built, spec, seed=1)
        assert bundled.clip_key(spec, 0) != bundled.clip_key(spec, 1)
        assert not bundled.is_current(built / "elsewhere", spec, seed=0)  # no files there


@slow
def test_no_partial_files_and_a_manifest(built: Path) -> None:
    assert [p.name for p in built.rglob("*partial*")] == []
    manifest = json.loads((built / "corpus.json").read_text(encoding="utf-8"))
    assert manifest["corpus"] == "bundled" and manifest["seed"] == 0
    assert manifest["generator"] == bundled.GENERATOR_VERSION
    assert manifest["fps"] == "30000/1001" and manifest["audio_rate"] == 44100
    listed = {c["clip"]: c for c in manifest["clips"]}
    assert set(QUICK_NAMES) <= set(listed)
    current = {s.name for s in bundled.clip_specs("full") if bundled.is_current(built, s, 0)}
    assert set(listed) == current
    for spec in bundled.clip_specs("quick"):
        entry = listed[spec.name]
        assert entry["key"] == bundled.clip_key(spec, 0)
        assert (entry["text"], entry["variant"]) == (spec.text, spec.variant)


@slow
def test_dlib_finds_the_groundtruth_keypoints(built: Path, truth: dict) -> None:
    """The corpus' acceptance number: dlib, run on the rendered frames, lands within 5 % of the
    inter-ocular distance of the keypoints the frames were rendered from."""
    names = [s.name for s in bundled.clip_specs("quick") if s.sentence == 1]
    assert len(names) == 8 and len({n.split("_")[0] for n in names}) == 4
    n_frames, errors, mouth = 0, [], []
    for name in names:
        gt = truth[name]["points"].astype(np.float64)
        for k, (_, image) in enumerate(media.iter_frames(built / f"{name}.mp4")):
            if k % 4:
                continue
            n_frames += 1
            found = face68.detect_68(image, 0)
            if found is None:
                continue
            err = np.linalg.norm(found - gt[k], axis=-1) / shapes.inter_ocular(gt[k])
            errors.append(err.mean())
            mouth.append(err[shapes.MOUTH].mean())
    rate = len(errors) / n_frames
    mean_err, mouth_err = 100 * np.mean(errors), 100 * np.mean(mouth)
    print(
        f"\ndlib on the bundled corpus: {len(errors)}/{n_frames} frames ({100 * rate:.1f} %), "
        f"mean error {mean_err:.2f} % IOD (worst frame {100 * np.max(errors):.2f} %), "
        f"mouth {mouth_err:.2f} % IOD"
    )
    assert n_frames >= 80
    assert rate >= 0.99
    assert mean_err < 5.0
    assert mouth_err < 5.0


@slow
def test_a_failing_clip_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subset = {"emotions": [3], "sentences": [1]}
    bad, good = "Em3_Fala1_Sintetica", "Em3_Fala1_Neutra_Sintetica"
    real_build_clip = bundled.build_clip

    def flaky(spec, out_dir, seed=0):
        if spec.name == bad:
            raise RuntimeError("synthetic failure for the test")
        return real_build_clip(spec, out_dir, seed)

    monkeypatch.setattr(bundled, "build_clip", flaky)
    report = bundled.build(out_dir=tmp_path, subset=subset, n_jobs=1, progress=False)
    assert report.failures == [(bad, "RuntimeError: synthetic failure for the test")]
    assert (report.n_built, report.n_cached) == (1, 0)
    assert [row["clip"] for row in report.built] == [good]
    assert (tmp_path / f"{good}.mp4").is_file() and bundled.gt_path(tmp_path, good).is_file()
    assert not (tmp_path / f"{bad}.mp4").exists()
    assert not bundled.gt_path(tmp_path, bad).exists()
    assert [p.name for p in tmp_path.rglob("*partial*")] == []
    manifest = json.loads((tmp_path / "corpus.json").read_text(encoding="utf-8"))
    assert [c["clip"] for c in manifest["clips"]] == [good]

    monkeypatch.setattr(bundled, "build_clip", real_build_clip)
    again = bundled.build(out_dir=tmp_path, subset=subset, n_jobs=1, progress=False)
    assert (again.n_built, again.n_cached, again.failures) == (1, 1, [])
    assert [row["clip"] for row in again.built] == [bad]
