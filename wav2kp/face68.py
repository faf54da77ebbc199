"""dlib's frontal face detector and 68-point shape predictor: the keypoints of one image.

Shared by the corpus generator (the rest keypoints of its photo), extraction (which tracks them
through a video), the renderers (any photo to animate) and ``wav2kp doctor``. The predictor file
ships with the ``face-recognition-models`` package (``shape_predictor_68_face_landmarks.dat``);
it is located without ``pkg_resources``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np


def predictor_path() -> Path:
    """Path of ``shape_predictor_68_face_landmarks.dat`` from ``face-recognition-models``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The package 'face-recognition-models' is not installed; it ships dlib's 68-point "
            "predictor. Install the project with `make test` / `pip install -e .`."
        )
    path = (
        Path(list(spec.submodule_search_locations)[0])
        / "models"
        / "shape_predictor_68_face_landmarks.dat"
    )
    if not path.is_file():
        raise FileNotFoundError(f"dlib's 68-point predictor is missing: {path}")
    return path


@functools.lru_cache(maxsize=1)
def _models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


def detect_faces(
    image: np.ndarray, upsample: int = 0
) -> list[tuple[tuple[int, int, int, int], float]]:
    """Faces in an RGB or grey uint8 image: ``[((left, top, right, bottom), score), ...]``,
    best score first."""
    detector, _ = _models()
    rects, scores, _ = detector.run(np.ascontiguousarray(image), upsample, 0.0)
    found = [((r.left(), r.top(), r.right(), r.bottom()), float(s)) for r, s in zip(rects, scores)]
    return sorted(found, key=lambda item: -item[1])


def predict_points(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The 68 keypoints inside ``box`` (left, top, right, bottom), float32 ``(68, 2)`` pixels."""
    import dlib

    _, predictor = _models()
    shape = predictor(np.ascontiguousarray(image), dlib.rectangle(*[int(v) for v in box]))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def detect_68(image: np.ndarray, upsample: int = 1) -> np.ndarray | None:
    """Keypoints ``(68, 2)`` of the best-scoring face in ``image``, or ``None`` without a face."""
    faces = detect_faces(image, upsample)
    if not faces:
        return None
    return predict_points(image, faces[0][0])
