"""The study's HTML pages as a student reads them: tidy outputs, key numbers first, an index
that tells the story.

- :func:`tidy` rewrites an executed notebook's printed output the way a terminal shows it:
  consecutive pieces of one stream are joined and a carriage return overwrites its line, so a
  progress bar (tqdm) or an epoch counter is its last state — one line, not one per update.
- :func:`key_numbers` picks each notebook's headline numbers from the JSON it saved
  (``reports/<stage>/<notebook>.json``, ``reports/results.json``); :func:`add_key_numbers`
  puts them, as a small table, right under the notebook's introduction on its page.
- :func:`thumbnail` is a small JPEG of the notebook's key figure (the output of the cell
  tagged ``thumbnail``, else the first figure).
- :func:`export_html` writes a notebook's page (nbconvert's lab look through
  ``wav2kp/templates/wav2kp_page``, without the scripts the lab template fetches from a CDN, so
  a page opens offline);
- :func:`render_index` is ``reports/html/index.html``: the headline results
  (:func:`headline`), then one card per notebook with its thumbnail, status, time and
  parameters. Everything is inline: the index is one file, with no script.

Every piece of the study's HTML is here; :mod:`wav2kp.study` only runs the notebooks.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wav2kp import config
from wav2kp import results as records
from wav2kp.manifest import atomic_path

#: nbconvert templates of the study's pages.
TEMPLATES = Path(__file__).parent / "templates"


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden temp file in the same folder and a rename."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- tidy outputs


def collapse_carriage_returns(text: str) -> str:
    """What a terminal shows of ``text``: on every line, what follows its last carriage return
    (``"a\\rb\\n"`` -> ``"b\\n"``; ``"\\r\\n"`` is an ordinary line end)."""
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    out = []
    for line in lines:
        if "\r" in line:
            pieces = line.split("\r")
            # a line that ends with "\r" shows its last non-empty piece
            line = next((p for p in reversed(pieces) if p), "")
        out.append(line)
    return "\n".join(out)


def tidy(nb) -> int:
    """Tidy an executed notebook (an ``nbformat`` node) in place: join each cell's consecutive
    outputs of one stream, apply carriage returns, drop what is left empty. Returns the number
    of stream outputs removed."""
    removed = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if (
                out.get("output_type") == "stream"
                and outputs
                and outputs[-1].get("output_type") == "stream"
                and outputs[-1].get("name") == out.get("name")
            ):
                outputs[-1]["text"] = _text(outputs[-1]) + _text(out)
                removed += 1
                continue
            outputs.append(out)
        kept = []
        for out in outputs:
            if out.get("output_type") == "stream":
                out["text"] = collapse_carriage_returns(_text(out))
                if not out["text"].strip():
                    removed += 1
                    continue
            kept.append(out)
        cell["outputs"] = kept
    return removed


def _text(out) -> str:
    text = out.get("text", "")
    return "".join(text) if isinstance(text, list) else text


def tidy_file(executed: Path) -> None:
    """Rewrite an executed notebook's printed output as a terminal shows it
    (:func:`tidy`: a progress bar is its last state, not one line per update)."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    if tidy(nb):
        write_text(Path(executed), nbformat.writes(nb))


def export_html(executed: Path, html_path: Path) -> Path:
    """Export an executed notebook to a standalone HTML page (nbconvert's ``lab`` look, without
    the scripts it would fetch from a CDN: ``wav2kp/templates/wav2kp_page``), with the
    notebook's key numbers right under its introduction (:func:`add_key_numbers`)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    add_key_numbers(nb, Path(executed).stem)
    exporter = HTMLExporter(template_name="wav2kp_page", extra_template_basedirs=[str(TEMPLATES)])
    body, _ = exporter.from_notebook_node(nb)
    write_text(Path(html_path), body)
    return Path(html_path)


# --------------------------------------------------------------------------- key numbers


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _corpus_numbers(d: dict) -> list[tuple[str, str]]:
    rows = [
        ("clips", _fmt(d.get("clips"))),
        ("emotions", _fmt(d.get("emotions"))),
        ("neutral takes", _fmt(d.get("neutral_takes"))),
        ("speech", f"{_fmt(d.get('total_duration_s'), 1)} s"),
    ]
    if "frames" in d:
        rows.append(("video frames", _fmt(d["frames"])))
    return rows


def _extraction_numbers(d: dict) -> list[tuple[str, str]]:
    rows = [
        ("clips extracted", f"{_fmt(d.get('extracted'))} of {_fmt(d.get('clips'))}"),
        ("failed", _fmt(d.get("failed"))),
        ("frames", _fmt(d.get("frames"))),
        ("face found", f"{100 * float(d.get('detection_rate') or 0):.1f} % of frames"),
        ("still-point jitter", f"{_fmt(d.get('jitter_still_pct_iod'), 2)} % IOD"),
    ]
    floor = d.get("noise_floor") or {}
    if floor:
        rows.append(
            (
                "dlib vs ground truth (noise floor)",
                f"{_fmt(floor.get('all'), 2)} % IOD all points, "
                f"{_fmt(floor.get('mouth'), 2)} % IOD mouth",
            )
        )
    mirror = d.get("mirror_floor") or {}
    if mirror:
        rows.append(
            (
                "dlib vs mirrored dlib (the stand-in without ground truth)",
                f"{_fmt(mirror.get('all'), 2)} % IOD all points, "
                f"{_fmt(mirror.get('mouth'), 2)} % IOD mouth ({_fmt(mirror.get('clips'))} clips)",
            )
        )
    return rows


def _features_numbers(d: dict) -> list[tuple[str, str]]:
    frames = d.get("frames") or {}
    rows = [
        ("feature set", _fmt(d.get("feature_set"))),
        ("clips", _fmt(d.get("clips"))),
        (
            "frames train / val / test",
            " / ".join(_fmt(frames.get(s)) for s in ("train", "val", "test")),
        ),
        (
            "PCA components",
            f"{_fmt(d.get('pca_components_95'))} for 95 %, {_fmt(d.get('pca_components_kept'))} kept",
        ),
    ]
    if d.get("original_drift_end_of_clip_ms") is not None:
        rows.append(
            (
                "original pairing drifts",
                f"{_fmt(d['original_drift_end_of_clip_ms'], 0)} ms by the end of a clip, "
                f"{_fmt(d.get('original_drift_after_60s_s'), 2)} s after a minute",
            )
        )
    return rows


def _training_numbers(d: dict) -> list[tuple[str, str]]:
    runs = {m: r for m, r in (d.get("models") or {}).items() if isinstance(r, dict)}
    scored = {m: r["val_mlmd_pct"] for m, r in runs.items() if r.get("val_mlmd_pct") is not None}
    rows = [("models trained", _fmt(len(runs)))]
    if scored:
        best = min(scored, key=scored.get)
        rows.append(("best on validation", f"{best}: M-LMD {_fmt(scored[best])} % IOD"))
        if "mean_face" in scored:
            rows.append(("mean face (no audio)", f"M-LMD {_fmt(scored['mean_face'])} % IOD"))
        if "lstm_original" in scored:
            rows.append(("the original LSTM", f"M-LMD {_fmt(scored['lstm_original'])} % IOD"))
    return rows


def _evaluation_numbers(d: dict) -> list[tuple[str, str]]:
    models = d.get("models") or {}
    best = d.get("best_model")
    rows = []
    if best in models:
        b = models[best]
        rows.append(
            (
                "best model (test split)",
                f"{best}: M-LMD {_fmt(b.get('mlmd'))} % IOD, mouth corr "
                f"{_fmt(b.get('mouth_corr'))}, offset {_fmt(b.get('offset_ms'), 1)} ms",
            )
        )
    ratios = d.get("ratios") or {}
    for key, text in (
        ("best_to_mean_face", "× the mean face's M-LMD"),
        ("best_to_lstm_original", "× the original LSTM's M-LMD"),
        ("best_to_noise_floor", "× dlib's own error (noise floor)"),
    ):
        if ratios.get(key) is not None:
            rows.append((text, _fmt(ratios[key])))
    real = (d.get("real") or {}).get("models") or {}
    if real:
        top = max(real, key=lambda m: real[m].get("mouth_corr") or -1)
        rows.append(
            (
                f"real recordings ({_fmt((d.get('real') or {}).get('files'))} videos)",
                f"best mouth corr {_fmt(real[top].get('mouth_corr'))} ({top})",
            )
        )
    if d.get("default_model"):
        rows.append(("default model for wav2kp predict", str(d["default_model"])))
    return rows


def _synthesis_numbers(d: dict) -> list[tuple[str, str]]:
    rows = [
        ("model", _fmt(d.get("model"))),
        (
            "mouth corr on the test clip",
            f"{_fmt(d.get('clip_mouth_corr'))} ({_fmt(d.get('clip'))})",
        ),
    ]
    s = d.get("streaming") or {}
    if s:
        rows.append(
            (
                "streaming latency mean / max",
                f"{_fmt(s.get('latency_mean_ms'), 0)} / {_fmt(s.get('latency_max_ms'), 0)} ms "
                f"({_fmt(s.get('chunk_ms'), 0)} ms chunks)",
            )
        )
        if s.get("realtime_factor") is not None:
            rows.append(("streaming speed", f"{_fmt(s['realtime_factor'], 1)}× real time"))
    return rows


#: notebook name -> the function that picks its numbers from its record
KEY_NUMBERS: dict[str, Callable[[dict], list[tuple[str, str]]]] = {
    "00_corpus": _corpus_numbers,
    "01_extraction": _extraction_numbers,
    "02_features": _features_numbers,
    "03_training": _training_numbers,
    "04_evaluation": _evaluation_numbers,
    "05_synthesis": _synthesis_numbers,
}


def key_numbers(notebook: str) -> list[tuple[str, str]]:
    """``[(label, value text), ...]``: the headline numbers of a notebook's record
    (:mod:`wav2kp.results`; notebook 04's merged one); empty when it has none, e.g. it failed
    before saving them."""
    if notebook not in KEY_NUMBERS:
        return []
    pick = KEY_NUMBERS[notebook]
    data = records.study() if notebook == records.BASE else records.load(notebook)
    if not data:
        return []
    try:
        return [(k, v) for k, v in pick(data) if v not in ("", "—")]
    except (TypeError, ValueError, KeyError, AttributeError):
        return []  # a results file of another shape: no box rather than a broken page


def wall_time(nb) -> str | None:
    """How long an executed notebook ran, from papermill's record of it: ``"652 s (the slowest
    cell, #7: 597 s)"``; ``None`` for a notebook papermill did not run."""
    total = ((nb.get("metadata") or {}).get("papermill") or {}).get("duration")
    if not isinstance(total, (int, float)) or not math.isfinite(total):
        return None
    cells = [
        (float(d), number)
        for number, c in enumerate(nb.cells, 1)
        if isinstance(d := ((c.get("metadata") or {}).get("papermill") or {}).get("duration"),
                      (int, float))
    ]  # fmt: skip
    text = f"{total:.0f} s" if total >= 10 else f"{total:.1f} s"
    if cells:
        slowest, number = max(cells)
        text += f" (the slowest cell, #{number}: {slowest:.0f} s)"
    return text


def add_key_numbers(nb, notebook: str) -> bool:
    """Insert a markdown cell with the key numbers (and the notebook's wall time,
    :func:`wall_time`) after the notebook's first (introduction) cell. Returns whether there
    was anything to insert."""
    import nbformat

    rows = key_numbers(notebook)
    wall = wall_time(nb)
    if wall is not None:
        rows.append(("wall time of this notebook", wall))
    if not rows:
        return False
    table = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in rows)
    cell = nbformat.v4.new_markdown_cell(
        f"**Key numbers of this run**\n\n| | this run |\n|:---|:---|\n{table}\n",
        metadata={"tags": ["key-numbers"]},
    )
    at = 1 if nb.cells and nb.cells[0].get("cell_type") == "markdown" else 0
    nb.cells.insert(at, cell)
    return True


# --------------------------------------------------------------------------- thumbnails


def _images(cell) -> list[bytes]:
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data") or {}
        for mime in ("image/png", "image/jpeg"):
            if mime in data:
                raw = data[mime]
                out.append(base64.b64decode("".join(raw) if isinstance(raw, list) else raw))
    return out


def thumbnail(nb, width: int = 360) -> bytes | None:
    """A JPEG, ``width`` px wide, of the notebook's key figure: the first image output of the
    cell tagged ``thumbnail``, else the first image output; ``None`` without any."""
    import cv2
    import numpy as np

    cells = [c for c in nb.cells if c.get("cell_type") == "code"]
    tagged = [c for c in cells if "thumbnail" in c.get("metadata", {}).get("tags", [])]
    for cell in tagged + cells:
        for raw in _images(cell):
            img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
            if img is None or img.shape[1] < 8:
                continue
            h = max(1, round(img.shape[0] * width / img.shape[1]))
            small = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
            ok, jpg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 82])
            if ok:
                return jpg.tobytes()
    return None


def title(nb) -> str:
    """The notebook's title: the first ``# `` heading of its first markdown cell (or "")."""
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            return ""
    return ""


# --------------------------------------------------------------------------- the index


def _thumbnail_and_title(executed: Path) -> tuple[str | None, str]:
    """The key figure as a data URL (``None`` without one) and the title of a notebook."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
        jpg = thumbnail(nb)
    except Exception:  # noqa: BLE001 - an unreadable notebook has no thumbnail, the index stays
        return None, ""
    url = None if jpg is None else "data:image/jpeg;base64," + base64.b64encode(jpg).decode()
    return url, title(nb)


def headline(results: dict | None) -> str:
    """The index's results section from ``reports/results.json`` (empty without one): the
    best model against the mean face, the original LSTM and the noise floor, with mouth
    correlation, lip-sync offset and the real-recording scores."""
    if not results or not results.get("models"):
        return ""
    esc = html.escape
    models = dict(results["models"])
    best = results.get("best_model")
    default = results.get("default_model")
    levers = results.get("levers") or {}
    live = levers.get("live_model")
    real = dict((results.get("real") or {}).get("models") or {})
    # the default and the live model may be lever runs: their rows of the lever table
    for label, row in (levers.get("rows") or {}).items():
        if label in (default, live) and label not in models:
            models[label] = {
                "mlmd": row.get("test M-LMD"),
                "mouth_corr": row.get("test mouth corr"),
                "offset_ms": row.get("test offset ms"),
            }
            real.setdefault(label, {"mouth_corr": row.get("real mouth corr")})
    floor = results.get("noise_floor") or {}
    shown = []
    for name in ("noise floor", "mean_face", "lstm_original", best, default, live):
        if name and name not in shown and (name in models or name == "noise floor"):
            shown.append(name)
    rows = []
    for name in shown:
        m = floor if name == "noise floor" else models[name]
        r = real.get(name) or {}
        stand_in = str(results.get("noise_floor_kind") or "").startswith("stand-in")
        floor_what = (
            "no ground truth: dlib against itself on mirrored frames (a stand-in)"
            if stand_in
            else "dlib against the ground truth: the floor no model can beat"
        )
        what = {
            "noise floor": floor_what,
            "mean_face": "the mean face, no audio",
            "lstm_original": "the original project's LSTM",
        }.get(name, "")
        tags = [
            t
            for t, n in (
                ("best of notebook 03's models", best),
                ("default model: wav2kp predict", default),
                ("live model: wav2kp live", live),
            )
            if name == n
        ]
        label = esc(name) + (f' <span class="tag">{esc(", ".join(tags))}</span>' if tags else "")
        rows.append(
            f"<tr><td>{label}<div class='muted'>{esc(what)}</div></td>"
            f"<td>{_fmt(m.get('mlmd'))}</td><td>{_fmt(m.get('mouth_corr'))}</td>"
            f"<td>{_fmt(m.get('offset_ms'), 1)}</td><td>{_fmt(r.get('mouth_corr'))}</td></tr>"
        )
    ratios = results.get("ratios") or {}
    sentence = ""
    if best and ratios:
        sentence = (
            f"<p>The best of notebook 03's models, <b>{esc(best)}</b>, has "
            f"{_fmt(ratios.get('best_to_mean_face'))}× the mean face's "
            f"mouth error, {_fmt(ratios.get('best_to_lstm_original'))}× the original LSTM's and "
            f"{_fmt(ratios.get('best_to_noise_floor'))}× dlib's own error on "
            f"{_fmt(results.get('clips'))} test clips ({esc(str(results.get('corpus')))}, "
            f"{esc(str(results.get('subset')))}; profile {esc(str(results.get('profile')))}, "
            f"commit {esc(str(results.get('commit')))}).</p>"
        )
    real_note = ""
    if real:
        real_note = (
            f"<p class='muted'>Real recordings: {_fmt((results.get('real') or {}).get('files'))} "
            "talking-head videos the models never heard; the column is the mean correlation of "
            "predicted and real mouth opening.</p>"
        )
    return (
        "<h2>Results</h2>"
        + sentence
        + "<table class='results'><thead><tr><th>model</th><th>M-LMD % IOD ↓</th>"
        "<th>mouth corr ↑</th><th>lip-sync offset ms</th><th>real recordings: mouth corr ↑</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>" + real_note
    )


CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d232a; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 1.8rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; color: #444; }
dt { font-weight: 600; } dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin-top: .6rem; }
th, td { text-align: left; vertical-align: top; padding: .45rem .6rem; border-bottom: 1px solid #ddd; }
th { background: #f3f5f7; }
table.results td:not(:first-child) { font-variant-numeric: tabular-nums; }
code, pre { font: 13px/1.35 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { margin: .4rem 0 0; white-space: pre-wrap; background: #fbf1f1; padding: .4rem; }
ul.params { margin: 0; padding-left: 1rem; }
.status { font-weight: 600; padding: .1rem .45rem; border-radius: .3rem; }
.ok { background: #dff3e4; color: #17602b; } .failed { background: #fbe0e0; color: #8d1b1b; }
.skipped, .pending { background: #eceff2; color: #555; }
.tag { font-size: .8em; background: #e6eefb; color: #1d4f91; padding: .05rem .35rem;
       border-radius: .3rem; }
.muted { color: #777; font-size: .9em; }
.thumb img { width: 180px; max-height: 130px; object-fit: contain; border: 1px solid #ddd;
             border-radius: 3px; display: block; background: #fff; }
"""


def _index_row(entry: dict[str, Any], thumb: str | None = None) -> str:
    esc = html.escape
    name = esc(entry["name"])
    link = f'<a href="{esc(entry["html_path"])}">{name}</a>' if entry["html_exists"] else name
    if entry.get("title"):
        link += f'<div class="muted">{esc(entry["title"])}</div>'
    picture = ""
    if thumb and entry["html_exists"]:
        picture = (
            f'<a class="thumb" href="{esc(entry["html_path"])}">'
            f'<img src="{thumb}" alt="key figure of {name}"></a>'
        )
    status = entry["status"]
    note = ""
    if status == "skipped":
        note = " not selected" if not entry["selected"] else " not run"
        note += " (page from an earlier run)" if entry["html_exists"] else ""
    wall = "" if entry["wall_s"] is None else f"{entry['wall_s']:.1f} s"
    params = "".join(
        f"<li><code>{esc(k)} = {esc(json.dumps(v, default=str))}</code></li>"
        for k, v in entry["parameters"].items()
    )
    params = (
        f'<ul class="params">{params}</ul>' if params else '<span class="muted">defaults</span>'
    )
    error = ""
    if entry["error"]:
        headline = [ln for ln in entry["error"].splitlines() if not ln.startswith(" ")][:2]
        error = (
            f"<details><summary>{esc(' '.join(headline))}</summary>"
            f"<pre>{esc(entry['error'])}</pre></details>"
        )
    return (
        f"<tr><td>{esc(entry['key'])}</td><td>{picture}</td><td>{link}{error}</td>"
        f'<td><span class="status {esc(status)}">{esc(status)}</span>'
        f'<span class="muted">{esc(note)}</span></td><td>{wall}</td><td>{params}</td></tr>'
    )


def render_index(
    manifest: dict[str, Any],
    results: dict[str, Any] | None = None,
    thumbnails: dict[str, str] | None = None,
) -> str:
    """``index.html`` for a :func:`study_manifest`: self-contained (inline CSS, no scripts).
    ``results``: the study's merged record (:func:`wav2kp.results.study`) for the headline
    results (:func:`headline`);
    ``thumbnails``: ``{notebook key: image data URL}``, each linking to its page."""
    thumbnails = thumbnails or {}
    esc = html.escape
    overrides = ", ".join(
        f"{k}={json.dumps(v, default=str)}" for k, v in manifest["overrides"].items()
    )
    versions = ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())
    facts = {
        "Profile": manifest["profile"],
        "Overrides": overrides or "none",
        "Commit": manifest["git_commit"],
        "Started (UTC)": manifest["started"],
        "Total wall time": f"{manifest['total_wall_s']:.1f} s",
        "State": manifest["state"],
        "Versions": versions,
    }
    facts_html = "".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in facts.items())
    rows = "\n".join(_index_row(e, thumbnails.get(e["key"])) for e in manifest["notebooks"])
    story = headline(results) if results else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wav2kp study ({esc(manifest["profile"])})</title>
<style>{CSS}</style>
</head>
<body>
<h1>wav2kp study</h1>
<p class="muted">Speech to 68-point facial keypoints: one page per notebook, executed with papermill.</p>
<dl>{facts_html}</dl>
{story}
<h2>Notebooks</h2>
<table>
<thead><tr><th>#</th><th>Key figure</th><th>Notebook</th><th>Status</th><th>Wall time</th><th>Parameters</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def write_index(manifest: dict[str, Any], pages: Sequence[tuple[str, Path, Path]]) -> Path:
    """Write ``reports/html/index.html`` (atomically) for a study's ``manifest`` (the runner's
    ``study.json``); ``pages``: ``(notebook key, executed notebook, its HTML page)`` of every
    notebook. The headline results come from :func:`wav2kp.results.study` once notebook 04's
    page exists."""
    thumbnails, titles = {}, {}
    for key, executed, page in pages:
        if executed.is_file() and page.is_file():
            thumbnails[key], titles[key] = _thumbnail_and_title(executed)
    results = None
    if any(key == "04" and page.is_file() for key, _, page in pages):
        results = records.study()  # the headline names its commit
    thumbnails = {k: v for k, v in thumbnails.items() if v}
    for entry in manifest["notebooks"]:
        entry["title"] = titles.get(entry["key"], "")
    index = config.reports_dir() / "html" / "index.html"
    write_text(index, render_index(manifest, results, thumbnails))
    return index
