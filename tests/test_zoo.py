"""The model zoo describes itself (no training here; what the trained models' predictions
depend on is checked against their ``context_frames`` in tests/test_models.py), and the
Lightning classes are imported only to train and pickle by name (DDP spawn)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from types import SimpleNamespace

from wav2kp.features import acoustic as F
from wav2kp.training import models

NEURAL = {"lstm_original", "lstm", "tcn", "tcn_emotion", "transformer"}


def _fs(mfcc: F.MFCCConfig | None = None, mode: str = "global") -> SimpleNamespace:
    """What stream_problem reads of a feature set: its MFCC settings and normaliser."""
    return SimpleNamespace(mfcc=mfcc or F.MFCCConfig(), normalizer=SimpleNamespace(mode=mode))


def test_width_knob_round_trips_into_the_models_hyper_parameters() -> None:
    widths = {name: klass.width(48) for name, klass in models.MODELS.items()}
    assert widths == {
        "mean_face": {},
        "energy": {},
        "ridge": {},
        "phones": {},
        "lstm_original": {},  # the original's 200
        "lstm": {"hidden": 48},
        "tcn": {"channels": 48},
        "tcn_emotion": {"channels": 48},
        "transformer": {"channels": 48},
    }
    for name, klass in models.MODELS.items():
        assert klass.width(None) == {}, name
        hp = models.create(name, **klass.width(48)).hparams
        assert {k: hp[k] for k in widths[name]} == widths[name], name
    assert models.create("lstm_original").hparams["hidden"] == 200


def test_feature_set_loop_and_order_attributes() -> None:
    assert {n: k.feature_set for n, k in models.MODELS.items() if k.feature_set != "default"} == {
        "lstm_original": "original"
    }
    assert {n for n, k in models.MODELS.items() if k.uses_loop} == NEURAL
    assert {n for n, k in models.MODELS.items() if k.slow} == {"lstm_original", "lstm"}


def test_context_frames_of_the_utterance_models_and_baselines() -> None:
    fs = _fs()
    assert models.create("tcn").context_frames(fs) == (30, 30)  # dilations 1, 2, 4, 8
    assert models.create("tcn", future_frames=10).context_frames(fs) == (50, 10)
    assert models.create("tcn_emotion", dilations=[1, 2]).context_frames(fs) == (6, 6)
    assert models.create("transformer").context_frames(fs) == (33, 33)  # 1 + 2 + 3 x 10
    assert models.create("transformer", layers=1, window=4).receptive_field() == 7
    for name in ("mean_face", "energy", "phones"):
        assert models.create(name).context_frames(fs) == (0, 0), name


def test_stream_problem_is_none_exactly_for_the_streamable() -> None:
    for name in models.MODELS:
        problem = models.create(name).stream_problem(_fs())
        if name == "phones":
            assert problem == (
                "the phones model decodes whole recordings, it cannot stream; use "
                "Predictor.predict_audio (wav2kp predict)."
            )
        else:
            assert problem is None, name
        # the original MFCCs' clip-wide floor, whole-utterance normalisation of the set
        floor = models.create(name).stream_problem(_fs(F.MFCCConfig.original()))
        assert name == "phones" or "clip-wide dB floor" in floor, name
        per_utt = models.create(name).stream_problem(_fs(mode="utterance"))
        assert name == "phones" or "feature_norm='causal'" in per_utt, name
    for name in ("tcn", "tcn_emotion", "transformer"):
        own = models.create(name, feature_norm="utterance").stream_problem(_fs())
        assert own.startswith("per-utterance feature normalisation needs the whole recording")


def test_importing_the_package_leaves_lightning_alone() -> None:
    """Lightning costs seconds to import: only training (loop.fit_module) imports it."""
    code = (
        "import sys, wav2kp.training, wav2kp.evaluation, wav2kp.cli; "
        "print(sorted(m for m in ('lightning', 'wav2kp.training.lit') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_lightning_classes_pickle_by_name(tmp_path) -> None:
    """A spawned DDP process receives the module and the callbacks pickled: top-level classes."""
    from wav2kp.training import lit
    from wav2kp.training.loop import TrainConfig

    model = models.create("tcn", channels=4, dilations=[1])
    model.dims = {"n_features": 3, "n_targets": 4, "n_components": 2}
    model._build()
    cfg = TrainConfig(max_epochs=1)
    module = lit.KeypointModule(model, cfg, lr=1e-3)
    again = pickle.loads(pickle.dumps(module))
    assert type(again) is lit.KeypointModule and type(again.model_ref[0]) is models.TCN
    assert again.net.state_dict().keys() == module.net.state_dict().keys()
    for callback in (lit.History(cfg, tmp_path / "history.jsonl"), lit.EpochCallback()):
        assert type(pickle.loads(pickle.dumps(callback))) is type(callback)
