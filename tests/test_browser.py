"""The pages in a real browser (headless Chromium from Debian's package, driven by Playwright):
the keypoint player on a synthetic clip, then the quick study's ``reports/html/`` as a student
opens it. Skipped without Chromium, unless ``WAV2KP_REQUIRE_BROWSER=1`` (CI sets it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from wav2kp import browser, config, media
from wav2kp.evaluation.viewer import ClipView, KeypointPlayer

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module", autouse=True)
def chromium_present(chromium) -> None:
    """Every test here needs the browser (tests/conftest.py: skip or fail without it)."""


def _talking_clip(folder: Path, n: int = 50, fps: int = 25) -> ClipView:
    """A 2 s H.264 + AAC clip (a tone) whose keypoints move every frame."""
    y, x = np.mgrid[0:96, 0:128]
    frames = (np.stack([x + 20 * k % 255, y, np.full_like(x, 90)], -1).astype(np.uint8)
              for k in range(n))  # fmt: skip
    t = np.arange(int(16000 * n / fps)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    video = folder / "talk.mp4"
    media.write_video(video, frames, audio, size=(128, 96), fps=fps, audio_rate=16000)
    base = np.c_[np.linspace(30, 98, 68), np.linspace(20, 80, 68)]
    truth = np.stack([base + [0.5 * k, 0] for k in range(n)])
    return ClipView("talk", video, np.arange(n) / fps, truth, {"model": truth + 2})


def test_the_player_follows_the_audio_clock(tmp_path: Path) -> None:
    view = _talking_clip(tmp_path)
    KeypointPlayer([view], size=256).save(tmp_path / "html" / "player.html")
    report = browser.check_pages(tmp_path / "html", tmp_path / "screens")
    assert report["problems"] == []
    (player,) = report["pages"]["player.html"]["players"]
    assert player["points_drawn"] == 136  # truth + the model, 68 each
    assert player["samples_playing"] >= 5 and player["frames_drawn"] >= 5
    assert player["worst_frame_error"] <= 1
    assert (tmp_path / "screens" / "player_player.png").stat().st_size > 1000


def test_a_broken_page_is_reported(tmp_path: Path) -> None:
    html = tmp_path / "html"
    html.mkdir()
    (html / "bad.html").write_text(
        '<html><body><a href="missing.html">x</a><img src="nothing.png">'
        "<script>throw new Error('boom')</script></body></html>"
    )
    problems = browser.check_pages(html)["problems"]
    assert any("broken link" in p and "missing.html" in p for p in problems), problems
    assert any("image does not decode" in p for p in problems), problems
    assert any("boom" in p for p in problems), problems


@pytest.fixture(scope="module")
def pages(quick_study) -> Path:
    """The quick study's pages (the session's study run: tests/conftest.py)."""
    assert [r.status for r in quick_study] == ["ok"] * 6
    return config.reports_dir() / "html"


def test_the_quick_study_pages_in_a_browser(pages: Path) -> None:
    quick_study = pages
    screens = config.reports_dir() / "screens"
    report = browser.check_pages(quick_study, screens)
    assert report["problems"] == [], "\n".join(report["problems"])
    names = {p.name for p in quick_study.glob("*.html")}
    assert set(report["pages"]) == names and len(names) == 7
    for name in names:
        assert (screens / name.replace(".html", ".png")).is_file()
    index = report["pages"]["index.html"]
    # each notebook: its name and its key figure link to its page
    assert index["links"] >= 12 and len(index["images"]) == 6, index
    evaluation = report["pages"]["04_evaluation.html"]
    (player,) = evaluation["players"]
    assert player["clips"] == 4 and player["points_drawn"] >= 136
    assert player["worst_frame_error"] <= 1
    assert (screens / "04_evaluation_player.png").is_file()
    media_played = [m for page in report["pages"].values() for m in page["played"]]
    assert media_played and all(m["advanced"] for m in media_played)


def test_the_quick_study_pages_read_cleanly(pages: Path) -> None:
    quick_study = pages
    """No page carries more than a few lines of progress; the key numbers come first; long
    tables are trimmed with their CSV next to the page; the index shows the results."""
    executed = config.reports_dir() / "executed"
    for nb_path in sorted(executed.glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream":
                    assert "\r" not in out["text"], nb_path.name
                    bars = re.findall(r"\d+%\|", out["text"])
                    assert len(bars) <= 1, (nb_path.name, out["text"][:300])
                    epochs = re.findall(r"epoch \d+/\d+", out["text"])
                    assert len(epochs) <= 2, (nb_path.name, out["text"][:300])
                    assert "GPU available" not in out["text"] and "litlogger" not in out["text"]
        page = (quick_study / f"{nb_path.stem}.html").read_text()
        key = page.find("Key numbers of this run")
        assert 0 < key < page.find("Parameters"), nb_path.stem  # under the introduction
    tables = quick_study / "tables"
    for name in ("00_clips", "00_clip_statistics", "01_quality_checks", "04_per_emotion"):
        assert (tables / f"{name}.csv").stat().st_size > 100, name
    assert 'href="tables/01_quality_checks.csv"' in (quick_study / "01_extraction.html").read_text()
    index = (quick_study / "index.html").read_text()
    results = json.loads((config.reports_dir() / "results.json").read_text())
    assert "<h2>Results</h2>" in index and f"<b>{results['best_model']}</b>" in index
    assert f"{results['models']['mean_face']['mlmd']:.3f}" in index
