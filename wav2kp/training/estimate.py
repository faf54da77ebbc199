"""What a batch of training runs is about to train and how long it will take on this machine,
said before it starts (issue 26): each run's network is built as ``fit`` builds it and fed
a few batches by its own training loader (augmentation included), timed here, on this
machine's threads; an epoch is that many batches of the training loader plus a pass over the
validation loader. The estimate is an upper bound: every run may stop early (``patience``), and
most do. Nothing is trained or written; the runs' numbers do not depend on it (every fit seeds
itself)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from wav2kp.training import loop, models

#: batches timed per run, after one that warms the caches up
BATCHES = 2


def timed_batches(model, loader, cfg, batches: int, train: bool) -> dict:
    """``batches`` batches of ``loader`` after a warm-up one (the first fills the caches),
    each through ``model.step`` (and, with ``train``, backward and an Adam step): ``{"data_s",
    "step_s", "items", "timed", "per_pass"}`` (seconds getting the batches and training on
    them, utterances or windows timed, batches timed, the loader's batches per pass)."""
    per_pass = len(loader)
    out = {"data_s": 0.0, "step_s": 0.0, "items": 0, "timed": 0, "per_pass": per_pass}
    if per_pass == 0:
        return out
    from wav2kp.training import lit

    opt = torch.optim.Adam(model.net.parameters(), lr=1e-3) if train else None
    model.net.train(train)
    it = iter(loader)
    for k in range(batches + 1):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        t1 = time.perf_counter()
        with torch.set_grad_enabled(train):
            loss = model.step(batch, cfg)
            if train:
                opt.zero_grad()
                loss.backward()
                opt.step()
        if k:
            out["data_s"] += t1 - t0
            out["step_s"] += time.perf_counter() - t1
            out["items"] += lit.batch_size(batch)
            out["timed"] += 1
    return out


def build(name: str, fs, cfg, hparams: dict[str, Any]):
    """A fresh network of model ``name`` built as ``fit`` builds it (same seed, dimensions and
    output head) with its ``(train, validation)`` loaders; ``None`` for a model without one."""
    model = models.create(name, **hparams)
    if not isinstance(model, models.NeuralModel):
        return None
    loop.seed_all(cfg)
    model._set_dims(fs, cfg)
    model._build()
    model._init_head(fs, cfg)
    return (model, *model._loaders(fs, cfg))


def run_speed(name: str, fs, cfg, hparams: dict[str, Any], batches: int = BATCHES) -> dict:
    """One run's measured speed: ``{"epoch_s", "batches", "item_s"}`` (seconds an epoch,
    training batches an epoch, seconds per training item); models without a network
    (``mean_face``, ``energy``, ``ridge``...) fit in closed form: zeros."""
    built = build(name, fs, cfg, hparams)
    if built is None:
        return {"epoch_s": 0.0, "batches": 0, "item_s": 0.0}
    model, train_loader, val_loader = built
    tr = timed_batches(model, train_loader, cfg, min(batches, len(train_loader)), train=True)
    per_batch = (tr["data_s"] + tr["step_s"]) / max(1, tr["timed"])
    epoch_s = per_batch * tr["per_pass"]
    if val_loader is not None and len(val_loader):
        va = timed_batches(model, val_loader, cfg, 1, train=False)
        epoch_s += (va["data_s"] + va["step_s"]) / max(1, va["timed"]) * va["per_pass"]
    return {
        "epoch_s": epoch_s,
        "batches": tr["per_pass"],
        "item_s": (tr["data_s"] + tr["step_s"]) / max(1, tr["items"]),
    }


def plan(jobs: list, cfg, workers: int, batches: int = BATCHES) -> pd.DataFrame:
    """One row per run of ``jobs`` (:class:`wav2kp.training.runs.RunJob`, those to train):
    model, feature set, measured seconds an epoch, at most how many epochs, and the upper
    bound ``at_most_s`` (pre-training included: the synthetic talkers' utterances at the
    measured seconds per item, once per distinct pre-training)."""
    rows, pretrainings = [], set()
    for job in jobs:
        t0 = time.perf_counter()
        speed = run_speed(job.name, job.fs, cfg, dict(job.hparams), batches)
        at_most = speed["epoch_s"] * cfg.max_epochs
        pre = job.hparams.get("pretrain")
        pre_s = 0.0
        if pre:
            how = models.pretraining(job.name, job.hparams)
            if how not in pretrainings:  # runs that pre-train the same way share one
                pretrainings.add(how)
                pre_s = float(pre["utterances"]) * speed["item_s"] * int(pre["epochs"])
        rows.append(
            {
                "run": job.label,
                "model": job.name,
                "feature set": Path(getattr(job.fs, "out_dir", str(job.fs))).name,
                "batches an epoch": speed["batches"],
                "s an epoch": speed["epoch_s"],
                "max epochs": cfg.max_epochs if speed["batches"] else 0,
                "pre-training s": pre_s,
                "at_most_s": at_most + pre_s,
                "measured in s": time.perf_counter() - t0,
            }
        )
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def schedule_s(seconds: list[float], workers: int) -> float:
    """Wall time of runs of ``seconds`` on ``workers`` processes, the longest first (as
    :func:`wav2kp.training.runs.train_runs` starts them): the latest a worker finishes."""
    ends = [0.0] * max(1, int(workers))
    for s in sorted(seconds, reverse=True):
        ends[ends.index(min(ends))] += s
    return max(ends)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def describe(frame: pd.DataFrame, workers: int) -> str:
    """The plan as lines for the study's log: each run and the whole batch's upper bound."""
    if frame.empty:
        return "== nothing to train"
    total = schedule_s(list(frame["at_most_s"]), workers)
    lines = [
        f"== about to train {len(frame)} run(s), {workers} at a time; measured on this machine:"
    ]
    for run, r in frame.iterrows():
        if not r["batches an epoch"]:
            lines.append(f"   {run}: {r['model']}, closed form (seconds)")
            continue
        pre = f" + pre-training ~{_duration(r['pre-training s'])}" if r["pre-training s"] else ""
        lines.append(
            f"   {run}: {r['model']} on {r['feature set']}, {r['batches an epoch']} batches "
            f"an epoch, {r['s an epoch']:.1f} s an epoch x at most {r['max epochs']} epochs"
            f"{pre}"
        )
    lines.append(
        f"== at most ~{_duration(total)} (early stopping usually ends sooner; "
        f"{frame['measured in s'].sum():.0f} s spent measuring)"
    )
    return "\n".join(lines)
