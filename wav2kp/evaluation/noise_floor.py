"""The extraction's own error: dlib's keypoints against the bundled corpus' ground truth, per
clip (notebook 01, the noise floor under every model's score)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wav2kp.corpus import bundled
from wav2kp.extraction.landmarks import clip_paths, load_landmarks
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
