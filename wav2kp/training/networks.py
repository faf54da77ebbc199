"""The networks of the neural models: plain ``torch.nn`` modules, free of feature sets, runs and
training (:mod:`wav2kp.training.models` builds them from a model's hyper-parameters and trains
them through :mod:`wav2kp.training.loop`).

Shapes: ``x (B, L, F)`` features (a window of ``L`` frames, or a whole utterance padded to
``L``), ``mask (B, L)`` true on an utterance's own frames, outputs ``(B, k)`` (a window) or
``(B, L, k)`` (an utterance) of whitened PCA coefficients, which :class:`PCAHead` maps to points
``(..., D)`` in normalised face coordinates. Submodule names are the keys of the saved weights
(``weights.pt``, ``net.*`` and ``head.*``): renaming one breaks every saved run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class PCAHead(nn.Module):
    """Whitened coefficients -> points: ``(z * sd) @ components + mean``. Fixed buffers (saved
    with the weights): ``mean (D,)``, ``components (k, D)``, ``sd (k,)`` and the loss'
    per-coordinate ``weights (D,)``."""

    def __init__(self, k: int, d: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("components", torch.zeros(k, d))
        self.register_buffer("sd", torch.zeros(k))
        self.register_buffer("weights", torch.ones(d))

    def set(self, mean, components, sd, weights) -> PCAHead:
        for name, value in (
            ("mean", mean),
            ("components", components),
            ("sd", sd),
            ("weights", weights),
        ):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(value), dtype=torch.float32))
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z * self.sd) @ self.components + self.mean


def point_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted MSE over coordinates ``(..., D)``, averaged over rows where ``mask`` holds."""
    err = (pred - target) ** 2 * weights
    per_row = err.mean(dim=-1)
    if mask is None:
        return per_row.mean()
    m = mask.to(per_row.dtype)
    return (per_row * m).sum() / m.sum().clamp_min(1.0)


class WindowNet(nn.Module):
    """An LSTM over one context window per row, a linear layer on its final hidden state(s)
    (zero-initialised: the untrained net outputs the mean face)."""

    def __init__(
        self, n_in: int, n_out: int, hidden: int, layers: int, dropout: float, bidirectional: bool
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_in,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), n_out)
        nn.init.zeros_(self.out.weight)  # starts at the mean face
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, W, F) -> (B, k)
        _, (h, _) = self.lstm(x)
        if self.lstm.bidirectional:
            last = torch.cat([h[-2], h[-1]], dim=-1)  # last layer, both directions
        else:
            last = h[-1]  # last layer, last step
        return self.out(last)


class Block(nn.Module):
    """Two dilated convolutions and a residual. ``future``: how many of each convolution's
    frames lie after the output frame (default: centred, ``dilation * (kernel - 1) // 2``);
    the rest lie before it."""

    def __init__(
        self, channels: int, kernel: int, dilation: int, dropout: float, future=None
    ) -> None:
        super().__init__()
        span = dilation * (kernel - 1)
        future = (span // 2, span // 2) if future is None else tuple(int(f) for f in future)
        self.pads = [(span - f, f) for f in future]  # (left, right) of each convolution
        self.conv1 = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.act = nn.GELU()

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.drop(self.act(self.conv1(nn.functional.pad(h, self.pads[0]))))
        y = self.drop(self.conv2(nn.functional.pad(y, self.pads[1])))
        return self.act(h + y) * mask


def split_future(kernel: int, dilations, future: int | None) -> list[tuple[int, int]] | None:
    """How a TCN's look-ahead of ``future`` frames is spread over its convolutions: greedily,
    each convolution taking at most half its span (``None``: every convolution centred)."""
    if future is None:
        return None
    left, out = int(future), []
    for d in dilations:
        pair = []
        for _ in range(2):
            take = min(left, int(d) * (kernel - 1) // 2)
            pair.append(take)
            left -= take
        out.append(tuple(pair))
    if left:
        most = sum(int(d) * (kernel - 1) for d in dilations)
        raise ValueError(f"future_frames={future}: this TCN looks at most {most} frames ahead.")
    return out


class TCNNet(nn.Module):
    """A 1x1 input projection (after an optional emotion embedding concatenated to every
    frame), one :class:`Block` per dilation, a zero-initialised 1x1 output projection.
    Activations outside an utterance (``mask`` false) are zeroed after every block, so a padded
    batch computes exactly what each utterance computes alone."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        channels: int,
        kernel: int,
        dilations,
        dropout: float,
        n_emotions: int = 0,
        emotion_dim: int = 0,
        future: int | None = None,
    ) -> None:
        super().__init__()
        self.emotion = nn.Embedding(n_emotions, emotion_dim) if n_emotions else None
        self.inp = nn.Conv1d(n_in + (emotion_dim if n_emotions else 0), channels, 1)
        split = split_future(kernel, dilations, future) or [None] * len(dilations)
        self.blocks = nn.ModuleList(
            Block(channels, kernel, int(d), dropout, f) for d, f in zip(dilations, split)
        )
        self.out = nn.Conv1d(channels, n_out, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, emotion: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x (B, L, F)``, ``mask (B, L)`` (None: all frames), ``emotion (B,)`` -> ``(B, L, k)``."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if self.emotion is not None:
            e = self.emotion(emotion)[:, None, :].expand(-1, x.shape[1], -1)
            x = torch.cat([x, e], dim=-1)
        m = mask[:, None, :].to(x.dtype)
        h = self.inp((x * mask[..., None].to(x.dtype)).transpose(1, 2)) * m
        for block in self.blocks:
            h = block(h, m)
        return self.out(h).transpose(1, 2)


class LocalTransformer(nn.Module):
    """Pre-norm Transformer encoder whose attention sees ``window`` frames either side."""

    def __init__(
        self, n_in: int, n_out: int, d_model: int, heads: int, layers: int, window: int,
        dropout: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.window, self.heads = int(window), int(heads)
        self.inp = nn.Conv1d(n_in, d_model, 3, padding=1)
        self.pos = nn.Conv1d(d_model, d_model, 5, padding=2, groups=d_model)  # position by conv
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model,
                heads,
                2 * d_model,
                dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )  # fmt: skip
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, emotion=None):
        """``x (B, L, F)``, ``mask (B, L)`` (None: all frames) -> ``(B, L, k)``."""
        b, n = x.shape[:2]
        if mask is None:
            mask = torch.ones((b, n), dtype=torch.bool, device=x.device)
        m = mask[:, None, :].to(x.dtype)
        h = self.inp((x * mask[..., None].to(x.dtype)).transpose(1, 2)) * m
        h = (h + self.pos(h) * m).transpose(1, 2)
        idx = torch.arange(n, device=x.device)
        band = (idx[None, :] - idx[:, None]).abs() <= self.window  # (L, L) query x key
        # a frame attends to valid frames of its band; padded frames to themselves only, so
        # no row is empty and padding never reaches a real frame
        allowed = band[None] & (mask[:, None, :] | torch.eye(n, dtype=torch.bool, device=x.device))
        blocked = ~allowed.repeat_interleave(self.heads, dim=0)
        for layer in self.layers:
            h = layer(h, src_mask=blocked) * mask[..., None].to(h.dtype)
        return self.out(self.norm(h))
