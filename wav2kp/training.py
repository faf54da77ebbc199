"""The training loop (PyTorch Lightning), run artefacts and evaluation.

A run lives in ``data/models/<run>/`` (:func:`wav2kp.config.models_dir`):

- ``weights.pt``: plain tensors (``torch.load(..., weights_only=True)``);
- ``config.json``: the model's name and hyper-parameters, the sizes it learned from the data,
  the :class:`TrainConfig`, the feature set's folder and parameters (its ``manifest.json``
  ``params``, enough to rebuild the features), the seed and package versions;
- ``history.csv``: one row per epoch (``epoch, train_loss, val_loss, lr, time_s``; baselines one
  row);
- ``metrics.json``: validation metrics of the *saved* model (:func:`evaluate` after a reload,
  so :func:`wav2kp.models.load_run` then :func:`evaluate` gives exactly these numbers) and the
  training wall time.

Neural models train with Adam, early stopping on the validation loss (``patience`` epochs), and
``ReduceLROnPlateau`` (halve the lr after ``patience // 2`` epochs without improvement; or
``lr_schedule="cosine"``: cosine annealing to 1% of the lr over ``max_epochs``; ``"none"``). The
best validation epoch's weights are restored at the end. With ``deterministic=True`` (default)
two runs with the same seed give identical weights on the same machine (``max_time_s`` can
break that, since it stops on the clock).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from wav2kp import config as paths
from wav2kp import metrics, shapes
from wav2kp.manifest import package_versions, write_json_atomic

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "lr", "time_s"]
RUN_PACKAGES = ("wav2kp", "numpy", "torch", "torchaudio", "lightning", "scikit-learn")


@dataclass
class TrainConfig:
    """Training settings (model hyper-parameters live in the model).

    ``lr=None`` takes the model's default (1e-3; 1e-4 for ``lstm_original``). ``past_ms`` /
    ``future_ms``: the centred context window of window models (``ridge``, ``lstm``), ms.
    ``progress``: ``"log"`` one plain line per epoch (for papermill logs), ``"bar"`` Lightning's
    progress bar, ``"none"`` silent.
    """

    max_epochs: int = 50
    batch_size: int = 64
    lr: float | None = None
    weight_decay: float = 0.0
    patience: int = 8
    lr_schedule: Literal["plateau", "cosine", "none"] = "plateau"
    seed: int = 0
    deterministic: bool = True
    past_ms: float = 200.0
    future_ms: float = 200.0
    velocity_weight: float = 0.0
    mouth_weight: float = 0.0
    num_workers: int = 0
    accelerator: str = "auto"
    max_time_s: float | None = None
    progress: Literal["bar", "log", "none"] = "log"
    #: training-time audio augmentation (:mod:`wav2kp.augment`) for the utterance models
    #: (``tcn``, ``tcn_emotion``): MFCCs recomputed from augmented audio every epoch; the
    #: window models (``lstm``, ``lstm_original``) train on the stored features
    augment: bool = True
    #: :class:`wav2kp.augment.AugmentConfig` fields overriding its defaults
    augment_params: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _set_threads() -> None:
    """Half the usable cores (at most 8) for torch's intra-op threads: the small recurrent and
    convolutional nets here gain little from more, and on a shared 2-core machine 2 threads ran
    a 2-layer LSTM step 3-5x slower than 1 (measured)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, min(8, cores // 2)))


def seed_all(cfg: TrainConfig) -> None:
    """Seed Python, NumPy and torch (and loader workers); deterministic kernels when asked."""
    import lightning

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # deterministic cuBLAS
    lightning.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    _set_threads()


def loader(dataset, cfg: TrainConfig, shuffle: bool, collate_fn=None):
    """A DataLoader whose shuffling is seeded by ``cfg.seed`` alone."""
    gen = torch.Generator().manual_seed(cfg.seed)
    return torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=shuffle,
                                       collate_fn=collate_fn, num_workers=cfg.num_workers,
                                       generator=gen, drop_last=False)


def _batch_size(batch) -> int:
    first = batch[0] if isinstance(batch, tuple) and not hasattr(batch, "_fields") else batch
    if hasattr(first, "features"):
        return int(first.features.shape[0])
    return int(first.shape[0]) if torch.is_tensor(first) else 1


def _lightning_module_class():
    import lightning

    class KeypointModule(lightning.LightningModule):
        """Wraps a :class:`wav2kp.models.NeuralModel`: its ``net`` (trained) and ``head``
        (fixed buffers) become submodules; the loss is the model's ``step``."""

        def __init__(self, model, cfg: TrainConfig, lr: float) -> None:
            super().__init__()
            self.model_ref = [model]          # a list: not registered as a submodule twice
            self.net, self.head = model.net, model.head
            self.cfg, self.lr = cfg, float(lr)

        def training_step(self, batch, batch_idx):
            loss = self.model_ref[0].step(batch, self.cfg)
            self.log("train_loss", loss, on_step=False, on_epoch=True,
                     batch_size=_batch_size(batch))
            return loss

        def validation_step(self, batch, batch_idx):
            loss = self.model_ref[0].step(batch, self.cfg)
            self.log("val_loss", loss, on_step=False, on_epoch=True,
                     batch_size=_batch_size(batch))

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.net.parameters(), lr=self.lr,
                                   weight_decay=self.cfg.weight_decay)
            if self.cfg.lr_schedule == "none":
                return opt
            if self.cfg.lr_schedule == "cosine":
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                    opt, T_max=max(1, self.cfg.max_epochs), eta_min=self.lr * 0.01)
                return {"optimizer": opt, "lr_scheduler": {"scheduler": sched}}
            if self.cfg.lr_schedule != "plateau":
                raise ValueError(f"lr_schedule must be 'plateau', 'cosine' or 'none', got "
                                 f"{self.cfg.lr_schedule!r}.")
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=0.5, patience=max(1, self.cfg.patience // 2))
            monitor = "val_loss" if self.trainer.val_dataloaders is not None else "train_loss"
            return {"optimizer": opt,
                    "lr_scheduler": {"scheduler": sched, "monitor": monitor}}

    return KeypointModule


def KeypointModule(model, cfg: TrainConfig, lr: float):
    """The Lightning module that trains ``model.net`` with ``model.step`` as the loss."""
    return _lightning_module_class()(model, cfg, lr)


def _history_callback(cfg: TrainConfig):
    import lightning

    class History(lightning.Callback):
        """One row per epoch; with ``progress="log"`` also one printed line."""

        def __init__(self) -> None:
            self.rows: list[dict] = []
            self._t0 = time.perf_counter()

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            m = trainer.callback_metrics
            get = (lambda k: float(m[k]) if k in m else math.nan)
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
            row = {"epoch": int(trainer.current_epoch), "train_loss": get("train_loss"),
                   "val_loss": get("val_loss"), "lr": float(lr),
                   "time_s": time.perf_counter() - self._t0}
            self.rows.append(row)
            if cfg.progress == "log":
                print(f"epoch {row['epoch'] + 1}/{trainer.max_epochs} train "
                      f"{row['train_loss']:.4g} val {row['val_loss']:.4g} "
                      f"({row['time_s']:.1f} s)", flush=True)

    return History()


def fit_module(module, train_loader, val_loader, cfg: TrainConfig,
               run_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Train a Lightning module; restore its best epoch (lowest ``val_loss``, or ``train_loss``
    without a validation loader); write ``history.csv`` into ``run_dir`` when given.

    Checkpoints go to ``run_dir/checkpoints`` (a temporary folder without ``run_dir``) and are
    removed once the best weights are back in ``module``. Returns the history
    (:data:`HISTORY_COLUMNS`, one row per epoch).
    """
    import lightning
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    seed_all(cfg)
    monitor = "val_loss" if val_loader is not None else "train_loss"
    own_tmp = run_dir is None
    root = Path(tempfile.mkdtemp(prefix="wav2kp-fit-")) if own_tmp else Path(run_dir)
    ckpt_dir = root / "checkpoints"
    history = _history_callback(cfg)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, monitor=monitor, mode="min", save_top_k=1,
                                 save_weights_only=True, filename="best")
    from wav2kp.augment import EpochCallback

    callbacks = [history, checkpoint, EpochCallback(),
                 EarlyStopping(monitor=monitor, mode="min", patience=cfg.patience)]
    max_time = ({"seconds": float(cfg.max_time_s)} if cfg.max_time_s else None)
    trainer = lightning.Trainer(
        accelerator=cfg.accelerator, devices=1, max_epochs=cfg.max_epochs, max_time=max_time,
        callbacks=callbacks, logger=False, default_root_dir=root,
        enable_checkpointing=True, enable_model_summary=False,
        enable_progress_bar=cfg.progress == "bar", num_sanity_val_steps=0,
        deterministic="warn" if cfg.deterministic else False, log_every_n_steps=1)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*number of training batches.*")
            warnings.filterwarnings("ignore", message=".*deterministic.*")
            trainer.fit(module, train_loader, val_loader)
        best = checkpoint.best_model_path
        if best:
            state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
    finally:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        if own_tmp:
            shutil.rmtree(root, ignore_errors=True)
    module.cpu()
    frame = pd.DataFrame(history.rows, columns=HISTORY_COLUMNS)
    if run_dir is not None:
        write_history(frame, Path(run_dir) / "history.csv")
    return frame


def write_history(history: pd.DataFrame, path: Path) -> None:
    from wav2kp.manifest import write_csv_atomic

    write_csv_atomic(path, history)


# -------------------------------------------------------------------------------- evaluation

def _fill_invalid(targets: np.ndarray, times: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid rows replaced by linear interpolation of the valid ones (ends held)."""
    if valid.all():
        return targets
    out = np.array(targets, dtype=np.float64)
    for j in range(out.shape[1]):
        out[~valid, j] = np.interp(times[~valid], times[valid], out[valid, j])
    return out


def clip_errors(model, fs, clip: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(squared errors (n_valid, D) in normalised units, point errors (T', 68) in % of the
    inter-ocular distance at the scored video frames, scored-frame mask (T,))`` of one clip.

    The truth in pixels is the clip's stored targets mapped through :meth:`FeatureSet.to_pixels`
    exactly as the prediction is (so both go through the same inverse alignment and pose); a
    video frame is scored when its face was found and the target frames on both sides of it are
    valid.
    """
    utt = fs.load(clip)
    pred = np.asarray(model.predict(fs, clip), dtype=np.float64)
    targets = np.asarray(utt["targets"], dtype=np.float64)
    valid = np.asarray(utt.get("valid", np.isfinite(targets).all(axis=1)), dtype=bool)
    if pred.shape != targets.shape:
        raise ValueError(f"{model.name}.predict gave {pred.shape} for {clip!r}, expected "
                         f"{targets.shape}.")
    sq = (pred - targets)[valid] ** 2
    if not valid.any():
        return sq, np.zeros((0, shapes.N_POINTS)), np.zeros(len(utt["video_times"]), bool)
    ttimes = utt["target_times"]
    truth_px = fs.to_pixels(clip, _fill_invalid(targets, ttimes, valid))
    pred_px = fs.to_pixels(clip, pred)
    scored = np.interp(utt["video_times"], ttimes, valid.astype(np.float64)) >= 1.0 - 1e-9
    if "video_ok" in utt:
        scored &= np.asarray(utt["video_ok"], dtype=bool)
    return sq, metrics.point_errors(pred_px[scored], truth_px[scored]), scored


def evaluate(model, fs, split: str = "val") -> dict[str, Any]:
    """Metrics of ``model`` over the clips of ``split``, frames pooled across clips:

    ``mse`` (normalised units squared, per coordinate, valid feature frames), ``mlmd_pct``
    (mean mouth-point error, % of inter-ocular distance, pixels at video frame times),
    ``lmd_pct`` (all 68 points; ``None`` when the targets are the mouth only), ``n_clips``,
    ``n_frames`` (scored video frames). NaN when the split is empty.
    """
    sq, errs = [], []
    clips = fs.split_clips(split)
    for clip in clips:
        s, e, _ = clip_errors(model, fs, clip)
        sq.append(s)
        errs.append(e)
    whole_face = len(fs.point_idx) == shapes.N_POINTS
    if not clips:
        return {"mse": math.nan, "mlmd_pct": math.nan,
                "lmd_pct": math.nan if whole_face else None, "n_clips": 0, "n_frames": 0}
    err = np.concatenate(errs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"mse": float(np.concatenate(sq).mean()),
                "mlmd_pct": float(np.nanmean(err[:, shapes.MOUTH])),
                "lmd_pct": float(np.nanmean(err)) if whole_face else None,
                "n_clips": len(clips), "n_frames": int(len(err))}


# --------------------------------------------------------------------------------- a whole run

def _feature_set_record(fs) -> dict[str, Any]:
    manifest = fs.out_dir / "manifest.json"
    params = (json.loads(manifest.read_text(encoding="utf-8")).get("params")
              if manifest.is_file() else fs.params)
    return {"dir": str(fs.out_dir), "name": fs.out_dir.name, "params": params}


def train_model(name: str, fs, cfg: TrainConfig | None, run_dir: str | os.PathLike,
                **hparams: Any):
    """Create, fit, save and evaluate (on ``val``) a model; returns ``(model, metrics)``.

    The returned model is the one *reloaded from* ``run_dir``, and the metrics (also written to
    ``metrics.json``) are computed on it, so loading the run later reproduces them exactly.
    """
    from wav2kp import models

    cfg = cfg or TrainConfig()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", "history.csv"):
        (run_dir / stale).unlink(missing_ok=True)
    model = models.create(name, **hparams)
    t0 = time.perf_counter()
    if isinstance(model, models.NeuralModel):
        history = model.fit(fs, cfg, run_dir=run_dir)
    else:
        history = model.fit(fs, cfg)
    train_s = time.perf_counter() - t0
    write_history(history, run_dir / "history.csv")
    model.meta = {"train": cfg.as_dict(), "feature_set": _feature_set_record(fs),
                  "seed": cfg.seed, "versions": package_versions(RUN_PACKAGES),
                  "device": str(models.device()) if isinstance(model, models.NeuralModel)
                  else "cpu"}
    model.save(run_dir)
    model = models.load_run(run_dir)
    val = evaluate(model, fs, "val")
    out = {"model": name, "val_mse": val["mse"], "val_mlmd_pct": val["mlmd_pct"],
           "val_lmd_pct": val["lmd_pct"], "val_frames": val["n_frames"],
           "epochs": int(len(history)),
           "best_epoch": (int(history.loc[history["val_loss"].idxmin(), "epoch"])
                          if history["val_loss"].notna().any() else None),
           "wall_s": round(train_s, 3)}
    write_json_atomic(run_dir / "metrics.json", out)
    return model, out


# ----------------------------------------------------------------------------- the study's runs

#: The feature set each model trains on: ``lstm_original`` is fed as the original project fed
#: it (torchaudio's default MFCC at 80 frames/s, keypoints x3 paired by index); the others use
#: the timestamp-aligned default set.
ORIGINAL_FEEDING = {"lstm_original"}


def feature_sets(corpus: str = "bundled", subset: str = "quick", seed: int = 0) -> dict:
    """The two processed sets the study trains on, built (or reused) from the extraction
    outputs: ``{"default": FeatureSet, "original": FeatureSet}``."""
    from wav2kp import config, dataset, features
    from wav2kp import corpus as corpora

    name = config.corpus_name(corpus)
    clips = corpora.study_clips(corpus, subset)
    out = {}
    for key, mfcc_cfg, alignment in (("default", features.MFCCConfig(), "timestamps"),
                                     ("original", features.MFCCConfig.original(),
                                      "original_x3")):
        set_name = dataset.feature_set_name(mfcc_cfg, alignment, "face")
        out[key], _ = dataset.build_feature_set(
            clips, config.interim_dir(name), config.processed_dir(name, set_name),
            mfcc_cfg=mfcc_cfg, alignment=alignment, targets="face", seed=seed)
    return out


def model_hparams(name: str, hidden: int | None) -> dict:
    """Width knob of the study: ``hidden`` sets the LSTMs' hidden size and the TCNs' channels
    (``lstm_original`` keeps the original's 200); ``None`` keeps every default."""
    if hidden is None:
        return {}
    if name == "lstm":
        return {"hidden": int(hidden)}
    if name in ("tcn", "tcn_emotion"):
        return {"channels": int(hidden)}
    return {}


def train_all(names: list[str], sets: dict, cfg: TrainConfig, corpus: str, subset: str,
              hidden: int | None = None) -> list[dict]:
    """Train every model of ``names`` on its feature set into ``config.run_dir(corpus, subset,
    name)``; returns ``[{"name", "run", "metrics", "history"}]`` in order. Wall time is in
    metrics."""
    results = []
    for name in names:
        fs = sets["original" if name in ORIGINAL_FEEDING else "default"]
        run_dir = paths.run_dir(corpus, subset, name)
        print(f"== {name} ({fs.out_dir.name})", flush=True)
        model, metrics = train_model(name, fs, cfg, run_dir=run_dir,
                                     **model_hparams(name, hidden))
        history = pd.read_csv(run_dir / "history.csv")
        print(f"   val M-LMD {metrics['val_mlmd_pct']:.3f} % IOD in {metrics['wall_s']:.1f} s",
              flush=True)
        results.append({"name": name, "run": str(run_dir), "metrics": metrics,
                        "history": history})
    return results
