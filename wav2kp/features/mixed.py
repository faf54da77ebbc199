"""One feature set from several corpora: the study's own, and real talking faces beside it.

:func:`build_mixed_set` starts from a study set (``base``: the bundled corpus' default set, say)
and adds the clips of other corpora (``sources``: GRID's speaker s1, the Arabic anchors, any
folder of videos that has been extracted), each computed exactly as ``base`` computes its own
(the same MFCC settings and alignment), normalised to ``base``'s reference face and with each
speaker's identity removed (:func:`wav2kp.features.dataset.identity_offsets`: a clip of an
unknown speaker is its own speaker), so that every corpus's motion lives on one face. ``base``'s
utterances are taken as they are, under their own names and splits, so a model trained on the
mixed set is scored on ``base``'s test clips like any study run; a source's clips are named
``<source>__<clip>`` and split by the source's own rule (:func:`~wav2kp.features.dataset.
make_splits`). ``base``'s feature normaliser and PCA are kept, as a synthetic-talker set keeps
them (:mod:`wav2kp.features.talkers`): a model pre-trained on talkers goes on learning on the
mixed set with the same output head. (Measured on 300 GRID s1 sentences: the bundled corpus'
27 PCA components explain 96.2 % of their identity-free target variance; a PCA refitted on the
mixture, 98.8 % with 68 components: what is left out is mostly dlib's noise.)

``splits.csv`` says where each clip comes from (``source``: ``base`` or the source's name).
Cached like every feature set (its manifest: ``base``'s parameters and hash, each source's
clips and input hashes).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wav2kp import parallel, shapes
from wav2kp.extraction import landmarks
from wav2kp.features import dataset
from wav2kp.manifest import file_sha256, inputs_sha256

__all__ = ["BASE", "Source", "build_mixed_set", "source_clips"]

#: ``source`` of ``base``'s own clips in ``splits.csv``.
BASE = "base"
#: Separates a source's name from its clip's name in the mixed set.
SEP = dataset.MIXED_SEP


@dataclass(frozen=True)
class Source:
    """A corpus added to a mixed set: its ``name`` (a prefix of its clips' names), its clip
    table (:func:`wav2kp.corpus.study_clips`) and its extraction folder."""

    name: str
    clips: pd.DataFrame
    interim_dir: Path


def source_clips(fs: dataset.FeatureSet, source: str, split: str | None = None) -> pd.DataFrame:
    """Rows of a mixed set's splits table from ``source`` (and ``split``), with the clip's
    own name in ``original`` (what its corpus calls it)."""
    table = fs.splits
    rows = table[table["source"] == source] if "source" in table else table.iloc[:0]
    if split is not None:
        rows = rows[rows["split"] == split]
    rows = rows.copy()
    rows["original"] = [c.split(SEP, 1)[1] if SEP in c else c for c in rows["clip"]]
    return rows.reset_index(drop=True)


def build_mixed_set(
    base: dataset.FeatureSet,
    sources: Sequence[Source],
    out_dir: str | Path,
    identity: str = "speaker",
    seed: int = 0,
    force: bool = False,
    n_jobs: int = 1,
) -> tuple[dataset.FeatureSet, dict]:
    """Build (or reuse) ``base`` plus ``sources`` as one feature set in ``out_dir`` (see the
    module docstring). Returns ``(FeatureSet, stats)``: clips and valid frames per source and
    split, and whether the cache was used."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if base.params.get("alignment", "timestamps") != "timestamps":
        raise ValueError(f"{base.out_dir}: a mixed set needs a base set aligned by timestamps.")
    names = [s.name for s in sources]
    if len(set(names)) != len(names) or BASE in names or any(SEP in n for n in names):
        raise ValueError(
            f"source names must be distinct, not {BASE!r} and without {SEP!r}: {names}"
        )
    present = {s.name: dataset._present_clips(s.clips, Path(s.interim_dir))[0] for s in sources}
    base_key = hashlib.sha256((base.out_dir / "feature_set.json").read_bytes()).hexdigest()
    params = {
        "kind": "mixed",
        "base": {"name": base.out_dir.name, "params": base.params, "feature_set": base_key[:16]},
        "sources": names,
        "identity": identity,
        "seed": seed,
    }
    inputs = {
        f"{BASE}{SEP}{c}": file_sha256(dataset.utterance_path(base.out_dir, c)) for c in base.clips
    }
    for s in sources:
        for clip in present[s.name]:
            inputs[f"{s.name}{SEP}{clip}"] = inputs_sha256(
                *landmarks.clip_paths(Path(s.interim_dir), clip)
            )
    done = (
        dataset.manifest_matches(out_dir, params, inputs)
        and (out_dir / "feature_set.json").is_file()
    )
    if done and not force:
        fs = dataset.FeatureSet(out_dir)
        return fs, {**_stats(fs), "cached": True, "wall_s": time.perf_counter() - t0}

    utterances = {clip: base.load(clip) for clip in base.clips}
    tables = [base.splits.assign(source=BASE)]
    point_idx, mfcc_cfg = base.point_idx, base.mfcc
    for s in sources:
        clips = s.clips[s.clips["clip"].isin(present[s.name])].reset_index(drop=True)
        table = dataset.make_splits(clips, seed=seed)
        tasks = [
            (c, *landmarks.clip_paths(Path(s.interim_dir), c), mfcc_cfg) for c in table["clip"]
        ]
        raw = {
            a[0]: r for a, r in parallel.imap_unordered(dataset._clip_inputs, tasks, n_jobs=n_jobs)
        }
        normalised = {c: shapes.normalise(raw[c][2].points, base.reference) for c in table["clip"]}
        offsets = dataset.identity_offsets(
            {c: norm for c, (norm, _) in normalised.items()},
            {c: raw[c][2].found | raw[c][2].interpolated for c in table["clip"]},
            dict(zip(table["clip"], table["speaker"])),
            base.reference,
            identity,
        )
        for clip in table["clip"]:
            feats, ftimes, lm = raw[clip]
            utterances[f"{s.name}{SEP}{clip}"] = dataset._clip_utterance(
                feats, ftimes, lm, *normalised[clip], offsets.get(clip), point_idx, "timestamps"
            )
        table["clip"] = [f"{s.name}{SEP}{c}" for c in table["clip"]]
        table["group"] = [f"{s.name}{SEP}{g}" for g in table["group"]]
        tables.append(table.assign(source=s.name))
    table = pd.concat(tables, ignore_index=True)
    info = {**base.info, "params": {**base.params, "mixed": params}}
    dataset._write_set(out_dir, utterances, table, info)
    wall = time.perf_counter() - t0
    dataset.write_manifest(out_dir, params, inputs, wall_s=round(wall, 2))
    fs = dataset.FeatureSet(out_dir)
    return fs, {**_stats(fs), "cached": False, "wall_s": wall}


def _stats(fs: dataset.FeatureSet) -> dict:
    table = fs.splits
    frames: dict[str, dict[str, int]] = {}
    for row in table.itertuples():
        n = int(np.asarray(fs.load(row.clip)["valid"], bool).sum())
        by_split = frames.setdefault(row.source, dict.fromkeys(dataset.SPLITS, 0))
        by_split[row.split] += n
    return {
        "clips": table.groupby("source").size().to_dict(),
        "frames": frames,
    }
