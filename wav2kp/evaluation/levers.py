"""What makes the keypoints follow real people: the levers, each one run, scored side by side.

Every lever is a run (or a way of placing a run's predictions) scored twice: on the bundled
test split against the ground truth (M-LMD, mouth-opening correlation, lip-sync offset), and on
a folder of real talking-head videos (:mod:`wav2kp.evaluation.real`: mouth-opening correlation
with the extracted keypoints, offset). :func:`lever_table` puts them in one table with the goals
of issue 15 beside them, and :func:`choose_default` picks the model ``wav2kp predict`` uses: the
highest real correlation among the runs that keep the bundled invariants (mouth correlation
>= :data:`BUNDLED_MIN_CORR`, offset within one frame), a near tie (:data:`REAL_TIE`) going to
the lower bundled M-LMD. The real clips choose between these named
variants only; nothing is fitted on them.

The levers (:data:`LEVER_RUNS`; the study's own runs are rows too):

- ``<base>_talkers``: the base model pre-trained on synthetic talkers (many espeak-ng voices and
  languages, random microphones and rooms; :mod:`wav2kp.features.talkers`), then fine-tuned on
  the corpus as usual;
- ``phones``: PocketSphinx's phone recogniser drives the corpus's coarticulation model
  (:class:`wav2kp.training.models.Phones`);
- ``transformer``: the diary's Transformer (local attention), trained like the TCN;
- ``<base>_live``: lever 1 with :data:`LIVE_FUTURE_FRAMES` of look-ahead: the model that
  streams with about 100 ms of latency (``wav2kp live``);
- ``<base> + pose smoothed``: the base run's predictions placed with the head pose smoothed
  over :data:`POSE_WINDOW` frames (changes the bundled M-LMD only: the real scores compare
  mouth openings, which do not depend on the pose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wav2kp import config, training
from wav2kp.evaluation import real, scoring
from wav2kp.evaluation.ablations import ablation_jobs
from wav2kp.evaluation.scoring import _num
from wav2kp.features import mixed, phonetic

__all__ = [
    "BUNDLED_MIN_CORR",
    "LEVER_RUNS",
    "LIVE_FUTURE_FRAMES",
    "POSE_WINDOW",
    "REAL_GOAL",
    "REAL_TIE",
    "Lever",
    "PoseSmoothed",
    "choose_default",
    "lever_runs",
    "lever_table",
    "measure",
    "train_levers",
]

#: Bundled invariants a default model keeps: mouth-opening correlation and |offset| (frames).
BUNDLED_MIN_CORR = 0.87
#: Issue 15's real-video goals: mean correlation, margin over ``energy``, median |offset| ms.
REAL_GOAL = {"mouth_corr": 0.65, "above_energy": 0.15, "median_abs_offset_ms": 40.0}
#: Frames the head pose is smoothed over in the pose lever (measured best in docs/history.md).
POSE_WINDOW = 15
#: Look-ahead of the live model (feature frames of 10 ms). With the MFCC window's look-ahead,
#: one hop and a 20 ms chunk: 140 ms at most from sound to keypoint (issue 18's goal: 150 ms).
#: Measured (full profile): 60 ms of look-ahead cost 13 % test M-LMD over the default model,
#: 100 ms cost 3.9 % (the goal: within 5 %).
LIVE_FUTURE_FRAMES = 10


@dataclass(frozen=True)
class Lever:
    """One row of the table: ``label`` (a run label), what it changes, the issue's lever
    number."""

    label: str
    lever: str
    what: str


def lever_runs(base: str, talkers: int, pretrain_epochs: int, hidden: int | None) -> dict:
    """``{label: (model name, hyper-parameters, feature-set role)}`` of the extra runs the
    levers need; the role is the study set it trains on (:data:`wav2kp.features.sets.ROLES`:
    ``default``, or ``mixed`` / ``mixed_experiment``, the study's clips and real corpora)."""
    width = training.models.MODELS[base].width(hidden)
    pre = {"pretrain": {"utterances": int(talkers), "epochs": int(pretrain_epochs)}}
    live = {"future_frames": LIVE_FUTURE_FRAMES}
    return {
        f"{base}_talkers": (base, {**width, **pre}, "default"),
        "phones": ("phones", {}, "default"),
        "transformer": ("transformer", training.models.Transformer.width(hidden), "default"),
        f"{base}_live": (base, {**width, **pre, **live}, "default"),
        f"{base}_real": (base, {**width, **pre}, "mixed"),
        f"{base}_real_live": (base, {**width, **pre, **live}, "mixed"),
        f"{base}_real_experiment": (base, {**width, **pre}, "mixed_experiment"),
        # features that transfer (only where the study built their sets: lever_extras): the
        # extra channels cost too much to compute over the talkers, so these and the run they
        # are compared with train without the pre-training
        f"{base}_real_scratch": (base, dict(width), "mixed"),
        **{f"{base}_real_{e}": (base, dict(width), f"mixed+{e}") for e in phonetic.EXTRAS},
    }


#: The lever rows after the study's own runs (``{base}`` is the default model of notebook 03).
LEVER_RUNS = (
    Lever("{base}_talkers", "1. more varied data", "pre-trained on synthetic talkers, fine-tuned"),
    Lever("phones", "2. features that transfer", "phone recogniser -> articulation model"),
    Lever("{base}+pose", "3. pose", f"head pose smoothed over {POSE_WINDOW} frames"),
    Lever("transformer", "4. the model", "the diary's Transformer (local attention)"),
    Lever(
        "{base}_live",
        "5. live",
        f"lever 1 with {10 * LIVE_FUTURE_FRAMES} ms of look-ahead instead of 300 (wav2kp live)",
    ),
    Lever(
        "{base}_real",
        "6. real people",
        "pre-trained on synthetic talkers, trained on the corpus and real faces (train_corpora)",
    ),
    Lever(
        "{base}_real_live",
        "6. real people",
        f"lever 6 with {10 * LIVE_FUTURE_FRAMES} ms of look-ahead",
    ),
    Lever(
        "{base}_real_experiment",
        "6. real people",
        "lever 6 with experiment_corpora too (measured only: never shipped)",
    ),
    Lever("{base}_real_scratch", "7. features that transfer", "lever 6 without the pre-training"),
    Lever("{base}_real_phones", "7. features that transfer", "+ hama's phone classes as inputs"),
    Lever("{base}_real_formants", "7. features that transfer", "+ Praat's formants and intensity"),
)
#: The lever runs' numbers (``{base}`` formatted), the pose lever's row included.
LEVER_NUMBERS = {lv.label: int(lv.lever.split(".")[0]) for lv in LEVER_RUNS}


def selected(levers) -> frozenset[int]:
    """The lever numbers of notebook 04's ``levers`` parameter: ``True`` all of them,
    ``False`` / ``None`` / ``[]`` none, else a list of numbers (``[7]``: only lever 7's runs,
    beside the study's own; a study that measures some levers chooses its default among
    those)."""
    every = frozenset(LEVER_NUMBERS.values())
    if levers is True:
        return every
    if not levers:
        return frozenset()
    if isinstance(levers, (int, str)):
        levers = [levers]
    try:
        chosen = frozenset(int(n) for n in levers)
    except (TypeError, ValueError):
        raise ValueError(
            f"levers: True, False or a list of lever numbers, not {levers!r}."
        ) from None
    unknown = sorted(chosen - every)
    if unknown:
        raise ValueError(f"levers: no lever {unknown}; the levers are {sorted(every)}.")
    return chosen


def _number(label: str, base: str) -> int:
    for template, number in LEVER_NUMBERS.items():
        if template.format(base=base) == label:
            return number
    raise KeyError(label)


#: Lever runs trained on data whose licence allows experiments only: never a default model.
EXPERIMENT_ONLY = ("_experiment",)


def lever_jobs(
    sets, base: str, talkers: int, pretrain_epochs: int, hidden: int | None,
    corpus: str, subset: str, only=True,
) -> list:  # fmt: skip
    """The lever runs whose feature set the study has (``sets``: :class:`wav2kp.features.
    StudySets`, or one set for every lever; ``only``: the levers, :func:`selected`) as
    :class:`wav2kp.training.RunJob` s, their talker sets built (once). Runs that pre-train
    the same way (:func:`wav2kp.training.models.pretraining`: the levers with the full
    look-ahead; the live ones) share one pre-training, computed by whichever run reaches it
    first while the others wait for it (:func:`wav2kp.training.train_runs` starts one run of
    each pre-training before the others)."""
    numbers = selected(only)
    study = hasattr(sets, "sets")  # the study's sets by role, else one set for every lever
    has = (lambda role: role in sets) if study else (lambda role: role == "default")
    specs = {
        label: (name, hp, role)
        for label, (name, hp, role) in lever_runs(base, talkers, pretrain_epochs, hidden).items()
        if has(role) and _number(label, base) in numbers
    }
    if not any(role.startswith("mixed+") for _, _, role in specs.values()):
        specs.pop(f"{base}_real_scratch", None)  # it is there to compare them with
    pick = (lambda role: sets[role]) if study else (lambda role: sets)
    for _, hp, role in specs.values():
        if hp.get("pretrain"):
            training.models.pretrain_set(pick(role), hp["pretrain"])
    return [
        training.RunJob(label, name, pick(role), config.run_dir(corpus, subset, label), hp)
        for label, (name, hp, role) in specs.items()
    ]


def train_levers(
    sets, cfg, base: str, talkers: int, pretrain_epochs: int, hidden: int | None,
    corpus: str, subset: str, only=True,
) -> dict[str, Path]:  # fmt: skip
    """Train (or load, when up to date) the :func:`lever_jobs` into ``config.run_dir(corpus,
    subset, label)``; returns ``{label: run dir}`` in :func:`lever_runs`' order."""
    jobs = lever_jobs(sets, base, talkers, pretrain_epochs, hidden, corpus, subset, only)
    training.train_runs(jobs, cfg)
    return {j.label: j.run_dir for j in jobs}


def train_extra_runs(
    sets, cfg, hidden: int | None, corpus: str, subset: str, *, ablations: bool, levers,
    base: str, talkers: int, pretrain_epochs: int, study_models: list[str],
) -> None:  # fmt: skip
    """Notebook 04's own runs, the diary's ablations and the levers, trained side by side in
    one schedule (two workers kept busy: the pre-training first, the long runs beside it);
    each run trains exactly as alone (:func:`wav2kp.training.train_runs`), so
    :func:`ablations.train_ablations` and :func:`measure` then find them up to date."""
    jobs = ablation_jobs(sets, hidden, corpus, subset) if ablations else []
    if selected(levers) and base in study_models:  # measure() says what is wrong otherwise
        jobs += lever_jobs(sets, base, talkers, pretrain_epochs, hidden, corpus, subset, levers)
    training.train_runs(jobs, cfg)


class PoseSmoothed:
    """A loaded model whose pixel predictions are placed with the clip's head pose smoothed
    over ``window`` frames (:meth:`wav2kp.features.dataset.FeatureSet.to_pixels`)."""

    def __init__(self, model, window: int = POSE_WINDOW) -> None:
        self.model, self.window = model, int(window)
        self.name = model.name
        self.run_dir = None  # nothing kept: predict_ahead leaves it to evaluate_runs

    def predict(self, fs, clip: str) -> np.ndarray:
        return self.model.predict(fs, clip)

    def predict_pixels(self, fs, clip: str) -> np.ndarray:
        targets = self.model.predict(fs, clip)
        return fs.to_pixels(clip, targets, pose_window=self.window)

    def __getattr__(self, name: str) -> Any:
        if name == "model":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.model, name)


def lever_table(
    summary: pd.DataFrame,
    real_summary: pd.DataFrame | None,
    rows: list[tuple[str, str, str, str]],
    fps: float = 30000 / 1001,
) -> pd.DataFrame:
    """One row per ``(label, lever, what, real label)``: bundled test M-LMD (and × ``mean_face``),
    mouth correlation and offset; real mean correlation, its margin over ``energy``, median and
    mean |offset|; whether the bundled invariants hold and the real goals are met. ``real label``
    is the run whose real scores the row takes (the pose lever takes its base run's)."""
    floor = float(summary.loc["mean_face", "mlmd"]) if "mean_face" in summary.index else math.nan
    energy = (
        float(real_summary.loc["energy", "mouth_corr"])
        if real_summary is not None and "energy" in real_summary.index
        else math.nan
    )
    out = []
    for label, lever, what, real_label in rows:
        if label not in summary.index:
            continue
        s = summary.loc[label]
        r = (
            real_summary.loc[real_label]
            if real_summary is not None and real_label in real_summary.index
            else None
        )
        corr = float(s["mouth_corr"])
        offset = float(s["offset_ms"])
        keeps = bool(corr >= BUNDLED_MIN_CORR and abs(offset) <= 1000.0 / fps + 1e-6)
        real_corr = float(r["mouth_corr"]) if r is not None else math.nan
        med = float(r["median_offset_ms"]) if r is not None else math.nan
        meets = bool(
            r is not None
            and real_corr >= REAL_GOAL["mouth_corr"]
            and real_corr - energy >= REAL_GOAL["above_energy"]
            and abs(med) <= REAL_GOAL["median_abs_offset_ms"]
            and int(r.get("at_edge", 0) or 0) == 0
        )
        out.append(
            {
                "run": label,
                "lever": lever,
                "what": what,
                "test M-LMD": float(s["mlmd"]),
                "× mean_face": float(s["mlmd"]) / floor if floor else math.nan,
                "test mouth corr": corr,
                "test offset ms": offset,
                "real mouth corr": real_corr,
                "real − energy": real_corr - energy,
                "real median offset ms": med,
                "real mean abs offset ms": float(r["abs_offset_ms"]) if r is not None else math.nan,
                "real clips at the search edge": (
                    int(r["at_edge"]) if r is not None and "at_edge" in r else None
                ),
                "keeps bundled invariants": keeps,
                "meets real goal": meets,
            }
        )
    return pd.DataFrame(out).set_index("run") if out else pd.DataFrame()


#: Real correlations closer than this are a tie, the bundled M-LMD decides (on the 23 real
#: clips, the paired difference of two runs has a 95 % bootstrap interval of about +-0.025).
REAL_TIE = 0.01


def _candidates(table: pd.DataFrame) -> pd.DataFrame:
    """Rows that may become a model of the study: they keep the bundled invariants, have a
    real score, are runs of their own (not the pose variant) and learned from data whose
    licence allows shipped weights (not :data:`EXPERIMENT_ONLY`) and, where the table says,
    stream (``streams``: a default model must predict an hour in bounded memory, issue 25; a
    run whose features need the whole recording, the phone recogniser's, cannot)."""
    own = ~table.index.str.contains(r"\+", regex=True)
    if "streams" in table.columns:
        own &= table["streams"].fillna(True).astype(bool)
    for marker in EXPERIMENT_ONLY:
        own &= ~table.index.str.endswith(marker)
    cand = table[table["keeps bundled invariants"] & own]
    return cand[cand["real mouth corr"].notna()]


def _best(cand: pd.DataFrame) -> str:
    top = cand[cand["real mouth corr"] >= cand["real mouth corr"].max() - REAL_TIE]
    return str(top["test M-LMD"].idxmin())


def choose_default(table: pd.DataFrame, fallback: str) -> str:
    """The run with the highest real mouth correlation among the offline candidates
    (:func:`_candidates`, not the live models, which trade accuracy for latency), correlations
    within :data:`REAL_TIE` of the highest counting as equal and the lowest bundled test M-LMD
    among them winning; ``fallback`` when none has a real score."""
    cand = _candidates(table)
    cand = cand[~cand.index.str.endswith("_live")]
    return fallback if cand.empty else _best(cand)


def live_run(table: pd.DataFrame) -> str | None:
    """The live model of the table: the best ``*_live`` candidate by the same rule as
    :func:`choose_default`, else the first ``*_live`` row; ``None`` without one."""
    live = [str(label) for label in table.index if str(label).endswith("_live")]
    if not live:
        return None
    cand = _candidates(table.loc[live])
    return _best(cand) if not cand.empty else live[0]


def table_record(table: pd.DataFrame, default: str) -> dict:
    """The lever table as plain JSON for ``results.json`` (with the live model's run)."""
    rows = {
        label: {k: (_num(v) if isinstance(v, float) else v) for k, v in row.items()}
        for label, row in table.to_dict("index").items()
    }
    return {
        "rows": rows,
        "default_model": default,
        "live_model": live_run(table),
        "goals": {"real": REAL_GOAL, "bundled_min_mouth_corr": BUNDLED_MIN_CORR},
    }


def measure(
    loaded: dict[str, tuple[Any, Any]],
    summary: pd.DataFrame,
    real_summary: pd.DataFrame | None,
    clips: list[str],
    *,
    study_models: list[str],
    cfg,
    hidden: int | None,
    base: str,
    talkers: int,
    pretrain_epochs: int,
    corpus: str,
    subset: str,
    clip_table: pd.DataFrame | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    real_dir: str | Path | None = None,
    cluster=None,
    sets=None,
    only=True,
) -> tuple[pd.DataFrame, str]:
    """Notebook 04's levers, end to end: train (or load) the lever runs beside ``base`` (a run
    of ``loaded``, the study's runs), score them on the test ``clips`` like the study's models
    (``summary``: their scores), when ``real_summary`` is given on the real videos of
    ``real_dir``, and on the held-out clips of the real corpora in the study's mixed sets
    (``sets``: :class:`wav2kp.features.StudySets`; without, every lever trains on ``base``'s
    set); returns ``(the lever table, the default model)``. The default is
    :func:`choose_default` over the table when there are real scores, else the best of
    ``study_models`` on the test split. ``only``: the levers measured (:func:`selected`:
    ``True`` all, or a list of their numbers)."""
    numbers = selected(only)
    if base not in loaded:
        raise ValueError(f"lever_base {base!r} is not one of the study's runs: {sorted(loaded)}.")
    default = scoring.best_model(summary.loc[[m for m in study_models if m in summary.index]])
    base_model, base_fs = loaded[base]
    sets = base_fs if sets is None else sets
    runs = train_levers(sets, cfg, base, talkers, pretrain_epochs, hidden, corpus, subset, numbers)
    lever_loaded = training.load_runs(runs)
    if _number(f"{base}+pose", base) in numbers:
        lever_loaded[f"{base}+pose"] = (PoseSmoothed(base_model), base_fs)
    scores = summary
    if lever_loaded:  # none where the chosen levers need sets the study did not build
        ev = scoring.evaluate_runs(lever_loaded, clips, corpus, clip_table, noise_floor=False)
        scores = pd.concat([summary, scoring.summarise(ev, n_boot=n_boot, seed=seed)])
    real_all = None
    if real_summary is not None and len(real_summary) and real_dir is not None:
        real_all = real_summary
        if runs:
            lever_real = real.evaluate_real(real_dir, runs, cluster=cluster)
            real_all = pd.concat([real_summary, real.summary(lever_real["videos"])])
    rows = [(m, "0. today", "study run", m) for m in ("energy", "tcn", base) if m in study_models]
    for lv in LEVER_RUNS:
        label = lv.label.format(base=base)
        if LEVER_NUMBERS[lv.label] not in numbers:
            continue
        rows.append((label, lv.lever, lv.what, label.split("+")[0]))
    table = lever_table(scores, real_all, rows)
    if len(table):
        study_runs = {m: loaded[m][0].run_dir for m in table.index if m in study_models}
        held = held_out(sets, {**study_runs, **runs}, cluster=cluster)
        table = table.join(held) if len(held) else table
        table.insert(2, "data", [_data(lever_loaded.get(label)) for label in table.index])
        pairs = {**loaded, **lever_loaded}
        table["streams"] = [_streams(pairs.get(label)) for label in table.index]
    if real_all is not None and len(table):
        default = choose_default(table, default)
    return table, default


def _streams(pair) -> bool | None:
    """Whether a row's run predicts a recording chunk by chunk exactly as whole (``pair``: its
    loaded ``(model, feature set)``; ``None`` when not known): what ``wav2kp predict`` needs
    for a long recording in bounded memory, and ``wav2kp live``."""
    if pair is None or not hasattr(pair[0], "stream_problem"):
        return None
    return pair[0].stream_problem(pair[1]) is None


def _data(pair) -> str:
    """What a row's run learned from (``pair``: its loaded ``(model, feature set)``, ``None``
    for a study run): the study corpus, and the real corpora of its set."""
    sources = ((pair[1].params.get("mixed") or {}).get("sources") or []) if pair else []
    return " + ".join(["study corpus", *sources])


def held_out(sets, runs: dict[str, Path], cluster=None) -> pd.DataFrame:
    """Each run's mean mouth correlation (and median offset) on the held-out test clips of
    every real corpus in the study's mixed sets (``<corpus> held-out corr``; e.g. GRID s1's
    test sentences): clips no run trained on, extracted by notebook 01. Empty without a mixed
    set."""
    if not hasattr(sets, "sets"):
        return pd.DataFrame()
    roles = [r for r in ("mixed_experiment", "mixed") if r in sets]
    if not roles:
        return pd.DataFrame()
    fs = sets[roles[0]]
    out = pd.DataFrame(index=list(runs))
    for source in sorted(set(fs.splits["source"]) - {mixed.BASE}):
        test = mixed.source_clips(fs, source, "test")
        if not len(test):
            continue
        table = pd.DataFrame({"clip": test["original"], "path": test["original"]})
        scored = real.summary(
            real.evaluate_real(table, runs, cluster=cluster, corpus=source)["videos"]
        )
        out[f"{source} held-out corr"] = scored["mouth_corr"]
        out[f"{source} held-out median offset ms"] = scored["median_offset_ms"]
    return out
