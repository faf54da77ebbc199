"""Running the study: the notebooks executed with papermill, one after the other.

This module is the runner only: what the notebooks record is :mod:`wav2kp.results`, how their
pages and the index look is :mod:`wav2kp.pages`; the notebooks import neither this module nor
anything from it.

``run_study`` executes ``notebooks/NN_*.ipynb`` in numeric order with the parameters of a profile
(``configs/<profile>.yaml``) plus command-line overrides, writes each executed notebook to
``reports/executed/<name>.ipynb`` and its HTML page to ``reports/html/<name>.html``, and keeps
``reports/html/index.html`` (and the same data as ``reports/html/study.json``) up to date after
every notebook, so that even an interrupted study leaves a valid index.

The kernel is ``python3`` with the repository root as working directory; it inherits this process'
environment, so ``WAV2KP_HOME`` (where ``data/`` and ``reports/`` go) reaches the notebooks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from wav2kp import config, pages
from wav2kp.manifest import git_commit, package_versions, remove_stale_partials

#: ``NN_name.ipynb``: two digits, an underscore, a name.
NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_.+\.ipynb$")
KERNEL_NAME = "python3"
#: How much of a failing cell's source and traceback a ``StudyError`` message shows (lines).
SOURCE_LINES = 15
TRACEBACK_LINES = 12

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: Exponent floats PyYAML (YAML 1.1) reads as strings: ``1e-3``, ``2E5``.
_EXP_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


class StudyError(RuntimeError):
    """A notebook failed; the message names it, the failing cell and the error.

    ``runs`` holds every selected notebook's :class:`NotebookRun` (the failed one included).
    """

    def __init__(self, message: str, runs: list[NotebookRun] | None = None):
        super().__init__(message)
        self.runs = runs or []


@dataclass
class NotebookRun:
    """One notebook of a study run.

    ``status`` is ``"ok"``, ``"failed"`` or ``"skipped"`` (not run: after a failure, or not
    selected), and ``"pending"`` only while the study runs. ``wall_s`` is the execution plus
    export time in seconds (``None`` if not run).
    """

    key: str
    name: str
    path: Path
    executed_path: Path
    html_path: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    wall_s: float | None = None
    error: str | None = None
    selected: bool = True


# --------------------------------------------------------------------------- overrides


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``["key=value", ...]``; each value is read as YAML (``n=3`` -> 3, ``flag=true`` -> True).

    Exponent floats such as ``lr=1e-3`` are floats too (PyYAML alone would keep them strings).
    Raises ``ValueError`` naming an item that is not ``key=value`` with a valid identifier as key.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(
                f"Malformed parameter {item!r}: expected key=value with a Python identifier "
                f"as key, e.g. -p n_clips=4."
            )
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise ValueError(
                f"Malformed parameter {item!r}: the value is not valid YAML ({err})."
            ) from err
        overrides[key] = (
            float(value) if isinstance(value, str) and _EXP_FLOAT.match(value) else value
        )
    return overrides


# --------------------------------------------------------------------------- notebooks


def find_notebooks(notebooks_dir: Path | None = None) -> dict[str, Path]:
    """``{"00": .../00_corpus.ipynb, ...}`` for every ``NN_*.ipynb`` in ``notebooks_dir``, in order."""
    folder = Path(notebooks_dir) if notebooks_dir is not None else config.NOTEBOOKS_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"Notebook folder {folder} does not exist.")
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.ipynb")):
        match = NOTEBOOK_PATTERN.match(path.name)
        if not match:
            continue
        key = match.group(1)
        if key in found:
            raise ValueError(
                f"Two notebooks numbered {key} in {folder}: {found[key].name}, {path.name}."
            )
        found[key] = path
    if not found:
        raise FileNotFoundError(f"No NN_*.ipynb notebooks in {folder}.")
    return dict(sorted(found.items()))


def _normalise_key(text: str, notebooks: dict[str, Path]) -> str:
    """``"3"``, ``"03"`` or ``"03_training"`` -> ``"03"``; ``ValueError`` when nothing matches."""
    text = str(text).strip()
    key = f"{int(text):02d}" if text.isdigit() else text.split("_", 1)[0]
    if key not in notebooks:
        existing = ", ".join(p.name for p in notebooks.values())
        raise ValueError(f"No notebook {text!r}. Existing notebooks: {existing}.")
    return key


def select_notebooks(
    notebooks: dict[str, Path], only: Iterable[str] | None = None, start: str | None = None
) -> list[str]:
    """Keys to run: all, or those in ``only``, from ``start`` on (both apply when both are given)."""
    keys = list(notebooks)
    if only:
        wanted = {_normalise_key(k, notebooks) for k in only}
        keys = [k for k in keys if k in wanted]
    if start is not None:
        first = _normalise_key(start, notebooks)
        keys = [k for k in keys if k >= first]
    if not keys:
        raise ValueError(f"No notebook selected by only={only!r} and start={start!r}.")
    return keys


def declared_parameters(path: Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (empty when there is none)."""
    import papermill

    try:
        return list(papermill.inspect_notebook(str(path)))
    except Exception as err:  # papermill raises ValueError, KeyError... on odd notebooks
        raise ValueError(
            f"{path}: cannot read its parameters cell ({type(err).__name__}: {err}). "
            f"Check that the notebook's kernelspec is {KERNEL_NAME!r} and the cell tagged "
            f"'parameters' holds plain assignments."
        ) from err


def resolve_parameters(
    profile: dict[str, Any],
    declared: dict[str, list[str]],
    overrides: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Parameters per notebook key: the profile's, then ``overrides``, kept only where declared.

    ``declared`` maps each selected key to the names its parameters cell assigns. A profile key a
    notebook does not declare is dropped; an override no selected notebook declares is a
    ``ValueError`` listing each notebook's parameters.
    """
    overrides = overrides or {}
    everything = {name for names in declared.values() for name in names}
    unknown = [k for k in overrides if k not in everything]
    if unknown:
        listing = "; ".join(f"{k}: {', '.join(v) or '(none)'}" for k, v in declared.items())
        raise ValueError(
            f"Unknown parameter(s) {', '.join(map(repr, unknown))}: no selected notebook "
            f"declares them. Parameters by notebook: {listing}."
        )
    resolved = {}
    for key, names in declared.items():
        merged = {**config.notebook_parameters(profile, key), **overrides}
        resolved[key] = {name: merged[name] for name in names if name in merged}
    return resolved


# --------------------------------------------------------------------------- execution


def _shorten(lines: list[str], keep: int, tail: bool = False) -> str:
    if len(lines) <= keep:
        return "\n".join(lines)
    if tail:
        return "\n".join([f"... ({len(lines) - keep} lines above)"] + lines[-keep:])
    return "\n".join(lines[:keep] + [f"... ({len(lines) - keep} more lines)"])


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _cells(path: Path) -> list:
    import nbformat

    return nbformat.read(str(path), as_version=4).cells


def _injected_at(cells: list, injected: bool) -> int | None:
    """Where papermill puts its injected-parameters cell in the executed notebook: right after
    the cell tagged ``parameters``, or at the top when there is none; ``None`` without one."""
    if not injected:
        return None
    tagged = [
        i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    return tagged[0] + 1 if tagged else 0


def _source_cell_index(source: Path, executed_index: int, injected: bool) -> int:
    """Index in the source notebook of cell ``executed_index`` of the executed one."""
    at = _injected_at(_cells(source), injected)
    return executed_index - 1 if at is not None and executed_index > at else executed_index


def describe_failure(run: NotebookRun, err: BaseException) -> str:
    """Human-readable account of why ``run`` failed: the cell, its source and the error."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(err, PapermillExecutionError):
        return f"{type(err).__name__}: {err}"
    index = _source_cell_index(run.path, err.cell_index, injected=bool(run.parameters))
    traceback = _ANSI.sub("", "\n".join(err.traceback or [])).splitlines()
    return (
        f"cell {index} (In [{err.exec_count}]):\n"
        f"{_indent(_shorten(str(err.source).splitlines(), SOURCE_LINES))}\n"
        f"{err.ename}: {err.evalue}\n"
        f"{_indent(_shorten(traceback, TRACEBACK_LINES, tail=True))}"
    )


def _kernel_config() -> dict[str, Any]:
    """Engine options for papermill: a kernel whose own stdout/stderr go nowhere (everything it
    prints reaches us through papermill), and encrypted kernel transport when pyzmq supports it.

    ipykernel copies what the kernel's processes write to its file descriptors (a training
    worker's epochs, a library's warnings) onto the terminal that started the kernel as well
    as into the notebook: the terminal would show it twice, once raw. And ipykernel warns on
    stderr when it runs over TCP without CurveZMQ keys; ``transport_encryption="auto"`` lets
    jupyter_client provision them.
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    options: dict[str, Any] = {"kernel_manager_class": _quiet_kernel_manager()}
    if zmq.has("curve") and KernelManager.class_traits().get("transport_encryption"):
        options["config"] = Config({"KernelManager": {"transport_encryption": "auto"}})
    return options


@functools.lru_cache(maxsize=1)
def _quiet_kernel_manager():
    """nbclient's kernel manager, launching the kernel with stdout and stderr on /dev/null and
    matplotlib's inline backend."""
    import subprocess

    from jupyter_client import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw.update(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # figures go into the page whatever backend the caller uses (make test exports
            # MPLBACKEND=Agg, with which plt.show() in a kernel shows nothing)
            env = dict(kw.get("env") or os.environ)
            env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
            kw["env"] = env
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


class _Live:
    """Progress of a running notebook on a terminal: ``<name> cell N/M`` as each cell starts
    (from papermill's log) and every line the cells print, indented, as it arrives."""

    PREFIX = "      "

    def __init__(self, run: NotebookRun, out=None) -> None:
        self.name = run.path.stem
        # papermill numbers every cell, markdown too, after injecting its parameters cell: map
        # its numbers to the code cells' 1..M
        cells = _cells(run.path)
        kinds = [cell.cell_type for cell in cells]
        at = _injected_at(cells, bool(run.parameters))
        if at is not None:
            kinds.insert(at, "code")
        code = [i + 1 for i, kind in enumerate(kinds) if kind == "code"]
        self.numbers = {n: k for k, n in enumerate(code, 1)}
        self.total = len(code)
        self.out = out or sys.stdout
        self._line_open = False

    # the cells' printed output (papermill's stdout_file / stderr_file)
    def write(self, text: str) -> int:
        # on a terminal a carriage return rewrites the line (a progress bar stays one line);
        # elsewhere (a log file) every state is a line of its own
        tty = bool(getattr(self.out, "isatty", lambda: False)())
        for piece in re.split(r"(\r|\n)", text):
            if piece in ("\r", "\n"):
                if self._line_open:
                    self.out.write("\r\x1b[K" if piece == "\r" and tty else "\n")
                    self._line_open = False
            elif piece:
                if not self._line_open:
                    self.out.write(self.PREFIX)
                    self._line_open = True
                self.out.write(piece)
        self.out.flush()
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def cell(self, number: int) -> None:
        if number not in self.numbers:  # a markdown cell
            return
        self.write("\n")
        self.out.write(f"    {self.name}: cell {self.numbers[number]}/{self.total}\n")
        self.out.flush()

    @contextlib.contextmanager
    def attached(self):
        """Route papermill's "Executing Cell N" log records to :meth:`cell` while running."""
        live = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                m = re.match(r"Executing Cell (\d+)", record.getMessage())
                if m:
                    live.cell(int(m.group(1)))

        logger = logging.getLogger("papermill")
        handler, level, propagate = Handler(logging.INFO), logger.level, logger.propagate
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the outputs reach the terminal once, through write()
        try:
            yield self
        finally:
            self.write("\n")
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def execute(run: NotebookRun, live: bool = False) -> None:
    """Execute ``run.path`` into ``run.executed_path`` and export HTML; sets status, time, error.

    With ``live``, the terminal shows each cell as it starts (``cell N/M``) and what the cells
    print as they print it. A failing notebook still gets its (partial) executed notebook and
    HTML page; the failure is recorded in ``run.error`` and the exception is re-raised.
    """
    import papermill

    run.executed_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (run.executed_path, run.html_path):  # never report an earlier run's pages
        stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    watch = _Live(run) if live else None
    try:
        with watch.attached() if watch else contextlib.nullcontext():
            papermill.execute_notebook(
                str(run.path),
                str(run.executed_path),
                parameters=run.parameters,
                kernel_name=KERNEL_NAME,
                cwd=str(config.REPO_ROOT),
                progress_bar=False,
                log_output=live,
                stdout_file=watch,
                stderr_file=watch,
                **_kernel_config(),
            )
        pages.tidy_file(run.executed_path)
        pages.export_html(run.executed_path, run.html_path)
        run.status = "ok"
    except BaseException as err:
        run.status = "failed"
        run.error = describe_failure(run, err)
        if run.executed_path.is_file() and not run.html_path.is_file():  # papermill saved it
            with contextlib.suppress(Exception):  # keep the original failure
                pages.tidy_file(run.executed_path)
                pages.export_html(run.executed_path, run.html_path)
        raise
    finally:
        run.wall_s = time.perf_counter() - t0


# --------------------------------------------------------------------------- index


def _versions() -> dict[str, str]:
    return package_versions(("wav2kp", "papermill", "nbconvert"))


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive on Windows
        return str(path)


def study_manifest(info: dict[str, Any], runs: list[NotebookRun]) -> dict[str, Any]:
    """The run as JSON-able data: ``info`` (profile, commit, date...) plus one entry per notebook.

    Notebook sources are relative to the repository root (when inside it); executed notebooks
    and pages relative to the HTML folder, so the manifest and the pages can move together.
    """
    html_dir = config.reports_dir() / "html"
    notebooks = []
    for run in runs:
        entry = asdict(run)
        source = run.path.resolve()
        inside = source.is_relative_to(config.REPO_ROOT)
        entry["path"] = str(source.relative_to(config.REPO_ROOT) if inside else source)
        for key in ("executed_path", "html_path"):
            entry[key] = _relative(getattr(run, key), html_dir)
        entry["html_exists"] = run.html_path.is_file()
        entry["wall_s"] = None if run.wall_s is None else round(run.wall_s, 3)
        notebooks.append(entry)
    return {**info, "total_wall_s": round(info["total_wall_s"], 3), "notebooks": notebooks}


def write_index(info: dict[str, Any], runs: list[NotebookRun]) -> Path:
    """Write ``reports/html/study.json`` (the run as data) and ``reports/html/index.html``
    (:func:`wav2kp.pages.write_index`), atomically."""
    manifest = study_manifest(info, runs)
    pages.write_text(
        config.reports_dir() / "html" / "study.json",
        json.dumps(manifest, indent=2, default=str) + "\n",
    )
    shown = [(run.key, run.executed_path, run.html_path) for run in runs]
    return pages.write_index(manifest, shown)


# --------------------------------------------------------------------------- the study


def _plan(
    profile_name: str,
    only: list[str] | None,
    start: str | None,
    overrides: dict[str, Any] | None,
    notebooks_dir: Path | None,
) -> list[NotebookRun]:
    """One :class:`NotebookRun` per notebook found (unselected ones with ``selected=False``)."""
    profile = config.load_profile(profile_name)
    notebooks = find_notebooks(notebooks_dir)
    selected = select_notebooks(notebooks, only, start)
    declared = {key: declared_parameters(notebooks[key]) for key in selected}
    parameters = resolve_parameters(profile, declared, overrides)
    reports = config.reports_dir()
    return [
        NotebookRun(
            key=key,
            name=path.name,
            path=path,
            executed_path=reports / "executed" / path.name,
            html_path=reports / "html" / f"{path.stem}.html",
            parameters=parameters.get(key, {}),
            selected=key in parameters,
            status="pending" if key in parameters else "skipped",
        )
        for key, path in notebooks.items()
    ]


def run_study(
    profile: str = "quick",
    only: list[str] | None = None,
    start: str | None = None,
    overrides: dict[str, Any] | None = None,
    notebooks_dir: Path | None = None,
    live: bool = True,
) -> list[NotebookRun]:
    """Execute the selected notebooks in order and export their HTML pages and the index.

    ``live``: show each notebook's cells and printed lines on the terminal as they run.

    ``only`` lists notebook numbers (``["00", "02"]``); ``start`` runs that notebook and all after.
    Parameters: the profile's for each notebook, then ``overrides``, restricted to the names the
    notebook's parameters cell declares. Returns the selected notebooks' runs. Stops at the first
    failing notebook and raises :class:`StudyError` (after writing its HTML page and the index).
    """
    overrides = dict(overrides or {})
    all_runs = _plan(profile, only, start, overrides, notebooks_dir)
    runs = [run for run in all_runs if run.selected]
    info = {
        "profile": profile,
        "overrides": overrides,
        "git_commit": git_commit(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "total_wall_s": 0.0,
        "state": "running",
        "versions": _versions(),
        "selected": [run.key for run in runs],
    }
    t0 = time.perf_counter()
    failed: NotebookRun | None = None
    for root in (config.data_dir(), config.reports_dir()):  # what a killed study left
        stale = remove_stale_partials(root)
        if stale:
            print(f"removed {len(stale)} half-written file(s) an interrupted run left under {root}")
    try:
        write_index(info, all_runs)
        for i, run in enumerate(runs, 1):
            head = f"[{i}/{len(runs)}] {run.name}"
            print(f"{head} ...", end="\n" if live else " ", flush=True)
            try:
                execute(run, live=live)
            except Exception:
                failed = run
                print(f"{head + ' ' if live else ''}FAILED after {run.wall_s:.1f} s", flush=True)
                break
            except BaseException:
                print("interrupted", flush=True)
                raise
            print(f"{head + ' ' if live else ''}ok in {run.wall_s:.1f} s", flush=True)
            info["total_wall_s"] = time.perf_counter() - t0
            write_index(info, all_runs)
        info["state"] = "failed" if failed else "finished"
    except BaseException:
        info["state"] = "interrupted"
        raise
    finally:
        info["total_wall_s"] = time.perf_counter() - t0
        for run in runs:
            if run.status == "pending":
                run.status = "skipped"
        write_index(info, all_runs)
    if failed is not None:
        raise StudyError(
            f"notebook {failed.name} failed: {failed.error}\n"
            f"Executed notebook: {failed.executed_path}\nHTML page: {failed.html_path}",
            runs,
        )
    print(
        f"{len(runs)} notebook(s) ok in {info['total_wall_s']:.1f} s -> "
        f"{config.reports_dir() / 'html' / 'index.html'}",
        flush=True,
    )
    return runs
