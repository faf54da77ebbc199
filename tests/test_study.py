"""wav2kp.study: selecting, parameterising and executing notebooks, HTML pages and the index.

The notebooks here are tiny and built in a temporary folder; each writes the parameters it saw
(plus its working directory and ``WAV2KP_HOME``) to ``$WAV2KP_HOME/out/<NN>.json`` so the tests
read values, not cell text. A kernel start costs ~2 s: five notebook executions in all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from wav2kp import cli, config, study

WRITE_PARAMS = """\
import json, os
from pathlib import Path
out = Path(os.environ["WAV2KP_HOME"]) / "out"
out.mkdir(exist_ok=True)
seen = {{name: globals()[name] for name in {names!r}}}
seen.update(cwd=os.getcwd(), home=os.environ["WAV2KP_HOME"])
(out / "{key}.json").write_text(json.dumps(seen))
"""


def _notebook(
    key: str, params: str | None, names: list[str], extra: list[str] = ()
) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# Notebook {key}"))
    if params is not None:
        nb.cells.append(nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}))
    nb.cells.append(nbformat.v4.new_code_cell(WRITE_PARAMS.format(names=names, key=key)))
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in extra)
    return nb


FAILING_CELL = 'label = "<b>"\nvalue = k * 2\nraise RuntimeError(f"boom {value} {label}")'


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    """00, 01 fine; 02 raises in cell 3; 03 after it. Plus a file that is not NN_*.ipynb."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    books = {
        "00_first": _notebook(
            "00", 'n = 1\nlabel = "default"\nflag = False', ["n", "label", "flag"]
        ),
        "01_second": _notebook("01", 'm = 2\nlabel = "default"', ["m", "label"]),
        # cells: 0 markdown, 1 parameters, 2 writes JSON, 3 raises, 4 would write a marker
        "02_fails": _notebook(
            "02",
            "k = 0",
            ["k"],
            extra=[FAILING_CELL, 'Path(out / "02_after_error").touch()'],
        ),
        "03_after": _notebook("03", None, []),
    }
    for stem, nb in books.items():
        nbformat.write(nb, folder / f"{stem}.ipynb")
    nbformat.write(_notebook("xx", None, []), folder / "scratch.ipynb")
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``WAV2KP_HOME`` and ``configs/`` in a temporary folder with a ``tiny`` profile."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("WAV2KP_HOME", str(home))
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "tiny.yaml").write_text(
        "common: {label: from-common, extra: dropped}\n"
        'notebooks:\n  "00": {label: from-profile, n: 2}\n  "02": {k: 21}\n'
    )
    monkeypatch.setattr(config, "CONFIGS_DIR", configs)
    return home


def _seen(home: Path, key: str) -> dict:
    return json.loads((home / "out" / f"{key}.json").read_text())


def _manifest(home: Path) -> dict:
    return json.loads((home / "reports" / "html" / "study.json").read_text())


# --------------------------------------------------------------------------- no kernel


def test_notebooks_are_found_in_numeric_order(notebooks: Path) -> None:
    found = study.find_notebooks(notebooks)
    assert list(found) == ["00", "01", "02", "03"]
    assert [p.name for p in found.values()] == [
        "00_first.ipynb",
        "01_second.ipynb",
        "02_fails.ipynb",
        "03_after.ipynb",
    ]


@pytest.mark.parametrize(
    ("only", "start", "expected"),
    [
        (None, None, ["00", "01", "02", "03"]),
        (["02", "00"], None, ["00", "02"]),
        (["1"], None, ["01"]),
        (None, "02", ["02", "03"]),
        (["00", "03"], "01", ["03"]),
        (["01_second"], None, ["01"]),
    ],
)
def test_select_only_and_start(notebooks: Path, only, start, expected) -> None:
    assert study.select_notebooks(study.find_notebooks(notebooks), only, start) == expected


@pytest.mark.parametrize(("only", "start"), [(["07"], None), (None, "9"), (["00", "xx"], None)])
def test_unknown_notebook_number_lists_existing(notebooks: Path, only, start) -> None:
    with pytest.raises(ValueError) as err:
        study.select_notebooks(study.find_notebooks(notebooks), only, start)
    assert "00_first.ipynb, 01_second.ipynb, 02_fails.ipynb, 03_after.ipynb" in str(err.value)


def test_declared_parameters_come_from_the_parameters_cell(notebooks: Path) -> None:
    assert study.declared_parameters(notebooks / "00_first.ipynb") == ["n", "label", "flag"]
    assert study.declared_parameters(notebooks / "03_after.ipynb") == []


def test_parameters_profile_then_overrides_only_declared() -> None:
    profile = {"common": {"label": "c", "extra": 1}, "notebooks": {"00": {"n": 2, "label": "p"}}}
    declared = {"00": ["n", "label", "flag"], "01": ["m", "label"], "03": []}
    resolved = study.resolve_parameters(profile, declared, {"n": 5, "m": 7})
    assert resolved == {"00": {"n": 5, "label": "p"}, "01": {"m": 7, "label": "c"}, "03": {}}


def test_override_nobody_declares_is_an_error() -> None:
    declared = {"00": ["n", "label"], "01": ["m"]}
    with pytest.raises(ValueError) as err:
        study.resolve_parameters({"notebooks": {}}, declared, {"n": 1, "typo": 3})
    message = str(err.value)
    assert "'typo'" in message and "'n'" not in message
    assert "00: n, label; 01: m" in message


def test_run_study_rejects_unknown_override_before_running(notebooks: Path, home: Path) -> None:
    # "m" is declared by 01 only, which is not selected
    with pytest.raises(ValueError, match="'m'"):
        study.run_study("tiny", only=["00"], overrides={"m": 1}, notebooks_dir=notebooks)
    assert not (home / "reports").exists()


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["n=3"], {"n": 3}),
        (["x=a,b"], {"x": "a,b"}),
        (["flag=true", "off=false"], {"flag": True, "off": False}),
        (["p=../x"], {"p": "../x"}),
        (["lr=1e-3", "ratio=0.5"], {"lr": 1e-3, "ratio": 0.5}),
        (["s=a=b", "empty="], {"s": "a=b", "empty": ""}),
        (["ids=[1, 2]", "none=null"], {"ids": [1, 2], "none": None}),
        (["n=1", "n=2"], {"n": 2}),
        ([], {}),
    ],
)
def test_parse_overrides(items, expected) -> None:
    assert study.parse_overrides(items) == expected


@pytest.mark.parametrize("item", ["n", "=3", "two words=1", "x=[1, 2"])
def test_parse_overrides_malformed_item_is_named(item: str) -> None:
    with pytest.raises(ValueError) as err:
        study.parse_overrides(["ok=1", item])
    assert repr(item) in str(err.value)


def test_index_escapes_html(home: Path, tmp_path: Path) -> None:
    reports = home / "reports"
    run = study.NotebookRun(
        key="00",
        name="00_<x>.ipynb",
        path=tmp_path / "00_<x>.ipynb",
        executed_path=reports / "executed" / "00_<x>.ipynb",
        html_path=reports / "html" / "00_<x>.html",
        parameters={"title": "<script>alert(1)</script>"},
        status="failed",
        wall_s=1.25,
        error="ValueError: a < b & c",
    )
    info = {
        "profile": "p&q",
        "overrides": {"title": "<script>"},
        "git_commit": "abc1234",
        "started": "2024-01-01T00:00:00+00:00",
        "total_wall_s": 1.25,
        "state": "failed",
        "versions": {"python": "3"},
        "selected": ["00"],
    }
    index = study.write_index(info, [run]).read_text()
    assert "<script>" not in index
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "ValueError: a &lt; b &amp; c" in index
    assert "p&amp;q" in index and "1.2 s" in index
    assert "<link" not in index and "src=" not in index  # self-contained
    manifest = _manifest(home)
    assert manifest["notebooks"][0]["parameters"] == {"title": "<script>alert(1)</script>"}
    assert manifest["notebooks"][0]["html_path"] == "00_<x>.html"


def test_git_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    assert study.git_commit(repo) == "unknown"  # not a repository
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "a"], cwd=repo, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (repo / "untracked.txt").write_text("u")
    assert study.git_commit(repo) == head
    (repo / "a.txt").write_text("changed")
    assert study.git_commit(repo) == f"{head}-dirty"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert study.git_commit(repo) == "unknown"


# --------------------------------------------------------------------------- with kernels


@pytest.mark.slow
def test_run_study_injects_parameters_and_writes_reports(
    notebooks: Path, home: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = study.run_study("tiny", only=["01", "00"], overrides={"n": 5}, notebooks_dir=notebooks)

    assert [(r.key, r.status) for r in runs] == [("00", "ok"), ("01", "ok")]
    assert runs[0].parameters == {"n": 5, "label": "from-profile"}  # "extra" dropped
    assert runs[1].parameters == {"label": "from-common"}  # "n" is not declared by 01
    seen = _seen(home, "00")
    assert (seen["n"], seen["label"], seen["flag"]) == (5, "from-profile", False)
    assert seen["cwd"] == str(config.REPO_ROOT)
    assert seen["home"] == str(home)
    assert (_seen(home, "01")["m"], _seen(home, "01")["label"]) == (2, "from-common")
    assert not (home / "out" / "02.json").exists()

    reports = home / "reports"
    assert runs[0].executed_path == reports / "executed" / "00_first.ipynb"
    executed = nbformat.read(runs[0].executed_path, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "n = 5" in injected[0].source
    page = (reports / "html" / "00_first.html").read_text()
    assert "from-profile" in page and "<html" in page
    assert all(r.wall_s is not None and r.wall_s > 0 for r in runs)

    index = (reports / "html" / "index.html").read_text()
    for name in ("00_first", "01_second"):
        assert f'<a href="{name}.html">{name}.ipynb</a>' in index
    assert "02_fails.ipynb" in index and '<a href="02_fails.html">' not in index
    manifest = _manifest(home)
    assert manifest["profile"] == "tiny" and manifest["overrides"] == {"n": 5}
    assert manifest["state"] == "finished" and manifest["selected"] == ["00", "01"]
    assert [(e["key"], e["status"], e["selected"]) for e in manifest["notebooks"]] == [
        ("00", "ok", True),
        ("01", "ok", True),
        ("02", "skipped", False),
        ("03", "skipped", False),
    ]
    assert manifest["notebooks"][0]["parameters"] == {"n": 5, "label": "from-profile"}
    assert manifest["notebooks"][0]["path"] == str((notebooks / "00_first.ipynb").resolve())
    assert manifest["notebooks"][0]["executed_path"] == "../executed/00_first.ipynb"
    assert set(manifest["versions"]) >= {"python", "papermill", "wav2kp"}
    assert manifest["started"].endswith("+00:00")
    assert manifest["total_wall_s"] >= runs[0].wall_s + runs[1].wall_s

    out = capsys.readouterr().out.splitlines()
    # live: the notebook, then each code cell as it starts (the injected parameters included)
    assert out[0] == "[1/2] 00_first.ipynb ..."
    assert out[1:4] == [f"    00_first: cell {k}/3" for k in (1, 2, 3)]
    assert out[4].startswith("[1/2] 00_first.ipynb ok in ")
    assert out[5] == "[2/2] 01_second.ipynb ..."
    assert any(line.startswith("[2/2] 01_second.ipynb ok in ") for line in out[6:])


@pytest.mark.slow
def test_failing_notebook_stops_the_study(
    notebooks: Path, home: Path, capsys: pytest.CaptureFixture
) -> None:
    html_dir = home / "reports" / "html"
    html_dir.mkdir(parents=True)
    for stem in ("02_fails", "03_after"):  # pages of an earlier run
        (html_dir / f"{stem}.html").write_text("stale page")
    with pytest.raises(study.StudyError) as err:
        study.run_study("tiny", start="01", notebooks_dir=notebooks)

    message = str(err.value)
    assert message.startswith("notebook 02_fails.ipynb failed: cell 3 (In [")
    assert FAILING_CELL in message.replace("\n    ", "\n")  # the cell's source, indented
    assert "RuntimeError: boom 42 <b>" in message  # k = 21 from the profile
    assert "\x1b[" not in message
    assert [(r.key, r.status) for r in err.value.runs] == [
        ("01", "ok"),
        ("02", "failed"),
        ("03", "skipped"),
    ]
    assert _seen(home, "02")["k"] == 21  # cell 2 ran
    assert not (home / "out" / "02_after_error").exists()  # cell 4 did not
    assert not (home / "out" / "03.json").exists()  # nor did notebook 03

    assert "boom 42" in (html_dir / "02_fails.html").read_text()
    assert (html_dir / "03_after.html").read_text() == "stale page"  # not run, so not rewritten
    manifest = _manifest(home)
    assert manifest["state"] == "failed"
    statuses = {e["key"]: e["status"] for e in manifest["notebooks"]}
    assert statuses == {"00": "skipped", "01": "ok", "02": "failed", "03": "skipped"}
    index = (html_dir / "index.html").read_text()
    assert '<a href="02_fails.html">02_fails.ipynb</a>' in index
    assert '<span class="status failed">failed</span>' in index
    assert "RuntimeError: boom 42 &lt;b&gt;" in index
    assert "not run (page from an earlier run)" in index  # 03
    assert "not selected" in index  # 00
    out = capsys.readouterr().out
    assert "[2/3] 02_fails.ipynb FAILED after " in out and "03_after" not in out


@pytest.mark.slow
def test_cli_exit_codes(
    notebooks: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(config, "NOTEBOOKS_DIR", notebooks)
    assert cli.main(["study", "--profile", "tiny", "--only", "02", "-p", "k=1"]) == 1
    err = capsys.readouterr().err
    assert "02_fails.ipynb failed" in err and "RuntimeError: boom 2 <b>" in err
    assert cli.main(["study", "--profile", "tiny", "-p", "nope=1"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert cli.main(["study", "--profile", "missing"]) == 2
    assert "tiny" in capsys.readouterr().err  # names the profiles that exist


def test_what_cells_print_reaches_the_terminal_as_it_happens(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture
) -> None:
    """``wav2kp study`` shows every line a cell prints (progress bars' carriage returns become
    lines), indented under its cell; ``live=False`` prints one line per notebook."""
    folder = tmp_path / "nb"
    folder.mkdir()
    nb = _notebook(
        "00",
        "n = 1",
        ["n"],
        extra=['print("hello from a cell")', 'import sys\nsys.stderr.write("50%\\r100%\\n")'],
    )
    nbformat.write(nb, folder / "00_talk.ipynb")
    study.run_study("tiny", notebooks_dir=folder)
    out = capsys.readouterr().out.splitlines()
    assert "      hello from a cell" in out
    assert "      50%" in out and "      100%" in out
    assert out.index("    00_talk: cell 4/5") < out.index("      hello from a cell")
    study.run_study("tiny", notebooks_dir=folder, live=False)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[1/1] 00_talk.ipynb ... ok in ") and "hello" not in "".join(out)


def test_the_readme_time_table_is_written_from_the_benchmark_figures(tmp_path: Path) -> None:
    """``benchmarks/study.py --readme``: the table between the README's markers comes from the
    figures (each notebook's seconds, their total), the rest of the file untouched."""
    import importlib.util

    path = config.REPO_ROOT / "benchmarks" / "study.py"
    spec = importlib.util.spec_from_file_location("bench_study", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    names = list(bench.NOTEBOOKS)
    figures = {
        "profile": "full",
        "cold": {"notebooks_s": dict(zip(names, [60, 120, 30, 300, 400, 20])), "commit": "abc1234"},
        "warm": {"notebooks_s": dict(zip(names, [5, 6, 7, 8, 9, 10])), "commit": "abc1234"},
    }
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.BEGIN} -->\nold table\n{bench.END}\nafter\n")
    bench.write_readme(figures, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{bench.END}\nafter\n")
    assert "old table" not in text and "commit abc1234" in text
    assert "| first run | 60 s | 120 s | 30 s | 300 s | 400 s | 20 s | **930 s (16 min)** |" in text
    assert "| again, nothing changed | 5 s | 6 s | 7 s | 8 s | 9 s | 10 s | **45 s** |" in text
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        bench.write_readme(figures, readme)
