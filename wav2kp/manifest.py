"""What produced an artefact: package versions, the git commit, input hashes, atomic writes.

Every artefact directory carries a ``manifest.json`` built from these pieces, so a stage can tell
whether its cached output is still valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from wav2kp import config


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """``{"python": ..., package: version or "not installed"}``."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temp path (``.<stem>.<pid>.partial<suffix>``, same folder) to write
    ``path`` through: renamed onto ``path`` when the block succeeds, removed in every case
    otherwise, so nothing is ever left half-written. The process id keeps two processes writing
    the same file (the ranks of a DDP run, two Dask workers) from sharing a temp file: the last
    rename wins, whole."""
    path = Path(path)
    tmp = _partial(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _partial(path: Path) -> Path:
    """This process's temporary name for ``path`` (its folder made): ``.<stem>.<pid>.partial
    <suffix>``, what :func:`remove_stale_partials` recognises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


@contextlib.contextmanager
def scratch_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file's path named as :func:`atomic_path`'s temp for ``path`` (so
    what a killed process left is removed by :func:`remove_stale_partials`), removed when the
    block ends, whatever happens: working space that never becomes ``path``."""
    tmp = _partial(Path(path))
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


_PARTIAL = re.compile(r"^\..*\.(\d+)\.partial")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_partials(root: str | os.PathLike) -> list[Path]:
    """Remove the temporaries (:func:`atomic_path`: ``.<name>.<pid>.partial...``) under
    ``root`` whose writer is no longer running: what a killed process left half-written (never
    read: the real file is renamed into place only when complete). Returns what was removed."""
    removed = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for path in root.rglob(".*partial*"):
        match = _PARTIAL.match(path.name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue  # not a temporary, or one being written
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def inputs_sha256(*paths: str | os.PathLike) -> str:
    """One sha256 for several input files (the hash of their hashes, in order): what a derived
    artefact records about what it was made from."""
    return hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest()


def write_json_atomic(path: str | os.PathLike, data: Any, default=str) -> Path:
    """Write ``data`` as indented UTF-8 JSON, atomically (:func:`atomic_path`); ``default``
    turns what JSON cannot hold into something it can (``str`` unless given)."""
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps(data, indent=2, ensure_ascii=False, default=default), encoding="utf-8"
        )
    return Path(path)


def write_npz_atomic(path: str | os.PathLike, **arrays: Any) -> Path:
    """Write arrays to a compressed ``.npz``, atomically (:func:`atomic_path`)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def write_csv_atomic(path: str | os.PathLike, table: Any) -> Path:
    """Write a pandas table as CSV without its index, atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def git_commit(repo: Path | None = None) -> str:
    """Short commit of ``repo`` (default the repository root), ``-dirty`` if tracked files changed."""
    repo = repo or config.REPO_ROOT

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit
