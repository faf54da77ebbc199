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
        out = {
            "all": float(np.nanmean(errors)),
            "mouth": float(np.nanmean(errors[..., shapes.MOUTH])),
        }
        for name, idx in shapes.PARTS.items():
            out[name] = float(np.nanmean(errors[..., idx]))
    return out


# --------------------------------------------------------------------------- sequence metrics
#
# Sequences are pixel keypoints ``(T, 68, 2)`` at the video frame times; ``mask (T,)`` selects
# the frames that are scored (the reference's good frames); every distance is divided by the
# *reference's* inter-ocular distance (IOD) of the same frame and given in %.


def _mask(n: int, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"mask has shape {mask.shape}, expected ({n},).")
    return mask


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 3 or pred.shape[1:] != (shapes.N_POINTS, 2):
        raise ValueError(
            f"expected two (T, 68, 2) sequences of the same length, got "
            f"{pred.shape} and {truth.shape}."
        )
    return pred, truth


def _nanmean(x: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(x)) if np.size(x) else float("nan")


def lmd(
    pred: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None = None,
    points: np.ndarray | None = None,
) -> float:
    """Landmark distance: mean Euclidean error of ``points`` (default all 68) over the masked
    frames, % of the truth's inter-ocular distance."""
    pred, truth = _check_pair(pred, truth)
    m = _mask(len(pred), mask)
    err = point_errors(pred[m], truth[m])
    return _nanmean(err if points is None else err[:, points])


def mlmd(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mouth landmark distance: :func:`lmd` over the 20 mouth points (48-67)."""
    return lmd(pred, truth, mask, shapes.MOUTH)


def velocity_error(
    pred: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None = None,
    points: np.ndarray | None = None,
) -> float:
    """Velocity error (MakeItTalk's D-V): mean distance between the predicted and true
    frame-to-frame displacements of ``points`` (default all 68), over consecutive frame pairs
    that are both masked, % of the truth's IOD (mean of the pair's two frames) per frame."""
    pred, truth = _check_pair(pred, truth)
    m = _mask(len(pred), mask)
    both = m[1:] & m[:-1]
    if not both.any():
        return float("nan")
    dp = np.diff(pred, axis=0)[both]
    dt = np.diff(truth, axis=0)[both]
    iod = shapes.inter_ocular(truth)
    iod = 0.5 * (iod[1:] + iod[:-1])[both]
    err = 100.0 * np.linalg.norm(dp - dt, axis=-1) / iod[:, None]
    return _nanmean(err if points is None else err[:, points])


def mouth_area_error(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mouth-area error (MakeItTalk's D-A): mean absolute difference of the inner-lip polygon
    areas (points 60-67), % of the truth's squared IOD."""
    pred, truth = _check_pair(pred, truth)
    m = _mask(len(pred), mask)
    diff = np.abs(shapes.mouth_area(pred[m]) - shapes.mouth_area(truth[m]))
    return _nanmean(100.0 * diff / shapes.inter_ocular(truth[m]) ** 2)


def opening(points: np.ndarray) -> np.ndarray:
    """Mouth opening ``(T,)``: mean inner-lip gap over the sequence's own IOD (unitless, so
    head scale and distance to the camera cancel)."""
    pts = np.asarray(points, dtype=np.float64)
    return shapes.mouth_opening(pts) / shapes.inter_ocular(pts)


def pose_free(points: np.ndarray, fit_points: str | np.ndarray | None = None) -> np.ndarray:
    """A sequence ``(T, 68, 2)`` with head position, rotation and scale removed: every frame
    aligned (similarity on the stable points, :data:`wav2kp.shapes.STABLE_POINTS`) to the
    first complete frame put in the canonical frame, so units are inter-ocular distances and
    only local (speech, expression) motion remains. NaN frames stay NaN."""
    pts = np.asarray(points, dtype=np.float64)
    ok = np.isfinite(pts).all(axis=(1, 2))
    if not ok.any():
        return np.full_like(pts, np.nan)
    reference = shapes.canonicalise(pts[int(np.argmax(ok))])
    return shapes.normalise(pts, reference, fit_points)[0]


def mouth_area_series(points: np.ndarray) -> np.ndarray:
    """Inner-lip area ``(T,)`` after :func:`pose_free` (in squared IODs)."""
    return shapes.mouth_area(pose_free(points))


def pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of two series over the frames where both are finite (and masked);
    NaN when fewer than 3 such frames or either side is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"series of different lengths: {a.shape} vs {b.shape}.")
    ok = np.isfinite(a) & np.isfinite(b) & _mask(len(a), mask)
    if ok.sum() < 3:
        return float("nan")
    x, y = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 1e-12 * max(1.0, len(x)) else float("nan")


def _as_list(x) -> list[np.ndarray]:
    if isinstance(x, (list, tuple)):
        return [np.asarray(v, dtype=np.float64).ravel() for v in x]
    return [np.asarray(x, dtype=np.float64).ravel()]


def lag_correlation(pred, truth, max_lag: int, masks=None) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation between ``pred[t + lag]`` and ``truth[t]`` for every integer
    ``lag`` in ``[-max_lag, max_lag]`` frames; ``pred``/``truth`` are one series each or lists
    of series (clips), pooled per lag (pairs never cross a clip boundary). A positive lag
    means the prediction comes *later* than the truth. Returns ``(lags, corr)``; NaN for a lag
    with too few pairs."""
    preds, truths = _as_list(pred), _as_list(truth)
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predicted series but {len(truths)} true ones.")
    mlist = (
        [None] * len(preds)
        if masks is None
        else [
            np.asarray(m, dtype=bool).ravel()
            for m in (masks if isinstance(masks, (list, tuple)) else [masks])
        ]
    )
    lags = np.arange(-int(max_lag), int(max_lag) + 1)
    corr = np.full(len(lags), np.nan)
    for i, lag in enumerate(lags):
        xs, ys = [], []
        for p, t, m in zip(preds, truths, mlist):
            if len(p) != len(t):
                raise ValueError(f"a predicted series has {len(p)} frames, its truth {len(t)}.")
            n = len(t)
            m = np.ones(n, bool) if m is None else m
            lo, hi = max(0, -lag), min(n, n - lag)  # truth index t with t + lag inside
            if hi <= lo:
                continue
            idx = np.arange(lo, hi)
            keep = m[idx] & m[idx + lag]
            xs.append(p[idx + lag][keep])
            ys.append(t[idx][keep])
        if xs:
            corr[i] = pearson(np.concatenate(xs), np.concatenate(ys))
    return lags, corr


def lipsync_offset(
    pred, truth, fps: float, max_lag_ms: float = 300.0, masks=None, refine: bool = True
) -> tuple[float, float]:
    """The lip-sync offset: the lag (ms) that maximises the correlation between predicted and
    true mouth opening (:func:`lag_correlation`; one series or lists of clips, pooled).

    Positive: the prediction is late (its mouth moves after the truth's); 0 is perfect.
    ``refine`` fits a parabola through the peak and its neighbours for a sub-frame estimate
    (a whole-frame shift is returned exactly either way when the peak is symmetric).
    Returns ``(offset_ms, correlation at the best whole-frame lag)``; ``(nan, nan)`` when no
    lag can be scored.
    """
    max_lag = max(1, int(round(max_lag_ms * fps / 1000.0)))
    lags, corr = lag_correlation(pred, truth, max_lag, masks)
    if not np.isfinite(corr).any():
        return float("nan"), float("nan")
    k = int(np.nanargmax(corr))
    shift = float(lags[k])
    if refine and 0 < k < len(lags) - 1 and np.isfinite(corr[k - 1 : k + 2]).all():
        left, mid, right = corr[k - 1], corr[k], corr[k + 1]
        den = left - 2 * mid + right
        if den < 0:
            shift += float(np.clip(0.5 * (left - right) / den, -0.5, 0.5))
    return 1000.0 * shift / fps, float(corr[k])


def silent_frames(
    audio: np.ndarray,
    rate: int,
    times: np.ndarray,
    window_s: float = 0.05,
    threshold_db: float = -35.0,
    min_frames: int = 3,
    floor_margin_db: float = 6.0,
) -> np.ndarray:
    """Frames ``(T,)`` in silence: the RMS of the audio in a ``window_s`` window centred on each
    frame time is more than ``-threshold_db`` dB below the clip's loud level (95th percentile of
    the frames' RMS) -- or, in a noisy recording, within ``floor_margin_db`` of its noise floor
    (10th percentile; at most -20 dB), whichever is higher -- in a run of at least
    ``min_frames`` frames."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    times = np.asarray(times, dtype=np.float64)
    half = max(1, int(round(window_s * rate / 2)))
    centre = np.round(times * rate).astype(np.int64)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    lo = np.clip(centre - half, 0, len(x))
    hi = np.clip(centre + half, 0, len(x))
    n = np.maximum(hi - lo, 1)
    rms = np.sqrt(np.maximum(csum[hi] - csum[lo], 0.0) / n)
    rms[hi <= lo] = 0.0
    loud = np.percentile(rms, 95) if len(rms) else 0.0
    if loud <= 0:
        return np.ones(len(times), dtype=bool)
    level = 20 * np.log10(np.maximum(rms, 1e-12) / loud)
    floor = float(np.percentile(level, 10)) + floor_margin_db
    quiet = level < max(threshold_db, min(floor, -20.0))  # never closer than 20 dB to loud
    out = np.zeros_like(quiet)
    start = None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= min_frames:
                out[start:i] = True
            start = None
    return out


def jitter(
    points: np.ndarray, mask: np.ndarray | None = None, which: np.ndarray = shapes.MOUTH
) -> float:
    """Mean frame-to-frame displacement of the ``which`` points (default the mouth) after
    :func:`pose_free`, over consecutive frame pairs that are both masked, % of IOD per frame.

    Scored over silent stretches (:func:`silent_frames`) this is the jitter of a prediction
    where the mouth should rest; the truth's own value is its floor."""
    pts = pose_free(points)
    m = _mask(len(pts), mask)
    both = m[1:] & m[:-1]
    if not both.any():
        return float("nan")
    step = np.linalg.norm(np.diff(pts[:, which], axis=0), axis=-1)[both]
    return 100.0 * _nanmean(step)


# --------------------------------------------------------------------------- intervals


def bootstrap_ci(
    values, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``values`` (one per clip) and its percentile bootstrap interval over clips:
    ``(mean, low, high)``. NaNs are dropped; a single value gives ``(v, v, v)``."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    a = (1 - level) / 2
    return float(v.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def paired_bootstrap(
    a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``b - a`` over clips scored by both and its bootstrap interval (clips resampled
    together): an interval excluding 0 says the difference is not clip-sampling noise."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values of different lengths: {a.shape} vs {b.shape}.")
    ok = np.isfinite(a) & np.isfinite(b)
    return bootstrap_ci(b[ok] - a[ok], n_boot, level, seed)
