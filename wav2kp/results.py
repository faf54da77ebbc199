"""The study's records: where each notebook leaves its numbers, and what they decide.

Every notebook writes one record, its own, with :func:`save`: ``reports/<stage>/<NN_stage>.json``
(:func:`record_path`; ``00_corpus`` -> ``reports/corpus/00_corpus.json``). Nothing else writes a
notebook's record, and nothing else knows where it lives.

``reports/results.json`` is not a record of its own: it is notebook 04's record (the test-split
scores, the ablations, the levers, the default model) with the sections later notebooks add
merged in (:data:`MERGED`: notebook 05's head-motion statistics), rewritten by :func:`save`
whenever any record changes. Re-running one notebook therefore never drops another's section.
``reports/results.md`` is notebook 04's table as Markdown (:func:`save` with ``markdown=``).

Readers ask this module, not the files:

- :func:`study` -- the merged record (what ``results.json`` holds);
- :func:`default_run` -- the run ``wav2kp predict`` uses after a study: the default model notebook
  04 chose, with the reason; :func:`live_run` -- the live model (``wav2kp live``);
  :func:`motion_file` -- the head-motion model notebook 05 fitted;
- :func:`require` -- an earlier notebook's record for this corpus and subset, or a clear error
  saying which notebook to run (how notebook 03 finds notebook 02's feature sets, notebook 04
  notebook 03's runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wav2kp import config
from wav2kp.manifest import atomic_path, write_json_atomic

__all__ = [
    "MERGED",
    "NOTEBOOKS",
    "Choice",
    "RecordError",
    "default_run",
    "live_run",
    "load",
    "markdown_path",
    "motion_file",
    "record_path",
    "require",
    "results_path",
    "save",
    "study",
]

#: The study's notebooks, in order: each has one record.
NOTEBOOKS = (
    "00_corpus",
    "01_extraction",
    "02_features",
    "03_training",
    "04_evaluation",
    "05_synthesis",
)
#: The notebook whose record ``results.json`` is built on.
BASE = "04_evaluation"
#: Sections of later notebooks' records merged into ``results.json``: ``{notebook: (key, ...)}``.
MERGED = {"05_synthesis": ("motion",)}


class RecordError(FileNotFoundError):
    """An earlier notebook's record is missing, or is of another corpus or subset: the
    message names the notebook to run."""


def _check(notebook: str) -> str:
    if notebook not in NOTEBOOKS:
        raise ValueError(f"Unknown notebook {notebook!r}; the study's notebooks: {NOTEBOOKS}.")
    return notebook


def record_path(notebook: str) -> Path:
    """``reports/<stage>/<notebook>.json``: where notebook ``"NN_stage"`` leaves its numbers."""
    return config.reports_dir() / _check(notebook).split("_", 1)[1] / f"{notebook}.json"


def results_path() -> Path:
    """``reports/results.json``: notebook 04's record with the later notebooks' sections."""
    return config.reports_dir() / "results.json"


def markdown_path() -> Path:
    """``reports/results.md``: notebook 04's main table as Markdown."""
    return config.reports_dir() / "results.md"


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and lists; anything else as text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def load(notebook: str) -> dict | None:
    """A notebook's record, ``None`` when it has not written one (or it is unreadable)."""
    try:
        return json.loads(record_path(notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def save(notebook: str, numbers: dict[str, Any], markdown: str | None = None) -> Path:
    """Write a notebook's record atomically (numpy values as plain JSON) and refresh
    ``results.json``; notebook 04 also passes its ``markdown`` table (``results.md``).
    Returns the record's path."""
    path = write_json_atomic(record_path(notebook), numbers, default=_plain)
    if markdown is not None:
        with atomic_path(markdown_path()) as tmp:
            Path(tmp).write_text(markdown, encoding="utf-8")
    _refresh()
    return path


def _same_study(a: dict, b: dict) -> bool:
    return str(a.get("corpus")) == str(b.get("corpus")) and a.get("subset") == b.get("subset")


def study() -> dict | None:
    """The merged record: notebook 04's, with each :data:`MERGED` section of a later notebook
    that ran on the same corpus and subset; ``None`` before notebook 04 has run."""
    base = load(BASE)
    if base is None:
        return None
    for notebook, keys in MERGED.items():
        later = load(notebook)
        if later is None or not _same_study(base, later):
            continue
        base.update({k: later[k] for k in keys if k in later})
    return base


def _refresh() -> None:
    """Rewrite ``results.json`` from the records (removed when notebook 04 has none)."""
    merged = study()
    if merged is None:
        results_path().unlink(missing_ok=True)
    else:
        write_json_atomic(results_path(), merged, default=_plain)


def require(notebook: str, corpus: str | Path, subset: str | None, need: str = "") -> dict:
    """Notebook ``notebook``'s record, which must be of ``corpus`` and ``subset``; a
    :class:`RecordError` naming the notebook to run otherwise (``need``: what the caller
    wanted from it, for the message)."""
    record = load(notebook)
    what = f" ({need})" if need else ""
    rerun = f"wav2kp study --only {notebook[:2]} -p corpus={corpus}" + (
        f" -p subset={subset}" if subset else ""
    )
    if record is None:
        raise RecordError(
            f"Notebook {notebook} has not run yet: {record_path(notebook)} does not exist{what}. "
            f"Run it first: {rerun} (or the whole study)."
        )
    if not _same_study(record, {"corpus": str(corpus), "subset": subset}):
        raise RecordError(
            f"Notebook {notebook}'s record ({record_path(notebook)}) is for corpus "
            f"{record.get('corpus')!r}, subset {record.get('subset')!r}, not {str(corpus)!r}, "
            f"{subset!r}{what}. Run it for this corpus first: {rerun}."
        )
    return record


# --------------------------------------------------------------------------- what they decide


@dataclass(frozen=True)
class Choice:
    """A run the study chose: its folder, its label in the study, and why it is the one."""

    run: Path
    label: str
    reason: str


def _finished(run: Path) -> bool:
    """A run whose training finished (its ``metrics.json`` is written last)."""
    return (run / "config.json").is_file() and (run / "metrics.json").is_file()


def _study_choice(label: str | None, record: dict, what: str) -> Choice | None:
    if not label:
        return None
    run = config.run_dir(record.get("corpus", "bundled"), record.get("subset"), label)
    if not _finished(run):
        return None
    origin = f"profile {record.get('profile')}, commit {str(record.get('commit'))[:12]}"
    return Choice(run, str(label), f"{what} ({results_path()}, {origin})")


def default_run() -> Choice | None:
    """The default model notebook 04 chose (``default_model``, else its ``best_model``), when
    its run is there and finished; ``None`` before any study."""
    record = study()
    if record is None:
        return None
    if record.get("default_model"):
        return _study_choice(record["default_model"], record, "the default model notebook 04 chose")
    return _study_choice(record.get("best_model"), record, "the best model of notebook 04")


def live_run() -> Choice | None:
    """The live model of the last study (notebook 04's ``levers.live_model``), when its run is
    there and finished."""
    record = study()
    if record is None:
        return None
    label = (record.get("levers") or {}).get("live_model")
    return _study_choice(label, record, "the live model notebook 04 trained")


def motion_file() -> Path | None:
    """The head-motion model notebook 05 fitted (``motion.file`` of its record), when it
    exists."""
    record = load("05_synthesis") or {}
    file = (record.get("motion") or {}).get("file")
    return Path(file) if file and Path(file).is_file() else None
