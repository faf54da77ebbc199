"""Benchmark: the whole study, each notebook timed, cold and then again with nothing changed.

    python benchmarks/study.py [--profile full|quick] [--home DIR] [--skip-cold] [-p key=value ...]
                               [--save FIGURES.json] [--readme]
    python benchmarks/study.py --from FIGURES.json --readme

Runs ``wav2kp study`` (the same runner as ``make study``) in a subprocess with ``WAV2KP_HOME``
pointed at ``--home`` (default: a new temporary folder, so the first run builds everything from
scratch), reads the wall time of every notebook from ``reports/html/study.json``, then runs the
study a second time on the same data, where every stage should find its outputs up to date (the
corpus, the keypoints, the feature sets, the trained runs). ``--skip-cold`` times only the warm
run on an existing ``--home``; ``-p`` passes notebook parameters to both runs (e.g. ``-p
epochs=20``: what a changed parameter recomputes). The last line is one JSON object with the
figures; the README's timing table comes from it: ``--save`` keeps them in a file, ``--readme``
writes the table into README.md between its two ``study-times`` markers (``--from``: from
figures saved earlier, without running anything), so the table is never copied by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_study(home: Path, profile: str, params: list[str]) -> dict:
    cmd = [sys.executable, "-m", "wav2kp", "study", "--profile", profile, "--quiet"]
    for p in params:
        cmd += ["-p", p]
    env = {**os.environ, "WAV2KP_HOME": str(home), "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, text=True, capture_output=True)
    wall = time.perf_counter() - t0
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"wav2kp study failed (exit {proc.returncode})")
    record = json.loads((home / "reports" / "html" / "study.json").read_text(encoding="utf-8"))
    notebooks = {
        nb["name"].split(".")[0]: round(float(nb["wall_s"]), 1)
        for nb in record["notebooks"]
        if nb.get("wall_s") is not None
    }
    out = {"wall_s": round(wall, 1), "notebooks_s": notebooks, "commit": record["git_commit"]}
    results = home / "reports" / "results.json"
    if results.is_file():  # what the run found: every model's test M-LMD, the invariants
        from wav2kp import evaluation

        res = json.loads(results.read_text(encoding="utf-8"))
        out["test_mlmd"] = {m: r["mlmd"] for m, r in res["models"].items()}
        out["best_model"] = res["best_model"]
        out["invariants_broken"] = evaluation.check_invariants(res)
    return out


NOTEBOOKS = {
    "00_corpus": "00 corpus",
    "01_extraction": "01 extraction",
    "02_features": "02 features",
    "03_training": "03 training",
    "04_evaluation": "04 evaluation",
    "05_synthesis": "05 synthesis",
}
BEGIN, END = "<!-- study-times: begin", "<!-- study-times: end -->"


def table(figures: dict) -> str:
    """The README's timing table: one row per run of ``figures`` (cold, then warm), seconds
    per notebook and their total."""
    lines = [
        "| | " + " | ".join(NOTEBOOKS.values()) + " | total |",
        "|---" * (len(NOTEBOOKS) + 2) + "|",
    ]
    for key, what in (("cold", "first run"), ("warm", "again, nothing changed")):
        if key not in figures:
            continue
        secs = figures[key]["notebooks_s"]
        total = sum(secs.values())
        shown = f"{total:.0f} s" + (f" ({total / 60:.0f} min)" if total >= 600 else "")
        cells = [f"{secs[n]:.0f} s" if n in secs else "–" for n in NOTEBOOKS]
        lines.append(f"| {what} | " + " | ".join(cells) + f" | **{shown}** |")
    return "\n".join(lines)


def write_readme(figures: dict, readme: Path) -> None:
    """Replace the block between the markers of ``readme`` with :func:`table` (atomically)."""
    text = readme.read_text(encoding="utf-8")
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise SystemExit(f"{readme}: no '{BEGIN} ... -->' and '{END}' markers to write between")
    commit = (figures.get("cold") or figures["warm"]).get("commit", "?")
    head = f"{BEGIN} ({figures['profile']} profile, commit {commit}, benchmarks/study.py) -->"
    block = f"{head}\n{table(figures)}\n"
    tmp = readme.with_name(f".{readme.name}.partial")
    tmp.write_text(text[:start] + block + text[stop:], encoding="utf-8")
    os.replace(tmp, readme)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--home", help="WAV2KP_HOME to run in (default: a new temporary folder)")
    ap.add_argument("--skip-cold", action="store_true", help="time only the warm re-run")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="key=value")
    ap.add_argument("--save", help="also write the figures to this JSON file")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md")
    ap.add_argument("--from", dest="saved", help="figures saved by --save: run nothing")
    args = ap.parse_args()
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if args.saved:
        figures = json.loads(Path(args.saved).read_text(encoding="utf-8"))
        if args.readme:
            write_readme(figures, readme)
        print(table(figures))
        print(json.dumps(figures))
        return 0

    own = args.home is None
    home = Path(tempfile.mkdtemp(prefix="wav2kp-bench-study-")) if own else Path(args.home)
    try:
        figures: dict = {"benchmark": "study", "profile": args.profile, "params": args.param,
                         "cores": os.cpu_count()}  # fmt: skip
        if not args.skip_cold:
            print(f"cold run ({args.profile}) in {home}", flush=True)
            figures["cold"] = run_study(home, args.profile, args.param)
        print(f"warm run ({args.profile}), nothing changed", flush=True)
        figures["warm"] = run_study(home, args.profile, args.param)
        if "cold" in figures:
            figures["warm_over_cold"] = round(
                figures["warm"]["wall_s"] / figures["cold"]["wall_s"], 3
            )
        data = home / "data"
        figures["data_bytes"] = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    finally:
        if own:
            shutil.rmtree(home, ignore_errors=True)
    if args.save:
        Path(args.save).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    if args.readme:
        write_readme(figures, readme)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
