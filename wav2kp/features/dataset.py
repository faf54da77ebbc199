"""Splits, processed-set storage and torch datasets.

Three concerns, in the order notebook 02 uses them:

**Splits** (:func:`make_splits`). The original project's plan: per emotion, one *sentence* goes to
test and one to validation, the rest to training, and a sentence's neutral take goes wherever
its emotional take goes, so no sentence of the test set is ever heard in training. The rules:

- CH-Unicamp-named clips (emotion and sentence both known) are grouped by ``(emotion,
  sentence)``; the group is ``"Em<E>_Fala<S>"``, and every take of it (emotional, neutral, any
  speaker) lands in one split. Per emotion, the sentences are ranked by a SHA-256 of
  ``(seed, emotion, sentence)`` (stable across runs, machines and Python versions; never
  Python's ``hash()``). With 3 or more sentences: the first-ranked goes to test, the second to
  val, the rest to train. With 2: one test, one train (every emotion keeps test clips and
  training data; val comes from the fallback below). With 1: train.
- Fallback, so that small tables still give three usable splits: when the groups above leave
  test or val empty and there are at least 3 groups, one train group moves there (from the
  emotion with the most train groups; ties by a seeded hash). Only while at least one train
  group remains. Two sentences per emotion (emotions 1 and 20, sentences 1-2, say) therefore give 2
  test groups (4 clips), 1 val group (2 clips) and 1 train group (2 clips).
- ``val_fraction`` / ``test_fraction`` of 0 switch that split off (for both rules); otherwise
  the CH-Unicamp rule uses sentence counts, not the fractions.
- Other clips (emotion or sentence unknown: generic folders) are split clip by clip: clips ranked
  by a SHA-256 of ``(seed, clip)``, counts by largest-remainder rounding of ``n * fraction``
  (ties go to test, then val, then train), then at least one clip per split (whose fraction is
  not 0) when there are 3 or more clips, taken from the largest split. 10 clips at 70/15/15:
  quotas 7 / 1.5 / 1.5 give 7 train, 1 val, 2 test. The group of such a clip is its own name.
- A mixed table splits its CH-Unicamp part and its generic part separately, each by its rule.

**Storage.** A processed feature set lives in ``data/processed/<corpus>/<feature-set>/``
(:func:`wav2kp.config.processed_dir`): ``utterances/<clip>.npz`` (one compressed file per clip,
written atomically), ``manifest.json`` (:func:`write_manifest`) and ``splits.csv``
(:func:`write_splits`). An utterance holds at least ``features (N, F)`` float32,
``feature_times (N,)`` seconds, ``targets (N, D)`` float32 aligned to the feature frames and
``video_times (T,)`` seconds; optionally ``valid (N,)`` bool (the frame's target came from a found
face) and anything else (pose transforms, ...). This module stores and serves them; features.py
and shapes.py compute them.

**Datasets.** :class:`WindowDataset` serves ``(context window, target)`` pairs for frame models,
slicing windows from one padded copy of each utterance's features (memory does not grow with
the window length); :class:`UtteranceDataset` serves whole utterances for sequence models, with
:func:`collate_padded` for batching. Neither holds any randomness: shuffle in the DataLoader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from wav2kp import config, media, parallel, shapes
from wav2kp.extraction import landmarks
from wav2kp.features import acoustic as features
from wav2kp.manifest import (
    inputs_sha256,
    package_versions,
    write_csv_atomic,
    write_json_atomic,
    write_npz_atomic,
)

SPLITS = ("train", "val", "test")
#: Columns of ``splits.csv``, in order.
SPLIT_COLUMNS = [
    "clip", "emotion", "emotion_name", "sentence", "neutral", "speaker", "group", "split", "source",
]  # fmt: skip
#: Separates a source corpus' name from its clip's name in a mixed set (``grid_s1__bbaf3s``).
MIXED_SEP = "__"
#: Arrays every stored utterance must hold.
REQUIRED_ARRAYS = ("features", "feature_times", "targets", "video_times")
#: Version of the processed-set layout; bump it when the stored arrays change meaning.
FORMAT_VERSION = 1
#: Packages whose versions a processed set's manifest records (and checks).
MANIFEST_PACKAGES = ("wav2kp", "numpy", "torch", "torchaudio")

Utterance = dict  # {name: np.ndarray}
Source = str | os.PathLike | Mapping[str, Mapping[str, np.ndarray]]


# --------------------------------------------------------------------------------------- splits


def _rank(*parts: Any) -> str:
    """Stable sort key: hex SHA-256 of the parts joined by NUL."""
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def group_name(emotion: int, sentence: int) -> str:
    """``"Em<E>_Fala<S>"``: the key that keeps every take of a sentence in one split."""
    return f"Em{int(emotion)}_Fala{int(sentence)}"


def _is_chu(clips: pd.DataFrame) -> pd.Series:
    return clips["emotion"].notna() & clips["sentence"].notna()


def _fallback(assign: dict, order_key: dict, enabled: dict, seed: int) -> None:
    """Move one train group to each enabled, empty holdout split while >= 2 train groups remain.

    ``assign``: {group: split}; ``order_key``: {group: (bucket, rank)} where bucket is what
    the groups are balanced over (the emotion; the group itself for clip-wise splits).
    """
    if len(assign) < 3:
        return
    for split in ("test", "val"):
        if not enabled[split] or split in assign.values():
            continue
        train = [g for g, s in assign.items() if s == "train"]
        if len(train) < 2:
            return
        per_bucket: dict = {}
        for g in train:
            per_bucket.setdefault(order_key[g][0], []).append(g)
        bucket = min(per_bucket, key=lambda b: (-len(per_bucket[b]), _rank(seed, "bucket", b)))
        group = min(per_bucket[bucket], key=lambda g: order_key[g][1])
        assign[group] = split


def _split_by_sentence(clips: pd.DataFrame, seed: int, enabled: dict) -> tuple[list, list]:
    groups = [group_name(e, s) for e, s in zip(clips["emotion"], clips["sentence"])]
    assign, order_key = {}, {}
    sentences = (
        clips[["emotion", "sentence"]].drop_duplicates().sort_values(["emotion", "sentence"])
    )
    for emotion, rows in sentences.groupby("emotion", sort=True):
        ranked = sorted(
            (int(s) for s in rows["sentence"]),
            key=lambda s: _rank(seed, "sentence", int(emotion), s),
        )
        holdouts = [sp for sp in ("test", "val") if enabled[sp]]
        if len(ranked) == 2:
            holdouts = holdouts[:1]
        elif len(ranked) < 2:
            holdouts = []
        for i, sentence in enumerate(ranked):
            g = group_name(emotion, sentence)
            assign[g] = holdouts[i] if i < len(holdouts) else "train"
            order_key[g] = (int(emotion), i)
    _fallback(assign, order_key, enabled, seed)
    return groups, [assign[g] for g in groups]


def _split_counts(n: int, fractions: dict) -> dict:
    """Largest-remainder counts for ``n`` clips (ties: test, val, train), then >= 1 per enabled
    split when ``n >= 3``."""
    quotas = {"test": n * fractions["test"], "val": n * fractions["val"]}
    quotas["train"] = n - quotas["test"] - quotas["val"]
    quotas = {k: round(v, 9) for k, v in quotas.items()}  # 10 * 0.15 must be 1.5, not 1.4999...
    counts = {k: math.floor(v) for k, v in quotas.items()}
    order = ["test", "val", "train"]
    for k in sorted(order, key=lambda k: (-(quotas[k] - counts[k]), order.index(k)))[
        : n - sum(counts.values())
    ]:
        counts[k] += 1
    if n >= 3:
        for k in order:
            if counts[k] == 0 and (k == "train" or fractions[k] > 0):
                donor = max(order, key=lambda d: (counts[d], d == "train"))
                counts[donor] -= 1
                counts[k] += 1
    return counts


def _split_by_clip(clips: pd.DataFrame, seed: int, fractions: dict) -> tuple[list, list]:
    names = [str(c) for c in clips["clip"]]
    ranked = sorted(names, key=lambda c: _rank(seed, "clip", c))
    counts = _split_counts(len(ranked), fractions)
    assign = {}
    for i, clip in enumerate(ranked):
        assign[clip] = (
            "test"
            if i < counts["test"]
            else "val"
            if i < counts["test"] + counts["val"]
            else "train"
        )
    return names, [assign[c] for c in names]


def make_splits(
    clips: pd.DataFrame, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> pd.DataFrame:
    """Assign every clip of a clip table to ``"train"``, ``"val"`` or ``"test"``.

    Parameters
    ----------
    clips:
        The clip table (:func:`wav2kp.corpus.discovery.discover`); needs ``clip``, ``emotion``
        and ``sentence`` (``<NA>`` when unknown). Clip names must be unique.
    seed:
        Decides which sentence (or clip) goes where; the same table and seed always give the
        same splits.
    val_fraction, test_fraction:
        Fractions for clip-wise splits of generic clips; 0 switches a split off everywhere.
        CH-Unicamp-named clips are split by sentence counts (see the module docstring).

    Returns
    -------
    A copy of ``clips`` (same row order, fresh index) with ``group`` (``"Em<E>_Fala<S>"``, or the
    clip name for generic clips) and ``split`` columns.
    """
    missing = {"clip", "emotion", "sentence"} - set(clips.columns)
    if missing:
        raise ValueError(
            f"make_splits needs the clip table's columns {sorted(missing)}; "
            f"build the table with wav2kp.corpus.discovery.discover."
        )
    duplicated = clips["clip"][clips["clip"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"Clip names must be unique; repeated: {duplicated[:5]}.")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}.")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}."
        )
    fractions = {"val": float(val_fraction), "test": float(test_fraction)}
    enabled = {"val": val_fraction > 0, "test": test_fraction > 0}
    table = clips.copy().reset_index(drop=True)
    table["group"] = pd.Series([""] * len(table), dtype=object)
    table["split"] = pd.Series(["train"] * len(table), dtype=object)
    chu = _is_chu(table).to_numpy(dtype=bool)
    if chu.any():
        groups, splits = _split_by_sentence(table[chu], int(seed), enabled)
        table.loc[chu, "group"] = groups
        table.loc[chu, "split"] = splits
    if (~chu).any():
        groups, splits = _split_by_clip(table[~chu], int(seed), fractions)
        table.loc[~chu, "group"] = groups
        table.loc[~chu, "split"] = splits
    table["group"] = table["group"].astype(str)
    table["split"] = table["split"].astype(str)
    return table


def _leak_keys(table: pd.DataFrame) -> list[str]:
    if {"emotion", "sentence"} <= set(table.columns):
        chu = _is_chu(table).to_numpy(dtype=bool)
    else:
        chu = np.zeros(len(table), bool)
    fallback = table["group"] if "group" in table.columns else table["clip"]
    keys = [str(f) for f in fallback]
    for i in np.flatnonzero(chu):
        keys[i] = group_name(table["emotion"].iloc[i], table["sentence"].iloc[i])
    return keys


def check_no_leak(table: pd.DataFrame) -> None:
    """Raise ``ValueError`` when a sentence (``(emotion, sentence)`` group; for generic clips the
    ``group`` column, else the clip) has takes in more than one split. Returns ``None``."""
    if "split" not in table.columns:
        raise ValueError("The table has no 'split' column; make it with make_splits.")
    bad_values = sorted(set(table["split"]) - set(SPLITS))
    if bad_values:
        raise ValueError(f"Unknown split names {bad_values}; expected {list(SPLITS)}.")
    frame = pd.DataFrame(
        {
            "key": _leak_keys(table),
            "split": table["split"].astype(str).values,
            "clip": table["clip"].astype(str).values,
        }
    )
    leaks = []
    for key, rows in frame.groupby("key", sort=True):
        if rows["split"].nunique() > 1:
            where = ", ".join(
                f"{s}: {', '.join(sorted(r['clip']))}" for s, r in rows.groupby("split", sort=True)
            )
            leaks.append(f"{key} ({where})")
    if leaks:
        raise ValueError(
            f"Split leak: {len(leaks)} group(s) have takes in more than one split, so a test "
            f"sentence would be heard in training: {'; '.join(leaks[:10])}. Every take of a "
            f"sentence must share one split; rebuild the splits with make_splits."
        )


def clips_in(table: pd.DataFrame, split: str) -> list[str]:
    """Clip names of one split, in table order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    return [str(c) for c in table.loc[table["split"] == split, "clip"]]


def write_splits(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``splits.csv`` (:data:`SPLIT_COLUMNS`; those the table lacks, other than ``clip``,
    ``group`` and ``split``, are left out) atomically. Checks for leaks first."""
    path = Path(path)
    missing = {"clip", "group", "split"} - set(table.columns)
    if missing:
        raise ValueError(
            f"Cannot write {path}: the table lacks {sorted(missing)}; make it with make_splits."
        )
    check_no_leak(table)
    return write_csv_atomic(path, table[[c for c in SPLIT_COLUMNS if c in table.columns]])


def read_splits(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``splits.csv`` written by :func:`write_splits`: ``emotion`` and ``sentence`` as
    ``Int64`` (``<NA>`` when unknown), ``neutral`` bool, the others str (a clip named ``"NA"``
    stays a string)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; write it with write_splits (notebook 02_features)."
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"clip", "group", "split"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: not a splits file, it lacks the columns {sorted(missing)}.")
    for column in ("emotion", "sentence"):
        if column in table.columns:
            text = table[column].str.strip()
            table[column] = pd.to_numeric(text.where(text != "", None)).astype("Int64")
    if "neutral" in table.columns:
        values = table["neutral"].str.strip().str.lower()
        unknown = sorted(set(values) - {"true", "false"})
        if unknown:
            raise ValueError(f"{path}: column 'neutral' holds {unknown}; expected True/False.")
        table["neutral"] = (values == "true").astype(bool)
    bad = sorted(set(table["split"]) - set(SPLITS))
    if bad:
        raise ValueError(f"{path}: unknown split names {bad}; expected {list(SPLITS)}.")
    return table


# -------------------------------------------------------------------------------------- storage


def utterance_path(out_dir: str | os.PathLike, clip: str) -> Path:
    """``<out_dir>/utterances/<clip>.npz``."""
    clip = str(clip)
    if not clip or clip.startswith(".") or "/" in clip or "\\" in clip:
        raise ValueError(f"Clip name {clip!r} cannot be a file name (empty, hidden, or a path).")
    return Path(out_dir) / "utterances" / f"{clip}.npz"


def _check_utterance(clip: str, utt: Mapping[str, Any]) -> dict[str, np.ndarray]:
    missing = [k for k in REQUIRED_ARRAYS if k not in utt]
    if missing:
        raise ValueError(
            f"Utterance {clip!r} lacks {missing}; every utterance needs {list(REQUIRED_ARRAYS)}."
        )
    arrays = {k: np.asarray(v) for k, v in utt.items()}
    for key in ("features", "targets"):
        arrays[key] = arrays[key].astype(np.float32, copy=False)
    n = arrays["features"].shape[0] if arrays["features"].ndim == 2 else None
    if n is None or arrays["targets"].ndim != 2 or arrays["targets"].shape[0] != n:
        raise ValueError(
            f"Utterance {clip!r}: features must be (N, F) and targets (N, D), got "
            f"{arrays['features'].shape} and {arrays['targets'].shape}."
        )
    if arrays["feature_times"].shape != (n,):
        raise ValueError(
            f"Utterance {clip!r}: feature_times must be ({n},), got "
            f"{arrays['feature_times'].shape}."
        )
    if arrays["video_times"].ndim != 1:
        raise ValueError(
            f"Utterance {clip!r}: video_times must be 1-D, got {arrays['video_times'].shape}."
        )
    if "valid" in arrays:
        if arrays["valid"].shape != (n,):
            raise ValueError(
                f"Utterance {clip!r}: valid must be ({n},), got {arrays['valid'].shape}."
            )
        arrays["valid"] = arrays["valid"].astype(bool, copy=False)
    for key, value in arrays.items():
        if value.dtype == object:
            raise ValueError(
                f"Utterance {clip!r}: {key!r} is an object array; store numbers, "
                f"booleans or strings only."
            )
    return arrays


def save_utterances(
    out_dir: str | os.PathLike, utterances: Mapping[str, Mapping[str, np.ndarray]]
) -> list[Path]:
    """Write each utterance to ``<out_dir>/utterances/<clip>.npz`` (compressed, atomic: a hidden
    ``.<clip>.partial.npz`` then a rename). ``features`` and ``targets`` are stored as float32,
    ``valid`` as bool; other arrays as given. Returns the paths, in the mapping's order."""
    paths = []
    for clip, utt in utterances.items():
        arrays = _check_utterance(str(clip), utt)
        paths.append(write_npz_atomic(utterance_path(out_dir, clip), **arrays))
    return paths


def load_utterance(out_dir: str | os.PathLike, clip: str) -> dict[str, np.ndarray]:
    """The arrays of one stored utterance, ``{name: array}``."""
    path = utterance_path(out_dir, clip)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: clip {clip!r} is not in the processed "
            f"set {Path(out_dir)} (re-run notebook 02_features)."
        )
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def list_utterances(out_dir: str | os.PathLike) -> list[str]:
    """Sorted clip names stored under ``<out_dir>/utterances``."""
    folder = Path(out_dir) / "utterances"
    return sorted(p.stem for p in folder.glob("*.npz") if not p.name.startswith("."))


def _normalised(data: Any) -> Any:
    """``data`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def write_manifest(
    out_dir: str | os.PathLike,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    packages: Iterable[str] = MANIFEST_PACKAGES,
    **extra: Any,
) -> Path:
    """Write ``<out_dir>/manifest.json``: the feature ``params``, ``inputs`` (``{clip: sha256 of
    what the clip's utterance was computed from}``), the format version and package versions;
    ``extra`` (corpus name, wall time, ...) is recorded but not checked."""
    packages = list(packages)
    return write_json_atomic(
        Path(out_dir) / "manifest.json",
        {
            "stage": "features",
            "format": FORMAT_VERSION,
            "params": _normalised(dict(params)),
            "inputs": _normalised(dict(inputs)),
            "packages": packages,
            "versions": package_versions(packages),
            **_normalised(extra),
        },
    )


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a processed set."""
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; the processed set is incomplete (re-run notebook 02_features)."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); delete it and re-run notebook 02_features."
        ) from err


def manifest_matches(
    out_dir: str | os.PathLike, params: Mapping[str, Any], inputs: Mapping[str, str]
) -> bool:
    """True when ``out_dir`` holds a complete processed set made with these ``params`` from these
    ``inputs`` by the same format and package versions: the cache can be reused."""
    try:
        manifest = read_manifest(out_dir)
    except (FileNotFoundError, ValueError):
        return False
    packages = manifest.get("packages", list(MANIFEST_PACKAGES))
    return (
        manifest.get("format") == FORMAT_VERSION
        and manifest.get("params") == _normalised(dict(params))
        and manifest.get("inputs") == _normalised(dict(inputs))
        and manifest.get("versions") == package_versions(packages)
        and all(utterance_path(out_dir, c).is_file() for c in inputs)
    )


# ------------------------------------------------------------------------------------- datasets


def _get_utterance(source: Source, clip: str) -> Mapping[str, np.ndarray]:
    if isinstance(source, Mapping):
        if clip not in source:
            raise KeyError(f"Clip {clip!r} is not among the {len(source)} utterances given.")
        return source[clip]
    return load_utterance(source, clip)


def _prepare(
    source: Source, clip: str, normalizer: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features float32 (N, F), targets float32 (N, D), valid bool (N,))`` of one clip.

    ``valid`` defaults to "target finite"; a valid frame with a non-finite target, or any
    non-finite feature, is an error naming the clip.
    """
    utt = _get_utterance(source, clip)
    for key in ("features", "targets"):
        if key not in utt:
            raise ValueError(f"Utterance {clip!r} has no {key!r} array.")
    features = np.asarray(utt["features"], dtype=np.float32)
    targets = np.asarray(utt["targets"], dtype=np.float32)
    if features.ndim != 2 or targets.ndim != 2 or len(features) != len(targets):
        raise ValueError(
            f"Utterance {clip!r}: features must be (N, F) and targets (N, D), got "
            f"{features.shape} and {targets.shape}."
        )
    if normalizer is not None:
        features = np.asarray(normalizer(features), dtype=np.float32)
        if features.shape[0] != len(targets) or features.ndim != 2:
            raise ValueError(
                f"Utterance {clip!r}: the normalizer changed the features' shape "
                f"to {features.shape}."
            )
    if not np.isfinite(features).all():
        raise ValueError(f"Utterance {clip!r}: its features hold NaN or inf.")
    finite = np.isfinite(targets).all(axis=1)
    if "valid" in utt:
        valid = np.asarray(utt["valid"], dtype=bool)
        if valid.shape != (len(targets),):
            raise ValueError(
                f"Utterance {clip!r}: valid must be ({len(targets)},), got {valid.shape}."
            )
        bad = int((valid & ~finite).sum())
        if bad:
            raise ValueError(
                f"Utterance {clip!r}: {bad} frame(s) are marked valid but their "
                f"target holds NaN or inf."
            )
    else:
        valid = finite
    return features, targets, valid


def _check_clips(clips: Sequence[str]) -> list[str]:
    clips = [str(c) for c in clips]
    repeated = sorted({c for c in clips if clips.count(c) > 1})
    if repeated:
        raise ValueError(f"Clips listed more than once: {repeated[:5]}.")
    return clips


class WindowIndex(Sequence):
    """Dataset item ``i`` -> ``(clip, frame)``; backed by two integer arrays (``utterance``,
    ``frame``) so that it stays small for long corpora."""

    def __init__(self, clips: list[str], utterance: np.ndarray, frame: np.ndarray):
        self.clips = clips
        self.utterance = utterance
        self.frame = frame

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.clips[int(self.utterance[i])], int(self.frame[i])

    def to_frame(self) -> pd.DataFrame:
        """``DataFrame(clip, frame)``, one row per dataset item."""
        return pd.DataFrame(
            {"clip": np.asarray(self.clips, dtype=object)[self.utterance], "frame": self.frame}
        )


class WindowDataset(torch.utils.data.Dataset):
    """``(window, target)`` pairs for every valid feature frame of ``clips``.

    Item ``i`` is frame ``n`` of a clip (see :attr:`index`): ``window`` is the float32 tensor
    ``features[n - n_past .. n + n_future]`` of shape ``(n_past + 1 + n_future, F)``, frames
    outside the utterance padded (``pad="edge"``: the first / last frame repeated; ``"zero"``:
    zeros, i.e. the mean once features are standardised), and ``target`` is ``targets[n]``
    float32 ``(D,)``. Frames whose ``valid`` is False (or, without ``valid``, whose target is
    not finite) are skipped.

    Parameters
    ----------
    source:
        A processed-set folder (utterances are read with :func:`load_utterance`) or a mapping
        ``{clip: utterance dict}``.
    clips:
        Clips to serve, in order (e.g. ``clips_in(splits, "train")``).
    n_past, n_future:
        Context frames before and after the target frame.
    normalizer:
        A callable ``normalizer(features (N, F)) -> (N, F)`` (e.g. :class:`wav2kp.features.FeatureNormalizer`), applied once per utterance here.

    Memory: one padded float32 copy of each utterance's features (``(N + n_past + n_future) *
    F * 4`` bytes) plus 16 bytes per item; windows are sliced on access, never stored.
    """

    def __init__(
        self,
        source: Source,
        clips: Sequence[str],
        n_past: int,
        n_future: int,
        normalizer: Any = None,
        pad: str = "edge",
    ):
        if pad not in ("edge", "zero"):
            raise ValueError(f"pad must be 'edge' or 'zero', got {pad!r}.")
        for name, value in (("n_past", n_past), ("n_future", n_future)):
            if int(value) != value or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
        self.clips = _check_clips(clips)
        self.n_past, self.n_future, self.pad = int(n_past), int(n_future), pad
        self.window = self.n_past + 1 + self.n_future
        self.n_features: int | None = None
        self.n_targets: int | None = None
        self._features: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        utterance, frame = [], []
        for u, clip in enumerate(self.clips):
            features, targets, valid = _prepare(source, clip, normalizer)
            self._check_dims(clip, features.shape[1], targets.shape[1])
            widths = ((self.n_past, self.n_future), (0, 0))
            padded = (
                np.pad(features, widths, mode="edge")
                if pad == "edge"
                else np.pad(features, widths, mode="constant")
            )
            del features
            self._features.append(torch.from_numpy(padded))
            self._targets.append(torch.from_numpy(np.ascontiguousarray(targets)))
            frames = np.flatnonzero(valid)
            frame.append(frames)
            utterance.append(np.full(len(frames), u, dtype=np.int64))
        self.index = WindowIndex(
            self.clips,
            np.concatenate(utterance) if utterance else np.zeros(0, np.int64),
            np.concatenate(frame).astype(np.int64) if frame else np.zeros(0, np.int64),
        )

    def _check_dims(self, clip: str, n_features: int, n_targets: int) -> None:
        if self.n_features is None:
            self.n_features, self.n_targets = n_features, n_targets
        elif (n_features, n_targets) != (self.n_features, self.n_targets):
            raise ValueError(
                f"Utterance {clip!r} has F={n_features}, D={n_targets}; the first "
                f"clip had F={self.n_features}, D={self.n_targets}."
            )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} is out of range for {len(self)} items.")
        u, n = int(self.index.utterance[i]), int(self.index.frame[i])
        # padded row n is original frame n - n_past
        return self._features[u][n : n + self.window].clone(), self._targets[u][n].clone()


class UtteranceDataset(torch.utils.data.Dataset):
    """Whole utterances for sequence models: item ``i`` is clip ``clips[i]`` as
    ``(features (N, F) float32, targets (N, D) float32, valid (N,) bool)`` tensors.

    Targets of invalid frames are set to 0 (not NaN) so that a masked loss stays finite; use
    ``valid`` to mask them. ``source`` and ``normalizer`` as for :class:`WindowDataset`.
    """

    def __init__(self, source: Source, clips: Sequence[str], normalizer: Any = None):
        self.clips = _check_clips(clips)
        self._items = []
        self.n_features: int | None = None
        self.n_targets: int | None = None
        for clip in self.clips:
            features, targets, valid = _prepare(source, clip, normalizer)
            if self.n_features is None:
                self.n_features, self.n_targets = features.shape[1], targets.shape[1]
            elif (features.shape[1], targets.shape[1]) != (self.n_features, self.n_targets):
                raise ValueError(
                    f"Utterance {clip!r} has F={features.shape[1]}, "
                    f"D={targets.shape[1]}; the first clip had F={self.n_features},"
                    f" D={self.n_targets}."
                )
            targets = np.where(valid[:, None], targets, np.float32(0)).astype(np.float32)
            self._items.append(
                (
                    torch.from_numpy(np.ascontiguousarray(features)),
                    torch.from_numpy(targets),
                    torch.from_numpy(valid.copy()),
                )
            )

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(t.clone() for t in self._items[i])


class PaddedBatch(NamedTuple):
    """A batch of utterances padded to the longest: ``features (B, L, F)``, ``targets (B, L, D)``
    (0 past each length), ``valid (B, L)`` (False past each length), ``lengths (B,)`` int64 and
    ``mask (B, L)`` (True within each length)."""

    features: torch.Tensor
    targets: torch.Tensor
    valid: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor


def collate_padded(batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> PaddedBatch:
    """``collate_fn`` for :class:`UtteranceDataset`: pads with zeros (False for ``valid``),
    keeps the batch order."""
    if not batch:
        raise ValueError("collate_padded got an empty batch.")
    features, targets, valid = zip(*batch)
    lengths = torch.tensor([len(f) for f in features], dtype=torch.int64)
    pad = torch.nn.utils.rnn.pad_sequence
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    return PaddedBatch(
        pad(list(features), batch_first=True),
        pad(list(targets), batch_first=True),
        pad(list(valid), batch_first=True, padding_value=False),
        lengths,
        mask,
    )


# ------------------------------------------------------------------------------ building a set

ALIGNMENTS = ("timestamps", "original_x3")
TARGETS = ("face", "mouth")


def feature_set_name(mfcc_cfg, alignment: str, targets: str) -> str:
    """Folder name of a feature set, e.g. ``mfcc40_timestamps_face``."""
    deltas = "d" if mfcc_cfg.deltas else ""
    orig = (
        "orig"
        if mfcc_cfg.hop_length == 200 and mfcc_cfg.win_length == 400 and not mfcc_cfg.log_mels
        else ""
    )
    return f"mfcc{mfcc_cfg.n_mfcc}{deltas}{orig}_{alignment}_{targets}"


class FeatureSet:
    """A processed feature set on disk: utterances, splits, and the fitted pieces that map
    predictions back to pixels (reference face, PCA, feature normaliser).

    ``targets`` in the utterances are keypoints in normalised face coordinates (similarity
    Procrustes to the training mean face: unit inter-ocular distance), flattened ``(N, P*2)``
    with P = 68 (``face``) or 20 (``mouth``), at the MFCC frame times.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:

        self.out_dir = Path(out_dir)
        info = json.loads((self.out_dir / "feature_set.json").read_text(encoding="utf-8"))
        self.info = info
        self.params = info["params"]
        self.splits = read_splits(self.out_dir / "splits.csv")
        self.reference = np.asarray(info["reference"], dtype=np.float64)
        self.point_idx = np.asarray(info["target_points"], dtype=int)
        self.normalizer = features.FeatureNormalizer.from_state_dict(info["normalizer"])
        self.pca = shapes.ShapePCA.from_state_dict(info["pca"])
        fields = {f.name for f in dataclasses.fields(features.MFCCConfig)}
        self.mfcc = features.MFCCConfig(**{k: v for k, v in info["mfcc"].items() if k in fields})

    @property
    def clips(self) -> list[str]:
        return list_utterances(self.out_dir)

    def split_clips(self, split: str) -> list[str]:
        have = set(self.clips)
        return [c for c in clips_in(self.splits, split) if c in have]

    def load(self, clip: str) -> dict[str, np.ndarray]:
        return load_utterance(self.out_dir, clip)

    def extraction_paths(self, clip: str) -> tuple[Path, Path]:
        """``(16 kHz audio, landmarks)`` the extraction stage wrote for the clip, which its
        features came from: in the corpus' interim folder beside the set, or, for a mixed set's
        ``<source>__<clip>``, in that source corpus' (:mod:`wav2kp.features.mixed`)."""
        sources = (self.params.get("mixed") or {}).get("sources") or []
        source, sep, own = clip.partition(MIXED_SEP)
        if sep and source in sources:
            return landmarks.clip_paths(config.interim_dir(source), own)
        return landmarks.clip_paths(config.interim_dir_of(self.out_dir), clip)

    def context(self, past_ms: float, future_ms: float) -> tuple[int, int]:

        return features.context_frames(self.mfcc, past_ms, future_ms)

    def window_dataset(self, split: str, past_ms: float, future_ms: float) -> WindowDataset:
        n_past, n_future = self.context(past_ms, future_ms)
        return WindowDataset(
            self.out_dir, self.split_clips(split), n_past, n_future, normalizer=self.normalizer
        )

    def utterance_dataset(self, split: str) -> UtteranceDataset:
        return UtteranceDataset(self.out_dir, self.split_clips(split), normalizer=self.normalizer)

    def to_pixels(self, clip: str, targets: np.ndarray, pose_window: int = 0) -> np.ndarray:
        """Map targets ``(N, P*2)`` (normalised coords at the clip's feature frames) back to pixel
        keypoints ``(T, 68, 2)`` at its video frame times: the exact inverse of the alignment,
        the speaker's identity added back (when the set removed it), the mouth completed from
        the mean face when only the mouth is predicted, then the
        clip's own head pose (measured by the extractor; ``pose_window`` > 2 smooths it over
        that many frames first, :meth:`wav2kp.shapes.Similarity.smoothed`)."""

        utt = self.load(clip)
        pts = np.asarray(targets, dtype=np.float64).reshape(len(utt["target_times"]), -1, 2)
        # target_times: the feature frame times, or for the original x3 pairing the true times
        # of the upsampled keypoint rows (which the original took for the audio frames' times)
        at_video = features.to_video_times(pts, utt["target_times"], utt["video_times"])
        if "identity_offset" in utt:  # the speaker's own face (its mean shape) back
            at_video = at_video + np.asarray(utt["identity_offset"], np.float64).reshape(1, -1, 2)
        if len(self.point_idx) < shapes.N_POINTS:
            at_video = shapes.insert_points(self.reference, at_video, self.point_idx)
        pose = shapes.Similarity.from_arrays(utt, prefix="pose_")
        if pose_window > 2:
            pose = pose.smoothed(pose_window)
        return shapes.denormalise(at_video, pose)


def _clip_inputs(clip: str, audio_path: Path, lm_path: Path, mfcc_cfg) -> tuple:
    """``(features, feature times, landmarks)`` of one extracted clip (``clip``: its name)."""
    audio, rate = media.read_wav(audio_path)
    feats, ftimes = features.clip_features(audio, mfcc_cfg, sample_rate=rate)
    return feats, ftimes, landmarks.load_landmarks(lm_path)


def _present_clips(clips: pd.DataFrame, interim_dir: Path) -> tuple[list[str], list[str]]:
    """``(clips with interim audio and landmarks, clips without)``; an error when none has."""
    present, missing = [], []
    for clip in clips["clip"]:
        audio_path, lm_path = landmarks.clip_paths(interim_dir, clip)
        (present if audio_path.is_file() and lm_path.is_file() else missing).append(clip)
    if not present:
        raise FileNotFoundError(
            f"No extracted clips in {interim_dir}: run notebook "
            f"01_extraction (or `wav2kp extract`) first."
        )
    return present, missing


def _clip_utterance(
    feats, ftimes, lm, norm, pose, offset: np.ndarray, point_idx, alignment: str
) -> dict:
    """One clip's stored utterance: its keypoints normalised (``norm``, the per-frame ``pose``
    kept) less its speaker's ``offset`` (identity, :func:`identity_offsets`), the
    ``point_idx`` targets aligned to the MFCC frames by ``alignment``, invalid frames zeroed
    and flagged; ``identity_offset`` keeps the offset, which :meth:`FeatureSet.to_pixels`
    adds back."""
    ok = lm.found | lm.interpolated
    if offset is not None:
        norm = norm - offset[None]
    tgt = shapes.select_points(norm, point_idx).reshape(len(lm.times), -1)
    tgt = np.where(ok[:, None], tgt, np.nan)
    utt = {"video_times": lm.times, "video_ok": ok, **pose.to_arrays(prefix="pose_")}
    if offset is not None:
        utt["identity_offset"] = shapes.select_points(offset[None], point_idx).reshape(-1)
    if alignment == "timestamps":
        aligned = features.align_to_times(tgt, lm.times, ftimes)
        valid = np.isfinite(aligned).all(axis=1) & features.inside_mask(ftimes, lm.times)
        utt.update(features=feats, feature_times=ftimes, targets=aligned, target_times=ftimes)
    else:
        pairing = features.align_original(tgt, len(ftimes), factor=3, video_times=lm.times)
        rows = pairing.audio_index
        valid = np.isfinite(pairing.targets).all(axis=1)
        utt.update(
            features=feats[rows],
            feature_times=ftimes[rows],
            targets=pairing.targets,
            target_times=pairing.target_times,
        )
    utt["targets"] = np.where(valid[:, None], utt["targets"], 0.0)
    utt["valid"] = valid
    return utt


#: How a feature set removes identity: not at all, per speaker (the clip table's ``speaker``;
#: an ``"unknown"`` speaker's clips each on their own) or per clip.
IDENTITIES = ("none", "speaker", "clip")


def identity_offsets(
    normalised: dict[str, np.ndarray],
    ok: dict[str, np.ndarray],
    speakers: dict[str, str],
    reference: np.ndarray,
    identity: str = "speaker",
) -> dict[str, np.ndarray]:
    """Per clip, its identity as an offset ``(68, 2)`` in normalised coordinates: the mean
    shape of its speaker's good frames (``normalised[clip]`` ``(T, 68, 2)`` after Procrustes
    to ``reference``; ``ok[clip]`` the good frames) minus ``reference``. Subtracting it leaves
    every speaker's motion on the reference face, so one model learns from many faces;
    ``identity="clip"`` (and a speaker ``"unknown"``) takes each clip's own mean; ``"none"``
    gives no offsets (``{}``)."""
    if identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {IDENTITIES}, got {identity!r}.")
    zero = np.zeros_like(np.asarray(reference, dtype=np.float64))
    if identity == "none":
        return {}
    groups: dict[str, list[str]] = {}
    for clip in normalised:
        who = str(speakers.get(clip, "unknown"))
        key = clip if identity == "clip" or who in ("unknown", "", "nan") else f"speaker:{who}"
        groups.setdefault(key, []).append(clip)
    out = {}
    for clips in groups.values():
        frames = [normalised[c][ok[c]] for c in clips]
        frames = [f for f in frames if len(f)]
        mean = np.concatenate(frames).mean(axis=0) - reference if frames else zero
        out.update(dict.fromkeys(clips, mean))
    return out


def invalidate(out_dir: Path) -> None:
    """Before a set is (re)built in ``out_dir``: remove its manifest, written last, so that a
    build killed half-way never passes for a complete set (:func:`manifest_matches`)."""
    (Path(out_dir) / "manifest.json").unlink(missing_ok=True)


def _write_set(out_dir: Path, utterances: dict, table: pd.DataFrame, info: dict) -> None:
    """The set's files: its utterances (others of an earlier build removed), ``splits.csv``
    and ``feature_set.json`` (``info``), each written atomically, the manifest removed first
    (:func:`invalidate`; the caller writes the new one last)."""
    invalidate(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = out_dir / "utterances"
    for stale in folder.glob("*.npz") if folder.is_dir() else []:
        if stale.stem not in utterances:
            stale.unlink()
    save_utterances(out_dir, utterances)
    write_splits(table, out_dir / "splits.csv")
    write_json_atomic(out_dir / "feature_set.json", info)


def build_feature_set(
    clips: pd.DataFrame,
    interim_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    mfcc_cfg=None,
    alignment: str = "timestamps",
    targets: str = "face",
    pca_variance: float = 0.99,
    normalization: str = "global",
    seed: int = 0,
    identity: str = "none",
    force: bool = False,
    n_jobs: int = 1,
    cluster=None,
) -> tuple[FeatureSet, dict]:
    """Build (or reuse) the processed set of ``clips`` from the extraction stage's outputs.

    For each clip with interim audio and landmarks: MFCCs (``mfcc_cfg``) at 16 kHz; keypoints
    normalised by similarity Procrustes to the training mean face (the per-frame pose is kept);
    targets (whole ``face`` or ``mouth``) aligned to the MFCC frame times by their timestamps
    (``alignment="timestamps"``), or the original project's way (``"original_x3"``: keypoints
    upsampled x3, paired index by index with MFCC frames, both cut to equal length). Splits are
    made by :func:`make_splits`; the feature normaliser and the PCA (``pca_variance`` of the
    variance; kept for models and for the notebook's plots) are fitted on training clips only.
    ``identity`` (:data:`IDENTITIES`): the targets are each speaker's (or clip's) motion on the
    reference face, its mean shape removed (:func:`identity_offsets`); pixels get it back.

    Returns ``(FeatureSet, stats)``; stats has the wall time, clips, frames per split, and
    whether the cache was used. A clip without interim outputs is skipped (listed in stats).
    """
    import time

    t0 = time.perf_counter()
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}.")
    if targets not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS}, got {targets!r}.")
    if identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {IDENTITIES}, got {identity!r}.")
    mfcc_cfg = mfcc_cfg or features.MFCCConfig()
    interim_dir, out_dir = Path(interim_dir), Path(out_dir)
    present, missing = _present_clips(clips, interim_dir)
    table = make_splits(clips[clips["clip"].isin(present)].reset_index(drop=True), seed=seed)
    params = {
        "mfcc": mfcc_cfg.as_dict(),
        "alignment": alignment,
        "targets": targets,
        "pca_variance": pca_variance,
        "normalization": normalization,
        "seed": seed,
    }
    if identity != "none":  # sets made before identity removal existed stay valid
        params["identity"] = identity
    inputs = {c: inputs_sha256(*landmarks.clip_paths(interim_dir, c)) for c in present}
    cached = manifest_matches(out_dir, params, inputs) and (out_dir / "feature_set.json").is_file()
    if not force and cached:
        fs = FeatureSet(out_dir)
        wall = time.perf_counter() - t0
        return fs, {**_stats(fs), "cached": True, "missing": missing, "wall_s": wall}

    # per clip: MFCCs and keypoints (in parallel, or on a Dask cluster: wav2kp.parallel)
    tasks = [(clip, *landmarks.clip_paths(interim_dir, clip), mfcc_cfg) for clip in present]
    done = parallel.imap_unordered(_clip_inputs, tasks, n_jobs=n_jobs, cluster=cluster)
    raw = {args[0]: result for args, result in done}
    raw = {clip: raw[clip] for clip in present}  # the clips' order, whatever order they ran in
    train = clips_in(table, "train")
    good = [lm.points[lm.found | lm.interpolated] for c, (_, _, lm) in raw.items() if c in train]
    reference = shapes.mean_shape(np.concatenate(good))
    point_idx = shapes.point_indices(targets)
    normalised = {clip: shapes.normalise(lm.points, reference) for clip, (_, _, lm) in raw.items()}
    offsets = identity_offsets(
        {c: norm for c, (norm, _) in normalised.items()},
        {c: lm.found | lm.interpolated for c, (_, _, lm) in raw.items()},
        dict(zip(table["clip"], table["speaker"])) if "speaker" in table else {},
        reference,
        identity,
    )
    utterances = {
        clip: _clip_utterance(
            feats, ftimes, lm, *normalised[clip], offsets.get(clip), point_idx, alignment
        )
        for clip, (feats, ftimes, lm) in raw.items()
    }
    normalizer = features.FeatureNormalizer(normalization)
    if normalization == "global":
        normalizer.fit([utterances[c]["features"] for c in train])
    train_tgt = np.concatenate([utterances[c]["targets"][utterances[c]["valid"]] for c in train])
    pca = shapes.ShapePCA.fit(train_tgt, variance=pca_variance)
    info = {
        "params": params,
        "mfcc": mfcc_cfg.as_dict(),
        "reference": reference.tolist(),
        "target_points": [int(i) for i in point_idx],
        "normalizer": normalizer.state_dict(),
        "pca": pca.state_dict(),
    }
    _write_set(out_dir, utterances, table, info)
    wall = time.perf_counter() - t0
    write_manifest(
        out_dir, params, inputs, wall_s=round(wall, 2), missing=missing,
        executor=parallel.describe(cluster),
    )  # fmt: skip
    fs = FeatureSet(out_dir)
    return fs, {**_stats(fs), "cached": False, "missing": missing, "wall_s": wall}


def _stats(fs: FeatureSet) -> dict:
    frames = dict.fromkeys(SPLITS, 0)
    for split in SPLITS:
        for clip in fs.split_clips(split):
            frames[split] += int(fs.load(clip)["valid"].sum())
    return {
        "clips": len(fs.clips),
        "frames": frames,
        # the set's own files: its manifest records wall times and paths, not the set
        "bytes_on_disk": sum(
            p.stat().st_size
            for p in fs.out_dir.rglob("*")
            if p.is_file() and p.name != "manifest.json"
        ),
    }
