"""Stage 02, features: MFCCs on the video frames' clock, keypoint targets aligned by timestamps
(or the original's x3 pairing), context windows, pose normalisation and PCA, splits, the
processed feature set on disk (notebook 02), and training-time audio augmentation.

- :mod:`~wav2kp.features.acoustic`: MFCC, alignment, windows, feature normalisers;
- :mod:`~wav2kp.features.dataset`: :func:`build_feature_set` and :class:`FeatureSet`;
- :mod:`~wav2kp.features.sets`: the study's sets (notebook 02's spec and record, opened by 03/04);
- :mod:`~wav2kp.features.augment`: noise, tempo, pitch, room and EQ on the training audio.
"""

from wav2kp.features import acoustic, augment, dataset, sets
from wav2kp.features.acoustic import (
    ORIGINAL_CONTEXT,
    CausalNormalizer,
    FeatureNormalizer,
    MFCCConfig,
    align_original,
    align_to_times,
    mfcc,
    original_drift,
    to_video_times,
    windows,
)
from wav2kp.features.dataset import FeatureSet, build_feature_set, feature_set_name, make_splits
from wav2kp.features.sets import FeatureSpec, StudySets, build_study_sets, open_study_sets

__all__ = [
    "ORIGINAL_CONTEXT",
    "CausalNormalizer",
    "FeatureNormalizer",
    "FeatureSet",
    "FeatureSpec",
    "StudySets",
    "MFCCConfig",
    "acoustic",
    "align_original",
    "align_to_times",
    "augment",
    "build_feature_set",
    "build_study_sets",
    "dataset",
    "feature_set_name",
    "make_splits",
    "mfcc",
    "open_study_sets",
    "original_drift",
    "sets",
    "to_video_times",
    "windows",
]
