"""Packaging and repository hygiene: pyproject.toml and environment.yml agree, notebooks are
committed clean and parameterised the way papermill and the profiles expect, and the generated
trees (data/, reports/) hold nothing but their READMEs in git."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from wav2kp import config, study

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

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


def test_environment_installs_the_project_with_every_extra(pyproject: dict,
                                                           environment: dict) -> None:
    conda, pip = _conda_and_pip(environment)
    # the dependency list lives in pyproject.toml only: conda brings python and pip
    assert sorted(re.split(r"[=<> ]", d)[0] for d in conda) == ["pip", "python"]
    assert len(pip) == 1, pip
    match = re.fullmatch(r"""(?:-e\s+)?(["']?)\.(?:\[([^\]]*)\])?\1""", pip[0].strip())
    assert match, f"pip section should install the project ('-e .[...]'), got {pip[0]!r}"
    extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
    declared = set(pyproject["project"].get("optional-dependencies", {}))
    assert extras == declared


def test_torch_is_pinned_to_2_11(pyproject: dict) -> None:
    reqs = {Requirement(r).name.lower(): Requirement(r) for r in pyproject["project"]["dependencies"]}
    for name in ("torch", "torchaudio"):
        assert str(reqs[name].specifier) == "==2.11.*"
        assert "2.11.0" in reqs[name].specifier and "2.12.0" not in reqs[name].specifier
    assert len(reqs) == len(pyproject["project"]["dependencies"])  # no package listed twice


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
    assert numbers == list(range(len(numbers))), "notebooks must be numbered 00, 01, ... without gaps"
    assert [m.group(2) for m in parsed] == STAGES[:len(parsed)]
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
        assert set(own) <= set(defaults), f"profile {name!r} sets undeclared {set(own) - set(defaults)}"
    quick = config.notebook_parameters(config.load_profile("quick"), key)
    for name, value in quick.items():
        if name in defaults:
            assert defaults[name] == value, f"default {name}={defaults[name]!r}, quick has {value!r}"


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
    ignored = ["data/raw/bundled/Em1_Fala1_Sintetica.mp4", "data/processed/x/manifest.json",
               "reports/html/index.html", "reports/results.json"]
    out = _git("check-ignore", "--no-index", "--", *ignored, "data/README.md", "reports/README.md")
    assert sorted(out.stdout.split()) == sorted(ignored)
