"""The clip table: CH-Unicamp-style names and generic folders of videos.

CH-Unicamp names its clips ``Em<E>_Fala<S>[_Neutra]_<Speaker>.<ext>``: emotion number ``E``
(1..22, the OCC categories of ``emotions.yaml``), sentence number ``S`` within that emotion, an
optional ``_Neutra`` for the neutral take of the same sentence, and the speaker's name. Any other
video in a folder is read too, with an unknown emotion.

The speaker of a generic video is ``"unknown"`` (later stages then treat each clip as its own
speaker), except in a **GRID speaker folder**: videos named by their sentence code
(``bbaf3s.mp4``) beside ``align/<code>.align`` word alignments, the folder named after the
speaker (``s1``, ``grid_s1``): every clip is that speaker's.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from wav2kp import config, media

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".flv", ".m4v")

#: Columns of the clip table, in order.
CLIP_COLUMNS = ["clip", "emotion", "emotion_name", "sentence", "neutral", "speaker", "path"]

#: A GRID speaker folder's name ends with the speaker: ``s1``, ``grid_s1``.
GRID_SPEAKER = re.compile(r"(?:^|[_-])(s\d{1,2})$", re.IGNORECASE)

CHU_PATTERN = re.compile(
    r"^em(?P<emotion>\d+)_fala(?P<sentence>\d+)(?P<neutral>_neutra)?_(?P<speaker>[^.]+)$",
    re.IGNORECASE,
)

EmotionsArg = None | Mapping[int, str] | str | os.PathLike


def emotion_table() -> pd.DataFrame:
    """The 22 OCC emotion categories bundled with the package, one row each.

    Columns: ``id`` (1..22), ``key``, ``en``, ``pt`` and the synthetic-corpus columns
    ``valence``, ``arousal``, ``brow``, ``eyes`` (see ``emotions.yaml``).
    """
    text = resources.files("wav2kp.corpus").joinpath("emotions.yaml").read_text(encoding="utf-8")
    return pd.DataFrame(yaml.safe_load(text)).set_index("id", drop=False)


def emotion_names(emotions: EmotionsArg = None) -> dict[int, str]:
    """``{number: name}`` for emotion numbers in file names.

    ``emotions`` is ``None`` (the bundled OCC table, English names), a mapping, or the path of a
    YAML file (a mapping, or a list of ``{id, en}`` rows) or CSV file (columns ``id,name``).
    """
    if emotions is None:
        table = emotion_table()
        return {int(i): str(n) for i, n in zip(table["id"], table["en"])}
    if isinstance(emotions, Mapping):
        return {int(k): str(v) for k, v in emotions.items()}
    path = Path(emotions)
    if not path.is_file():
        raise FileNotFoundError(f"Emotion table {path} does not exist.")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or not {"id", "name"} <= set(rows[0]):
            raise ValueError(f"{path}: an emotion CSV needs the columns 'id' and 'name'.")
        return {int(r["id"]): r["name"] for r in rows}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        return {int(k): str(v) for k, v in data.items()}
    if isinstance(data, list) and all(isinstance(r, dict) and "id" in r for r in data):
        return {int(r["id"]): str(r.get("en") or r.get("name")) for r in data}
    raise ValueError(f"{path}: expected a mapping {{number: name}} or a list of {{id, en}} rows.")


def parse_name(path: str | os.PathLike) -> dict | None:
    """Fields of a CH-Unicamp file name, or ``None`` when the name does not follow the pattern."""
    match = CHU_PATTERN.match(Path(path).stem)
    if not match:
        return None
    return {
        "emotion": int(match["emotion"]),
        "sentence": int(match["sentence"]),
        "neutral": match["neutral"] is not None,
        "speaker": match["speaker"],
    }


def discover(
    folder: str | os.PathLike, emotions: EmotionsArg = None, recursive: bool = True
) -> pd.DataFrame:
    """Read a folder of talking-head videos into the clip table.

    Parameters
    ----------
    folder:
        A folder of videos (searched recursively by default), or ``"bundled"`` for the bundled
        corpus under ``data/raw/bundled`` (which must have been built).
    emotions:
        Emotion names for the numbers in CH-Unicamp names (see :func:`emotion_names`).

    Returns
    -------
    DataFrame with :data:`CLIP_COLUMNS`: ``clip`` (file stem, unique), ``emotion`` (int, ``<NA>``
    when unknown), ``emotion_name`` (``"unknown"`` when the name is not CH-Unicamp-style, or the
    number has no name), ``sentence`` (int or ``<NA>``), ``neutral`` (bool), ``speaker`` (str,
    ``"unknown"`` for generic videos), ``path`` (absolute). Sorted by emotion, sentence, neutral,
    then clip.

    Raises
    ------
    FileNotFoundError / NotADirectoryError
        when the folder is missing or not a folder; ``ValueError`` when it holds no video.
    """
    if str(folder) == "bundled":
        folder = config.raw_dir("bundled")
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(
            f"Corpus folder {root} does not exist. Point `corpus` at a folder of videos, or use "
            f"'bundled' (build it with `wav2kp corpus build`)."
        )
    if not root.is_dir():
        raise NotADirectoryError(f"Corpus path {root} is not a folder.")
    names = emotion_names(emotions)
    pattern = "**/*" if recursive else "*"
    files = sorted(
        p
        for p in root.glob(pattern)
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise ValueError(
            f"No videos in {root} (looked for {', '.join(VIDEO_EXTENSIONS)}"
            f"{', recursively' if recursive else ''})."
        )
    rows, seen = [], {}
    for path in files:
        fields = parse_name(path)
        clip = path.stem
        if clip in seen:  # same stem in two sub-folders: keep ids unique and stable
            clip = path.relative_to(root).with_suffix("").as_posix().replace("/", "__")
        if clip in seen:  # same stem, other extension, same folder
            clip = f"{clip}_{path.suffix.lstrip('.').lower()}"
        seen[clip] = path
        if fields:
            rows.append(
                {
                    "clip": clip,
                    "emotion": fields["emotion"],
                    "emotion_name": names.get(fields["emotion"], "unknown"),
                    "sentence": fields["sentence"],
                    "neutral": fields["neutral"],
                    "speaker": fields["speaker"],
                    "path": str(path.resolve()),
                }
            )
        else:
            rows.append(
                {
                    "clip": clip,
                    "emotion": None,
                    "emotion_name": "unknown",
                    "sentence": None,
                    "neutral": False,
                    "speaker": "unknown",
                    "path": str(path.resolve()),
                }
            )
    table = pd.DataFrame(rows, columns=CLIP_COLUMNS)
    speaker = grid_speaker(root)
    if speaker is not None:
        generic = table["emotion"].isna() & table["path"].map(lambda p: _has_alignment(root, p))
        table.loc[generic, "speaker"] = speaker
    table["emotion"] = table["emotion"].astype("Int64")
    table["sentence"] = table["sentence"].astype("Int64")
    table["neutral"] = table["neutral"].astype(bool)
    table = table.sort_values(["emotion", "sentence", "neutral", "clip"], na_position="last")
    return table.reset_index(drop=True)


def grid_speaker(folder: str | os.PathLike) -> str | None:
    """The speaker of a GRID speaker folder (``align/*.align`` beside the videos, the folder
    named ``s<N>`` or ``..._s<N>``), else ``None``."""
    root = Path(folder)
    match = GRID_SPEAKER.search(root.name)
    if match is None or not (root / "align").is_dir():
        return None
    return match.group(1).lower()


def _has_alignment(root: Path, path: str) -> bool:
    return (root / "align" / f"{Path(path).stem}.align").is_file()


def read_alignment(path: str | os.PathLike) -> list[tuple[float, float, str]]:
    """A GRID ``.align`` file: ``[(start s, end s, word)]`` (times in the file are 1/25000 s;
    ``sil`` and ``sp`` are silence)."""
    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}: expected 'start end word' lines, got {line!r}.")
        words.append((int(parts[0]) / 25000.0, int(parts[1]) / 25000.0, parts[2]))
    return words


def describe(clips: pd.DataFrame) -> pd.DataFrame:
    """What each clip's file holds (duration, frame rate, size, codecs, audio rate, channels),
    one row per clip; a file that cannot be read gets its error in ``problem``."""

    rows = []
    for clip, path in zip(clips["clip"], clips["path"]):
        try:
            info = media.probe(path)
            info.pop("path", None)
            info["fps"] = float(info["fps"]) if info["fps"] else None
            rows.append({"clip": clip, **info, "problem": ""})
        except (OSError, ValueError) as err:
            rows.append({"clip": clip, "problem": str(err)})
    return pd.DataFrame(rows)
