"""Landmark metrics, computed on keypoints directly (pixels in, % of inter-ocular distance out).

The inter-ocular distance is always the *ground truth's* (outer eye corners, 36-45), frame by
frame, so a prediction cannot shrink its own error by shrinking the face.
"""
from __future__ import annotations

import warnings

import numpy as np

from wav2kp import shapes


def point_errors(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Euclidean error of every point ``(..., 68)`` in % of the truth's inter-ocular distance.

    NaN where either side is NaN (missing faces are never scored as zero)."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    dist = np.linalg.norm(pred - truth, axis=-1)
    return 100.0 * dist / shapes.inter_ocular(truth)[..., None]


def part_errors(errors: np.ndarray) -> dict[str, float]:
    """Mean of :func:`point_errors` per face part (and ``"all"``, ``"mouth"``), NaN-aware
    (NaN when nothing was scored)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN input: NaN, said above
        out = {"all": float(np.nanmean(errors)),
               "mouth": float(np.nanmean(errors[..., shapes.MOUTH]))}
        for name, idx in shapes.PARTS.items():
            out[name] = float(np.nanmean(errors[..., idx]))
    return out
