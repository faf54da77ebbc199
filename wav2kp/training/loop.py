"""The training loop shared by every neural model: PyTorch Lightning with fixed seeds,
deterministic algorithms, early stopping on the validation loss and a learning-rate schedule.

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
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from wav2kp.manifest import inputs_sha256, write_csv_atomic

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "lr", "time_s"]

#: The code a run's weights depend on: a change to any of these files retrains cached runs
#: (and pre-trainings).
TRAINING_SOURCES = (
    "training/lit.py",
    "training/loop.py",
    "training/networks.py",
    "training/models.py",
    "training/runs.py",
    "features/acoustic.py",
    "features/augment.py",
    "features/dataset.py",
    "features/mixed.py",
    "features/phonetic.py",
    "features/talkers.py",
    "features/phones.py",
    "corpus/talkers.py",
    "corpus/face.py",
    "corpus/speech.py",
    "shapes.py",
    "metrics.py",
    "media.py",
)


def code_hash() -> str:
    """sha256 of :data:`TRAINING_SOURCES`."""
    root = Path(__file__).resolve().parent.parent
    return inputs_sha256(*(root / rel for rel in TRAINING_SOURCES))


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
    #: processes (or GPUs) per node, nodes, and Lightning's strategy: ``devices=2,
    #: strategy="ddp_spawn"`` trains on two processes of this machine (gloo on CPU, NCCL on
    #: GPUs); ``"ddp"`` is what ``torchrun`` / SLURM launches use (see docs/scaling.md). Each
    #: process takes ``batch_size`` utterances a step: the effective batch is ``batch_size x
    #: devices x num_nodes``.
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    max_time_s: float | None = None
    #: at most this many training windows an epoch for the window models (``lstm``,
    #: ``lstm_original``), a different random draw every epoch (seeded): on a large corpus an
    #: epoch of every window costs minutes and these models learn most in the first one.
    #: ``None``: every window (a corpus smaller than the cap is not affected either way)
    max_windows: int | None = None
    progress: Literal["bar", "log", "none"] = "log"
    #: training-time audio augmentation (:mod:`wav2kp.features.augment`) for the utterance models
    #: (``tcn``, ``tcn_emotion``): MFCCs recomputed from augmented audio every epoch; the
    #: window models (``lstm``, ``lstm_original``) train on the stored features
    augment: bool = True
    #: :class:`wav2kp.features.augment.AugmentConfig` fields overriding its defaults
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

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    lightning.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    _set_threads()


def loader(dataset, cfg: TrainConfig, shuffle: bool, collate_fn=None, limit: int | None = None):
    """A DataLoader whose shuffling is seeded by ``cfg.seed`` alone; ``limit``: at most that
    many items an epoch, drawn afresh each epoch (shuffled loaders only)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = None
    if shuffle and limit is not None and int(limit) < len(dataset):
        sampler = torch.utils.data.RandomSampler(dataset, num_samples=int(limit), generator=gen)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=cfg.num_workers,
        generator=gen if sampler is None else None,
        drop_last=False,
    )


def fit_module(
    model,
    train_loader,
    val_loader,
    cfg: TrainConfig,
    run_dir: str | os.PathLike | None = None,
    stop_patience: int | None = None,
) -> pd.DataFrame:
    """Train a :class:`wav2kp.training.models.NeuralModel`'s ``net`` with its ``step`` as the
    loss (Adam at ``cfg.lr``, else the model's ``default_lr``); restore its best epoch (lowest
    ``val_loss``, or ``train_loss`` without a validation loader); write ``history.csv`` into
    ``run_dir`` when given. Training stops after ``stop_patience`` epochs without improvement
    (default ``cfg.patience``, which also sets the learning-rate schedule's patience to
    ``cfg.patience // 2``).

    Checkpoints go to ``run_dir/checkpoints`` (a temporary folder without ``run_dir``) and are
    removed once the best weights are back in the model. Returns the history
    (:data:`HISTORY_COLUMNS`, one row per epoch).
    """
    # Lightning is heavy (seconds to import): its classes are imported when training starts
    import lightning
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from wav2kp.training import lit

    module = lit.KeypointModule(model, cfg, lr=cfg.lr or model.default_lr)
    seed_all(cfg)
    monitor = "val_loss" if val_loader is not None else "train_loss"
    own_tmp = run_dir is None
    root = Path(tempfile.mkdtemp(prefix="wav2kp-fit-")) if own_tmp else Path(run_dir)
    ckpt_dir = root / "checkpoints"
    if not own_tmp and "RANK" not in os.environ and "LOCAL_RANK" not in os.environ:
        # an earlier fit that was killed leaves its checkpoints and history lines: never read
        # them as this fit's (a launcher's ranks share the folder; they do not clear it)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    history = lit.History(cfg, ckpt_dir / "history.jsonl")
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        monitor=monitor,
        mode="min",
        save_top_k=1,
        save_weights_only=True,
        filename="best",
    )

    callbacks = [
        history,
        checkpoint,
        lit.EpochCallback(),
        EarlyStopping(
            monitor=monitor,
            mode="min",
            patience=cfg.patience if stop_patience is None else stop_patience,
        ),
    ]
    if "spawn" in str(cfg.strategy):
        # spawned processes receive the datasets' tensors pickled; shared as file descriptors
        # (torch's default) the same descriptor can be listed twice, which Python 3.11's spawn
        # rejects ("bad value(s) in fds_to_keep"): share them through named memory instead
        torch.multiprocessing.set_sharing_strategy("file_system")
    # Lightning's INFO chatter (GPU/TPU available, tips, "max_epochs reached") says nothing the
    # study does not print itself; its warnings still show
    quiet = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    max_time = {"seconds": float(cfg.max_time_s)} if cfg.max_time_s else None
    trainer = lightning.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        max_epochs=cfg.max_epochs,
        max_time=max_time,
        callbacks=callbacks,
        logger=False,
        default_root_dir=root,
        enable_checkpointing=True,
        enable_model_summary=False,
        enable_progress_bar=cfg.progress == "bar",
        num_sanity_val_steps=0,
        deterministic="warn" if cfg.deterministic else False,
        log_every_n_steps=1,
    )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*number of training batches.*")
            warnings.filterwarnings("ignore", message=".*deterministic.*")
            trainer.fit(module, train_loader, val_loader)
        best = checkpoint.best_model_path
        if best:
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        rows = history.rows
        if not rows and history.path.is_file():  # trained in spawned processes
            lines = history.path.read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            trainer.strategy.barrier()  # every process has read the best weights
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
        if trainer.is_global_zero:  # the first process cleans up, once the others are done
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            if own_tmp:
                shutil.rmtree(root, ignore_errors=True)
    module.cpu()
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    if run_dir is not None and trainer.is_global_zero:  # one writer in a DDP run
        write_history(frame, Path(run_dir) / "history.csv")
    return frame


def write_history(history: pd.DataFrame, path: Path) -> None:
    write_csv_atomic(path, history)
