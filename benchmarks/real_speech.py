"""Does training-time augmentation (and how the features are normalised) make the keypoints follow
real people? Trains ``tcn_emotion`` variants side by side on the same feature set and seed, scores
each on the bundled test split and on a folder of real recordings.

    python benchmarks/real_speech.py [--subset full] [--real ../shared/real_samples] [--reuse]

Needs the feature sets of the bundled corpus (``make study`` or notebooks 00-02). Runs land in
``data/models/bench_real_<variant>`` (``--reuse`` keeps runs that exist). The last line is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import time

VARIANTS = {
    # name: (feature_norm, augment, augment params)
    "set_noaug": ("set", False, {}),
    "causal_noaug": ("causal", False, {}),
    "causal_aug": ("causal", True, {}),
    "utterance_noaug": ("utterance", False, {}),
    "utterance_aug": ("utterance", True, {}),
    "set_aug": ("set", True, {}),
    "utterance_strong_aug": ("utterance", True, {"p": 0.9, "snr_db": [5.0, 35.0]}),
    "set_strong_aug": ("set", True, {"p": 0.9, "snr_db": [5.0, 35.0]}),
}


def main() -> None:
    import pandas as pd

    from wav2kp import config, corpus, evaluation, features, training
    from wav2kp.evaluation import real as realeval

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subset", default="full")
    ap.add_argument("--real", default="../shared/real_samples")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--reuse", action="store_true", help="keep runs that already exist")
    args = ap.parse_args()

    sets = features.open_study_sets("bundled", args.subset)  # notebook 02's
    runs, wall = {}, {}
    for name in args.variants:
        norm, aug, params = VARIANTS[name]
        run = config.models_dir() / f"bench_real_{name}"
        runs[name] = run
        if args.reuse and (run / "metrics.json").is_file():
            continue
        cfg = training.TrainConfig(
            max_epochs=args.epochs, seed=0, augment=aug, augment_params=params, progress="none"
        )
        t0 = time.perf_counter()
        training.train_model(
            "tcn_emotion",
            sets["default"],
            cfg,
            run_dir=run,
            feature_norm=norm,
            **training.models.EmotionTCN.width(args.hidden),
        )
        wall[name] = time.perf_counter() - t0
        print(f"trained {name} in {wall[name]:.0f} s", flush=True)

    loaded = training.load_runs(runs)
    fs = sets["default"]
    ev = evaluation.evaluate_runs(
        loaded, fs.split_clips("test"), "bundled", corpus.discover("bundled"), noise_floor=False
    )
    test = evaluation.summarise(ev, n_boot=200)
    real = realeval.evaluate_real(args.real, runs, n_jobs=1)
    rs = realeval.summary(real["videos"])
    env = (
        real["speech"].groupby("model")["envelope_corr"].mean()
        if len(real["speech"])
        else pd.Series(dtype=float)
    )
    rows = []
    for name in args.variants:
        rows.append(
            {
                "variant": name,
                "test_mlmd": test.loc[name, "mlmd"],
                "test_mouth_corr": test.loc[name, "mouth_corr"],
                "real_mouth_corr": rs.loc[name, "mouth_corr"],
                "real_area_corr": rs.loc[name, "area_corr"],
                "real_median_offset_ms": rs.loc[name, "median_offset_ms"],
                "real_abs_offset_ms": rs.loc[name, "abs_offset_ms"],
                "speech_envelope_corr": env.get(name, float("nan")),
            }
        )
    table = pd.DataFrame(rows)
    print(table.round(3).to_string(index=False))
    print(
        json.dumps(
            {
                "variants": table.to_dict("records"),
                "train_wall_s": wall,
                "real_files": int(real["videos"]["file"].nunique()) if len(real["videos"]) else 0,
            },
            default=float,
        )
    )


if __name__ == "__main__":
    main()
