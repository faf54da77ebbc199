"""Plots and media for the notebooks. Every function returns a figure or an IPython object and
leaves showing it to the notebook; nothing here needs a live widget to render in HTML."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wav2kp import shapes
from wav2kp.corpus.face import PARAMS
from wav2kp.corpus.speech import is_pause


def clip_counts(clips: pd.DataFrame) -> pd.DataFrame:
    """Clips per emotion, emotional and neutral takes side by side (plus totals)."""
    take = np.where(clips["neutral"], "neutral", "emotional")
    label = clips["emotion"].astype("string").fillna("?") + " " + clips["emotion_name"]
    table = pd.crosstab(label, take, margins=True, margins_name="total")
    order = clips.drop_duplicates("emotion_name")
    labels = list(
        dict.fromkeys(order["emotion"].astype("string").fillna("?") + " " + order["emotion_name"])
    )
    return table.reindex(labels + ["total"])


def frame_grid(
    images: list[np.ndarray], titles: list[str], ncols: int = 4, size: float = 2.6
) -> plt.Figure:
    """Images in a grid with titles."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows * 1.05), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, title in zip(axes.ravel(), images, titles):
        ax.imshow(img)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_phoneme_timeline(
    gt: dict, audio: np.ndarray | None = None, audio_rate: int | None = None
) -> plt.Figure:
    """Waveform, phoneme spans and the ground-truth mouth opening of a bundled clip on one time
    axis. ``gt`` is :func:`wav2kp.corpus.bundled.load_groundtruth`'s dict."""

    times, pts = gt["times"], gt["points"]
    iod = shapes.inter_ocular(pts)
    opening = 100 * shapes.mouth_opening(pts) / iod
    nrows = 2 if audio is not None else 1
    fig, axes = plt.subplots(nrows, 1, figsize=(11, 2.4 * nrows + 0.6), sharex=True, squeeze=False)
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
    return HTML(
        f'<video controls width="{int(width)}" preload="metadata">'
        f'<source src="data:video/mp4;base64,{data}" type="video/mp4"></video>'
        f'<div style="font-size:small">{Path(path).name}</div>'
    )


def show_table(frame: pd.DataFrame, name: str, max_rows: int = 15, digits: int = 3) -> Path:
    """Show a table trimmed to its first ``max_rows`` rows (numbers rounded to ``digits``) and
    write the whole table to ``reports/html/tables/<name>.csv``, next to the HTML pages, with a
    link to it under the shown rows. Returns the CSV's path."""
    from IPython.display import HTML, display

    from wav2kp import config
    from wav2kp.manifest import atomic_path

    path = config.reports_dir() / "html" / "tables" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=not isinstance(frame.index, pd.RangeIndex))
    display(frame.head(max_rows).round(digits))
    more = len(frame) - max_rows
    lead = f"… {more} more rows: " if more > 0 else ""
    display(
        HTML(
            f'<p style="font-size:small">{lead}<a href="tables/{name}.csv">the whole table '
            f"({len(frame)} rows, CSV)</a> — reports/html/tables/{name}.csv</p>"
        )
    )
    return path


PART_COLOURS = {
    "jaw": "#1f77b4",
    "right_brow": "#ff7f0e",
    "left_brow": "#ff7f0e",
    "nose": "#2ca02c",
    "right_eye": "#d62728",
    "left_eye": "#d62728",
    "outer_lip": "#9467bd",
    "inner_lip": "#e377c2",
}


def plot_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    numbers: bool = True,
    truth: np.ndarray | None = None,
    size: float = 7.0,
) -> plt.Figure:
    """A frame with its 68 keypoints drawn and numbered, coloured by face part (and the
    ground truth as crosses when given)."""
    fig, ax = plt.subplots(figsize=(size, size * image.shape[0] / image.shape[1]))
    ax.imshow(image)
    for name, idx in shapes.PARTS.items():
        pts = points[idx]
        ax.plot(
            pts[:, 0],
            pts[:, 1],
            "o-",
            ms=3,
            lw=0.8,
            color=PART_COLOURS[name],
            label=name if not name.startswith("left") else None,
        )
        if numbers:
            for i, (x, y) in zip(idx, pts):
                ax.text(
                    x + 1.5,
                    y - 1.5,
                    str(i),
                    fontsize=5.5,
                    color="white",
                    bbox=dict(boxstyle="round,pad=0.1", fc=PART_COLOURS[name], lw=0, alpha=0.8),
                )
    if truth is not None:
        ax.plot(truth[:, 0], truth[:, 1], "x", ms=3, color="yellow", label="ground truth")
    ax.legend(loc="lower left", fontsize=7, ncol=2)
    ax.axis("off")
    fig.tight_layout()
    return fig


def plot_mouth_trace(
    times: np.ndarray,
    points: np.ndarray,
    truth: np.ndarray | None = None,
    found: np.ndarray | None = None,
    label: str = "dlib (ours)",
) -> plt.Figure:
    """Mouth opening over time (% of the inter-ocular distance) of extracted keypoints, against
    the ground truth when given; frames without a detected face are marked."""
    fig, ax = plt.subplots(figsize=(11, 3))
    ref = truth if truth is not None else points
    iod = shapes.inter_ocular(ref)
    ax.plot(times, 100 * shapes.mouth_opening(points) / iod, lw=1.5, label=label)
    if truth is not None:
        ax.plot(
            times,
            100 * shapes.mouth_opening(truth) / iod,
            lw=1.5,
            ls="--",
            color="k",
            label="ground truth",
        )
    if found is not None and (~found).any():
        ax.plot(
            times[~found], np.zeros((~found).sum()), "|", color="r", ms=12, label="no face found"
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mouth opening (% IOD)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_mfcc_with_mouth(
    feats: np.ndarray,
    feat_times: np.ndarray,
    mouth_times: np.ndarray,
    mouth: np.ndarray,
    label: str = "mouth opening",
) -> plt.Figure:
    """MFCC image (coefficients x time) with a mouth-opening trace on the same time axis."""
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(11, 4.6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    hop = float(np.median(np.diff(feat_times))) if len(feat_times) > 1 else 0.01
    ax.imshow(
        feats.T,
        aspect="auto",
        origin="lower",
        cmap="magma",
        interpolation="nearest",
        extent=[feat_times[0] - hop / 2, feat_times[-1] + hop / 2, -0.5, feats.shape[1] - 0.5],
    )
    ax.set_ylabel("MFCC coefficient")
    ax2.plot(mouth_times, mouth, color="C3", lw=1.6)
    ax2.set_ylabel(f"{label}\n(% IOD)")
    ax2.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_drift(pairs: dict[str, tuple[np.ndarray, np.ndarray]], frame_s: float) -> plt.Figure:
    """Drift (s) of audio against target over time, for several pairings
    (``{label: (target_times, drift_s)}``); the band is +- half a video frame."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for label, (t, drift) in pairs.items():
        ax.plot(t, drift * 1000, lw=1.6, label=label)
    ax.axhspan(
        -frame_s / 2 * 1000,
        frame_s / 2 * 1000,
        color="0.85",
        zorder=0,
        label="+- half a video frame",
    )
    ax.set_xlabel("time in the clip (s)")
    ax.set_ylabel("audio - target (ms)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_context_windows(windows: dict[str, np.ndarray]) -> plt.Figure:
    """What each context window sees around the frame it predicts: ``{label: offsets_s}`` (the
    offsets of its feature frames from the target frame, seconds)."""
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.55 * len(windows)))
    for i, offsets in enumerate(windows.values()):
        ax.scatter(offsets * 1000, np.full(len(offsets), i), s=8, marker="|")
        ax.plot([offsets.min() * 1000, offsets.max() * 1000], [i, i], lw=6, alpha=0.25)
    ax.axvline(0, color="k", lw=1)
    ax.text(0, len(windows) - 0.4, " the frame being predicted", fontsize=8)
    ax.set_yticks(range(len(windows)), list(windows))
    ax.set_xlabel("audio time relative to the predicted frame (ms): past < 0 < future")
    ax.set_ylim(-0.6, len(windows) - 0.2)
    fig.tight_layout()
    return fig


def plot_pca(pca, point_idx: np.ndarray, reference: np.ndarray, modes: int = 3) -> plt.Figure:
    """Explained variance (cumulative) and the first ``modes`` PCA modes as faces: the mean
    shape and +- 2 standard deviations along each mode."""
    fig, axes = plt.subplots(1, modes + 1, figsize=(3.2 * (modes + 1), 3.2))
    ratio = pca.cumulative_variance_ratio
    axes[0].plot(np.arange(1, len(ratio) + 1), 100 * ratio, "o-", ms=3)
    axes[0].axhline(95, ls=":", color="0.5")
    axes[0].set_xlim(0, min(len(ratio), 30) + 0.5)
    axes[0].set_xlabel("components")
    axes[0].set_ylabel("cumulative variance (%)")
    for m, ax in enumerate(axes[1:]):
        if m >= len(pca.explained_variance):
            ax.axis("off")
            continue
        for sigma, colour in zip((-2.0, 0.0, 2.0), ("C0", "k", "C3")):
            pts = pca.mode_shapes(m, (sigma,))[0]
            full = reference.copy()
            full[point_idx] = pts
            for name, closed in shapes.POLYLINES:
                idx = shapes.PARTS[name]
                if not np.isin(idx, point_idx).all():
                    continue
                line = np.r_[idx, idx[:1]] if closed else idx
                ax.plot(
                    full[line, 0],
                    full[line, 1],
                    color=colour,
                    lw=1.0,
                    alpha=1.0 if sigma == 0 else 0.8,
                )
        ax.invert_yaxis()
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(
            f"mode {m + 1}: {100 * pca.explained_variance_ratio[m]:.0f}% (blue -2σ, red +2σ)",
            fontsize=8,
        )
    fig.tight_layout()
    return fig
