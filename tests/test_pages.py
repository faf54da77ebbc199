"""wav2kp.pages and the study's pages: tidy outputs, key numbers, thumbnails, the index, the
trimmed tables, and what the terminal shows of a progress bar."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import cv2
import nbformat
import numpy as np
import pandas as pd
import pytest

from wav2kp import config, pages, results, study, viz


def test_carriage_returns_keep_the_last_state_of_a_line() -> None:
    c = pages.collapse_carriage_returns
    assert c("a\rb\n") == "b\n"
    assert c("\r 10%|#  | 1/10\r 100%|###| 10/10\n") == " 100%|###| 10/10\n"
    assert c("line one\r\nline two\n") == "line one\nline two\n"  # \r\n is a line end
    assert c("epoch 1\repoch 2\r") == "epoch 2"  # a trailing \r keeps what it returned over
    assert c("plain\ntext\n") == "plain\ntext\n"


def _nb_with_progress() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("work()")
    bars = [f"\rextraction: {k:3d}/132" for k in range(0, 133, 4)]
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=b) for b in bars]
    cell.outputs += [
        nbformat.v4.new_output("stream", name="stderr", text="\n"),
        nbformat.v4.new_output("stream", name="stdout", text="[tcn] epoch 1/3\r"),
        nbformat.v4.new_output("stream", name="stdout", text="[tcn] epoch 2/3\r"),
        nbformat.v4.new_output("stream", name="stdout", text="== tcn: done\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "a figure"}),
        nbformat.v4.new_output("stream", name="stdout", text="after\n"),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · title\nintro"), cell]
    return nb


def test_tidy_makes_a_progress_bar_one_line() -> None:
    nb = _nb_with_progress()
    removed = pages.tidy(nb)
    outs = nb.cells[1].outputs
    assert removed == 36
    assert [o.get("name") or o.output_type for o in outs] == [
        "stderr",
        "stdout",
        "display_data",
        "stdout",
    ]
    assert outs[0].text == "extraction: 132/132\n"  # 34 updates -> one line
    assert outs[1].text == "== tcn: done\n"
    assert outs[3].text == "after\n"
    assert pages.tidy(nb) == 0  # tidy twice: nothing more to do


def test_key_numbers_come_from_the_saved_records(home: Path) -> None:
    results.save(
        "01_extraction",
        {
            "clips": 132,
            "extracted": 131,
            "failed": 1,
            "frames": 14000,
            "detection_rate": 0.9987,
            "jitter_still_pct_iod": 0.98,
            "noise_floor": {"all": 2.29, "mouth": 1.816},
        },
    )
    rows = dict(pages.key_numbers("01_extraction"))
    assert rows["clips extracted"] == "131 of 132" and rows["failed"] == "1"
    assert rows["face found"] == "99.9 % of frames"
    assert rows["dlib vs ground truth (noise floor)"] == "2.29 % IOD all points, 1.82 % IOD mouth"
    assert pages.key_numbers("02_features") == []  # no record saved: no box
    assert pages.key_numbers("99_other") == []
    nb = _nb_with_progress()
    assert pages.add_key_numbers(nb, "01_extraction")
    assert nb.cells[0].source.startswith("# 01") and "key-numbers" in nb.cells[1].metadata.tags
    assert "| clips extracted | 131 of 132 |" in nb.cells[1].source
    assert not pages.add_key_numbers(nb, "02_features")
    # papermill's timings: the page says how long the notebook ran, and its slowest cell
    nb.metadata["papermill"] = {"duration": 652.4}
    nb.cells[2].metadata["papermill"] = {"duration": 597.2}
    assert pages.wall_time(nb) == "652 s (the slowest cell, #3: 597 s)"
    assert pages.add_key_numbers(nb, "02_features")  # no record, but a wall time
    assert (
        "| wall time of this notebook | 652 s (the slowest cell, #3: 597 s) |" in nb.cells[1].source
    )
    assert pages.wall_time(nbformat.v4.new_notebook()) is None


def _png(w: int, h: int, colour=(0, 0, 255)) -> str:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = colour
    return base64.b64encode(cv2.imencode(".png", img)[1].tobytes()).decode()


def test_thumbnail_prefers_the_tagged_figure() -> None:
    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell("plot_a()")
    first.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png(800, 400)})]
    key = nbformat.v4.new_code_cell("plot_b()", metadata={"tags": ["thumbnail"]})
    key.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": _png(600, 600, (0, 255, 0))})
    ]
    nb.cells = [first, key]
    img = cv2.imdecode(np.frombuffer(pages.thumbnail(nb), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (360, 360, 3) and img[180, 180, 1] > 200  # the green, tagged one
    nb.cells = [first]
    img = cv2.imdecode(np.frombuffer(pages.thumbnail(nb), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (180, 360, 3)
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    assert pages.thumbnail(nb) is None


RESULTS = {
    "profile": "quick",
    "commit": "abc1234",
    "corpus": "bundled",
    "subset": "quick",
    "clips": 8,
    "noise_floor": {"mlmd": 1.82, "mouth_corr": 0.99, "offset_ms": -0.1},
    "models": {
        "mean_face": {"mlmd": 3.54, "mouth_corr": None, "offset_ms": None},
        "lstm_original": {"mlmd": 3.5, "mouth_corr": 0.165, "offset_ms": -20.9},
        "<tcn>": {"mlmd": 2.15, "mouth_corr": 0.946, "offset_ms": 1.7},
    },
    "best_model": "<tcn>",
    "default_model": "<tcn>",
    "ratios": {"best_to_mean_face": 0.6, "best_to_lstm_original": 0.61, "best_to_noise_floor": 1.2},
    "real": {"files": 23, "models": {"<tcn>": {"mouth_corr": 0.463}}},
    "levers": {
        "rows": {
            "tcn_live": {
                "test M-LMD": 2.254,
                "test mouth corr": 0.921,
                "test offset ms": 2.7,
                "real mouth corr": 0.462,
            }
        },
        "live_model": "tcn_live",
    },
}


def test_index_tells_the_story(home: Path) -> None:
    text = pages.headline(RESULTS)
    assert "&lt;tcn&gt;" in text and "<tcn>" not in text  # escaped
    assert "0.600× the mean face" in text and "commit abc1234" in text
    assert "2.150" in text and "0.946" in text and "0.463" in text  # M-LMD, corr, real corr
    # a lever run (here the live model) gets its row from the lever table, tagged
    assert "live model: wav2kp live" in text and "2.254" in text and "0.462" in text
    assert "default model: wav2kp predict" in text
    assert pages.headline(None) == "" and pages.headline({"models": {}}) == ""
    manifest = {
        "profile": "quick",
        "overrides": {},
        "git_commit": "abc1234",
        "started": "now",
        "total_wall_s": 1.0,
        "state": "finished",
        "versions": {},
        "notebooks": [
            {
                "key": "00",
                "name": "00_corpus.ipynb",
                "html_path": "00_corpus.html",
                "html_exists": True,
                "status": "ok",
                "selected": True,
                "wall_s": 1.0,
                "parameters": {},
                "error": None,
            }
        ],
    }
    page = pages.render_index(manifest, RESULTS, {"00": "data:image/jpeg;base64,AAAA"})
    assert "<h2>Results</h2>" in page and 'src="data:image/jpeg;base64,AAAA"' in page
    assert page.count('href="00_corpus.html"') == 2  # the name and the thumbnail
    assert "<script" not in page


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WAV2KP_HOME", str(tmp_path))
    return tmp_path


def test_show_table_trims_and_writes_the_whole_table(home: Path, monkeypatch) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    frame = pd.DataFrame({"clip": [f"c{i}" for i in range(40)], "x": np.arange(40) / 3})
    path = viz.show_table(frame, "t_long", max_rows=10)
    assert path == config.reports_dir() / "html" / "tables" / "t_long.csv"
    back = pd.read_csv(path)
    assert len(back) == 40 and list(back.columns) == ["clip", "x"]
    table, note = shown
    assert list(table["clip"]) == [f"c{i}" for i in range(10)] and table["x"][1] == 0.333
    assert "30 more rows" in note.data and 'href="tables/t_long.csv"' in note.data


def test_terminal_rewrites_a_progress_line(tmp_path: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    nb = tmp_path / "00_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), nb)
    run = study.NotebookRun("00", nb.name, nb, nb, nb)
    for out, expected in (
        (Tty(), "      a\r\x1b[K      b\n"),
        (io.StringIO(), "      a\n      b\n"),
    ):
        live = study._Live(run, out=out)
        live.write("a\rb\n")
        assert out.getvalue() == expected
