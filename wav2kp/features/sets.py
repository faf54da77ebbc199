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
  ablation (notebook 04);
- ``mixed`` (when ``train_corpora`` names real corpora that are there): the ``default`` set and
  those corpora on its face, identity removed (:mod:`wav2kp.features.mixed`): what the levers
  that learn from real people train on; ``mixed_experiment`` adds ``experiment_corpora``
  (corpora whose licence allows experiments, not shipped weights); ``mixed+<extra>`` is
  ``mixed`` with an extra input channel of ``lever_extras`` (a phone recogniser, formants).

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
from wav2kp import corpus as corpora
from wav2kp.extraction import landmarks
from wav2kp.features import acoustic, dataset, mixed, phonetic
from wav2kp.manifest import file_sha256, inputs_sha256

__all__ = [
    "MIXED_ROLES",
    "ROLES",
    "FeatureSpec",
    "StaleFeatureSets",
    "StudySets",
    "build_study_sets",
    "open_study_sets",
]

#: The roles of a study's feature sets (see the module's docstring), then the optional ones.
ROLES = ("default", "original", "original_timestamps")
MIXED_ROLES = ("mixed", "mixed_experiment")
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
    :func:`wav2kp.features.dataset.identity_offsets`); ``train_corpora`` /
    ``experiment_corpora``: ``{folder: subset}`` of real corpora for the ``mixed`` sets;
    ``lever_extras``: extra input channels (:data:`wav2kp.features.phonetic.EXTRAS`) to measure,
    each a ``mixed+<extra>`` set (the default set with that channel, and the real corpora)."""

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
    train_corpora: dict = dataclasses.field(default_factory=dict)
    experiment_corpora: dict = dataclasses.field(default_factory=dict)
    lever_extras: tuple = ()

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
        object.__setattr__(self, "lever_extras", tuple(self.lever_extras))
        unknown = [e for e in self.lever_extras if e not in phonetic.EXTRAS]
        if unknown:
            raise ValueError(f"lever_extras: unknown {unknown}; known: {sorted(phonetic.EXTRAS)}.")
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
    skipped: list[str] = dataclasses.field(default_factory=list)

    def __getitem__(self, role: str) -> dataset.FeatureSet:
        return self.sets[role]

    def __contains__(self, role: str) -> bool:
        return role in self.sets

    def items(self):
        return self.sets.items()

    def record(self) -> dict[str, Any]:
        """What notebook 02 saves: the spec, per role the set's folder, name and the parameters
        its manifest holds, and what was skipped (a real corpus that is not there)."""
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
            "skipped": list(self.skipped),
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
    ``roles`` for ``clips`` from the extraction outputs of ``corpus``, then the ``mixed`` sets
    of the spec's real corpora that are there (extracted by notebook 01)."""
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
    train, skipped = corpora.extra_corpora(spec.train_corpora, str(corpus))
    experiment, skipped_experiment = corpora.extra_corpora(spec.experiment_corpora, str(corpus))
    # role -> (the real corpora it adds, the set it adds them to)
    wanted = {"mixed": (train, out.get("default"))}
    if experiment:
        wanted["mixed_experiment"] = ({**train, **experiment}, out.get("default"))
    for extra in spec.lever_extras if train else ():
        # the default set with an extra channel (a phone recogniser, formants), for the lever
        # that measures it, and the mixed set on it
        mfcc_cfg = dataclasses.replace(spec.mfcc(), extras=(extra,))
        set_name = dataset.feature_set_name(mfcc_cfg, spec.alignment, spec.targets) + f"+{extra}"
        with_extra, _ = dataset.build_feature_set(
            clips, config.interim_dir(name), config.processed_dir(name, set_name),
            mfcc_cfg=mfcc_cfg, alignment=spec.alignment, targets=spec.targets,
            pca_variance=spec.pca_variance, normalization=spec.normalization, seed=spec.seed,
            identity=spec.identity, cluster=cluster,
        )  # fmt: skip
        wanted[f"mixed+{extra}"] = (train, with_extra)
    extracted = {
        n: table
        for n, (_, table) in {**train, **experiment}.items()
        if any(p.is_file() for p in (config.interim_dir(n) / "landmarks").glob("*.npz"))
    }
    skipped += [f"{n}: not extracted yet (notebook 01), skipped" for n in {**train, **experiment}
                if n not in extracted]  # fmt: skip
    for role, (found, base) in wanted.items():
        sources = [
            mixed.Source(n, extracted[n], config.interim_dir(n))
            for n in sorted(found)
            if n in extracted
        ]
        if not sources or base is None:
            continue
        folder = config.processed_dir(
            name, f"{base.out_dir.name}+{'+'.join(s.name for s in sources)}"
        )
        out[role], stats[role] = mixed.build_mixed_set(
            base, sources, folder, identity=spec.identity, seed=spec.seed
        )
    return StudySets(str(corpus), subset, spec, out, stats, skipped + skipped_experiment)


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


def _current_input(key: str, role_fs: dataset.FeatureSet, interim: Path) -> str:
    """The digest a set's manifest input ``key`` has now: a clip of the study corpus (its
    extraction outputs), or in a mixed set a clip of the ``default`` set (its stored
    utterance in the set it was built on) or of a source corpus (that corpus' extraction
    outputs)."""
    paths = landmarks.clip_paths(interim, key)
    if role_fs.params.get("mixed"):
        source, clip = key.split(mixed.SEP, 1)
        if source == mixed.BASE:  # the set it was built on, beside it
            base = role_fs.out_dir.parent / role_fs.params["mixed"]["base"]["name"]
            path = dataset.utterance_path(base, clip)
            return file_sha256(path) if path.is_file() else "missing"
        paths = landmarks.clip_paths(config.interim_dir(source), clip)
    return inputs_sha256(*paths) if all(p.is_file() for p in paths) else "missing"


def open_study_sets(
    corpus: str | Path, subset: str | None, roles: tuple[str, ...] | None = None
) -> StudySets:
    """The sets notebook 02 built for ``corpus`` and ``subset`` (its record: every role it
    recorded, or ``roles``), checked against what they were made from: each still there with
    its recorded parameters, and every clip's extraction outputs unchanged. Raises
    :class:`wav2kp.results.RecordError` (notebook 02 has not run for this corpus and subset)
    or :class:`StaleFeatureSets`, each saying to re-run notebook 02."""
    record = results.require(NOTEBOOK, corpus, subset, need="the feature sets to train on")
    recorded = (record.get("feature_sets") or {}).get("sets") or {}
    wanted = tuple(roles) if roles is not None else tuple(recorded)
    missing = [r for r in (roles or ROLES) if r not in recorded]
    if missing:
        raise StaleFeatureSets(
            f"Notebook 02's record ({results.record_path(NOTEBOOK)}) names no "
            f"{', '.join(missing)} feature set (it has: {', '.join(recorded) or 'none'}): "
            f"re-run notebook 02."
        )
    name = config.corpus_name(corpus)
    sets = {role: _open_recorded(name, role, recorded[role]) for role in wanted}
    interim = config.interim_dir(name)
    hashes: dict[str, str] = {}
    for role, fs in sets.items():
        inputs = dataset.read_manifest(fs.out_dir).get("inputs") or {}
        for key, digest in inputs.items():
            scope = (role if fs.params.get("mixed") else "study", key)
            if scope not in hashes:
                hashes[scope] = _current_input(key, fs, interim)
            if hashes[scope] != digest:
                raise StaleFeatureSets(
                    f"Clip {key!r} of the {role!r} feature set ({fs.out_dir}) changed (extracted "
                    f"again, or removed) after notebook 02 built it: re-run notebook 02."
                )
    spec = FeatureSpec(**record["feature_sets"]["spec"])
    return StudySets(
        str(corpus), subset, spec, sets, skipped=record["feature_sets"].get("skipped", [])
    )
