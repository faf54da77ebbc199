"""Project paths and profiles.

Every path the package writes to is resolved here, anchored at the repository root, so that
notebooks (whatever their working directory) and the CLI agree.

``WAV2KP_HOME`` moves the *generated* trees (``data/`` and ``reports/``) somewhere else: the tests
set it to a temporary folder so that ``make test`` never touches what ``make study`` produced.
Code (``notebooks/``, ``configs/``) is always read from the repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

#: Repository root (the folder that holds ``pyproject.toml``).
REPO_ROOT: Path = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR: Path = REPO_ROOT / "notebooks"
CONFIGS_DIR: Path = REPO_ROOT / "configs"
#: ``real_samples`` beside the checkout, present only on the team's machines.
SHARED_REAL_SAMPLES: Path = REPO_ROOT.parent / "shared" / "real_samples"

HOME_ENV = "WAV2KP_HOME"


def home() -> Path:
    """Root of the generated trees: ``$WAV2KP_HOME`` if set, else the repository root."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser().resolve() if value else REPO_ROOT


def data_dir() -> Path:
    """``<home>/data``: raw, interim, processed data and trained models."""
    return home() / "data"


def reports_dir() -> Path:
    """``<home>/reports``: executed notebooks, HTML pages, figures, media, results."""
    return home() / "reports"


def raw_dir(corpus: str) -> Path:
    return data_dir() / "raw" / corpus


def interim_dir(corpus: str) -> Path:
    return data_dir() / "interim" / corpus


def processed_dir(corpus: str, feature_set: str) -> Path:
    return data_dir() / "processed" / corpus / feature_set


def interim_dir_of(feature_set_dir: str | os.PathLike) -> Path:
    """The extraction folder a processed feature set was built from, in the same tree:
    ``<data>/processed/<corpus>/<set>`` -> ``<data>/interim/<corpus>`` (a feature set does not
    record where its interim data was)."""
    out = Path(feature_set_dir).resolve()
    return out.parent.parent.parent / "interim" / out.parent.name


def models_dir() -> Path:
    return data_dir() / "models"


#: The trained run shipped inside the package (:mod:`wav2kp.training.release`).
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


#: The live model (a short look-ahead, for ``wav2kp live``) shipped beside it.
LIVE_SHIPPED_DIR = SHIPPED_DIR.with_name("shipped_live")


def shipped_dir(live: bool = False) -> Path | None:
    """The shipped run's folder (``live``: the shipped live model's), or ``None`` when the
    package carries none."""
    folder = LIVE_SHIPPED_DIR if live else SHIPPED_DIR
    ok = (folder / "config.json").is_file() and (folder / "weights.pt").is_file()
    return folder if ok else None


def resolve(path: str | os.PathLike) -> Path:
    """A path given by the user or a notebook parameter: absolute as it is, ``~`` expanded, and
    a relative one taken from the repository root, never from the working directory (papermill
    runs notebooks in the root, nbval and JupyterLab in ``notebooks/``)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(os.path.normpath(REPO_ROOT / p))


def run_dir(corpus: str | os.PathLike, subset: str, name: str) -> Path:
    """``data/models/<corpus name>_<subset>_<name>``: the run folder of the study's model (or
    ablation run) ``name`` trained on ``subset`` of ``corpus`` (notebooks 03-05, the CLI)."""
    return models_dir() / f"{corpus_name(corpus)}_{subset}_{name}"


def find_run(run: str | os.PathLike) -> Path:
    """A run given by the user: an existing folder, else a run name under ``data/models``."""
    path = Path(run).expanduser()
    return path if path.exists() else models_dir() / str(run)


def corpus_name(corpus: str | os.PathLike) -> str:
    """Short name used for a corpus' data folders: ``bundled`` or the folder's name."""
    text = str(corpus)
    if text == "bundled":
        return "bundled"
    return Path(text).expanduser().resolve().name


def available_profiles() -> list[str]:
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def load_profile(name: str) -> dict[str, Any]:
    """Load ``configs/<name>.yaml``: ``{"notebooks": {"00": {...}, ...}, ...}``.

    Raises ``FileNotFoundError`` naming the profiles that exist when ``name`` is unknown.
    """
    path = CONFIGS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"No profile {name!r}: {path} does not exist. "
            f"Available profiles: {', '.join(available_profiles()) or 'none'}."
        )
    with path.open() as fh:
        profile = yaml.safe_load(fh) or {}
    if not isinstance(profile, dict):
        raise ValueError(f"{path}: a profile must be a mapping, got {type(profile).__name__}.")
    profile.setdefault("notebooks", {})
    return profile


def notebook_parameters(profile: dict[str, Any], key: str) -> dict[str, Any]:
    """Parameters for notebook ``key`` (e.g. ``"00"``): the profile's ``common`` merged with its own."""
    params = dict(profile.get("common") or {})
    params.update((profile.get("notebooks") or {}).get(key) or {})
    return params
