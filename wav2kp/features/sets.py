"""The feature sets a study trains on: built by notebook 02 from its parameters, recorded in its
record, opened by notebooks 03 and 04 (and ``wav2kp train``).

Notebook 02's parameters are a :class:`FeatureSpec`. It makes the study's sets, one per *role*
(:data:`ROLES`), all from the same clips with the same splits, targets, PCA share and
normalisation:

- ``default``: what the spec says (MFCC settings, alignment): every model but the original's;
- ``original``: the original project's feeding, whatever the spec's MFCC settings and
  alignment (torchaudio's default MFCC at 80 frames/s, keypoints x3 paired by index):
  ``lstm_original``;
- ``original_timestamps``: the original MFCC with timestamp alignment: the diary's alignment
  ablation (notebook 04).

:func:`build_study_sets` builds (or reuses) them and :meth:`StudySets.record` is what notebook 02
saves; :func:`open_study_sets` opens the recorded sets for a later notebook and refuses, with the
notebook to re-run, when the record is missing, of another corpus or subset, or *stale*: a set
deleted, rebuilt with other parameters, or built from extraction outputs that changed since.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wav2kp import config, results
from wav2kp.extraction import landmarks
from wav2kp.features import acoustic, dataset
from wav2kp.manifest import inputs_sha256

__all__ = [
    "ROLES",
    "FeatureSpec",
    "StaleFeatureSets",
    "StudySets",
    "build_study_sets",
    "open_study_sets",
]

#: The roles of a study's feature sets (see the module's docstring).
ROLES = ("default", "original", "original_timestamps")
#: Notebook 02, whose record names the sets.
NOTEBOOK = "02_features"


class StaleFeatureSets(ValueError):
    """The recorded feature sets no longer match what they were built from."""


@dataclass(frozen=True)
class FeatureSpec:
    """Notebook 02's parameters: what the study's feature sets are made of.

    ``mfcc_preset``: ``"ours"`` (``n_mfcc`` coefficients from ``max(n_mfcc, 40)`` log-mel bands
    over ``win_ms`` windows every ``hop_ms``, ``deltas`` optional) or ``"original"``
    (:meth:`MFCCConfig.original`); ``alignment``: ``"timestamps"`` or ``"original_x3"``;
    ``targets``: ``"face"`` or ``"mouth"``; ``pca_variance``: share of the target variance the
    PCA keeps; ``normalization``: MFCC normalisation fitted on the training clips
    (``"global"``) or per utterance; ``seed``: the splits'; ``identity``: the targets are each
    speaker's motion on the reference face, their mean shape removed (``"speaker"``: per the
    clip table's speaker, each clip of an unknown speaker on its own; ``"clip"``; ``"none"``;
    :func:`wav2kp.features.dataset.identity_offsets`)."""

    mfcc_preset: str = "ours"
    n_mfcc: int = 40
    win_ms: float = 25.0
    hop_ms: float = 10.0
    deltas: bool = False
    alignment: str = "timestamps"
    targets: str = "face"
    pca_variance: float = 0.99
    normalization: str = "global"
    seed: int = 0
    identity: str = "speaker"

    def __post_init__(self) -> None:
        if self.mfcc_preset not in ("ours", "original"):
            raise ValueError(f"mfcc_preset must be 'ours' or 'original', got {self.mfcc_preset!r}.")
        if self.alignment not in dataset.ALIGNMENTS:
            raise ValueError(
                f"alignment must be one of {dataset.ALIGNMENTS}, got {self.alignment!r}."
            )
        if self.targets not in dataset.TARGETS:
            raise ValueError(f"targets must be one of {dataset.TARGETS}, got {self.targets!r}.")
        if self.identity not in dataset.IDENTITIES:
            raise ValueError(
                f"identity must be one of {dataset.IDENTITIES}, got {self.identity!r}."
            )
        if not 0.0 < float(self.pca_variance) <= 1.0:
            raise ValueError(f"pca_variance must be in (0, 1], got {self.pca_variance!r}.")

    def mfcc(self) -> acoustic.MFCCConfig:
        """The ``default`` set's MFCC settings."""
        if self.mfcc_preset == "original":
            return acoustic.MFCCConfig.original()
        return acoustic.MFCCConfig(
            n_mfcc=int(self.n_mfcc),
            n_mels=max(int(self.n_mfcc), 40),
            win_ms=float(self.win_ms),
            hop_ms=float(self.hop_ms),
            deltas=bool(self.deltas),
        )

    def role(self, role: str) -> tuple[acoustic.MFCCConfig, str]:
        """``(MFCC settings, alignment)`` of the set of ``role``."""
        if role == "default":
            return self.mfcc(), self.alignment
        if role == "original":
            return acoustic.MFCCConfig.original(), "original_x3"
        if role == "original_timestamps":
            return acoustic.MFCCConfig.original(), "timestamps"
        raise ValueError(f"Unknown feature-set role {role!r}; the roles: {ROLES}.")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StudySets:
    """The study's feature sets by role (``sets["default"]`` is a
    :class:`~wav2kp.features.dataset.FeatureSet`), the spec they were made from and the build
    statistics of each (empty when opened from a record)."""

    corpus: str
    subset: str | None
    spec: FeatureSpec
    sets: dict[str, dataset.FeatureSet]
    stats: dict[str, dict] = dataclasses.field(default_factory=dict)

    def __getitem__(self, role: str) -> dataset.FeatureSet:
        return self.sets[role]

    def __contains__(self, role: str) -> bool:
        return role in self.sets

    def items(self):
        return self.sets.items()

    def record(self) -> dict[str, Any]:
        """What notebook 02 saves: the spec and, per role, the set's folder, name and the
        parameters its manifest holds."""
        return {
            "spec": self.spec.as_dict(),
            "sets": {
                role: {
                    "dir": str(fs.out_dir),
                    "name": fs.out_dir.name,
                    "params": dataset.read_manifest(fs.out_dir)["params"],
                }
                for role, fs in self.sets.items()
            },
        }


def build_study_sets(
    clips: pd.DataFrame,
    corpus: str | Path,
    subset: str | None,
    spec: FeatureSpec | None = None,
    roles: tuple[str, ...] = ROLES,
    cluster=None,
) -> StudySets:
    """Build (or reuse, :func:`~wav2kp.features.dataset.build_feature_set` caches) the sets of
    ``roles`` for ``clips`` from the extraction outputs of ``corpus``."""
    spec = spec or FeatureSpec()
    name = config.corpus_name(corpus)
    out, stats = {}, {}
    for role in roles:
        mfcc_cfg, alignment = spec.role(role)
        set_name = dataset.feature_set_name(mfcc_cfg, alignment, spec.targets)
        out[role], stats[role] = dataset.build_feature_set(
            clips,
            config.interim_dir(name),
            config.processed_dir(name, set_name),
            mfcc_cfg=mfcc_cfg,
            alignment=alignment,
            targets=spec.targets,
            pca_variance=spec.pca_variance,
            normalization=spec.normalization,
            seed=spec.seed,
            identity=spec.identity,
            cluster=cluster,
        )
    return StudySets(str(corpus), subset, spec, out, stats)


def _open_recorded(corpus_name: str, role: str, entry: dict) -> dataset.FeatureSet:
    path = Path(entry["dir"])
    if not (path / "feature_set.json").is_file():  # WAV2KP_HOME moved since notebook 02
        path = config.processed_dir(corpus_name, entry["name"])
    if not (path / "feature_set.json").is_file():
        raise StaleFeatureSets(
            f"The {role!r} feature set notebook 02 built ({entry['dir']}) is gone: re-run "
            f"notebook 02."
        )
    manifest = dataset.read_manifest(path)
    if manifest.get("params") != entry["params"]:
        raise StaleFeatureSets(
            f"The {role!r} feature set in {path} was rebuilt with other parameters since "
            f"notebook 02 recorded it: re-run notebook 02."
        )
    return dataset.FeatureSet(path)


def open_study_sets(
    corpus: str | Path, subset: str | None, roles: tuple[str, ...] = ROLES
) -> StudySets:
    """The sets notebook 02 built for ``corpus`` and ``subset`` (its record), checked against
    what they were made from: each still there with its recorded parameters, and every clip's
    extraction outputs unchanged. Raises :class:`wav2kp.results.RecordError` (notebook 02 has
    not run for this corpus and subset) or :class:`StaleFeatureSets`, each saying to re-run
    notebook 02."""
    record = results.require(NOTEBOOK, corpus, subset, need="the feature sets to train on")
    recorded = (record.get("feature_sets") or {}).get("sets") or {}
    missing = [r for r in roles if r not in recorded]
    if missing:
        raise StaleFeatureSets(
            f"Notebook 02's record ({results.record_path(NOTEBOOK)}) names no "
            f"{', '.join(missing)} feature set (it has: {', '.join(recorded) or 'none'}): "
            f"re-run notebook 02."
        )
    name = config.corpus_name(corpus)
    sets = {role: _open_recorded(name, role, recorded[role]) for role in roles}
    interim = config.interim_dir(name)
    hashes: dict[str, str] = {}
    for role, fs in sets.items():
        inputs = dataset.read_manifest(fs.out_dir).get("inputs") or {}
        for clip, digest in inputs.items():
            if clip not in hashes:
                paths = landmarks.clip_paths(interim, clip)
                hashes[clip] = (
                    inputs_sha256(*paths) if all(p.is_file() for p in paths) else "missing"
                )
            if hashes[clip] != digest:
                raise StaleFeatureSets(
                    f"Clip {clip!r} of the {role!r} feature set ({fs.out_dir}) was extracted "
                    f"again (or removed) after notebook 02 built it from {interim}: re-run "
                    f"notebook 02."
                )
    spec = FeatureSpec(**record["feature_sets"]["spec"])
    return StudySets(str(corpus), subset, spec, sets)
