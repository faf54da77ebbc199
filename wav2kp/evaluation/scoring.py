"""Evaluation of trained models on the test split: the field's landmark metrics per clip, the
extraction noise floor, bootstrap intervals, per-emotion tables, the original's diary as
ablations (:mod:`wav2kp.evaluation.ablations`), and notebook 04's record (:func:`results`, written
with :func:`wav2kp.results.save`: ``results.json`` and ``results.md``).

**The reference.** Predictions are scored against the best keypoints we have for a clip: the
bundled corpus' *ground truth* (the generator's keypoints) when the clip has one, else the
keypoints our extractor found (:mod:`wav2kp.extraction.landmarks`). A frame is *scored* when the reference
is good there (ground truth: finite; extracted: a face was found and not interpolated) and the
prediction is finite (its head pose is known); the other frames are *flagged* and counted,
never scored as zero. The extraction's own error against the ground truth, on the same frames
and with the same metrics, is the *noise floor*: the models learn from the extracted keypoints.

**Per clip** (:func:`score_clip`): LMD, M-LMD, velocity error, mouth-area error (% of the
reference's inter-ocular distance, or of its square for areas), the Pearson correlation of the
mouth opening, the clip's own lip-sync offset, and the mouth jitter in silent stretches
(:func:`wav2kp.metrics.silent_frames` on the clip's audio). **Per model**
(:func:`summarise`): the mean over clips with a 95% bootstrap interval over clips, and the
lip-sync offset of all clips pooled (one cross-correlation over every clip's frames).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from wav2kp import config, media, metrics
from wav2kp.corpus import bundled
from wav2kp.extraction import landmarks, mirror
from wav2kp.features import dataset
from wav2kp.manifest import git_commit, package_versions
from wav2kp.training import models, runs

#: Metrics summarised per model (mean over clips with a bootstrap interval).
CLIP_METRICS = ("lmd", "mlmd", "velocity", "mouth_area", "mouth_corr", "jitter")
#: Display names and units.
LABELS = {
    "lmd": "LMD %",
    "mlmd": "M-LMD %",
    "velocity": "velocity %",
    "mouth_area": "mouth area % IOD²",
    "mouth_corr": "mouth corr",
    "offset_ms": "offset ms",
    "jitter": "silent jitter %",
}
NOISE_FLOOR = "extraction (dlib)"
#: The stand-in where there is no ground truth: dlib on the mirrored frames against the
#: reference (:mod:`wav2kp.extraction.mirror`), every :data:`MIRROR_EVERY`-th frame.
NOISE_FLOOR_MIRROR = "extraction (dlib vs mirrored dlib)"
FLOORS = (NOISE_FLOOR, NOISE_FLOOR_MIRROR)
MIRROR_EVERY = 2


# ---------------------------------------------------------------------------------- references


@dataclass
class Reference:
    """What a clip is scored against: pixel keypoints ``points (T, 68, 2)`` at ``times``,
    ``good (T,)`` frames, where they come from (``"groundtruth"`` or ``"extracted"``), the
    extracted keypoints (for the noise floor, None without a ground truth) and the silent
    frames of the clip's audio."""

    clip: str
    times: np.ndarray
    points: np.ndarray
    good: np.ndarray
    source: str
    extracted: np.ndarray | None
    extracted_good: np.ndarray | None
    silent: np.ndarray
    fps: float
    info: dict = field(default_factory=dict)


def load_reference(clip: str, corpus: str, clip_row: Any = None) -> Reference:
    """The reference of one clip of a corpus (see the module docstring)."""

    name = config.corpus_name(corpus)
    interim = config.interim_dir(name)
    wav, lm_path = landmarks.clip_paths(interim, clip)
    if not lm_path.is_file():
        raise FileNotFoundError(
            f"{lm_path}: no extracted keypoints for clip {clip!r}; run the "
            f"extraction stage (notebook 01 or `wav2kp extract`)."
        )
    lm = landmarks.load_landmarks(lm_path)
    ext = np.asarray(lm.points, dtype=np.float64)
    ext_good = (
        np.asarray(lm.found, bool)
        & ~np.asarray(lm.interpolated, bool)
        & np.isfinite(ext).all(axis=(1, 2))
    )
    gt_file = bundled.gt_path(config.raw_dir(name), clip) if name == "bundled" else None
    if gt_file is not None and gt_file.is_file():
        gt = bundled.load_groundtruth(gt_file)
        if len(gt["times"]) != len(lm.times):
            raise ValueError(
                f"{gt_file}: {len(gt['times'])} frames, but the extracted "
                f"keypoints of {clip!r} have {len(lm.times)}."
            )
        points = np.asarray(gt["points"], dtype=np.float64)
        good = np.isfinite(points).all(axis=(1, 2))
        source, extracted, extracted_good = "groundtruth", ext, ext_good
    else:
        points, good, source, extracted, extracted_good = ext, ext_good, "extracted", None, None
    times = np.asarray(lm.times, dtype=np.float64)
    if wav.is_file():
        audio, rate = media.read_wav(wav)
        silent = metrics.silent_frames(audio, rate, times)
    else:
        silent = np.zeros(len(times), bool)
    info = (
        {}
        if clip_row is None
        else {
            k: (None if pd.isna(v) else v)
            for k, v in dict(clip_row).items()
            if k in ("emotion", "emotion_name", "sentence", "neutral", "speaker")
        }
    )
    return Reference(
        clip, times, points, good, source, extracted, extracted_good, silent, float(lm.fps), info
    )


def mirrored_reference(video: str | Path, ref: Reference) -> tuple[np.ndarray, np.ndarray]:
    """dlib's keypoints on the mirrored frames of ``video`` (mirrored back) in the frames
    ``(T, 68, 2)`` of ``ref`` (NaN where not measured) and which frames were: every
    :data:`MIRROR_EVERY`-th good one (:func:`wav2kp.extraction.mirror.mirrored_pair`)."""
    track = landmarks.ClipLandmarks(
        ref.points.astype(np.float32), ref.times, np.asarray(ref.good, bool),
        np.zeros(len(ref.times), bool), Fraction(ref.fps).limit_denominator(1001), (0, 0),
    )  # fmt: skip
    frames, _, back = mirror.mirrored_pair(video, track, every=MIRROR_EVERY)
    points = np.full(ref.points.shape, np.nan)
    points[frames] = back
    sampled = np.zeros(len(ref.times), bool)
    sampled[frames] = True
    return points, sampled


# ------------------------------------------------------------------------------------- scoring


def score_clip(pred: np.ndarray, ref: Reference, good: np.ndarray | None = None) -> dict:
    """Every per-clip metric of a pixel prediction ``(T, 68, 2)`` against ``ref``; ``good``
    overrides the reference's good frames (the noise floor scores the frames good on both
    sides). Also returns the opening series (``_open_pred``, ``_open_true``, ``_mask``) for a
    pooled lip-sync offset."""
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != ref.points.shape:
        raise ValueError(
            f"{ref.clip}: prediction has shape {pred.shape}, the reference "
            f"{ref.points.shape} (one row per video frame)."
        )
    good = ref.good if good is None else good
    mask = good & np.isfinite(pred).all(axis=(1, 2))
    open_pred, open_true = metrics.opening(pred), metrics.opening(ref.points)
    offset, _ = metrics.lipsync_offset(open_pred, open_true, ref.fps, masks=mask)
    silent = mask & ref.silent
    return {
        "clip": ref.clip,
        **ref.info,
        "frames": int(len(mask)),
        "scored": int(mask.sum()),
        "flagged": int(len(mask) - mask.sum()),
        "lmd": metrics.lmd(pred, ref.points, mask),
        "mlmd": metrics.mlmd(pred, ref.points, mask),
        "velocity": metrics.velocity_error(pred, ref.points, mask),
        "mouth_area": metrics.mouth_area_error(pred, ref.points, mask),
        "mouth_corr": metrics.pearson(open_pred, open_true, mask),
        "offset_ms": offset,
        "jitter": metrics.jitter(pred, silent) if silent.sum() >= 2 else math.nan,
        "jitter_reference": (metrics.jitter(ref.points, silent) if silent.sum() >= 2 else math.nan),
        "silent_frames": int(silent.sum()),
        "_open_pred": open_pred,
        "_open_true": open_true,
        "_mask": mask,
    }


@dataclass
class Evaluation:
    """Per-clip scores of every model (and of the extraction, when there is a ground truth)."""

    clips: pd.DataFrame  # one row per (model, clip)
    series: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]
    references: dict[str, Reference]
    failures: pd.DataFrame
    #: ``{clip: {model: (T, 68, 2) float32 pixels}}`` (kept for plots and the viewer)
    preds: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.clips["model"]))


def _predict_clips(run_dir: Path, fs_dir: Path, clips: Sequence[str]) -> str:
    """In a worker: a run's predictions of ``clips``, kept in the run (see
    :func:`wav2kp.training.runs.predict_pixels`)."""
    model, fs = models.load_run(run_dir), dataset.FeatureSet(fs_dir)
    for clip in clips:
        with contextlib.suppress(Exception):  # evaluate_runs reports the failure
            runs.predict_pixels(model, fs, clip)
    return str(run_dir)


def predict_ahead(
    loaded: dict[str, tuple[Any, Any]], clips: Sequence[str], n_jobs: int | None = None
) -> None:
    """Compute every run's predictions of ``clips`` side by side, one process per core (the
    ``slow`` models, the window LSTMs, first), so that scoring finds them kept in the runs.
    Runs not loaded from a run folder are left to :func:`evaluate_runs`."""
    jobs = [
        (model, fs) for model, fs in loaded.values() if getattr(model, "run_dir", None) is not None
    ]
    workers = runs.parallel_jobs(len(jobs)) if n_jobs is None else n_jobs
    if workers <= 1 or len(jobs) <= 1:
        return
    jobs.sort(key=lambda pair: not pair[0].slow)
    Parallel(n_jobs=workers, backend="loky")(
        delayed(_predict_clips)(model.run_dir, fs.out_dir, list(clips)) for model, fs in jobs
    )


def evaluate_runs(
    loaded: dict[str, tuple[Any, Any]],
    clips: Sequence[str],
    corpus: str,
    clip_table: pd.DataFrame | None = None,
    noise_floor: bool = True,
    progress: bool = False,
    n_jobs: int | None = None,
) -> Evaluation:
    """Score every model of ``loaded`` (:func:`load_runs`) on ``clips``. A clip that cannot be
    scored (missing files, a model that fails on it) is listed in ``failures`` with the reason
    and the others go on. The runs predict side by side first (:func:`predict_ahead`;
    ``n_jobs=1``: one after the other, while scoring)."""
    predict_ahead(loaded, clips, n_jobs)
    rows, failures = [], []
    series: dict[str, list] = {}
    refs: dict[str, Reference] = {}
    kept: dict[str, dict[str, np.ndarray]] = {}
    table = clip_table.set_index("clip") if clip_table is not None and len(clip_table) else None
    for clip in clips:
        row = table.loc[clip] if table is not None and clip in table.index else None
        try:
            ref = load_reference(clip, corpus, row)
        except (OSError, ValueError) as err:
            failures.append({"clip": clip, "model": "*", "error": str(err)})
            continue
        refs[clip] = ref
        todo = list(loaded.items())
        if noise_floor and ref.extracted is not None:
            todo = [(NOISE_FLOOR, None)] + todo
        elif noise_floor and row is not None and "path" in row:
            todo = [(NOISE_FLOOR_MIRROR, row["path"])] + todo
        for label, pair in todo:
            try:
                if pair is None:
                    good = ref.good & ref.extracted_good
                    scores = score_clip(ref.extracted, ref, good)
                elif label == NOISE_FLOOR_MIRROR:
                    points, sampled = mirrored_reference(pair, ref)
                    scores = score_clip(points, ref, ref.good & sampled)
                else:
                    model, fs = pair
                    pred = runs.predict_pixels(model, fs, clip)
                    scores = score_clip(pred, ref)
                    kept.setdefault(clip, {})[label] = np.asarray(pred, dtype=np.float32)
            except Exception as err:  # noqa: BLE001 - one bad clip never spoils the others
                failures.append(
                    {"clip": clip, "model": label, "error": f"{type(err).__name__}: {err}"}
                )
                continue
            if label not in FLOORS and ref.extracted is not None:
                ok = ref.extracted_good & np.isfinite(pred).all(axis=(1, 2))
                scores["mlmd_vs_extracted"] = metrics.mlmd(pred, ref.extracted, ok)
                scores["lmd_vs_extracted"] = metrics.lmd(pred, ref.extracted, ok)
            series.setdefault(label, []).append(
                (scores.pop("_open_pred"), scores.pop("_open_true"), scores.pop("_mask"))
            )
            rows.append({"model": label, "reference": ref.source, **scores})
        if progress:
            print(f"scored {clip}", flush=True)
    return Evaluation(
        pd.DataFrame(rows),
        series,
        refs,
        pd.DataFrame(failures, columns=["clip", "model", "error"]),
        kept,
    )


def summarise(ev: Evaluation, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per model: mean over clips of :data:`CLIP_METRICS` with ``<metric>_lo`` /
    ``<metric>_hi`` 95% bootstrap bounds, the pooled lip-sync offset (``offset_ms``, and
    ``offset_corr`` its peak correlation), the median per-clip offset, clips, scored and
    flagged frames."""
    out = []
    for label in ev.models:
        sub = ev.clips[ev.clips["model"] == label]
        row: dict[str, Any] = {
            "model": label,
            "clips": int(len(sub)),
            "frames": int(sub["scored"].sum()),
            "flagged": int(sub["flagged"].sum()),
            "clips_with_flagged": int((sub["flagged"] > 0).sum()),
        }
        for m in CLIP_METRICS:
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = metrics.bootstrap_ci(sub[m], n_boot, seed=seed)
        s = ev.series[label]
        fps = float(np.median([r.fps for r in ev.references.values()]))
        row["offset_ms"], row["offset_corr"] = metrics.lipsync_offset(
            [p for p, _, _ in s], [t for _, t, _ in s], fps, masks=[m for _, _, m in s]
        )
        row["offset_ms_median_clip"] = (
            float(np.nanmedian(sub["offset_ms"])) if sub["offset_ms"].notna().any() else math.nan
        )
        for extra in ("mlmd_vs_extracted", "lmd_vs_extracted", "jitter_reference"):
            row[extra] = (
                float(sub[extra].mean()) if extra in sub and sub[extra].notna().any() else math.nan
            )
        out.append(row)
    return pd.DataFrame(out).set_index("model")


def breakdown(ev: Evaluation, by: str = "emotion_name", metric: str = "mlmd") -> pd.DataFrame:
    """Mean ``metric`` per model (columns) and group (rows): ``by="emotion_name"`` per emotion,
    ``by="neutral"`` emotional (False) vs neutral (True) takes."""
    if by not in ev.clips.columns or ev.clips[by].isna().all():
        return pd.DataFrame()
    frame = ev.clips.copy()
    if by == "neutral":
        frame[by] = frame[by].map({True: "neutral", False: "emotional"})
    return frame.pivot_table(index=by, columns="model", values=metric, aggfunc="mean")[ev.models]


# --------------------------------------------------------------------------------- the results


def _num(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def model_record(row: pd.Series) -> dict:
    """A model's summary as plain JSON numbers (None for NaN), with its intervals."""
    rec = {m: _num(row[m]) for m in (*CLIP_METRICS, "offset_ms")}
    rec["offset_corr"] = _num(row["offset_corr"])
    rec["offset_ms_median_clip"] = _num(row["offset_ms_median_clip"])
    for extra in ("mlmd_vs_extracted", "lmd_vs_extracted"):
        rec[extra] = _num(row.get(extra))
    rec["ci95"] = {m: [_num(row[f"{m}_lo"]), _num(row[f"{m}_hi"])] for m in CLIP_METRICS}
    rec.update({k: int(row[k]) for k in ("clips", "frames", "flagged", "clips_with_flagged")})
    return rec


def best_model(summary: pd.DataFrame, exclude: Iterable[str] = ()) -> str:
    """The trained model with the lowest M-LMD (the noise floor and ``exclude`` left out)."""
    cand = summary.drop(index=[*FLOORS, *exclude], errors="ignore")["mlmd"].dropna()
    if cand.empty:
        raise ValueError("no model was scored.")
    return str(cand.idxmin())


def results(
    ev: Evaluation,
    summary: pd.DataFrame,
    *,
    profile: str | None,
    corpus: str,
    subset: str | None,
    split: str,
    study_models: Sequence[str],
    ablations: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """The ``results.json`` record: profile and commit, the noise floor, every study model,
    the best model and its ratios, per-emotion and emotional-vs-neutral M-LMD, ablations."""

    models_ = {m: model_record(summary.loc[m]) for m in study_models if m in summary.index}
    best = best_model(summary.loc[[m for m in study_models if m in summary.index]])
    floors = [f for f in FLOORS if f in summary.index]
    floor = model_record(summary.loc[floors[0]]) if floors else None

    def ratio(den):
        return _num(summary.loc[best, "mlmd"] / den) if den else None

    refs = {r.source for r in ev.references.values()}
    out = {
        "profile": profile,
        "commit": git_commit(),
        "corpus": str(corpus),
        "subset": subset,
        "split": split,
        "reference": "+".join(sorted(refs)),
        "units": "distances in % of the reference's inter-ocular distance (mouth area: % of "
        "its square); offsets in ms, positive = prediction late",
        "clips": int(len(ev.references)),
        "frames_scored": int(ev.clips.loc[ev.clips["model"] == best, "scored"].sum()),
        "frames_flagged": int(ev.clips.loc[ev.clips["model"] == best, "flagged"].sum()),
        "failures": ev.failures.to_dict("records"),
        "noise_floor": floor,
        "noise_floor_kind": (
            None
            if not floors
            else "dlib against the ground truth"
            if floors[0] == NOISE_FLOOR
            else "stand-in: dlib on the mirrored frames against dlib (no ground truth)"
        ),
        "reference_jitter": _num(summary.loc[best, "jitter_reference"]),
        "models": models_,
        "best_model": best,
        "ratios": {
            "best_to_mean_face": ratio(summary.loc["mean_face", "mlmd"])
            if "mean_face" in summary.index
            else None,
            "best_to_lstm_original": ratio(summary.loc["lstm_original", "mlmd"])
            if "lstm_original" in summary.index
            else None,
            "best_to_noise_floor": ratio(floor["mlmd"]) if floor else None,
        },
        "per_emotion_mlmd": _table_json(breakdown(ev, "emotion_name")),
        "emotional_vs_neutral_mlmd": _table_json(breakdown(ev, "neutral")),
        "ablations": ablations or {},
        "versions": package_versions(("wav2kp", "numpy", "torch", "torchaudio")),
    }
    if extra:
        out.update(extra)
    return out


def _table_json(table: pd.DataFrame) -> dict:
    return {str(c): {str(i): _num(v) for i, v in table[c].items()} for c in table.columns}


def main_table(summary: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """The results table: one row per model, mean [95% interval] per metric."""
    rows = []
    for model in order or summary.index:
        if model not in summary.index:
            continue
        r = summary.loc[model]
        row = {"model": model}
        for m in CLIP_METRICS:
            row[LABELS[m]] = (
                f"{r[m]:.3f} [{r[f'{m}_lo']:.3f}, {r[f'{m}_hi']:.3f}]" if np.isfinite(r[m]) else "—"
            )
        row[LABELS["offset_ms"]] = f"{r['offset_ms']:+.1f}" if np.isfinite(r["offset_ms"]) else "—"
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def results_markdown(
    record: dict, table: pd.DataFrame, ablations: pd.DataFrame | None = None
) -> str:
    """``reports/results.md``: the main table (and the ablations), with what produced them."""
    lines = [
        f"Test split of the {record['corpus']} corpus"
        + (f" ({record['subset']} subset)" if record.get("subset") else "")
        + f", profile `{record['profile']}`, commit `{record['commit'][:12]}`; "
        f"{record['clips']} clips, {record['frames_scored']} scored frames "
        f"({record['frames_flagged']} flagged, not scored); reference: "
        f"{record['reference']}. Mean over clips [95% bootstrap interval over clips]; "
        f"{record['units']}.",
        "",
        _markdown(table.reset_index()),
        "",
    ]
    r = record["ratios"]
    if r.get("best_to_mean_face") is not None:
        parts = [
            f"Best model: `{record['best_model']}`; M-LMD ratio to `mean_face` "
            f"{r['best_to_mean_face']:.3f}"
        ]
        if r.get("best_to_lstm_original") is not None:
            parts.append(f"to `lstm_original` {r['best_to_lstm_original']:.3f}")
        if r.get("best_to_noise_floor") is not None:
            parts.append(f"to the extraction noise floor {r['best_to_noise_floor']:.3f}")
        lines += [", ".join(parts) + ".", ""]
    if ablations is not None and len(ablations):
        lines += [
            "Ablations (the original's diary, same split; Δ = b − a, negative is better for b):",
            "",
            _markdown(ablations),
            "",
        ]
        lines += [f"- {rec['sentence']}" for rec in record["ablations"].values()] + [""]
    levers = record.get("levers") or {}
    if levers.get("rows"):
        frame = pd.DataFrame.from_dict(levers["rows"], orient="index")
        frame = frame.drop(columns=["what"], errors="ignore").reset_index(names="run")
        goal = levers.get("goals", {}).get("real", {})
        lines += [
            "Real speech, the levers (the test split above and the real videos; real goals: "
            f"mean mouth correlation >= {goal.get('mouth_corr')}, >= "
            f"{goal.get('above_energy')} above `energy`, median offset within "
            f"{goal.get('median_abs_offset_ms')} ms):",
            "",
            _markdown(frame),
            "",
            f"Default model (`wav2kp predict`): `{levers.get('default_model')}`.",
            "",
        ]
    return "\n".join(lines)


def _markdown(frame: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "—" if not np.isfinite(v) else f"{v:.3f}"
        return str(v)

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    sep = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def check_invariants(
    record: dict,
    centred: Iterable[str] = ("ridge", "lstm", "tcn", "tcn_emotion"),
    fps: float = 30000 / 1001,
) -> list[str]:
    """The invariants a sane study satisfies; returns the violated ones (empty: all hold).
    Every trained model beats ``mean_face`` on M-LMD; models with centred context have a
    lip-sync offset within one video frame."""
    bad = []
    models_ = record["models"]
    floor = (models_.get("mean_face") or {}).get("mlmd")
    for name, rec in models_.items():
        if name != "mean_face" and floor is not None and not (rec["mlmd"] < floor):
            bad.append(f"{name}: M-LMD {rec['mlmd']:.3f} does not beat mean_face {floor:.3f}")
    for name in centred:
        rec = models_.get(name)
        if rec and (rec["offset_ms"] is None or abs(rec["offset_ms"]) > 1000.0 / fps + 1e-6):
            bad.append(f"{name}: lip-sync offset {rec['offset_ms']} ms is over one frame")
    return bad


def mouth_traces(ev: Evaluation, clip: str) -> pd.DataFrame:
    """Long table (model, time, opening) of one clip: the reference and every model."""
    ref = ev.references[clip]
    rows = [
        pd.DataFrame(
            {"model": "reference", "time": ref.times, "opening": metrics.opening(ref.points)}
        )
    ]
    for label in ev.models:
        sub = ev.clips[ev.clips["model"] == label].reset_index(drop=True)
        idx = np.flatnonzero(sub["clip"].to_numpy() == clip)
        if len(idx):
            open_pred = ev.series[label][int(idx[0])][0]
            rows.append(pd.DataFrame({"model": label, "time": ref.times, "opening": open_pred}))
    return pd.concat(rows, ignore_index=True)


def scored_points(ref: Reference) -> np.ndarray:
    """The reference keypoints with non-good frames set to NaN (what is drawn as truth)."""
    pts = np.array(ref.points, dtype=np.float64)
    pts[~ref.good] = np.nan
    return pts


__all__ = [
    "Evaluation",
    "Reference",
    "FLOORS",
    "NOISE_FLOOR",
    "NOISE_FLOOR_MIRROR",
    "load_reference",
    "score_clip",
    "evaluate_runs",
    "summarise",
    "breakdown",
    "results",
    "main_table",
    "results_markdown",
    "check_invariants",
    "mouth_traces",
    "scored_points",
]
