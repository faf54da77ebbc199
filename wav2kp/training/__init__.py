"""Stage 03, training: the model zoo behind one interface, the Lightning loop, runs saved and
loaded back, and prediction from raw audio (offline and streaming) with a trained run.

- :mod:`~wav2kp.training.models`: ``mean_face``, ``energy``, ``ridge``, ``lstm_original``,
  ``lstm``, ``tcn``, ``tcn_emotion``;
- :mod:`~wav2kp.training.loop`: the training loop every neural model uses;
- :mod:`~wav2kp.training.runs`: a run trained, saved and scored on validation; the study's runs;
- :mod:`~wav2kp.training.inference`: :class:`Predictor` and :class:`StreamingPredictor`.
"""

from wav2kp.training import inference, loop, models, runs
from wav2kp.training.loop import HISTORY_COLUMNS, TrainConfig
from wav2kp.training.runs import (
    ORIGINAL_FEEDING,
    RunJob,
    StudyTraining,
    clip_errors,
    load_runs,
    model_hparams,
    split_metrics,
    study_training,
    train_all,
    train_model,
    train_runs,
    training_record,
)

__all__ = [
    "HISTORY_COLUMNS",
    "ORIGINAL_FEEDING",
    "RunJob",
    "StudyTraining",
    "TrainConfig",
    "clip_errors",
    "inference",
    "load_runs",
    "loop",
    "model_hparams",
    "training_record",
    "models",
    "runs",
    "split_metrics",
    "study_training",
    "train_all",
    "train_model",
    "train_runs",
]
