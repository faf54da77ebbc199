"""Stage 03, training: the model zoo behind one interface, the Lightning loop, runs saved and
loaded back, and prediction from raw audio (offline and streaming) with a trained run.

- :mod:`~wav2kp.training.models`: the zoo (``mean_face``, ``energy``, ``ridge``, ``phones``,
  ``lstm_original``, ``lstm``, ``tcn``, ``tcn_emotion``, ``transformer``), each describing
  itself (context, width, streaming, feature set), save / load and the registry ``MODELS``;
- :mod:`~wav2kp.training.networks`: the neural models' plain ``torch.nn`` networks;
- :mod:`~wav2kp.training.loop`: the training loop every neural model uses, and
  :mod:`~wav2kp.training.lit` its Lightning classes (imported when training starts);
- :mod:`~wav2kp.training.runs`: a run trained, saved and scored on validation, its kept
  predictions; the study's runs;
- :mod:`~wav2kp.training.inference`: :class:`Predictor` and :class:`StreamingPredictor`.
"""

from wav2kp.training import inference, loop, models, networks, runs
from wav2kp.training.loop import HISTORY_COLUMNS, TrainConfig
from wav2kp.training.runs import (
    RunJob,
    StudyTraining,
    clip_errors,
    load_runs,
    split_metrics,
    study_training,
    train_all,
    train_model,
    train_runs,
    training_record,
)

__all__ = [
    "HISTORY_COLUMNS",
    "RunJob",
    "StudyTraining",
    "TrainConfig",
    "clip_errors",
    "inference",
    "load_runs",
    "loop",
    "training_record",
    "models",
    "networks",
    "runs",
    "split_metrics",
    "study_training",
    "train_all",
    "train_model",
    "train_runs",
]
