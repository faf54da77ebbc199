"""The study's HTML pages checked in a real browser: headless Chromium driven by Playwright.

The browser is the system's (Debian's ``chromium`` package: ``apt-get install chromium``, or
``WAV2KP_CHROMIUM=/path/to/chrome``); nothing here downloads one. :func:`check_pages` opens
every page of ``reports/html/`` as a student would (``file://``) and checks that

- every page and every link loads (pages are opened, other files must exist and be non-empty);
- every ``<video>`` and ``<audio>`` has a duration and plays (its time advances);
- every image decodes (non-zero natural size);
- no JavaScript error reaches the console;
- each keypoint player draws keypoints and, while playing, shows the frame at the audio's
  current time (within one frame);

and saves a screenshot of each page (and of each player while it plays) to ``screens_dir``.
``wav2kp check-pages`` runs it on the last study's pages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

#: Names of the Chromium executable looked for on PATH, in order.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: How long (ms) each medium and each player is played to see its time advance.
PLAY_MS = 700


class BrowserMissing(RuntimeError):
    """No Chromium on this machine (the message says how to install one)."""


def find_chromium() -> str:
    """The Chromium executable: ``$WAV2KP_CHROMIUM``, else the first of
    :data:`CHROMIUM_NAMES` on PATH; :class:`BrowserMissing` when there is none."""
    wanted = os.environ.get("WAV2KP_CHROMIUM")
    if wanted:
        if not Path(wanted).is_file():
            raise BrowserMissing(f"WAV2KP_CHROMIUM={wanted}: no such file.")
        return wanted
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(
        "No Chromium found (looked for "
        + ", ".join(CHROMIUM_NAMES)
        + "). Install Debian's package: apt-get install chromium (or set WAV2KP_CHROMIUM)."
    )


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Playwright ``Browser``) from :func:`find_chromium`, closed after."""
    from playwright.sync_api import sync_playwright

    path = find_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=path, args=["--autoplay-policy=no-user-gesture-required"]
        )
        try:
            yield browser
        finally:
            browser.close()


# in-page checks: what each medium, image and player says about itself. The page's media are
# its <video> and <audio> elements outside keypoint players (a player is checked as a whole).
_MEDIA = (
    "Array.from(document.querySelectorAll('video, audio')).filter(m => !m.closest('.w2k-player'))"
)
_MEDIA_JS = f"""() => {_MEDIA}.map((m, i) => ({{i, tag: m.tagName.toLowerCase(),
  duration: m.duration, readyState: m.readyState,
  error: m.error ? m.error.message || String(m.error.code) : null}}))"""
_IMAGES_JS = """() => Array.from(document.images).map(im => ({
  src: im.currentSrc.slice(0, 80), complete: im.complete, w: im.naturalWidth, h: im.naturalHeight}))"""
_LINKS_JS = """() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"""


def _wait_media_ready(page, timeout_ms: int = 10000) -> None:
    page.wait_for_function(
        f"() => {_MEDIA}.every(m => m.readyState >= 1 || m.error)", timeout=timeout_ms
    )


def _play_each(page) -> list[dict]:
    """Play every medium of the page for :data:`PLAY_MS` and report how far its time moved."""
    out = []
    for i in range(page.evaluate(f"() => {_MEDIA}.length")):
        start = page.evaluate(
            f"""async (i) => {{ const m = {_MEDIA}[i]; m.muted = true; m.currentTime = 0;
                 try {{ await m.play(); }} catch (e) {{ return String(e); }}
                 return m.currentTime; }}""",
            i,
        )
        page.wait_for_timeout(PLAY_MS)
        end = page.evaluate(
            f"(i) => {{ const m = {_MEDIA}[i]; m.pause(); return m.currentTime; }}", i
        )
        ok = isinstance(start, int | float) and end > start
        out.append({"i": i, "start": start, "end": end, "advanced": bool(ok)})
    return out


def check_player(page, player_id: str, screens_dir: Path | None = None, name: str = "") -> dict:
    """Play one keypoint player: it must draw keypoints, and while it plays the frame it shows
    must be the frame at the audio clock's current time within one frame."""
    handle = f"window.wav2kpPlayers[{player_id!r}]"
    first = page.evaluate(f"() => {handle}.state()")
    page.evaluate(f"() => {{ {handle}.video.muted = true; return {handle}.video.play(); }}")
    samples = []
    for _ in range(10):
        page.wait_for_timeout(PLAY_MS // 10 + 20)
        samples.append(page.evaluate(f"() => {handle}.state()"))
    if screens_dir is not None:
        page.locator(f"#{player_id}").screenshot(path=str(screens_dir / f"{name}player.png"))
    page.evaluate(f"() => {handle}.video.pause()")
    playing = [s for s in samples if s["playing"]]
    worst = max((abs(s["frame"] - s["expectedFrame"]) for s in playing), default=None)
    return {
        "player": player_id,
        "clips": len(page.evaluate(f"() => {handle}.clips")),
        "models": page.evaluate(f"() => {handle}.models"),
        "points_drawn": first["points"],
        "frames_drawn": samples[-1]["draws"] - first["draws"],
        "samples_playing": len(playing),
        "worst_frame_error": worst,
        "time_advanced": samples[-1]["currentTime"] > first["currentTime"],
    }


def _link_target(href: str) -> Path | None:
    """The local file a ``file://`` link points to (``None`` for other schemes)."""
    url = urlparse(href)
    if url.scheme != "file":
        return None
    return Path(unquote(url.path))


def check_pages(html_dir: str | Path, screens_dir: str | Path | None = None) -> dict:
    """Open every ``*.html`` page of ``html_dir`` in headless Chromium and check it (see the
    module docstring). Returns ``{"pages": {name: report}, "problems": [text, ...]}``: an empty
    ``problems`` list means every check passed."""
    html_dir = Path(html_dir)
    pages = sorted(html_dir.glob("*.html"))
    if not pages:
        raise FileNotFoundError(f"{html_dir}: no HTML pages (run the study first: make study).")
    screens = Path(screens_dir) if screens_dir else None
    if screens:
        screens.mkdir(parents=True, exist_ok=True)
    report: dict = {"pages": {}, "problems": []}
    problems = report["problems"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        for path in pages:
            errors.clear()
            response = page.goto(path.resolve().as_uri(), wait_until="load")
            name = path.stem
            rep: dict = {"loaded": response is None or response.ok}
            with contextlib.suppress(Exception):
                _wait_media_ready(page)
            rep["media"] = page.evaluate(_MEDIA_JS)
            rep["images"] = page.evaluate(_IMAGES_JS)
            links = page.evaluate(_LINKS_JS)
            rep["links"] = len(links)
            for m in rep["media"]:
                if m["error"] or not (m["duration"] and m["duration"] > 0):
                    problems.append(f"{path.name}: <{m['tag']}> #{m['i']} has no duration ({m})")
            for im in rep["images"]:
                if not (im["complete"] and im["w"] > 0 and im["h"] > 0):
                    problems.append(f"{path.name}: an image does not decode ({im['src']})")
            for href in links:
                target = _link_target(href)
                if target is None:
                    if not href.startswith(("http://", "https://", "mailto:")):
                        problems.append(f"{path.name}: link {href} is neither a file nor a URL")
                    continue
                if not target.is_file() or target.stat().st_size == 0:
                    problems.append(f"{path.name}: broken link {href}")
            if screens:
                page.screenshot(path=str(screens / f"{name}.png"), full_page=False)
            rep["played"] = _play_each(page)
            for played in rep["played"]:
                if not played["advanced"]:
                    problems.append(f"{path.name}: medium #{played['i']} does not play ({played})")
            players = page.evaluate("() => Object.keys(window.wav2kpPlayers || {})")
            rep["players"] = []
            for pid in players:
                res = check_player(page, pid, screens, f"{name}_")
                rep["players"].append(res)
                if res["points_drawn"] < 68:
                    problems.append(f"{path.name}: player {pid} draws no keypoints")
                if not res["time_advanced"] or res["samples_playing"] == 0:
                    problems.append(f"{path.name}: player {pid} does not play")
                elif res["worst_frame_error"] > 1:
                    problems.append(
                        f"{path.name}: player {pid} is {res['worst_frame_error']} frames off "
                        "the audio clock"
                    )
            rep["console_errors"] = list(errors)
            for err in errors:
                problems.append(f"{path.name}: JavaScript error: {err}")
            report["pages"][path.name] = rep
    return report
