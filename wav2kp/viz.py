"""Plots and media for the notebooks. Every function returns a figure or an IPython object and
leaves showing it to the notebook; nothing here needs a live widget to render in HTML."""
from __future__ import annotations

import base64
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wav2kp import shapes


def clip_counts(clips: pd.DataFrame) -> pd.DataFrame:
    """Clips per emotion, emotional and neutral takes side by side (plus totals)."""
    take = np.where(clips["neutral"], "neutral", "emotional")
    label = clips["emotion"].astype("string").fillna("?") + " " + clips["emotion_name"]
    table = pd.crosstab(label, take, margins=True, margins_name="total")
    order = clips.drop_duplicates("emotion_name")
    labels = list(dict.fromkeys(
        (order["emotion"].astype("string").fillna("?") + " " + order["emotion_name"])))
    return table.reindex(labels + ["total"])


def frame_grid(images: list[np.ndarray], titles: list[str], ncols: int = 4,
               size: float = 2.6) -> plt.Figure:
    """Images in a grid with titles."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.05),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, title in zip(axes.ravel(), images, titles):
        ax.imshow(img)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_phoneme_timeline(gt: dict, audio: np.ndarray | None = None,
                          audio_rate: int | None = None) -> plt.Figure:
    """Waveform, phoneme spans and the ground-truth mouth opening of a bundled clip on one time
    axis. ``gt`` is :func:`wav2kp.corpus.bundled.load_groundtruth`'s dict."""
    from wav2kp.corpus.face import PARAMS
    from wav2kp.corpus.speech import is_pause

    times, pts = gt["times"], gt["points"]
    iod = shapes.inter_ocular(pts)
    opening = 100 * shapes.mouth_opening(pts) / iod
    nrows = 2 if audio is not None else 1
    fig, axes = plt.subplots(nrows, 1, figsize=(11, 2.4 * nrows + 0.6), sharex=True,
                             squeeze=False)
    axes = axes[:, 0]
    if audio is not None:
        t_audio = np.arange(len(audio)) / float(audio_rate)
        axes[0].plot(t_audio, audio, lw=0.4, color="0.3")
        axes[0].set_ylabel("audio")
    ax = axes[-1]
    ax.plot(times, opening, color="C3", lw=1.8, label="mouth opening (% IOD), ground truth")
    ax2 = ax.twinx()
    params = gt["params"]
    for name in ("jaw", "close"):
        ax2.plot(times, params[:, PARAMS.index(name)], lw=1, ls="--", label=f"{name} parameter")
    ax2.set_ylim(-0.05, 1.6)
    ax2.set_ylabel("articulation (0..1)")
    top = opening.max() * 1.05 + 1
    spans = zip(gt["phoneme_start"], gt["phoneme_end"], gt["phoneme_symbol"])
    for k, (a_, b_, s) in enumerate(spans):
        if is_pause(str(s)):
            continue
        for axis in axes:
            axis.axvspan(a_, b_, color="C0", alpha=0.07 if k % 2 else 0.17, lw=0)
        ax.text((a_ + b_) / 2, top, str(s), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("% of inter-ocular distance")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def embed_video(path: str | Path, width: int = 384):
    """An HTML5 ``<video>`` with the file embedded (base64), so it plays — with its audio — in
    the exported HTML report as well as in JupyterLab."""
    from IPython.display import HTML

    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return HTML(f'<video controls width="{int(width)}" preload="metadata">'
                f'<source src="data:video/mp4;base64,{data}" type="video/mp4"></video>'
                f'<div style="font-size:small">{Path(path).name}</div>')
