"""Stage 04, evaluation: the test split scored against the ground truth with the field's
landmark metrics next to the extraction's noise floor, the original's diary as ablations, real
recordings, and the keypoint viewer (notebook 04, ``wav2kp evaluate-real``).

- :mod:`~wav2kp.evaluation.scoring`: per-clip metrics, summaries, ``results.json``;
- :mod:`~wav2kp.evaluation.ablations`: the diary's questions as paired comparisons;
- :mod:`~wav2kp.evaluation.noise_floor`: dlib against the ground truth;
- :mod:`~wav2kp.evaluation.real`: identity-free scores on real talking-head videos;
- :mod:`~wav2kp.evaluation.levers`: what makes the models follow real people, run by run;
- :mod:`~wav2kp.evaluation.viewer`: the interactive viewer and the side-by-side video.
"""

from wav2kp.evaluation import ablations, levers, noise_floor, real, scoring, viewer
from wav2kp.evaluation.ablations import (
    ABLATION_RUNS,
    ABLATIONS,
    ablation_feature_set,
    ablation_table,
    train_ablations,
)
from wav2kp.evaluation.noise_floor import compare_to_truth
from wav2kp.evaluation.scoring import (
    CLIP_METRICS,
    FLOORS,
    LABELS,
    NOISE_FLOOR,
    NOISE_FLOOR_MIRROR,
    Evaluation,
    Reference,
    best_model,
    breakdown,
    check_invariants,
    evaluate_runs,
    load_reference,
    main_table,
    model_record,
    mouth_traces,
    results,
    results_markdown,
    score_clip,
    scored_points,
    summarise,
)

__all__ = [
    "ABLATIONS",
    "ABLATION_RUNS",
    "CLIP_METRICS",
    "LABELS",
    "FLOORS",
    "NOISE_FLOOR",
    "NOISE_FLOOR_MIRROR",
    "Evaluation",
    "Reference",
    "ablation_feature_set",
    "ablation_table",
    "ablations",
    "best_model",
    "breakdown",
    "check_invariants",
    "compare_to_truth",
    "evaluate_runs",
    "levers",
    "load_reference",
    "main_table",
    "model_record",
    "mouth_traces",
    "noise_floor",
    "real",
    "results",
    "results_markdown",
    "score_clip",
    "scored_points",
    "scoring",
    "summarise",
    "train_ablations",
    "viewer",
]
