"""wav2kp: speech audio to 68-point facial keypoints, as a reproducible study."""

__version__ = "0.1.0"
