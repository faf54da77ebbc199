"""The original project's diary as ablations: each question scored as the paired M-LMD
difference between two runs on the same test clips, with a bootstrap interval; the extra runs
they need (beyond the study's models) are trained here from the study's feature sets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wav2kp import config, metrics, training
from wav2kp import corpus as corpora
from wav2kp.evaluation.scoring import Evaluation, _num
from wav2kp.features import acoustic as features
from wav2kp.features import dataset


@dataclass(frozen=True)
class Ablation:
    """One entry of the original's diary: the same split scored with ``a`` (the original's
    choice) and ``b`` (ours); ``runs`` are study run labels or ablation run labels."""

    key: str
    question: str
    a: str
    b: str
    a_label: str
    b_label: str


ABLATIONS: tuple[Ablation, ...] = (
    Ablation(
        "context",
        "future-only 40-frame window vs centred past/future context",
        "lstm_future",
        "lstm",
        "future-only window (the original's)",
        "centred 200/200 ms",
    ),
    Ablation(
        "alignment",
        "x3 upsampling vs timestamp alignment",
        "lstm_original",
        "lstm_original_timestamps",
        "x3 upsampling, paired by index (the original's)",
        "timestamp alignment",
    ),
    Ablation(
        "targets",
        "PCA targets vs raw coordinates",
        "tcn_raw",
        "tcn",
        "raw coordinates",
        "PCA coefficients",
    ),
    Ablation(
        "architecture",
        "LSTM vs the stronger model",
        "lstm",
        "tcn",
        "LSTM over the window",
        "TCN over the utterance",
    ),
    Ablation(
        "emotion",
        "with vs without emotion conditioning",
        "tcn",
        "tcn_emotion",
        "no emotion",
        "emotion embedding",
    ),
)

#: The extra runs the ablations need beyond the study's models: ``{label: (model name,
#: feature-set key, hyper-parameters)}``; ``hidden`` is filled in by :func:`train_ablations`.
ABLATION_RUNS: dict[str, tuple[str, str, dict]] = {
    "lstm_future": ("lstm", "default", {"past_ms": 0.0, "future_ms": None}),
    "lstm_original_timestamps": ("lstm_original", "original_timestamps", {}),
    "tcn_raw": ("tcn", "default", {"targets": "raw"}),
}


def ablation_feature_set(corpus: str, subset: str | None, seed: int = 0):
    """The original MFCC settings (80 frames/s) with *timestamp* alignment: the alignment
    ablation's feature set, built (or reused) beside the study's two."""

    name = config.corpus_name(corpus)
    clips = corpora.study_clips(corpus, subset)
    mfcc_cfg = features.MFCCConfig.original()
    set_name = dataset.feature_set_name(mfcc_cfg, "timestamps", "face")
    fs, _ = dataset.build_feature_set(
        clips,
        config.interim_dir(name),
        config.processed_dir(name, set_name),
        mfcc_cfg=mfcc_cfg,
        alignment="timestamps",
        targets="face",
        seed=seed,
    )
    return fs


def ablation_jobs(
    sets: dict, hidden: int | None, corpus: str, subset: str, labels: Iterable[str] | None = None
) -> list:
    """The :data:`ABLATION_RUNS` (or ``labels`` of them) as run jobs (:class:`wav2kp.training.
    RunJob`) into ``config.run_dir(corpus, subset, label)``; ``sets`` holds the feature sets by key
    (``default``, ``original``, ``original_timestamps``)."""
    jobs = []
    for label in labels or ABLATION_RUNS:
        name, key, hp = ABLATION_RUNS[label]
        hp = dict(hp)
        if hp.get("future_ms", 0.0) is None:
            hp["future_ms"] = features.ORIGINAL_CONTEXT.future_ms
        hp.update(training.models.MODELS[name].width(hidden))
        jobs.append(
            training.RunJob(label, name, sets[key], config.run_dir(corpus, subset, label), hp)
        )
    return jobs


def train_ablations(
    sets: dict,
    cfg,
    hidden: int | None,
    corpus: str,
    subset: str,
    labels: Iterable[str] | None = None,
) -> dict[str, Path]:
    """Train (or load, when up to date) the :func:`ablation_jobs` side by side; returns
    ``{label: run dir}``."""
    jobs = ablation_jobs(sets, hidden, corpus, subset, labels)
    training.train_runs(jobs, cfg)
    return {job.label: job.run_dir for job in jobs}


def ablation_table(
    ev: Evaluation, summary: pd.DataFrame, ablations=ABLATIONS, n_boot: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """One row per ablation whose two runs were scored: M-LMD, mouth correlation and offset of
    each side, the paired M-LMD difference ``b - a`` with its bootstrap interval, and one
    sentence. Returns ``(table, {key: record})``."""
    rows, records = [], {}
    for ab in ablations:
        if ab.a not in summary.index or ab.b not in summary.index:
            continue
        a = ev.clips[ev.clips["model"] == ab.a].set_index("clip")
        b = ev.clips[ev.clips["model"] == ab.b].set_index("clip")
        common = a.index.intersection(b.index)
        d, lo, hi = metrics.paired_bootstrap(
            a.loc[common, "mlmd"], b.loc[common, "mlmd"], n_boot, seed=seed
        )
        sa, sb = summary.loc[ab.a], summary.loc[ab.b]
        sentence = _sentence(ab, sa, sb, d, lo, hi)
        rec = {
            "question": ab.question,
            "a": ab.a,
            "b": ab.b,
            "a_label": ab.a_label,
            "b_label": ab.b_label,
            "a_metrics": {k: _num(sa[k]) for k in ("mlmd", "lmd", "mouth_corr", "offset_ms")},
            "b_metrics": {k: _num(sb[k]) for k in ("mlmd", "lmd", "mouth_corr", "offset_ms")},
            "delta_mlmd": [_num(d), _num(lo), _num(hi)],
            "clips": int(len(common)),
            "sentence": sentence,
        }
        records[ab.key] = rec
        rows.append(
            {
                "ablation": ab.question,
                "a": f"{ab.a_label} [{ab.a}]",
                "b": f"{ab.b_label} [{ab.b}]",
                "M-LMD a": sa["mlmd"],
                "M-LMD b": sb["mlmd"],
                "Δ M-LMD (b−a)": d,
                "95% CI": f"[{lo:+.3f}, {hi:+.3f}]",
                "corr a": sa["mouth_corr"],
                "corr b": sb["mouth_corr"],
                "offset a ms": sa["offset_ms"],
                "offset b ms": sb["offset_ms"],
            }
        )
    return pd.DataFrame(rows), records


def _sentence(ab: Ablation, sa, sb, d, lo, hi) -> str:
    if not np.isfinite(d):
        return f"{ab.question}: not enough clips to compare."
    verdict = "lowers" if hi < 0 else "raises" if lo > 0 else "does not clearly change"
    return (
        f"{ab.b_label} instead of {ab.a_label} {verdict} the test M-LMD "
        f"({sa['mlmd']:.3f} -> {sb['mlmd']:.3f} % IOD, difference {d:+.3f}, 95% CI "
        f"[{lo:+.3f}, {hi:+.3f}]); mouth-opening correlation {sa['mouth_corr']:.3f} -> "
        f"{sb['mouth_corr']:.3f}, lip-sync offset {sa['offset_ms']:+.0f} -> "
        f"{sb['offset_ms']:+.0f} ms."
    )
