"""The ``wav2kp`` command.

wav2kp study --profile quick|full [--only NN] [--from NN] [-p key=value ...]
wav2kp corpus build [--profile quick|full] [--out DIR] [--jobs N] [--seed S]
wav2kp corpus list [FOLDER]
wav2kp extract <folder-or-file|bundled> [--out DIR] [--jobs N] [--force]
wav2kp train --model NAME [--epochs N] [--corpus bundled|DIR] [--subset quick|full] ...
wav2kp predict SPEECH [--model RUN] [--emotion NAME] [--out DIR] [--face IMAGE] [--fps 29.97]
wav2kp evaluate-real FOLDER [--model RUN ...] [--out DIR] [--jobs N]
wav2kp doctor
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_study(args: argparse.Namespace) -> int:
    from wav2kp import study

    try:
        overrides = study.parse_overrides(args.param or [])
        study.run_study(
            profile=args.profile,
            only=args.only,
            start=getattr(args, "from"),
            overrides=overrides,
            live=not args.quiet,
        )
    except study.StudyError as err:
        print(f"\nwav2kp study: {err}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as err:
        print(f"wav2kp study: {err}", file=sys.stderr)
        return 2
    return 0


def _cmd_corpus_build(args: argparse.Namespace) -> int:
    from wav2kp.corpus import bundled

    try:
        report = bundled.build(
            out_dir=Path(args.out) if args.out else None,
            subset=args.profile,
            n_jobs=args.jobs,
            seed=args.seed,
            progress=True,
            cluster=args.cluster,
        )
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        print(f"wav2kp corpus build: {err}", file=sys.stderr)
        return 2
    print(
        f"{report.n_built} clips built, {report.n_cached} up to date, "
        f"{len(report.failures)} failed, in {report.wall_s:.1f} s -> {report.out_dir}"
    )
    for name, reason in report.failures:
        print(f"  FAILED {name}: {reason}", file=sys.stderr)
    return 1 if report.failures else 0


def _cmd_corpus_list(args: argparse.Namespace) -> int:
    from wav2kp import corpus

    try:
        table = corpus.discover(args.folder)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"wav2kp corpus list: {err}", file=sys.stderr)
        return 2
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(table.drop(columns=["path"]).to_string(index=False))
    problems = [] if args.no_check else _clip_problems(table["path"])
    print(f"{len(table)} clips" + (f", {len(problems)} unusable:" if problems else ""))
    for path, why in problems:
        print(f"  UNUSABLE {path}: {why}", file=sys.stderr)
    return 1 if problems else 0


def _clip_problems(paths) -> list[tuple[str, str]]:
    """``(path, why)`` for each clip that the study could not use: its headers unreadable (empty,
    truncated, not media) or a video or audio stream missing (read from headers: fast)."""
    from wav2kp import media

    out = []
    for path in paths:
        try:
            info = media.probe(path)
        except (media.MediaError, OSError) as err:
            out.append((str(path), str(err).removeprefix(f"{path}: ")))
            continue
        missing = [k for k in ("video", "audio") if not info[f"has_{k}"]]
        if missing or info["truncated_at"] is not None:
            why = (
                f"has no {' and no '.join(missing)} stream"
                if missing
                else f"truncated: its data stops at {info['truncated_at']:.2f} s"
            )
            out.append((str(path), f"{why} (streams: {', '.join(info['streams']) or 'none'})."))
    return out


def _cmd_extract(args: argparse.Namespace) -> int:
    import pandas as pd

    from wav2kp.extraction import landmarks

    try:
        report = landmarks.extract(
            args.source,
            out_dir=Path(args.out) if args.out else None,
            n_jobs=args.jobs,
            progress=True,
            force=args.force,
            cluster=args.cluster,
            batch=args.batch,
        )
    except (FileNotFoundError, NotADirectoryError, ValueError, OSError) as err:
        print(f"wav2kp extract: {err}", file=sys.stderr)
        return 2
    qc = report.qc
    print(
        f"{len(qc)} clips extracted ({report.n_cached} up to date), "
        f"{len(report.failures)} failed, in {report.wall_s:.1f} s -> {report.out_dir}"
    )
    if len(qc):
        cols = [
            "clip",
            "frames",
            "fps",
            "detection_rate",
            "longest_gap",
            "interpolated",
            "jitter_still_pct_iod",
            "redetections",
        ]
        with pd.option_context("display.max_rows", 40, "display.width", 200):
            print(qc[cols].round(3).to_string(index=False))
    for row in report.failures.itertuples():
        print(f"FAILED {row.clip}: {row.reason}", file=sys.stderr)
    return 1 if report.all_failed else 0


def _train_sets(args: argparse.Namespace):
    """The feature sets notebook 02 of the study built for this corpus and subset, else the
    default ones (built or reused from the extraction outputs), saying which."""
    from wav2kp import corpus, features, results

    try:
        sets = features.open_study_sets(args.corpus, args.subset)
        print(f"feature sets of the study (notebook 02): {sets['default'].out_dir.name}")
    except results.RecordError:
        clips = corpus.study_clips(args.corpus, args.subset)
        spec = features.FeatureSpec(seed=args.seed)
        sets = features.build_study_sets(
            clips, args.corpus, args.subset, spec, ("default", "original")
        )
        print(
            f"no feature sets recorded by notebook 02: default ones ({sets['default'].out_dir.name})"
        )
    return sets


def _cmd_train(args: argparse.Namespace) -> int:
    from wav2kp import config, training
    from wav2kp.training import models

    if args.model not in models.MODELS:
        print(
            f"wav2kp train: unknown model {args.model!r}; choose from "
            f"{', '.join(sorted(models.MODELS))}.",
            file=sys.stderr,
        )
        return 2
    try:
        sets = _train_sets(args)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"wav2kp train: {err}", file=sys.stderr)
        return 2
    klass = models.MODELS[args.model]
    fs = sets[klass.feature_set]
    cfg = training.TrainConfig(
        max_epochs=args.epochs,
        seed=args.seed,
        past_ms=args.past_ms,
        future_ms=args.future_ms,
        lr=args.lr,
        **({"batch_size": args.batch_size} if args.batch_size else {}),
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
    )
    run_dir = Path(args.run) if args.run else config.run_dir(args.corpus, args.subset, args.model)
    _, metrics = training.train_model(
        args.model, fs, cfg, run_dir=run_dir, **klass.width(args.hidden)
    )
    print(json.dumps({"run": str(run_dir), **metrics}, indent=2, default=float))
    return 0


def _parse_fps(text: str):
    from fractions import Fraction

    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"fps must be positive, got {text}")
    if abs(value - 29.97) < 0.006:
        return Fraction(30000, 1001)
    if abs(value - 59.94) < 0.006:
        return Fraction(60000, 1001)
    return Fraction(text).limit_denominator(1001)


def _cmd_predict(args: argparse.Namespace) -> int:
    from wav2kp import config, synthesis
    from wav2kp.training import inference

    try:
        predictor = (
            inference.Predictor(config.find_run(args.model), why="named with --model")
            if args.model
            else inference.Predictor.default()
        )
        print(f"model: {predictor.name} ({predictor.run_dir}): {predictor.why}", flush=True)
        face = None
        if args.face:
            from wav2kp.synthesis import render

            face = (
                render.FaceRenderer(size=args.size)
                if args.face == "corpus"
                else render.FaceRenderer.from_file(args.face, size=args.size)
            )
        out = Path(args.out) if args.out else (Path("predictions") / Path(args.speech).stem)
        pred, paths = synthesis.predict_recording(
            predictor, args.speech, out, fps=args.fps, emotion=args.emotion,
            head_motion=args.head_motion, motion_strength=args.motion_strength,
            blinks=args.blinks, seed=args.seed, face=face, size=args.size, vid2vid=args.vid2vid,
        )  # fmt: skip
    except inference.PredictError as err:
        print(f"wav2kp predict: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"wav2kp predict: {err}", file=sys.stderr)
        return 2
    if pred.padded_s:
        past, future = predictor.context_s
        print(
            f"note: {args.speech} lasts {len(pred.audio) / inference.RATE:.2f} s, shorter "
            f"than the context of {predictor.name} ({past:.2f} s before + {future:.2f} s after "
            f"a frame); it was padded with {pred.padded_s:.2f} s of silence on each side, "
            f"cut from the output again."
        )
    print(
        f"{len(pred.times)} frames at {float(pred.fps):.3f} fps by {predictor.name} "
        f"({predictor.run_dir}) -> {out}"
    )
    for what, path in paths.items():
        print(f"  {what}: {path}")
    return 0


def _cmd_evaluate_real(args: argparse.Namespace) -> int:
    import pandas as pd

    from wav2kp import config
    from wav2kp.evaluation import real as realeval
    from wav2kp.manifest import write_csv_atomic, write_json_atomic
    from wav2kp.training import inference

    try:
        if args.model:
            runs = {Path(m).name: config.find_run(m) for m in args.model}
        else:
            best = inference.Predictor.default().run_dir  # loaded once, to find it
            runs = {best.name: best}
        result = realeval.evaluate_real(
            args.folder, runs, n_jobs=args.jobs, progress=True, cluster=args.cluster
        )
    except (inference.PredictError, FileNotFoundError, ValueError) as err:
        print(f"wav2kp evaluate-real: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else config.reports_dir() / "real"
    pd.set_option("display.width", 160)
    videos, speech = result["videos"], result["speech"]
    if len(videos):
        cols = ["file", "model", "mouth_corr", "offset_ms", "area_corr"]
        print(videos[cols].round(3).to_string(index=False))
        print("\nmean over files:")
        print(realeval.summary(videos).round(3).to_string())
        write_csv_atomic(out / "real_videos.csv", videos)
    if len(speech):
        print("\naudio without video:")
        print(speech.round(3).to_string(index=False))
        write_csv_atomic(out / "real_speech.csv", speech)
    if len(result["failures"]):
        print("\nfailures:")
        print(result["failures"].to_string(index=False))
    write_json_atomic(
        out / "real.json",
        {
            "folder": str(args.folder),
            "runs": {k: str(v) for k, v in runs.items()},
            "summary": realeval.summary(videos).reset_index().to_dict("records")
            if len(videos)
            else [],
            "speech": speech.to_dict("records"),
            "failures": result["failures"].to_dict("records"),
        },
    )
    print(f"-> {out}")
    return 0 if (len(videos) or len(speech)) else 1


def _cmd_release_model(args: argparse.Namespace) -> int:
    from wav2kp import config, results
    from wav2kp.training import release

    path = Path(args.results) if args.results else results.results_path()
    run = config.find_run(args.run) if args.run else release.default_run(live=args.live)
    if run is None or not (Path(run) / "config.json").is_file():
        print(
            f"wav2kp release-model: no run to release ({run or 'the last study chose none: ' + str(path)});"
            f" run the full study first (make study) or pass --run RUN.",
            file=sys.stderr,
        )
        return 2
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if record.get("profile") != "full" and not args.any_profile:
        print(
            f"wav2kp release-model: {path} is from profile {record.get('profile')!r}; a "
            f"release comes from the full study (make study), or pass --any-profile.",
            file=sys.stderr,
        )
        return 2
    out = config.LIVE_SHIPPED_DIR if args.live else config.SHIPPED_DIR
    info = release.release(run, path if path.is_file() else None, out_dir=out)
    print(json.dumps({k: info[k] for k in ("model", "run", "weights_bytes", "check")}, indent=2))
    print(f"-> {out}")
    fitted = results.motion_file()
    if not args.live and record and fitted is not None:
        # the study's head-motion model ships beside its default model
        from wav2kp.synthesis import motion

        model = motion.MotionModel.load(fitted)
        model.fitted_on.update(
            feature_set=f"{record['corpus']} {record['subset']} (train split)",
            study_commit=record.get("commit"),
        )
        print(f"-> {model.save(motion.SHIPPED_FILE)}")
    return 0


def _cmd_check_pages(args: argparse.Namespace) -> int:
    from wav2kp import browser, config

    html_dir = Path(args.html) if args.html else config.reports_dir() / "html"
    screens = Path(args.screens) if args.screens else config.reports_dir() / "screens"
    try:
        report = browser.check_pages(html_dir, screens)
    except (browser.BrowserMissing, FileNotFoundError) as err:
        print(f"wav2kp check-pages: {err}", file=sys.stderr)
        return 2
    for name, page in report["pages"].items():
        players = page["players"]
        worst = max((p["worst_frame_error"] or 0 for p in players), default=None)
        print(
            f"{name}: {len(page['media'])} media (played: "
            f"{sum(m['advanced'] for m in page['played'])}), {len(page['images'])} images, "
            f"{page['links']} links, {len(players)} player(s)"
            + (f", worst frame error {worst}" if players else "")
            + f", {len(page['console_errors'])} console errors"
        )
    print(f"screenshots: {screens}")
    for problem in report["problems"]:
        print(f"PROBLEM {problem}")
    return 1 if report["problems"] else 0


def _cmd_live(args: argparse.Namespace) -> int:
    import time

    from wav2kp import live
    from wav2kp.training import inference

    try:
        model = live.load_model(args.model)
    except inference.PredictError as err:
        print(f"wav2kp live: {err}", file=sys.stderr)
        return 2
    model.head_motion, model.blinks = args.head_motion, args.blinks
    model.strength = args.motion_strength
    try:
        server = live.Server(model, port=args.port, max_sessions=args.max_sessions)
    except ValueError as err:
        print(f"wav2kp live: {err}", file=sys.stderr)
        return 2
    try:
        url = server.start()
    except OSError as err:
        print(err, file=sys.stderr)
        return 2
    print(
        f"wav2kp live: model {model.label}, about {model.latency_bound_ms:.0f} ms from sound to "
        f"keypoint (+ transport)\nopen {url} in a browser on this computer (Ctrl-C to stop)",
        flush=True,
    )
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from wav2kp import doctor

    return doctor.main()


def _motion_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--head-motion",
        choices=["none", "natural"],
        default="none",
        help="move the head with the speech, as the corpus's speaker does (default none)",
    )
    parser.add_argument(
        "--motion-strength", type=float, default=1.0, help="scale of the head motion (default 1)"
    )
    parser.add_argument("--blinks", action="store_true", help="blink, as the corpus's speaker does")
    parser.add_argument("--seed", type=int, default=0, help="seed of the motion and blinks")


CLUSTER_HELP = (
    "run the per-clip work on Dask: local:N (a LocalCluster of N processes) or a scheduler "
    "address such as tcp://host:8786 (default: joblib on this machine)"
)


def _cluster_arg(text: str) -> str:
    """``--cluster`` checked when the command line is read (a clear usage error, not a
    traceback after minutes of work)."""
    from wav2kp import parallel

    try:
        parallel.parse_cluster(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wav2kp", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("study", help="run the notebooks headlessly and export HTML reports")
    p.add_argument("--profile", default="quick", help="configs/<profile>.yaml (quick or full)")
    p.add_argument(
        "--only", action="append", metavar="NN", help="run only notebook NN (repeatable)"
    )
    p.add_argument("--from", metavar="NN", help="start at notebook NN")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="key=value",
        help="override a notebook parameter (value parsed as YAML); repeatable",
    )
    p.add_argument(
        "--quiet", action="store_true", help="one line per notebook instead of its cells' output"
    )
    p.set_defaults(func=_cmd_study)

    pc = sub.add_parser("corpus", help="the bundled corpus and clip tables")
    csub = pc.add_subparsers(dest="corpus_command", required=True)
    b = csub.add_parser("build", help="build (or update) the bundled synthetic corpus")
    b.add_argument(
        "--profile",
        default="full",
        choices=["quick", "full"],
        help="quick: 24 clips; full: all 132",
    )
    b.add_argument("--out", help="output folder (default data/raw/bundled)")
    b.add_argument("--jobs", type=int, default=-1, help="parallel workers (-1: all cores)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--cluster",
        type=_cluster_arg,
        help=CLUSTER_HELP,
    )
    b.set_defaults(func=_cmd_corpus_build)
    ls = csub.add_parser("list", help="print the clip table of a folder")
    ls.add_argument(
        "folder", nargs="?", default="bundled", help="a folder of videos, or 'bundled' (default)"
    )
    ls.add_argument(
        "--no-check",
        action="store_true",
        help="do not read each clip's headers (by default unusable clips are listed, exit 1)",
    )
    ls.set_defaults(func=_cmd_corpus_list)

    ex = sub.add_parser("extract", help="16 kHz audio and 68 dlib keypoints per frame of videos")
    ex.add_argument("source", help="a folder of videos, one video file, or 'bundled'")
    ex.add_argument("--out", help="output folder (default data/interim/<corpus>)")
    ex.add_argument("--jobs", type=int, default=-1, help="parallel workers (-1: all cores)")
    ex.add_argument(
        "--batch",
        type=int,
        default=1,
        help="clips per Dask task (with --cluster; default 1; e.g. 50 for a million clips)",
    )
    ex.add_argument(
        "--cluster",
        type=_cluster_arg,
        help=CLUSTER_HELP,
    )
    ex.add_argument("--force", action="store_true", help="re-extract clips that are up to date")
    ex.set_defaults(func=_cmd_extract)

    tr = sub.add_parser("train", help="train one model on the processed features of a corpus")
    tr.add_argument(
        "--model",
        required=True,
        help="mean_face, energy, ridge, lstm_original, lstm, tcn or tcn_emotion",
    )
    tr.add_argument("--epochs", type=int, default=40, help="cap on epochs (early stopping)")
    tr.add_argument(
        "--corpus",
        default="bundled",
        help="'bundled' or a folder of videos (extracted with `wav2kp extract`)",
    )
    tr.add_argument("--subset", default="full", help="bundled corpus subset: quick or full")
    tr.add_argument("--hidden", type=int, help="LSTM hidden size / TCN channels")
    tr.add_argument("--lr", type=float, help="learning rate (default: the model's)")
    tr.add_argument("--past-ms", type=float, default=200.0)
    tr.add_argument("--future-ms", type=float, default=200.0)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--batch-size", type=int, help="utterances (or windows) per step and process")
    tr.add_argument(
        "--devices", type=int, default=1, help="processes (CPU) or GPUs per node (default 1)"
    )
    tr.add_argument("--num-nodes", type=int, default=1, help="machines (default 1)")
    tr.add_argument(
        "--strategy",
        default="auto",
        help="Lightning strategy: ddp_spawn (several processes of this machine), ddp (under "
        "torchrun or SLURM, see docs/scaling.md), auto (default)",
    )
    tr.add_argument("--run", help="run folder (default data/models/<corpus>_<subset>_<model>)")
    tr.set_defaults(func=_cmd_train)

    pr = sub.add_parser(
        "predict",
        help="keypoints (npy, csv), a sketch video and optionally a "
        "face video from any speech recording",
    )
    pr.add_argument("speech", help="an audio or video file (wav, flac, mp3, m4a, ogg, mp4, ...)")
    pr.add_argument(
        "--model",
        help="a run folder or run name under data/models (default: the model the last study's "
        "notebook 04 chose, else the one shipped with the package; the output says which)",
    )
    pr.add_argument(
        "--emotion",
        help="emotion name or number for emotion-conditioned models (e.g. Joy, Anger, neutral)",
    )
    pr.add_argument("--out", help="output folder (default predictions/<file name>)")
    pr.add_argument(
        "--face", help="a photo with a face to animate, or 'corpus' for the bundled corpus face"
    )
    pr.add_argument(
        "--fps",
        type=_parse_fps,
        default=_parse_fps("29.97"),
        help="output frame rate (default 29.97 = 30000/1001)",
    )
    pr.add_argument("--size", type=int, default=256, help="video size in pixels (default 256)")
    _motion_arguments(pr)
    pr.add_argument(
        "--vid2vid",
        action="store_true",
        help="also export keypoints and edge maps in NVIDIA vid2vid's face layout",
    )
    pr.set_defaults(func=_cmd_predict)

    er = sub.add_parser(
        "evaluate-real",
        help="score models on real talking-head videos (and "
        "audio-only files) with identity-free metrics",
    )
    er.add_argument("folder", help="a folder of videos and/or audio files")
    er.add_argument(
        "--model",
        action="append",
        help="run folder or name (repeatable; default: the study's chosen model, else the "
        "shipped one)",
    )
    er.add_argument("--out", help="output folder (default reports/real)")
    er.add_argument("--jobs", type=int, default=-1, help="parallel extraction workers")
    er.add_argument(
        "--cluster",
        type=_cluster_arg,
        help=CLUSTER_HELP,
    )
    er.set_defaults(func=_cmd_evaluate_real)

    rm = sub.add_parser(
        "release-model",
        help="ship a study's default model inside the package (wav2kp/shipped)",
    )
    rm.add_argument("--run", help="run folder or name (default: the last study's default model)")
    rm.add_argument("--results", help="the study's results.json (default reports/results.json)")
    rm.add_argument(
        "--any-profile", action="store_true", help="allow a run from a profile other than full"
    )
    rm.add_argument(
        "--live", action="store_true", help="ship the study's live model (wav2kp/shipped_live)"
    )
    rm.set_defaults(func=_cmd_release_model)

    lv = sub.add_parser(
        "live",
        help="serve a local page that captures the microphone and draws the keypoints live",
    )
    lv.add_argument(
        "--model", help="run folder or name (default: the last study's live model, or the default)"
    )
    lv.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    lv.add_argument("--open", action="store_true", help="open the page in the default browser")
    lv.add_argument(
        "--max-sessions", type=int, default=None,
        help="streams served at once; more are refused (default 4 per core)",
    )  # fmt: skip
    lv.add_argument(
        "--head-motion", choices=["none", "natural"], default="natural",
        help="head motion the page starts with (default natural; the page can turn it off)",
    )  # fmt: skip
    lv.add_argument("--motion-strength", type=float, default=1.0, help="scale of the head motion")
    lv.add_argument(
        "--no-blinks", dest="blinks", action="store_false", help="no blinks (default: blinks)"
    )
    lv.set_defaults(func=_cmd_live)

    cp = sub.add_parser(
        "check-pages",
        help="open the study's HTML pages in headless Chromium and check links, media, images, "
        "players and the console; screenshots to reports/screens",
    )
    cp.add_argument("html", nargs="?", help="folder of pages (default reports/html)")
    cp.add_argument("--screens", help="where screenshots go (default reports/screens)")
    cp.set_defaults(func=_cmd_check_pages)

    dr = sub.add_parser(
        "doctor",
        help="check that this environment can run the study: one line "
        "per check, with a fix for each failure",
    )
    dr.set_defaults(func=_cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
