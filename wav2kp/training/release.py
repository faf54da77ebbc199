"""The model that ships inside the package, so ``wav2kp predict`` works before any study.

``wav2kp/shipped/`` holds one trained run, self-contained (``wav2kp/shipped_live/`` the same
for the live model, ``make release-model`` refreshes both):

- ``weights.pt`` and ``config.json``: the run as :meth:`KeypointModel.save` wrote it;
- ``feature_set/feature_set.json`` and ``feature_set/splits.csv``: what the model needs of its
  feature set to predict from new audio (MFCC settings, feature normaliser, reference face,
  PCA), without the utterances;
- ``release.json``: where it came from (study profile, commit, run key) and the numbers it was
  released with: its bundled test and real-video scores from that study, and :func:`check`'s
  numbers on a bundled clip, which a test reproduces from the shipped files.

:func:`release` refreshes it from a full study (``make release-model``).
:meth:`wav2kp.training.inference.Predictor.default` prefers a study's own trained run and falls
back to the shipped one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from wav2kp import config, metrics, shapes
from wav2kp import results as records
from wav2kp.corpus import bundled
from wav2kp.manifest import file_sha256, git_commit, write_json_atomic
from wav2kp.training import inference, runs

__all__ = [
    "CHECK_CLIP",
    "LIVE_SHIPPED_DIR",
    "SHIPPED_DIR",
    "check",
    "release",
    "release_record",
    "shipped_dir",
]

SHIPPED_DIR = config.SHIPPED_DIR
LIVE_SHIPPED_DIR = config.LIVE_SHIPPED_DIR
shipped_dir = config.shipped_dir
#: The bundled clip whose numbers a release records (synthesised, no video needed).
CHECK_CLIP = (1, 2, False)  # emotion 1 (joy), sentence 2, emotional take: a test-split clip
FEATURE_SET = "feature_set"


def release_record(run: Path | None = None) -> dict[str, Any]:
    """``release.json`` of the shipped run (``{}`` when there is none)."""
    run = run or SHIPPED_DIR
    path = Path(run) / "release.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def check(predictor) -> dict[str, Any]:
    """Numbers of ``predictor`` on the bundled clip :data:`CHECK_CLIP`, from its synthesised
    audio and ground-truth keypoints (no rendering, no extraction): the mouth-opening
    correlation with the truth, the M-LMD (% IOD) of the mouth after both are normalised to the
    model's reference face, and the mean predicted opening (% IOD)."""
    from scipy.signal import resample_poly

    emotion, sentence, neutral = CHECK_CLIP
    (spec,) = [
        s
        for s in bundled.clip_specs({"emotions": [emotion], "sentences": [sentence]})
        if s.neutral == neutral
    ]
    data = bundled.synthesize_clip(spec)
    audio = resample_poly(data.audio.astype(np.float64), 160, 441).astype(np.float32)
    pred = predictor.predict_audio(audio, fps=bundled.FPS)
    n = min(len(pred.times), len(data.times))
    truth, _ = shapes.normalise(data.points[:n].astype(np.float64), predictor.fs.reference)
    guess = pred.normalised[:n]
    mouth = shapes.MOUTH
    err = np.linalg.norm(guess[:, mouth] - truth[:, mouth], axis=-1).mean()
    iod = float(shapes.inter_ocular(predictor.fs.reference))
    return {
        "clip": spec.name,
        "frames": int(n),
        "mouth_corr": float(metrics.pearson(metrics.opening(guess), metrics.opening(truth))),
        "mouth_mlmd_pct": float(100 * err / iod),
        "mean_open_pct": float(100 * metrics.opening(guess).mean()),
    }


def release(
    run_dir: str | Path,
    results: str | Path | None = None,
    out_dir: str | Path = SHIPPED_DIR,
) -> dict[str, Any]:
    """Copy the run ``run_dir`` (with its feature set's description) into ``out_dir`` and write
    its ``release.json`` (scores from ``results``, a study's ``results.json``; :func:`check`'s
    numbers). The folder is replaced as a whole (written beside it, then renamed)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    ((model, fs),) = runs.load_runs({run_dir.name: run_dir}).values()
    record = json.loads(Path(results).read_text(encoding="utf-8")) if results else {}
    label = _label(record, run_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".shipped-", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        # weights and config only: without metrics.json the shipped run keeps no predictions
        # (nothing is written into the package when it is used)
        for name in ("weights.pt", "config.json"):
            shutil.copy2(run_dir / name, tmp / name)
        train_metrics = (
            json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
            if (run_dir / "metrics.json").is_file()
            else {}
        )
        (tmp / FEATURE_SET).mkdir()
        for name in ("feature_set.json", "splits.csv"):
            shutil.copy2(Path(fs.out_dir) / name, tmp / FEATURE_SET / name)
        numbers = check(inference.Predictor(tmp))
        info = {
            "model": model.name,
            "run": label,
            "hparams": model.hparams,
            "run_key": getattr(model, "run_key", None),
            "training": {
                k: train_metrics.get(k) for k in ("val_mlmd_pct", "epochs", "best_epoch", "wall_s")
            },
            "weights_sha256": file_sha256(tmp / "weights.pt"),
            "weights_bytes": (tmp / "weights.pt").stat().st_size,
            "study": {k: record.get(k) for k in ("profile", "corpus", "subset", "commit", "split")},
            "released_from_commit": git_commit(),
            "bundled_test": _row(record, label),
            "real": _real_row(record, label),
            "check": numbers,
        }
        write_json_atomic(tmp / "release.json", info)
        old = out_dir.with_name(out_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _label(record: dict, run_dir: Path) -> str:
    """The study's label of ``run_dir`` (``tcn_emotion_talkers``), else the folder's name."""
    for label in (
        record.get("default_model"),
        *(record.get("models") or {}),
        *((record.get("levers") or {}).get("rows") or {}),
    ):
        if label and config.run_dir(
            record.get("corpus", "bundled"), record.get("subset"), label
        ) == Path(run_dir):
            return str(label)
    return Path(run_dir).name


def _row(record: dict, label: str) -> dict | None:
    """The bundled test scores of ``label``: its row of the main table, else of the levers."""
    if label in (record.get("models") or {}):
        return record["models"][label]
    return ((record.get("levers") or {}).get("rows") or {}).get(label)


def _real_row(record: dict, label: str) -> dict | None:
    real = ((record.get("real") or {}).get("models") or {}).get(label)
    if real is not None:
        return real
    row = ((record.get("levers") or {}).get("rows") or {}).get(label)
    if row is None:
        return None
    return {k: v for k, v in row.items() if k.startswith("real")}


def default_run(live: bool = False) -> Path | None:
    """The run of the last study that :func:`release` would ship: its default model
    (:func:`wav2kp.results.default_run`); ``live``: its live model."""
    choice = records.live_run() if live else records.default_run()
    return None if choice is None else choice.run
