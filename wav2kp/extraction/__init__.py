"""Stage 01, extraction: 16 kHz audio and 68 dlib keypoints per video frame, tracked, with QC
and a failures table (notebook 01, ``wav2kp extract``). The detector itself is
:mod:`wav2kp.face68`."""

from wav2kp.extraction import landmarks
from wav2kp.extraction.landmarks import (
    AUDIO_RATE,
    ClipLandmarks,
    ExtractionError,
    ExtractionReport,
    TrackerConfig,
    clip_paths,
    detect_every_frame,
    extract,
    load_landmarks,
    track_video,
)

__all__ = [
    "AUDIO_RATE",
    "ClipLandmarks",
    "ExtractionError",
    "ExtractionReport",
    "TrackerConfig",
    "clip_paths",
    "detect_every_frame",
    "extract",
    "landmarks",
    "load_landmarks",
    "track_video",
]
