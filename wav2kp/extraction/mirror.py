"""dlib against itself on the mirrored video: a stand-in for the noise floor without ground truth.

A real corpus has no true keypoints, only dlib's: nothing says how far they are from the face.
What can be measured is how much dlib disagrees with itself when nothing about the face changes
but the image: each frame is mirrored, dlib's predictor runs on it in the mirrored box, and its
keypoints are mirrored back (x -> W - 1 - x, left and right points swapped, :data:`MIRROR`)
and compared with the predictor's keypoints on the frame itself in the same box. A perfect
extractor agrees with itself; the disagreement is part of its error (not all of it: what dlib
gets wrong the same way on both sides does not show). On the bundled corpus, where the truth is
known, both are measured (notebook 01), which says how the stand-in relates to the real floor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wav2kp import media
from wav2kp.extraction.landmarks import ClipLandmarks, box_from_points
from wav2kp.face68 import predict_points

__all__ = ["MIRROR", "mirror_points", "mirrored_pair"]


def _mirror_map() -> np.ndarray:
    pairs = [(i, 16 - i) for i in range(17)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(27, 27), (28, 28), (29, 29), (30, 30)]  # nose bridge
    pairs += [(31, 35), (32, 34), (33, 33)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (51, 51), (55, 59), (56, 58), (57, 57)]  # outer lips
    pairs += [(60, 64), (61, 63), (62, 62), (65, 67), (66, 66)]  # inner lips
    out = np.arange(68)
    for a, b in pairs:
        out[a], out[b] = b, a
    return out


#: Point ``i`` of a face is point ``MIRROR[i]`` of its mirror image (dlib's 68-point layout).
MIRROR = _mirror_map()


def mirror_points(points: np.ndarray, width: int) -> np.ndarray:
    """Keypoints ``(..., 68, 2)`` of an image as the keypoints of its mirror image (an image
    ``width`` px wide): x mirrored, left and right points swapped. Its own inverse."""
    pts = np.array(points, dtype=np.float64)
    pts[..., 0] = width - 1 - pts[..., 0]
    return pts[..., MIRROR, :]


def mirrored_pair(
    video: str | Path, track: ClipLandmarks, every: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every ``every``-th frame where ``track`` (the extraction's keypoints) found a face:
    ``(frame indices (K,), dlib on the frame (K, 68, 2), dlib on the mirrored frame, mirrored
    back (K, 68, 2))``, both in the box the tracker would take from the frame's keypoints."""
    frames, direct, back = [], [], []
    for k, (_, rgb) in enumerate(media.iter_frames(video)):
        if k >= len(track.points) or k % every or not track.found[k]:
            continue
        box = box_from_points(track.points[k])
        w = rgb.shape[1]
        flipped = np.ascontiguousarray(rgb[:, ::-1])
        left, top, right, bottom = box
        fbox = (w - 1 - right, top, w - 1 - left, bottom)
        frames.append(k)
        direct.append(predict_points(rgb, box))
        back.append(mirror_points(predict_points(flipped, fbox), w))
    shape = (0, 68, 2)
    return (
        np.asarray(frames, dtype=np.int64),
        np.asarray(direct, np.float64).reshape(-1, 68, 2) if direct else np.zeros(shape),
        np.asarray(back, np.float64).reshape(-1, 68, 2) if back else np.zeros(shape),
    )
