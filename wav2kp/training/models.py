"""The model zoo: baselines and neural models, all behind one ``fit / predict / save / load``
shape, and the registry :data:`MODELS`. The neural models' networks are plain ``torch.nn``
modules in :mod:`wav2kp.training.networks`; the runs (training, kept predictions) are
:mod:`wav2kp.training.runs`.

Every model maps a clip of a :class:`~wav2kp.features.dataset.FeatureSet` to targets ``(N, D)`` in
normalised face coordinates (unit inter-ocular distance, the set's reference pose) at the clip's
feature frames; :meth:`KeypointModel.predict_pixels` maps them to pixel keypoints ``(T, 68, 2)``
at the video frame times. Each model describes itself, so that no other module switches on its
type or name: :meth:`~KeypointModel.context_frames` (the feature frames an output frame depends
on), :meth:`~KeypointModel.width` (the study's width knob), :meth:`~KeypointModel.stream_problem`
(why it cannot stream, or ``None``), :meth:`~KeypointModel.predict_from_audio` (from a
recording's audio and features), and the class attributes ``feature_set``, ``uses_loop`` and
``slow``. Registry names (:data:`MODELS`):

``mean_face``
    The training mean target for every frame: the floor any model must beat.
``energy``
    Audio energy drives one PCA mode. Energy is the first cepstral coefficient (c0, the mean
    log-mel energy up to a constant) standardised with the set's normaliser. The driven mode is
    the training PCA mode whose coefficients correlate most (in absolute value) with the mouth
    opening (inner-lip gap) of the training targets; ``target = pca.mean + (a * energy + b) *
    component`` with ``a, b`` by least squares on the training frames.
``ridge``
    Ridge regression (scikit-learn) from the flattened, standardised centred context window
    (``past_ms / future_ms`` of the training config; every ``stride``-th frame of the window,
    the centre frame always kept) to the targets' PCA coefficients; ``alpha`` chosen on the
    validation split (point-space MSE) from a small grid, then refitted on training frames.
``lstm_original``
    The original architecture: 2-layer LSTM (hidden 200, dropout 0.25) and a linear layer,
    Adam at lr 1e-4, reading the original's future-only window
    (:data:`~wav2kp.features.ORIGINAL_CONTEXT`: the current frame and 487.5 ms after it; 40
    frames at the original's 80 frames/s, 50 at 100 /s) as a sequence, output from the last
    step. (Feeding it *exactly* as the original also needs the ``original_x3`` feature set:
    the caller's choice.)
``lstm``
    Ours, per frame: an LSTM (hidden 128, 2 layers; ``bidirectional`` optional, off by
    default) over the *centred* window (``past_ms / future_ms``), predicting the centre frame
    from the final hidden state(s).
``tcn``
    Ours, per utterance: a non-causal temporal convolution network over the whole utterance
    (1x1 input projection, ``len(dilations)`` residual blocks of two dilated kernel-3 convs,
    GELU, dropout; dilations 1, 2, 4, 8 give a receptive field of +-30 frames = +-300 ms at
    100 frames/s), trained on whole utterances with a masked loss. Activations past an
    utterance's end are zeroed after every block so a padded batch computes exactly what each
    utterance computes alone.
``tcn_emotion``
    The TCN with a learned emotion embedding concatenated to every frame's input. Index 0 is
    "neutral" (neutral takes), 1 "unknown" (``<NA>`` emotion, or an emotion not seen when the
    model was built), then one per emotion id of the set's splits table (all splits: the
    emotion label is metadata known at test time, not a target).
``transformer``
    Per utterance, like the TCN: local attention (``window`` frames either side per layer).
``phones``
    Recognised phones (PocketSphinx) -> articulation parameters -> the face, by least squares;
    reads the audio, not the MFCCs, and does not stream.

**Outputs and loss (all neural models).** The network outputs *whitened* PCA coefficients
``z`` (``coeff = z * sqrt(explained_variance)``, so outputs are O(1) and a zero output is the
mean face); with the hyper-parameter ``targets="raw"`` (an ablation) it outputs every
coordinate instead, standardised by the training targets' mean and standard deviation; the loss is computed in *point space*: ``points = coeff @ components + pca.mean``,
``loss = mean over valid frames and coordinates of w * (points - target)^2`` with ``w = 1``,
or ``1 + mouth_weight`` on the mouth points' coordinates when the targets are the whole face.
With ``mouth_weight = 0`` this equals the plain coefficient MSE up to a constant factor and the
(constant) residual outside the PCA subspace (the components are orthonormal), so it is the
MSE in the metric's own space. ``velocity_weight`` adds the same weighted MSE of first temporal
differences (pred vs target, where both frames are valid) for the utterance models (``tcn*``,
``transformer``); window models predict one frame at a time and ignore it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import filelock
import numpy as np
import pandas as pd
import torch
from torch import nn

from wav2kp import media, shapes
from wav2kp.corpus.discovery import emotion_names
from wav2kp.features import acoustic as feats
from wav2kp.features import augment, dataset, phones, talkers
from wav2kp.features.dataset import UtteranceDataset, collate_padded
from wav2kp.manifest import file_sha256, write_json_atomic
from wav2kp.training import loop, networks

WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
#: why per-utterance normalisation (of the set, or of the model) cannot stream
_WHOLE_UTTERANCE = (
    "per-utterance feature normalisation needs the whole recording; it cannot stream (train "
    "with feature_norm='causal' for a streamable model)."
)


def device() -> torch.device:
    """The GPU when one is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _mouth_pairs(point_idx: np.ndarray) -> np.ndarray | None:
    """Positions (within the target's points) of the inner-lip pairs, or None if absent."""
    pos = {int(p): i for i, p in enumerate(point_idx)}
    if not all(int(a) in pos and int(b) in pos for a, b in shapes.INNER_LIP_PAIRS):
        return None
    return np.array([[pos[int(a)], pos[int(b)]] for a, b in shapes.INNER_LIP_PAIRS])


def _opening(targets: np.ndarray, point_idx: np.ndarray) -> np.ndarray:
    """Mean inner-lip gap ``(N,)`` of targets ``(N, 2P)`` (normalised units)."""
    pts = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1, 2)
    pairs = _mouth_pairs(point_idx)
    if pairs is None:
        raise ValueError(
            "The targets hold no inner-lip points (61-67); the energy model needs the mouth."
        )
    return np.linalg.norm(pts[:, pairs[:, 0]] - pts[:, pairs[:, 1]], axis=-1).mean(axis=1)


def _split_frames(fs, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Standardised features and targets of the valid frames of every clip of ``split``."""
    xs, ys = [], []
    for clip in fs.split_clips(split):
        utt = fs.load(clip)
        ok = utt["valid"] if "valid" in utt else np.isfinite(utt["targets"]).all(axis=1)
        xs.append((np.asarray(fs.normalizer(utt["features"])), ok))
        ys.append(np.asarray(utt["targets"], dtype=np.float64)[ok])
    return xs, ys


def point_weights(fs, mouth_weight: float) -> np.ndarray:
    """Per-coordinate loss weights ``(D,)``: 1, or ``1 + mouth_weight`` on the mouth points when
    the targets are the whole face (for mouth-only targets every point is the mouth: all 1)."""
    w = np.ones((len(fs.point_idx), 2))
    if mouth_weight and len(fs.point_idx) == shapes.N_POINTS:
        w[np.isin(fs.point_idx, shapes.MOUTH)] += float(mouth_weight)
    return w.reshape(-1)


# ------------------------------------------------------------------------------------- base


class KeypointModel:
    """Base class. Subclasses set :attr:`name`, :attr:`defaults` (hyper-parameters) and
    implement ``fit``, ``predict_features`` (or ``predict``), ``_state`` and ``_load_state``.

    A model describes itself, so that nothing else switches on its type or name: the feature
    frames an output frame depends on (:meth:`context_frames`), the study's width knob
    (:meth:`width`), why it cannot stream (:meth:`stream_problem`), how it predicts a recording
    (:meth:`predict_from_audio`), and the class attributes below."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: hyper-parameters added later, with the value runs saved before them were trained with
    legacy_hparams: ClassVar[dict[str, Any]] = {}
    #: the study's feature set it trains on (a key of :func:`wav2kp.training.runs.feature_sets`)
    feature_set: ClassVar[str] = "default"
    #: the hyper-parameter the study's width knob sets (:meth:`width`; ``None``: it has none)
    width_param: ClassVar[str | None] = None
    #: trained by the Lightning loop (:mod:`wav2kp.training.loop`): the loop's settings of the
    #: ``TrainConfig`` reach it, so they key its runs
    uses_loop: ClassVar[bool] = False
    #: among the longest to train and to predict: started first when runs go side by side
    slow: ClassVar[bool] = False
    #: the run folder and ``run_key`` of a model loaded from a finished run (:meth:`load`); its
    #: predictions are kept there (:func:`wav2kp.training.runs.cached`)
    run_dir: Path | None = None
    run_key: str | None = None

    def __init__(self, **hparams: Any) -> None:
        unknown = set(hparams) - set(self.defaults)
        if unknown:
            raise TypeError(
                f"{self.name}: unknown hyper-parameters {sorted(unknown)}; known: "
                f"{sorted(self.defaults)}."
            )
        self.hparams = {**self.defaults, **hparams}
        #: what fit learned about the data that rebuilding the model needs (sizes, ...)
        self.dims: dict[str, Any] = {}
        #: recorded into config.json by :meth:`save` (training config, feature set, ...)
        self.meta: dict[str, Any] = {}

    # -- to implement
    def fit(self, fs, cfg, run_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        """Fit on ``fs``'s training split (``cfg``: a :class:`~wav2kp.training.loop.TrainConfig`);
        returns the history (one row per epoch). ``run_dir``: where the training loop keeps its
        checkpoints (neural models; the others ignore it)."""
        raise NotImplementedError

    def predict_features(self, fs, features: np.ndarray, emotion: int | None = None) -> np.ndarray:
        """Targets ``(N, D)`` float32 (normalised coordinates) from raw (un-normalised) features
        ``(N, F)`` computed with ``fs.mfcc``: how audio that is not in the set is predicted.
        ``emotion`` is an index of :meth:`emotion_index_of` (ignored by other models)."""
        raise NotImplementedError

    def predict(self, fs, clip: str) -> np.ndarray:
        """Targets ``(N, D)`` float32 (normalised coordinates) at the clip's feature frames."""
        return self.predict_features(
            fs, fs.load(clip)["features"], **self._clip_condition(fs, clip)
        )

    def _clip_condition(self, fs, clip: str) -> dict[str, Any]:
        return {}

    def _state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    # -- what the model says about itself
    @classmethod
    def width(cls, hidden: int | None) -> dict[str, Any]:
        """The hyper-parameters of the study's width knob: ``{width_param: hidden}`` (the LSTM's
        hidden size, the utterance models' channels), ``{}`` when ``hidden`` is ``None`` or the
        model has no width to set (the baselines; ``lstm_original`` keeps the original's 200)."""
        if hidden is None or cls.width_param is None:
            return {}
        return {cls.width_param: int(hidden)}

    def context_frames(self, fs) -> tuple[int, int]:
        """``(past, future)``: the feature frames of ``fs`` before and after an output frame
        that it depends on (here none: a per-frame model)."""
        return 0, 0

    def stream_problem(self, fs) -> str | None:
        """Why the model, on ``fs``'s features, cannot predict audio chunk by chunk exactly as
        it predicts the whole recording (:class:`wav2kp.training.inference.StreamingPredictor`);
        ``None`` when it can."""
        if not fs.mfcc.log_mels:
            return (
                f"its features ({fs.mfcc.as_dict()}) use a clip-wide dB floor, so a chunk "
                f"computes differently from the whole recording: streaming needs a model on "
                f"log-mel MFCCs."
            )
        if getattr(fs.normalizer, "mode", "global") == "utterance":
            return _WHOLE_UTTERANCE
        if fs.mfcc.extras:
            return (
                f"its features have extra channels ({', '.join(fs.mfcc.extras)}: a phone "
                f"recogniser, formants) computed from the whole recording."
            )
        return None

    def emotion_index_of(self, emotion: int | str | None, neutral: bool = False) -> int | None:
        """The ``emotion`` argument of :meth:`predict_features` for an emotion given by id or
        English name: ``None`` (a model that reads no emotion)."""
        return None

    def predict_from_audio(
        self,
        fs,
        audio: np.ndarray,
        features: np.ndarray,
        times: np.ndarray,
        emotion: int | None = None,
    ) -> np.ndarray:
        """Targets ``(N, D)`` at the ``N`` feature frames of a 16 kHz recording ``audio``:
        ``features (N, F)`` its raw MFCCs (``fs.mfcc``), ``times (N,)`` their times in s."""
        return self.predict_features(fs, features, emotion=emotion)

    # -- shared
    def predict_pixels(self, fs, clip: str) -> np.ndarray:
        """Pixel keypoints ``(T, 68, 2)`` at the clip's video frame times (computed; a finished
        run keeps them: :func:`wav2kp.training.runs.predict_pixels`)."""
        return fs.to_pixels(clip, self.predict(fs, clip))

    def config(self) -> dict[str, Any]:
        return {"model": self.name, "hparams": self.hparams, "dims": self.dims, **self.meta}

    def save(self, run_dir: str | os.PathLike) -> None:
        """Write ``weights.pt`` (plain tensors, loadable with ``weights_only=True``) and
        ``config.json`` into ``run_dir`` (atomically)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self._state().items()}
        tmp = run_dir / f".{WEIGHTS_FILE}.{os.getpid()}.partial"
        torch.save(state, tmp)
        os.replace(tmp, run_dir / WEIGHTS_FILE)
        write_json_atomic(run_dir / CONFIG_FILE, self.config())

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> KeypointModel:
        """Rebuild the model a run saved (any registered model when called on the base)."""
        run_dir = Path(run_dir)
        path = run_dir / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: {run_dir} is not a saved run "
                f"(train one with wav2kp.training.train_model)."
            )
        config = json.loads(path.read_text(encoding="utf-8"))
        name = config["model"]
        if name not in MODELS:
            raise ValueError(f"{path}: unknown model {name!r}; known: {sorted(MODELS)}.")
        klass = MODELS[name]
        if cls is not KeypointModel and not issubclass(klass, cls):
            raise TypeError(f"{path} holds a {name!r} model, not a {cls.name!r} one.")
        # hyper-parameters added later take the value runs saved before them were trained with
        legacy = {
            k: v
            for k, v in klass.legacy_hparams.items()
            if k in klass.defaults and k not in config["hparams"]
        }
        model = klass(**{**legacy, **config["hparams"]})
        model.dims = config.get("dims", {})
        model.meta = {k: v for k, v in config.items() if k not in ("model", "hparams", "dims")}
        state = torch.load(run_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model._load_state(state)
        model.run_dir = run_dir
        # a finished run's key (training.runs.run_key), which its kept predictions carry
        with contextlib.suppress(OSError, ValueError, KeyError):
            model.run_key = json.loads((run_dir / "metrics.json").read_text("utf-8"))["run_key"]
        return model


# ------------------------------------------------------------------------------- baselines


class MeanFace(KeypointModel):
    name = "mean_face"
    defaults: ClassVar[dict[str, Any]] = {}

    def fit(self, fs, cfg=None, run_dir=None) -> pd.DataFrame:
        _, ys = _split_frames(fs, "train")
        self.mean = np.concatenate(ys).mean(axis=0)
        return pd.DataFrame(
            [
                {
                    "epoch": 0,
                    "train_loss": _mse(self.mean, ys),
                    "val_loss": _mse(self.mean, _split_frames(fs, "val")[1]),
                }
            ]
        )

    def predict_features(self, fs, features, emotion=None) -> np.ndarray:
        return np.tile(self.mean.astype(np.float32), (len(features), 1))

    def _state(self):
        return {"mean": torch.from_numpy(self.mean)}

    def _load_state(self, state):
        self.mean = state["mean"].numpy().astype(np.float64)


def _mse(pred: np.ndarray, ys: list[np.ndarray]) -> float:
    """Mean squared error of a constant (D,) prediction, or of per-frame predictions."""
    if not ys:
        return float("nan")
    y = np.concatenate(ys)
    return float(np.mean((y - pred) ** 2))


class Energy(KeypointModel):
    name = "energy"
    defaults: ClassVar[dict[str, Any]] = {"coefficient": 0}

    def fit(self, fs, cfg=None, run_dir=None) -> pd.DataFrame:
        xs, ys = _split_frames(fs, "train")
        c = int(self.hparams["coefficient"])
        energy = np.concatenate([x[ok, c] for x, ok in xs]).astype(np.float64)
        y = np.concatenate(ys)
        coeffs = fs.pca.transform(y)
        opening = _opening(y, fs.point_idx)
        corr = [abs(np.corrcoef(coeffs[:, m], opening)[0, 1]) for m in range(coeffs.shape[1])]
        mode = int(np.nanargmax(corr))
        design = np.stack([energy, np.ones_like(energy)], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, coeffs[:, mode], rcond=None)
        self.mode, self.a, self.b = mode, float(a), float(b)
        self.dims = {"mode": mode, "mode_corr_with_opening": float(corr[mode])}
        self._mean, self._comp = fs.pca.mean, fs.pca.components[mode]
        train_loss = float(np.mean((self._points(energy) - y) ** 2))
        xv, yv = _split_frames(fs, "val")
        val_loss = (
            float(
                np.mean(
                    (
                        self._points(np.concatenate([x[ok, c] for x, ok in xv]).astype(np.float64))
                        - np.concatenate(yv)
                    )
                    ** 2
                )
            )
            if yv
            else np.nan
        )
        return pd.DataFrame([{"epoch": 0, "train_loss": train_loss, "val_loss": val_loss}])

    def _points(self, energy: np.ndarray) -> np.ndarray:
        return self._mean + (self.a * energy + self.b)[:, None] * self._comp

    def predict_features(self, fs, features, emotion=None) -> np.ndarray:
        x = np.asarray(fs.normalizer(features))
        return self._points(x[:, int(self.hparams["coefficient"])].astype(np.float64)).astype(
            np.float32
        )

    def _state(self):
        return {
            "ab": torch.tensor([self.a, self.b], dtype=torch.float64),
            "mean": torch.from_numpy(self._mean),
            "component": torch.from_numpy(self._comp),
        }

    def _load_state(self, state):
        self.a, self.b = (float(v) for v in state["ab"])
        self._mean = state["mean"].numpy()
        self._comp = state["component"].numpy()
        self.mode = int(self.dims["mode"])


class Phones(KeypointModel):
    """Recognised phones drive the lips: PocketSphinx's English phone recogniser (its model ships
    in its wheel) gives timed phones, the bundled corpus's coarticulation model turns them into
    jaw, spread, round, closure and lip-teeth parameters (:mod:`wav2kp.features.phones`), and a
    least-squares linear map (with a small ridge) from those parameters at the frame and at
    ``offsets_ms`` around it to the set's PCA coefficients places them on the face. It reads the
    audio, not the MFCCs (:meth:`predict_from_audio`): clips' audio comes from the set's
    extraction folder. It does not stream (the recogniser decodes whole utterances); in feature
    frames it has no context (:meth:`KeypointModel.context_frames`: 0, 0)."""

    name = "phones"
    defaults: ClassVar[dict[str, Any]] = {"offsets_ms": [-80.0, -40.0, 40.0, 80.0], "ridge": 1e-3}

    def _design(self, audio: np.ndarray, times: np.ndarray) -> np.ndarray:
        times = np.asarray(times, dtype=np.float64)
        shifts = [0.0, *(float(o) / 1000.0 for o in self.hparams["offsets_ms"])]
        span = np.concatenate([times + s for s in shifts])
        params = phones.articulation(audio, span).reshape(len(shifts), len(times), -1)
        cols = [params[i] for i in range(len(shifts))]
        return np.concatenate([*cols, np.ones((len(times), 1))], axis=1)

    def _clip_design(self, fs, clip: str) -> np.ndarray:
        wav = fs.extraction_paths(clip)[0]
        if not wav.is_file():
            raise FileNotFoundError(
                f"{wav}: the phones model reads each clip's audio from the extraction folder; "
                f"run notebook 01_extraction for this corpus."
            )
        audio, _ = media.read_wav(wav)
        return self._design(audio, fs.load(clip)["feature_times"])

    def fit(self, fs, cfg=None, run_dir=None) -> pd.DataFrame:
        def frames(split):
            xs, ys = [], []
            for clip in fs.split_clips(split):
                utt = fs.load(clip)
                ok = np.asarray(utt["valid"], bool)
                xs.append(self._clip_design(fs, clip)[ok])
                ys.append(np.asarray(utt["targets"], np.float64)[ok])
            return (np.concatenate(xs), np.concatenate(ys)) if xs else (None, None)

        x, y = frames("train")
        coeffs = fs.pca.transform(y)
        reg = float(self.hparams["ridge"]) * len(x) * np.eye(x.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        self.weights = np.linalg.solve(x.T @ x + reg, x.T @ coeffs)
        self._mean, self._components = fs.pca.mean, fs.pca.components
        self.dims = {"n_inputs": int(x.shape[1]), "n_components": int(coeffs.shape[1])}
        train = float(np.mean((fs.pca.inverse_transform(x @ self.weights) - y) ** 2))
        xv, yv = frames("val")
        val = (
            float(np.mean((fs.pca.inverse_transform(xv @ self.weights) - yv) ** 2))
            if xv is not None
            else np.nan
        )
        return pd.DataFrame([{"epoch": 0, "train_loss": train, "val_loss": val}])

    def predict(self, fs, clip: str) -> np.ndarray:
        return self._targets(fs, self._clip_design(fs, clip))

    def predict_audio(self, fs, audio: np.ndarray, times: np.ndarray, emotion=None) -> np.ndarray:
        """Targets ``(N, D)`` at ``times`` (s) of 16 kHz ``audio``."""
        return self._targets(fs, self._design(audio, times))

    def _targets(self, fs, design: np.ndarray) -> np.ndarray:
        coeffs = design @ self.weights
        return (self._mean + coeffs @ self._components).astype(np.float32)

    def predict_from_audio(self, fs, audio, features, times, emotion=None) -> np.ndarray:
        return self.predict_audio(fs, audio, times)

    def predict_features(self, fs, features, emotion=None) -> np.ndarray:
        raise TypeError(
            "the phones model predicts from audio, not features: use predict_audio (wav2kp "
            "predict and Predictor do)."
        )

    def stream_problem(self, fs) -> str | None:
        return (
            f"the {self.name} model decodes whole recordings, it cannot stream; use "
            f"Predictor.predict_audio (wav2kp predict)."
        )

    def _state(self):
        return {
            "weights": torch.from_numpy(np.asarray(self.weights, np.float64)),
            "mean": torch.from_numpy(np.asarray(self._mean, np.float64)),
            "components": torch.from_numpy(np.asarray(self._components, np.float64)),
        }

    def _load_state(self, state):
        self.weights = state["weights"].numpy()
        self._mean = state["mean"].numpy()
        self._components = state["components"].numpy()


class WindowModel:
    """What the window models (``ridge``, ``lstm``, ``lstm_original``) share: an output frame
    is read from its context window, ``past_ms`` before it and ``future_ms`` after it (the
    hyper-parameters, else the TrainConfig's), which ``fit`` records in ``dims``."""

    hparams: dict[str, Any]
    dims: dict[str, Any]

    def _window_ms(self, cfg) -> dict[str, float]:
        h = self.hparams
        return {
            "past_ms": h["past_ms"] if h["past_ms"] is not None else cfg.past_ms,
            "future_ms": h["future_ms"] if h["future_ms"] is not None else cfg.future_ms,
        }

    def context_frames(self, fs) -> tuple[int, int]:
        """The window in feature frames of ``fs`` (:meth:`FeatureSet.context`)."""
        return fs.context(float(self.dims["past_ms"]), float(self.dims["future_ms"]))


def _window_positions(n_past: int, n_future: int, stride: int) -> np.ndarray:
    """Window rows kept: every ``stride``-th one counted from the centre (index ``n_past``)."""
    left = np.arange(n_past, -1, -stride)[::-1]
    right = np.arange(n_past + stride, n_past + n_future + 1, stride)
    return np.concatenate([left, right])


class Ridge(WindowModel, KeypointModel):
    name = "ridge"
    defaults: ClassVar[dict[str, Any]] = {
        "stride": 2,
        "alphas": [1.0, 10.0, 100.0, 1000.0, 10000.0],
        "alpha": None,
        "past_ms": None,
        "future_ms": None,
    }

    def _design(self, fs, clip_feats: np.ndarray) -> np.ndarray:
        n_past, n_future = self.context_frames(fs)
        win = feats.windows(clip_feats, n_past, n_future)
        pos = _window_positions(n_past, n_future, int(self.hparams["stride"]))
        return win[:, pos].reshape(len(win), -1).astype(np.float64)

    def _split_xy(self, fs, split):
        xs, ys = [], []
        for clip in fs.split_clips(split):
            utt = fs.load(clip)
            ok = utt["valid"]
            xs.append(self._design(fs, np.asarray(fs.normalizer(utt["features"])))[ok])
            ys.append(np.asarray(utt["targets"], dtype=np.float64)[ok])
        return np.concatenate(xs), np.concatenate(ys)

    def fit(self, fs, cfg, run_dir=None) -> pd.DataFrame:
        from sklearn.linear_model import Ridge as SkRidge

        self.dims = self._window_ms(cfg)
        x, y = self._split_xy(fs, "train")
        z = fs.pca.transform(y)
        have_val = bool(fs.split_clips("val"))
        alphas = (
            [self.hparams["alpha"]]
            if self.hparams["alpha"] is not None
            else list(self.hparams["alphas"])
        )
        rows = []
        if have_val:
            xv, yv = self._split_xy(fs, "val")
        for alpha in alphas:
            reg = SkRidge(alpha=float(alpha)).fit(x, z)
            train = float(np.mean((fs.pca.inverse_transform(reg.predict(x)) - y) ** 2))
            val = (
                float(np.mean((fs.pca.inverse_transform(reg.predict(xv)) - yv) ** 2))
                if have_val
                else np.nan
            )
            rows.append({"alpha": float(alpha), "train_loss": train, "val_loss": val})
        scores = pd.DataFrame(rows)
        best = scores.iloc[int(np.nanargmin(scores["val_loss"]) if have_val else 0)]
        self.dims["alpha"] = float(best["alpha"])
        self.dims["alpha_scores"] = scores.to_dict(orient="list")
        reg = SkRidge(alpha=self.dims["alpha"]).fit(x, z)
        # fold the PCA inverse into one affine map: points = x @ W.T + b
        self.weight = reg.coef_.T @ fs.pca.components  # (in, D)
        self.bias = reg.intercept_ @ fs.pca.components + fs.pca.mean
        return pd.DataFrame(
            [
                {
                    "epoch": 0,
                    "train_loss": float(best["train_loss"]),
                    "val_loss": float(best["val_loss"]),
                    "alpha": self.dims["alpha"],
                }
            ]
        )

    def predict_features(self, fs, features, emotion=None) -> np.ndarray:
        x = self._design(fs, np.asarray(fs.normalizer(features)))
        return (x @ self.weight + self.bias).astype(np.float32)

    def _state(self):
        return {"weight": torch.from_numpy(self.weight), "bias": torch.from_numpy(self.bias)}

    def _load_state(self, state):
        self.weight, self.bias = state["weight"].numpy(), state["bias"].numpy()


# ---------------------------------------------------------------------------- neural models


def pretrain_set(fs, pretrain: dict):
    """The synthetic-talker feature set a ``pretrain`` hyper-parameter names (``{"utterances":
    n, "epochs": e, "seed": s}``), built beside ``fs`` on first use and shared by the sets with
    its face, points and MFCC settings (:func:`wav2kp.features.talkers.talker_folder`)."""
    n, seed = int(pretrain["utterances"]), int(pretrain.get("seed", 0))
    return talkers.build_talker_set(fs, n, talkers.talker_folder(fs, n, seed), seed=seed)[0]


def pretraining(name: str, hparams: dict) -> str | None:
    """Which pre-training a run of model ``name`` with ``hparams`` does, as text (``None``:
    none): runs with the same text share one (:meth:`NeuralModel._pretrain`)."""
    if not hparams.get("pretrain"):
        return None
    return json.dumps([name, {**MODELS[name].defaults, **hparams}], sort_keys=True, default=str)


class NeuralModel(KeypointModel):
    """Shared machinery: a network (:mod:`wav2kp.training.networks`) whose output is whitened
    PCA coefficients, a :class:`~wav2kp.training.networks.PCAHead`, training through
    :func:`wav2kp.training.loop.fit_module`."""

    uses_loop = True
    default_lr: ClassVar[float] = 1e-3
    #: Epochs without a better validation loss before training stops, at most (``None``: the
    #: TrainConfig's ``patience``; the learning-rate schedule keeps that patience either way).
    stop_patience: ClassVar[int | None] = None

    def _build(self) -> None:
        """Create ``self.net`` and ``self.head`` from ``self.hparams`` and ``self.dims``."""
        d = self.dims
        self.head = networks.PCAHead(int(d["n_components"]), int(d["n_targets"]))
        self.net = self._make_net(int(d["n_features"]), int(d["n_components"]))

    def _make_net(self, n_in: int, n_out: int) -> nn.Module:
        raise NotImplementedError

    def _raw_targets(self) -> bool:
        kind = self.hparams.get("targets", "pca")
        if kind not in ("pca", "raw"):
            raise ValueError(f"{self.name}: targets must be 'pca' or 'raw', got {kind!r}.")
        return kind == "raw"

    def _set_dims(self, fs, cfg) -> None:
        utt = fs.load(fs.clips[0])
        n_targets = int(utt["targets"].shape[1])
        self.dims = {
            "n_features": int(utt["features"].shape[1]),
            "n_targets": n_targets,
            "n_components": n_targets if self._raw_targets() else int(fs.pca.n_components),
        }

    def _init_head(self, fs, cfg) -> None:
        weights = point_weights(fs, cfg.mouth_weight)
        if self._raw_targets():
            # raw coordinates: the head only un-standardises (identity "components", the
            # training targets' per-coordinate mean and standard deviation)
            y = np.concatenate(_split_frames(fs, "train")[1])
            self.head.set(y.mean(axis=0), np.eye(y.shape[1]), y.std(axis=0) + 1e-8, weights)
            return
        self.head.set(fs.pca.mean, fs.pca.components, np.sqrt(fs.pca.explained_variance), weights)

    def _state(self):
        return {
            **{f"net.{k}": v for k, v in self.net.state_dict().items()},
            **{f"head.{k}": v for k, v in self.head.state_dict().items()},
        }

    def _load_state(self, state):
        self._build()
        self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        self.net.eval()

    def fit(self, fs, cfg, run_dir: str | os.PathLike | None = None) -> pd.DataFrame:

        loop.seed_all(cfg)  # the network's init depends on the seed
        self._set_dims(fs, cfg)
        self._build()
        self._init_head(fs, cfg)
        stop = cfg.patience if self.stop_patience is None else min(cfg.patience, self.stop_patience)
        histories = []
        pre = self.hparams.get("pretrain")
        if pre:
            histories.append(self._pretrain(fs, cfg, pre, run_dir, stop).assign(stage="pretrain"))
        train_loader, val_loader = self._loaders(fs, cfg)
        history = loop.fit_module(self, train_loader, val_loader, cfg, run_dir, stop)
        self.net.eval()
        if not histories:
            return history
        return pd.concat([*histories, history.assign(stage="train")], ignore_index=True)

    def _pretrain(self, fs, cfg, pre: dict, run_dir, stop: int) -> pd.DataFrame:
        """Pre-train the network on the synthetic talkers of ``pre`` (:func:`pretrain_set`),
        validated on ``fs``'s own validation clips (a mixed set's: its base corpus' alone), and
        return its history. The result is kept beside the talker set, keyed by everything it
        depends on (the model, its dimensions and output head, the talkers, the validation
        clips, the loop's settings, the code): every run that would pre-train the same way
        (the levers trained on the study's set and on its mixed sets, say) loads it instead,
        with the same weights bit for bit."""
        talk = pretrain_set(fs, pre)
        pre_cfg = dataclasses.replace(
            cfg, max_epochs=int(pre["epochs"]), augment=False, max_time_s=None
        )
        val = [c for c in fs.split_clips("val") if dataset.MIXED_SEP not in c]
        key = self._pretrain_key(fs, talk, pre_cfg, val)
        cache = Path(talk.out_dir) / "pretrained" / f"{key}.pt"
        cache.parent.mkdir(parents=True, exist_ok=True)
        # runs side by side that pre-train the same way: the first computes, the others wait
        # for it and load the result (whatever the schedule, each pre-training is done once)
        with filelock.FileLock(cache.with_name(f".{cache.stem}.lock")):
            return self._pretrain_once(fs, cache, talk, pre_cfg, val, run_dir, stop)

    def _pretrain_once(self, fs, cache: Path, talk, pre_cfg, val, run_dir, stop) -> pd.DataFrame:
        if cache.is_file():
            state = torch.load(cache, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state["net"])
            rows = json.loads(bytes(state["history"].tolist()).decode("utf-8"))
            return pd.DataFrame(rows, columns=loop.HISTORY_COLUMNS)
        train_loader, val_loader = self._loaders(fs, pre_cfg, train_fs=talk, val_clips=val)
        history = loop.fit_module(self, train_loader, val_loader, pre_cfg, run_dir, stop)
        text = json.dumps(history.to_dict("records")).encode("utf-8")
        state = {
            "net": {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
            "history": torch.tensor(list(text), dtype=torch.uint8),
        }
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.partial")
        torch.save(state, tmp)
        os.replace(tmp, cache)
        return history

    def _pretrain_key(self, fs, talk, pre_cfg, val: list[str]) -> str:
        head = {k: v.detach().cpu().numpy() for k, v in self.head.state_dict().items()}
        utterances = [file_sha256(dataset.utterance_path(fs.out_dir, c)) for c in val]
        payload = {
            "model": self.name,
            "hparams": self.hparams,
            "dims": self.dims,
            "head": hashlib.sha256(
                b"".join(np.ascontiguousarray(head[k]).tobytes() for k in sorted(head))
            ).hexdigest(),
            "talkers": dataset.read_manifest(talk.out_dir).get("inputs"),
            "talker_params": dataset.read_manifest(talk.out_dir).get("params"),
            "val": dict(zip(val, utterances)),
            "train": {k: v for k, v in pre_cfg.as_dict().items() if k != "progress"},
            "code": loop.code_hash(),
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]

    def _loaders(self, fs, cfg, train_fs=None, val_clips=None):
        """``(train, val)`` loaders; ``train_fs``: take the training utterances from that set
        (a pre-training set sharing ``fs``'s normaliser and PCA) instead of ``fs``;
        ``val_clips``: validate on these clips of ``fs`` (default its validation split)."""
        raise NotImplementedError

    def step(self, batch, cfg) -> torch.Tensor:
        """Training / validation loss of one batch."""
        raise NotImplementedError

    @torch.no_grad()
    def _run(self, *inputs: torch.Tensor) -> np.ndarray:
        self.net.eval()
        dev = next(self.net.parameters()).device
        self.head.to(dev)
        out = self.head(self.net(*(t.to(dev) for t in inputs)))
        return out.float().cpu().numpy()


class WindowLSTM(WindowModel, NeuralModel):
    """An LSTM over each frame's context window, output from the final hidden state."""

    name = "lstm"
    width_param = "hidden"
    #: one network pass per frame: the longest runs to train and to predict
    slow = True
    #: The window LSTMs fit the training windows within an epoch or two and then only overfit:
    #: in the full profile both had their best validation loss in epoch 1 and trained 8 more
    #: epochs for nothing (patience 8). Stopping 3 epochs after the best restores the same
    #: weights (the schedule is unchanged) for 5 fewer epochs.
    stop_patience: ClassVar[int | None] = 3
    defaults: ClassVar[dict[str, Any]] = {
        "hidden": 128,
        "layers": 2,
        "dropout": 0.1,
        "bidirectional": False,
        "past_ms": None,
        "future_ms": None,
        "targets": "pca",
    }

    def _set_dims(self, fs, cfg) -> None:
        super()._set_dims(fs, cfg)
        self.dims.update(self._window_ms(cfg))

    def _make_net(self, n_in, n_out):
        h = self.hparams
        return networks.WindowNet(
            n_in,
            n_out,
            int(h["hidden"]),
            int(h["layers"]),
            float(h["dropout"]),
            bool(h["bidirectional"]),
        )

    def _loaders(self, fs, cfg, train_fs=None, val_clips=None):

        past, future = self.dims["past_ms"], self.dims["future_ms"]
        source = fs if train_fs is None else train_fs  # a pre-training set shares fs's normaliser
        windows = source.window_dataset("train", past, future)
        return (
            loop.loader(windows, cfg, shuffle=True, limit=cfg.max_windows),
            loop.loader(fs.window_dataset("val", past, future), cfg, shuffle=False)
            if fs.split_clips("val")
            else None,
        )

    def step(self, batch, cfg):
        x, y = batch
        return networks.point_loss(self.head(self.net(x)), y, self.head.weights)

    def predict_features(self, fs, features, emotion=None, batch_size: int = 512) -> np.ndarray:
        n_past, n_future = self.context_frames(fs)
        x = np.asarray(fs.normalizer(features), dtype=np.float32)
        win = feats.windows(x, n_past, n_future)
        out = [
            self._run(torch.from_numpy(np.array(win[i : i + batch_size], dtype=np.float32)))
            for i in range(0, len(win), batch_size)
        ]
        return np.concatenate(out).astype(np.float32)


class OriginalLSTM(WindowLSTM):
    """The original architecture on the original's future-only window, fed as the original
    project fed it (the ``original`` feature set: its MFCC settings, keypoints x3 paired by
    index); its width stays the original's."""

    name = "lstm_original"
    feature_set = "original"
    width_param = None
    default_lr = 1e-4
    defaults: ClassVar[dict[str, Any]] = {
        "hidden": 200,
        "layers": 2,
        "dropout": 0.25,
        "bidirectional": False,
        "past_ms": feats.ORIGINAL_CONTEXT.past_ms,
        "future_ms": feats.ORIGINAL_CONTEXT.future_ms,
        "targets": "pca",
    }


class _EmotionUtterances(torch.utils.data.Dataset):
    """An :class:`~wav2kp.features.dataset.UtteranceDataset` whose items also carry an emotion index."""

    def __init__(self, base, emotions: list[int]) -> None:
        self.base, self.emotions = base, emotions

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        return (*self.base[i], self.emotions[i])


def _collate_with_emotion(batch):

    return collate_padded([b[:3] for b in batch]), torch.tensor([b[3] for b in batch])


class UtteranceModel(NeuralModel):
    """What the utterance models (``tcn``, ``tcn_emotion``, ``transformer``) share: a network
    over whole utterances (``(B, L, F)`` and a mask -> ``(B, L, k)``) with a finite context,
    trained on padded batches of utterances with a masked loss (and ``velocity_weight``),
    augmented audio, the ``feature_norm`` normaliser (``"causal"`` by default: streamable), an
    optional emotion embedding (``uses_emotion``) and pre-training (``pretrain``). Subclasses
    make the network (``_make_net``) and say its context (:meth:`context_frames`)."""

    width_param = "channels"
    uses_emotion: ClassVar[bool] = False
    #: runs saved before ``feature_norm`` existed used the set's normaliser
    legacy_hparams: ClassVar[dict[str, Any]] = {"feature_norm": "set"}

    def context_frames(self, fs=None) -> tuple[int, int]:
        """``(past, future)``: feature frames before and after an output frame that it sees
        (the network's receptive field, the same in frames of any set: ``fs`` is not read)."""
        raise NotImplementedError

    def receptive_field(self) -> int:
        """Frames either side that an output frame sees (the larger side when it is not
        centred)."""
        return max(self.context_frames())

    def stream_problem(self, fs) -> str | None:
        problem = super().stream_problem(fs)
        if problem is None and self.hparams.get("feature_norm", "set") == "utterance":
            return _WHOLE_UTTERANCE
        return problem

    def emotion_index(self, fs, clip: str) -> int:
        """0 neutral, 1 unknown, 2 + position in ``dims["emotions"]``."""
        row = fs.splits.loc[fs.splits["clip"] == clip]
        if row.empty:
            return 1
        if "neutral" in row.columns and bool(row["neutral"].iloc[0]):
            return 0
        emo = row["emotion"].iloc[0] if "emotion" in row.columns else pd.NA
        known = self.dims.get("emotions", [])
        if pd.isna(emo) or int(emo) not in known:
            return 1
        return 2 + known.index(int(emo))

    def _set_dims(self, fs, cfg) -> None:
        super()._set_dims(fs, cfg)
        if self.uses_emotion:
            emo = fs.splits.loc[~fs.splits["neutral"].astype(bool), "emotion"].dropna()
            self.dims["emotions"] = sorted({int(e) for e in emo})

    def _loaders(self, fs, cfg, train_fs=None, val_clips=None):

        norm = self.hparams.get("feature_norm", "set")
        if norm not in feats.NORMALISATIONS:
            raise ValueError(
                f"{self.name}: feature_norm must be 'set', 'utterance' or 'causal', got {norm!r}."
            )

        def make(split, shuffle):
            if split == "train" and train_fs is not None:
                ds = UtteranceDataset(
                    train_fs.out_dir, train_fs.split_clips("train"), normalizer=self.normalizer(fs)
                )
                if self.uses_emotion:
                    ds = _EmotionUtterances(ds, [self.emotion_index(train_fs, c) for c in ds.clips])
                    return loop.loader(ds, cfg, shuffle, collate_fn=_collate_with_emotion)
                return loop.loader(ds, cfg, shuffle, collate_fn=collate_padded)
            clips = val_clips if split == "val" and val_clips is not None else fs.split_clips(split)
            if not clips:
                return None
            if split == "train" and getattr(cfg, "augment", False):
                ds = augment.AugmentedUtterances(
                    fs,
                    clips,
                    augment.AugmentConfig(**cfg.augment_params),
                    seed=cfg.seed,
                    normalize=norm,
                )
            elif norm != "set" or val_clips is not None:
                ds = UtteranceDataset(fs.out_dir, clips, normalizer=self.normalizer(fs))
            else:
                ds = fs.utterance_dataset(split)
            if self.uses_emotion:
                ds = _EmotionUtterances(ds, [self.emotion_index(fs, c) for c in ds.clips])
                return loop.loader(ds, cfg, shuffle, collate_fn=_collate_with_emotion)
            return loop.loader(ds, cfg, shuffle, collate_fn=collate_padded)

        return make("train", True), make("val", False)

    def step(self, batch, cfg):
        weights = self.head.weights
        if self.uses_emotion:
            batch, emotion = batch
        else:
            emotion = None
        pred = self.head(self.net(batch.features, batch.mask, emotion))
        ok = batch.valid & batch.mask
        loss = networks.point_loss(pred, batch.targets, weights, ok)
        if cfg.velocity_weight:
            both = ok[:, 1:] & ok[:, :-1]
            loss = loss + cfg.velocity_weight * networks.point_loss(
                pred[:, 1:] - pred[:, :-1],
                batch.targets[:, 1:] - batch.targets[:, :-1],
                weights,
                both,
            )
        return loss

    def _clip_condition(self, fs, clip: str) -> dict[str, Any]:
        return {"emotion": self.emotion_index(fs, clip)} if self.uses_emotion else {}

    def emotion_index_of(self, emotion: int | str | None, neutral: bool = False) -> int:
        """The embedding index of an emotion given by id or English name (``None`` or an
        emotion this model never saw: 1, unknown; ``neutral``: 0)."""
        if neutral or (isinstance(emotion, str) and emotion.lower() in ("neutral", "neutra")):
            return 0
        if emotion is None:
            return 1
        if isinstance(emotion, str) and not emotion.isdigit():
            ids = {name.lower(): int(i) for i, name in emotion_names().items()}
            if emotion.lower() not in ids:
                raise ValueError(
                    f"Unknown emotion {emotion!r}; known: "
                    f"{', '.join(sorted(emotion_names().values()))} or neutral."
                )
            emotion = ids[emotion.lower()]
        known = self.dims.get("emotions", [])
        return 2 + known.index(int(emotion)) if int(emotion) in known else 1

    def normalizer(self, fs):
        """The feature normaliser of ``feature_norm``: the set's (``"set"``), each recording's
        own statistics (``"utterance"``), or running statistics (``"causal"``, streamable)."""

        return feats.feature_normaliser(
            self.hparams.get("feature_norm", "set"), fs.normalizer, f"{self.name}: feature_norm"
        )

    def predict_features(self, fs, features, emotion=None) -> np.ndarray:
        return self.predict_normalised(np.asarray(self.normalizer(fs)(features)), emotion)

    def predict_normalised(self, x_norm: np.ndarray, emotion: int | None = None) -> np.ndarray:
        """Targets from features already normalised by :meth:`normalizer`."""
        x = torch.from_numpy(np.asarray(x_norm, dtype=np.float32))[None]
        args = [x, None]
        if self.uses_emotion:
            args.append(torch.tensor([1 if emotion is None else int(emotion)]))
        self.net.eval()
        dev = next(self.net.parameters()).device
        self.head.to(dev)
        with torch.no_grad():
            out = self.head(self.net(*(a.to(dev) if a is not None else None for a in args)))
        return out[0].float().cpu().numpy()


class TCN(UtteranceModel):
    """The temporal convolution network (:class:`~wav2kp.training.networks.TCNNet`)."""

    name = "tcn"
    defaults: ClassVar[dict[str, Any]] = {
        "channels": 128,
        "kernel": 3,
        "dilations": [1, 2, 4, 8],
        "dropout": 0.1,
        "targets": "pca",
        "feature_norm": "causal",
        "pretrain": None,
        "future_frames": None,
    }

    def _make_net(self, n_in, n_out):
        h = self.hparams
        n_emo = len(self.dims.get("emotions", [])) + 2 if self.uses_emotion else 0
        return networks.TCNNet(
            n_in,
            n_out,
            int(h["channels"]),
            int(h["kernel"]),
            h["dilations"],
            float(h["dropout"]),
            n_emo,
            int(h.get("emotion_dim", 0)),
            h.get("future_frames"),
        )

    def context_frames(self, fs=None) -> tuple[int, int]:
        """``(past, future)``: feature frames before and after an output frame that it sees.
        Centred by default; ``future_frames`` limits the look-ahead (a live model)."""
        h = self.hparams
        span = int(sum(2 * int(d) * (int(h["kernel"]) - 1) for d in h["dilations"]))
        future = h.get("future_frames")
        future = span // 2 if future is None else int(future)
        return span - future, future


class EmotionTCN(TCN):
    name = "tcn_emotion"
    defaults: ClassVar[dict[str, Any]] = {**TCN.defaults, "emotion_dim": 8}
    uses_emotion = True


class Transformer(UtteranceModel):
    """The diary's Transformer, per utterance: 1x3 input convolution, a depth-wise
    convolution for position, ``layers`` pre-norm encoder layers whose attention is limited
    to ``window`` frames either side (so the receptive field is finite and the model streams),
    a linear output. Trained, normalised and augmented exactly like ``tcn``."""

    name = "transformer"
    defaults: ClassVar[dict[str, Any]] = {
        "channels": 128,
        "heads": 4,
        "layers": 3,
        "window": 10,
        "dropout": 0.1,
        "targets": "pca",
        "feature_norm": "causal",
        "pretrain": None,
    }

    def _make_net(self, n_in, n_out):
        h = self.hparams
        return networks.LocalTransformer(
            n_in, n_out, int(h["channels"]), int(h["heads"]), int(h["layers"]), int(h["window"]),
            float(h["dropout"]),
        )  # fmt: skip

    def context_frames(self, fs=None) -> tuple[int, int]:
        """Frames either side: 1 of the input convolution, 2 of the positional one, ``window``
        per attention layer."""
        h = self.hparams
        r = 1 + 2 + int(h["layers"]) * int(h["window"])
        return r, r


MODELS: dict[str, type[KeypointModel]] = {
    m.name: m
    for m in (
        MeanFace,
        Energy,
        Ridge,
        Phones,
        OriginalLSTM,
        WindowLSTM,
        TCN,
        EmotionTCN,
        Transformer,
    )  # fmt: skip
}


def create(name: str, **hparams: Any) -> KeypointModel:
    """A fresh, untrained model of registry name ``name`` (see :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; known: {sorted(MODELS)}.")
    return MODELS[name](**hparams)


def load_run(run_dir: str | os.PathLike) -> KeypointModel:
    """The model a training run saved in ``run_dir`` (``weights.pt`` + ``config.json``)."""
    return KeypointModel.load(run_dir)
