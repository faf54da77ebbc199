"""The Lightning classes of the training loop: the module that trains a neural model, the
history callback and the augmentation's epoch callback.

Importing Lightning costs seconds, so only :func:`wav2kp.training.loop.fit_module` imports this
module, when it trains (``import wav2kp.training`` and ``wav2kp --help`` stay instant). The
classes are defined once, at the top level, so a spawned DDP process unpickles them by name.
``cfg`` below is a :class:`wav2kp.training.loop.TrainConfig`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning
import torch

from wav2kp.features.augment import set_epochs


def batch_size(batch) -> int:
    """Rows of a batch: utterances of a padded batch (also with emotions), windows, else 1."""
    first = batch[0] if isinstance(batch, tuple) and not hasattr(batch, "_fields") else batch
    if hasattr(first, "features"):
        return int(first.features.shape[0])
    return int(first.shape[0]) if torch.is_tensor(first) else 1


class KeypointModule(lightning.LightningModule):
    """Wraps a :class:`wav2kp.training.models.NeuralModel`: its ``net`` (trained) and ``head``
    (fixed buffers) become submodules; the loss is the model's ``step``."""

    def __init__(self, model, cfg: Any, lr: float) -> None:
        super().__init__()
        self.model_ref = [model]  # a list: not registered as a submodule twice
        self.net, self.head = model.net, model.head
        self.cfg, self.lr = cfg, float(lr)

    def _logged_loss(self, batch, key: str) -> torch.Tensor:
        loss = self.model_ref[0].step(batch, self.cfg)
        self.log(
            key,
            loss,
            on_step=False,
            on_epoch=True,
            batch_size=batch_size(batch),
            sync_dist=True,  # averaged over the processes of a DDP run (a no-op alone)
        )
        return loss

    def training_step(self, batch, batch_idx):
        return self._logged_loss(batch, "train_loss")

    def validation_step(self, batch, batch_idx):
        self._logged_loss(batch, "val_loss")

    def configure_optimizers(self):
        opt = torch.optim.Adam(
            self.net.parameters(), lr=self.lr, weight_decay=self.cfg.weight_decay
        )
        if self.cfg.lr_schedule == "none":
            return opt
        if self.cfg.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=max(1, self.cfg.max_epochs), eta_min=self.lr * 0.01
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched}}
        if self.cfg.lr_schedule != "plateau":
            raise ValueError(
                f"lr_schedule must be 'plateau', 'cosine' or 'none', got {self.cfg.lr_schedule!r}."
            )
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=max(1, self.cfg.patience // 2)
        )
        monitor = "val_loss" if self.trainer.val_dataloaders is not None else "train_loss"
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": monitor}}


class History(lightning.Callback):
    """One row per epoch, also appended to ``path`` (JSON lines, by the first process: a spawned
    DDP run trains in other processes); with ``progress="log"`` one printed line."""

    def __init__(self, cfg: Any, path: Path) -> None:
        self.rows: list[dict] = []
        self.cfg, self.path = cfg, path
        self._t0 = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        m = trainer.callback_metrics
        get = lambda k: float(m[k]) if k in m else math.nan
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        row = {
            "epoch": int(trainer.current_epoch),
            "train_loss": get("train_loss"),
            "val_loss": get("val_loss"),
            "lr": float(lr),
            "time_s": time.perf_counter() - self._t0,
        }
        self.rows.append(row)
        if trainer.is_global_zero:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        if self.cfg.progress == "log" and trainer.is_global_zero:
            # a line per epoch on a terminal; elsewhere (a notebook, a log) one line that each
            # epoch overwrites (carriage return): the page keeps only the last
            out = sys.stdout
            print(
                f"epoch {row['epoch'] + 1}/{trainer.max_epochs} train "
                f"{row['train_loss']:.4g} val {row['val_loss']:.4g} "
                f"({row['time_s']:.1f} s)",
                end="\n" if out.isatty() else "\r",
                flush=True,
            )


class EpochCallback(lightning.Callback):
    """Calls ``set_epoch(trainer.current_epoch)`` on the training dataset (through ``.base``
    wrappers; :func:`wav2kp.features.augment.set_epochs`) at the start of every training epoch,
    so augmented epochs differ."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        set_epochs(trainer.train_dataloader, trainer.current_epoch)
