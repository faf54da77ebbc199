"""The extraction's own error: dlib's keypoints against the bundled corpus' ground truth, per
clip (notebook 01, the noise floor under every model's score), and where there is no ground
truth, dlib against itself on the mirrored frames (the stand-in, :func:`mirror_consistency`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wav2kp import metrics
from wav2kp.corpus import bundled
from wav2kp.extraction.landmarks import clip_paths, load_landmarks
from wav2kp.extraction.mirror import mirrored_pair
from wav2kp.metrics import part_errors, point_errors


def compare_to_truth(interim_dir: Path, corpus_dir: Path, clips: pd.DataFrame) -> pd.DataFrame:
    """Extraction error against the bundled corpus' ground truth, one row per frame: clip,
    emotion, neutral, frame, time, found, interpolated, and the mean error per face part (and
    over all 68 points and the 20 mouth points) in % of the true inter-ocular distance."""
    frames = []
    for row in clips.itertuples():
        lm_path = clip_paths(interim_dir, row.clip)[1]
        if not lm_path.is_file():
            continue
        lm = load_landmarks(lm_path)
        gt = bundled.load_groundtruth(bundled.gt_path(corpus_dir, row.clip))
        if len(gt["times"]) != len(lm.times):
            raise ValueError(
                f"{lm_path}: {len(lm.times)} frames, but the ground truth of "
                f"{row.clip} has {len(gt['times'])}."
            )
        err = point_errors(lm.points, gt["points"])
        for k in range(len(lm.times)):
            frames.append(
                {
                    "clip": row.clip,
                    "emotion": row.emotion_name,
                    "neutral": bool(row.neutral),
                    "frame": k,
                    "time": lm.times[k],
                    "found": bool(lm.found[k]),
                    "interpolated": bool(lm.interpolated[k]),
                    **part_errors(err[k]),
                }
            )
    return pd.DataFrame(frames)


def mirror_consistency(
    interim_dir: Path, clips: pd.DataFrame, every: int = 5, max_clips: int = 24
) -> pd.DataFrame:
    """dlib against itself on mirrored frames (:mod:`wav2kp.extraction.mirror`), one row per
    clip of the first ``max_clips`` with extracted keypoints (every ``every``-th frame where a
    face was found): the mean error of the mirrored estimate against the extracted keypoints,
    per face part, in % of their inter-ocular distance, and the correlation of the two mouth
    openings. Where a ground truth exists (the bundled corpus) the extracted keypoints' own
    error on the same frames is beside it (``truth_*``), which says how the stand-in
    compares with the real floor."""
    rows = []
    for row in clips.itertuples():
        if len(rows) >= max_clips:
            break
        lm_path = clip_paths(interim_dir, row.clip)[1]
        if not lm_path.is_file():
            continue
        lm = load_landmarks(lm_path)
        frames, _, back = mirrored_pair(row.path, lm, every=every)
        if not len(frames):
            continue
        ext = np.asarray(lm.points[frames], np.float64)
        err = point_errors(back, ext)
        out = {"clip": row.clip, "frames": int(len(frames)), **part_errors(err.mean(axis=0))}
        out["mouth_corr"] = float(metrics.pearson(metrics.opening(back), metrics.opening(ext)))
        gt = bundled.gt_path(Path(row.path).parent, row.clip)
        if gt.is_file():
            truth = bundled.load_groundtruth(gt)["points"][frames]
            parts = part_errors(point_errors(ext, truth).mean(axis=0))
            out.update({f"truth_{k}": v for k, v in parts.items() if k in ("all", "mouth")})
        rows.append(out)
    return pd.DataFrame(rows)
