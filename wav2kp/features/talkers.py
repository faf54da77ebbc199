"""A pre-training feature set from synthetic talkers (:mod:`wav2kp.corpus.talkers`).

:func:`build_talker_set` speaks ``n`` talker utterances, colours each one's audio with a random
microphone, room and noise (:mod:`wav2kp.features.augment`, drawn once per utterance and fixed:
the variety comes from the many voices), computes its MFCCs exactly as the base feature set does
and the keypoints the articulation model gives at the MFCC frame times, normalised into the base
set's face coordinates (similarity Procrustes to its reference face). The result is a
:class:`~wav2kp.features.dataset.FeatureSet` folder (every utterance in the ``train`` split) that
shares the base set's reference face, feature normaliser and PCA, so a model pre-trains on it and
then fine-tunes on the base set with the same output head.

Cached by a hash of everything that decides it (base set, ``n``, seed, augmentation, generator
and package versions); utterances are computed in parallel (joblib, loky) and written atomically.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from wav2kp import shapes
from wav2kp.corpus import talkers
from wav2kp.features import acoustic as features
from wav2kp.features import augment
from wav2kp.features.dataset import (
    FeatureSet,
    invalidate,
    manifest_matches,
    save_utterances,
    write_manifest,
    write_splits,
)
from wav2kp.manifest import write_json_atomic

__all__ = ["TALKER_AUGMENT", "build_talker_set", "talker_folder", "talker_utterance"]

#: Augmentation drawn once per talker utterance: most get a microphone, room or noise.
TALKER_AUGMENT = augment.AugmentConfig(p=0.8, snr_db=(5.0, 40.0), reverb_p=0.4, tempo_p=0.3)


def talker_utterance(
    spec: talkers.TalkerSpec,
    reference: np.ndarray,
    point_idx: np.ndarray,
    mfcc_cfg: features.MFCCConfig,
    augment_cfg: augment.AugmentConfig = TALKER_AUGMENT,
) -> dict[str, np.ndarray]:
    """The stored arrays of one talker utterance (the layout of the base set's utterances)."""
    clip = talkers.synthesize_talker(spec)
    rng = np.random.default_rng(spec.seed ^ 0x5EED)
    audio, tempo = augment.augment(clip.audio, talkers.RATE, rng, augment_cfg)
    feats, ftimes = features.clip_features(audio, mfcc_cfg, sample_rate=talkers.RATE)
    points = talkers.talker_keypoints(clip, ftimes, tempo=tempo)
    norm, pose = shapes.normalise(points.astype(np.float64), reference)
    targets = shapes.select_points(norm, point_idx).reshape(len(ftimes), -1)
    n = len(ftimes)
    return {
        "features": feats,
        "feature_times": ftimes,
        "targets": targets.astype(np.float32),
        "target_times": ftimes,
        "valid": np.ones(n, bool),
        "video_times": ftimes,
        "video_ok": np.ones(n, bool),
        **pose.to_arrays(prefix="pose_"),
    }


def _base_hash(base: FeatureSet) -> str:
    """What a talker set takes from its base set: the reference face, the target points, the
    MFCC settings and whether identity is removed (not the normaliser or the PCA: a model
    pre-trains with its own set's), so sets that share these share one talker set."""
    key = {
        "reference": np.round(np.asarray(base.reference, np.float64), 12).tolist(),
        "points": [int(i) for i in base.point_idx],
        "mfcc": base.mfcc.as_dict(),
        "identity": base.params.get("identity", "none") != "none",
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def talker_folder(base: FeatureSet, n: int, seed: int = 0) -> Path:
    """Where the talker set of ``base`` lives: beside it, named by :func:`_base_hash` (one
    folder for every base set that shares its face, points and MFCC settings)."""
    return Path(base.out_dir).parent / f"talkers-{_base_hash(base)}-n{int(n)}-s{int(seed)}"


def build_talker_set(
    base: FeatureSet,
    n: int,
    out_dir: str | Path,
    seed: int = 0,
    augment_cfg: augment.AugmentConfig = TALKER_AUGMENT,
    n_jobs: int = -1,
    force: bool = False,
) -> tuple[FeatureSet, dict]:
    """Build (or reuse) ``n`` talker utterances as a feature set in ``out_dir`` that shares
    ``base``'s reference face, normaliser and PCA. Returns ``(FeatureSet, stats)``."""
    from joblib import Parallel, delayed

    if n < 1:
        raise ValueError(f"build_talker_set: n must be >= 1, got {n}.")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    specs = talkers.talker_specs(n, seed=seed)
    params = {
        "kind": "talkers",
        "generator": talkers.GENERATOR_VERSION,
        "n": n,
        "seed": seed,
        "augment": augment_cfg.as_dict(),
        "mfcc": base.mfcc.as_dict(),
        "base": _base_hash(base),
    }
    inputs = {s.name: hashlib.sha256(json.dumps(s.as_dict()).encode()).hexdigest() for s in specs}
    if not force and manifest_matches(out_dir, params, inputs):
        fs = FeatureSet(out_dir)
        return fs, {"utterances": n, "cached": True, "wall_s": time.perf_counter() - t0}

    reference, point_idx, cfg = base.reference, base.point_idx, base.mfcc
    jobs = Parallel(n_jobs=n_jobs, backend="loky", batch_size=16)
    arrays = jobs(
        delayed(talker_utterance)(s, reference, point_idx, cfg, augment_cfg) for s in specs
    )
    if base.params.get("identity", "none") != "none":
        # one face (the corpus's) says every utterance: its mean shape is the identity the
        # base set removes from its speakers; remove it here the same way
        ref = shapes.select_points(base.reference[None], point_idx).reshape(-1)
        offset = np.concatenate([a["targets"] for a in arrays]).mean(axis=0) - ref
        for a in arrays:
            a["targets"] = (a["targets"] - offset).astype(np.float32)
            a["identity_offset"] = offset
    invalidate(out_dir)  # a build killed half-way never passes for a complete set
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (
        (out_dir / "utterances").glob("*.npz") if (out_dir / "utterances").is_dir() else []
    ):
        if stale.stem not in inputs:
            stale.unlink()
    save_utterances(out_dir, {s.name: a for s, a in zip(specs, arrays)})
    table = pd.DataFrame(
        {
            "clip": [s.name for s in specs],
            "emotion": pd.array([pd.NA] * n, dtype="Int64"),
            "emotion_name": [""] * n,
            "sentence": pd.array([pd.NA] * n, dtype="Int64"),
            "neutral": [False] * n,
            "group": [s.name for s in specs],
            "split": ["train"] * n,
        }
    )
    write_splits(table, out_dir / "splits.csv")
    info = json.loads((Path(base.out_dir) / "feature_set.json").read_text(encoding="utf-8"))
    info["params"] = {**info["params"], "talkers": params}
    write_json_atomic(out_dir / "feature_set.json", info)
    seconds = float(sum(len(a["feature_times"]) for a in arrays)) * cfg.hop_ms / 1000.0
    languages = pd.Series([s.voice for s in specs]).value_counts().to_dict()
    wall = time.perf_counter() - t0
    write_manifest(out_dir, params, inputs, wall_s=round(wall, 2), languages=languages)
    return FeatureSet(out_dir), {
        "utterances": n,
        "hours": seconds / 3600.0,
        "languages": languages,
        "cached": False,
        "wall_s": wall,
    }
