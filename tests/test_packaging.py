"""Packaging and repository hygiene: pyproject.toml and environment.yml agree, notebooks are
committed clean and parameterised the way papermill and the profiles expect, and the generated
trees (data/, reports/) hold nothing but their READMEs in git."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import tomllib

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from wav2kp import config, doctor, study

ROOT = config.REPO_ROOT
NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("*.ipynb"))
#: The study's stages in pipeline order (DESIGN.md, "The study, as data flowing through it").
STAGES = ["corpus", "extraction", "features", "training", "evaluation", "synthesis"]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


def _conda_and_pip(environment: dict) -> tuple[list[str], list[str]]:
    conda, pip = [], []
    for dep in environment["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
        else:
            conda.append(str(dep))
    return conda, pip


# --------------------------------------------------------------------------- pyproject / conda


def test_environment_python_satisfies_requires_python(pyproject: dict, environment: dict) -> None:
    conda, _ = _conda_and_pip(environment)
    pythons = [d for d in conda if re.match(r"^python\s*[=<>!]", d)]
    assert len(pythons) == 1, conda
    version = re.sub(r"^python\s*=*\s*", "", pythons[0]).rstrip(".*")
    assert re.fullmatch(r"3\.\d+(\.\d+)?", version), pythons[0]
    assert version in SpecifierSet(pyproject["project"]["requires-python"])


def test_environment_installs_the_lock(environment: dict) -> None:
    """conda brings Python and pip; pip installs requirements.lock (hash-checked), the same file
    `make test` installs, so the two environments hold the same versions."""
    conda, pip = _conda_and_pip(environment)
    assert sorted(re.split(r"[=<> ]", d)[0] for d in conda) == ["pip", "python"]
    assert [p.strip() for p in pip] == ["--require-hashes", "-r requirements.lock"], pip
    python = next(d for d in conda if d.startswith("python"))
    assert python == f"python={'.'.join(map(str, doctor.LOCK_PYTHON))}", python


# --------------------------------------------------------------------------- the lock


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    return doctor.read_lock(ROOT / "requirements.lock")


@pytest.fixture(scope="module")
def lab_lock() -> dict[str, str]:
    return doctor.read_lock(ROOT / "requirements-lab.lock")


def _requirements(pyproject: dict, *extras: str) -> list[Requirement]:
    reqs = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in pyproject["project"]["optional-dependencies"][extra]]
    reqs += [Requirement(r) for r in pyproject["build-system"]["requires"]]
    return reqs


def _lock_text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name, extras", [("requirements.lock", ("dev",)), ("requirements-lab.lock", ("dev", "lab"))]
)
def test_lock_agrees_with_pyproject(pyproject: dict, name: str, extras: tuple[str, ...]) -> None:
    """Every requirement of pyproject.toml (and of its build backend) is pinned in the lock at a
    version the requirement allows: a dependency added or a floor raised without `make lock`
    fails here."""
    pins = doctor.read_lock(ROOT / name)
    for req in _requirements(pyproject, *extras):
        key = doctor.normalise(req.name)
        assert key in pins, f"{req.name} is required by pyproject.toml but not in {name}: make lock"
        assert req.specifier.contains(pins[key], prereleases=True), (
            f"{name} pins {req.name}=={pins[key]}, pyproject.toml asks {req.specifier}: make lock"
        )


@pytest.mark.parametrize("name", ["requirements.lock", "requirements-lab.lock"])
def test_lock_pins_every_package_with_hashes(name: str) -> None:
    """Exact versions with the sha256 of their files, so `pip install --require-hashes` installs
    exactly these files and re-resolves nothing; made by `make lock` (uv pip compile)."""
    text = _lock_text(name)
    assert "make lock" in text.splitlines()[1], "regenerate with make lock"
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
    assert len(entries) > 50
    for entry in entries:
        head = entry.splitlines()[0]
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^\s;]+ \\$", head), head
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"no hash for {head}"
    assert "-e " not in text and "file:" not in text, "the lock names no local path"


def test_lab_lock_extends_the_main_lock(lock: dict[str, str], lab_lock: dict[str, str]) -> None:
    """`make lab` adds JupyterLab on top of the tested environment without moving anything."""
    assert set(lock) <= set(lab_lock)
    assert {k: lab_lock[k] for k in lock} == lock
    assert "jupyterlab" in lab_lock and "jupyterlab" not in lock


def test_only_what_is_used_is_installed(pyproject: dict, lock: dict[str, str]) -> None:
    """scikit-image served a photo nothing selected; JupyterLab is for `make lab` only."""
    runtime = {doctor.normalise(Requirement(r).name) for r in pyproject["project"]["dependencies"]}
    assert "scikit-image" not in runtime and "scikit-image" not in lock
    assert "jupyterlab" not in lock
    assert pyproject["project"]["optional-dependencies"]["lab"] == ["jupyterlab>=4.0"]


def test_torch_and_torchaudio_are_one_release(pyproject: dict, lock: dict[str, str]) -> None:
    """torchaudio loads only beside the torch it was built for (2.11.1 fails beside 2.11.0):
    both are pinned exactly, to the same release, in pyproject.toml and in the lock."""
    reqs = {
        Requirement(r).name.lower(): Requirement(r) for r in pyproject["project"]["dependencies"]
    }
    assert len(reqs) == len(pyproject["project"]["dependencies"])  # no package listed twice
    pins = {name: str(reqs[name].specifier) for name in ("torch", "torchaudio")}
    assert pins["torch"] == pins["torchaudio"] and re.fullmatch(r"==\d+\.\d+\.\d+", pins["torch"])
    assert lock["torch"] == lock["torchaudio"] == pins["torch"][2:]


def test_installed_torchaudio_computes_an_mfcc() -> None:
    """The installed pair loads together and torchaudio computes an MFCC of a known tone: the
    energy sits in the low coefficients and every frame is finite."""
    import numpy as np
    import torch
    import torchaudio

    from wav2kp.features import acoustic as features

    assert torch.__version__.split("+")[0] == torchaudio.__version__.split("+")[0]
    rate = 16000
    t = np.arange(rate, dtype=np.float32) / rate
    feats, times = features.mfcc((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    assert feats.shape == (101, 40) and np.isfinite(feats).all()
    assert times[1] - times[0] == pytest.approx(0.010)
    silent, _ = features.mfcc(np.zeros(rate, dtype=np.float32) + 1e-6)
    assert feats[:, 0].mean() > silent[:, 0].mean() + 10  # c0 follows the log energy


def test_console_script(pyproject: dict) -> None:
    assert pyproject["project"]["scripts"] == {"wav2kp": "wav2kp.cli:main"}
    from wav2kp import cli

    assert callable(cli.main)


# --------------------------------------------------------------------------- notebooks


def test_notebook_names_follow_the_pipeline() -> None:
    names = [p.name for p in NOTEBOOKS]
    if not names:
        assert not list(config.NOTEBOOKS_DIR.glob("*.ipynb"))
        return
    parsed = [re.fullmatch(r"(\d\d)_([a-z0-9_]+)\.ipynb", n) for n in names]
    assert all(parsed), names
    numbers = [int(m.group(1)) for m in parsed]
    assert numbers == list(range(len(numbers))), (
        "notebooks must be numbered 00, 01, ... without gaps"
    )
    assert [m.group(2) for m in parsed] == STAGES[: len(parsed)]
    assert list(study.find_notebooks(config.NOTEBOOKS_DIR).values()) == NOTEBOOKS


def _parameters_cell(nb) -> tuple[int, list[int]]:
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"exactly one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0], code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs"
            assert cell.execution_count is None, f"cell {i} has an execution count"
        source = cell.source
        assert "tqdm.notebook" not in source and "tqdm.auto" not in source, f"cell {i}"
        assert "../data" not in source and "../reports" not in source, f"cell {i}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_parameters_cell(path) -> None:
    nb = nbformat.read(path, as_version=4)
    index, code = _parameters_cell(nb)
    assert nb.cells[index].cell_type == "code"
    assert index in code[:3], "the parameters cell belongs near the top"
    assert any(i > index for i in code), "derived values go in a code cell after the parameters"
    # plain values only: papermill injects overrides after it, so nothing may be computed here
    tree = ast.parse(nb.cells[index].source)
    names = []
    for stmt in tree.body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1, ast.dump(stmt)
        assert isinstance(stmt.targets[0], ast.Name)
        ast.literal_eval(stmt.value)
        names.append(stmt.targets[0].id)
    assert names, "a parameters cell declares at least one parameter"
    assert study.declared_parameters(path) == names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_profiles_only_set_declared_parameters(path) -> None:
    """A profile value a notebook does not declare is dropped silently: catch typos here. The
    notebook's defaults are the quick profile (DESIGN.md, "Profiles")."""
    key = path.name[:2]
    nb = nbformat.read(path, as_version=4)
    index, _ = _parameters_cell(nb)
    defaults = {}
    for stmt in ast.parse(nb.cells[index].source).body:
        defaults[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    for name in config.available_profiles():
        profile = config.load_profile(name)
        own = (profile.get("notebooks") or {}).get(key) or {}
        assert set(own) <= set(defaults), (
            f"profile {name!r} sets undeclared {set(own) - set(defaults)}"
        )
    quick = config.notebook_parameters(config.load_profile("quick"), key)
    for name, value in quick.items():
        if name in defaults:
            assert defaults[name] == value, (
                f"default {name}={defaults[name]!r}, quick has {value!r}"
            )


# --------------------------------------------------------------------------- generated trees


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def git_repo() -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if _git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        pytest.skip(f"{ROOT} is not a git checkout")


def test_generated_trees_hold_only_their_readmes_in_git(git_repo) -> None:
    tracked = _git("ls-files", "--", "data", "reports").stdout.split()
    assert set(tracked) <= {"data/README.md", "reports/README.md"}, tracked
    for folder in ("data", "reports"):
        assert (ROOT / folder / "README.md").is_file()
    # whatever the study writes there is ignored; the READMEs are not
    ignored = [
        "data/raw/bundled/Em1_Fala1_Sintetica.mp4",
        "data/processed/x/manifest.json",
        "reports/html/index.html",
        "reports/results.json",
    ]
    out = _git("check-ignore", "--no-index", "--", *ignored, "data/README.md", "reports/README.md")
    assert sorted(out.stdout.split()) == sorted(ignored)


def test_relative_paths_resolve_from_the_repository_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """papermill runs notebooks in the repository root, nbval in notebooks/: a relative
    parameter such as notebook 04's real_dir must name the same folder in both."""
    monkeypatch.chdir(tmp_path)
    assert config.resolve("../shared/real_samples") == config.SHARED_REAL_SAMPLES
    monkeypatch.chdir(config.NOTEBOOKS_DIR)
    assert config.resolve("../shared/real_samples") == config.SHARED_REAL_SAMPLES
    assert config.resolve(tmp_path) == tmp_path
    assert config.resolve("~/x") == config.Path.home() / "x"
