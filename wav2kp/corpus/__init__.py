"""Corpora: the clip table of a folder of videos, and the bundled synthetic corpus.

``discover(folder)`` reads CH-Unicamp-style names (``Em<E>_Fala<S>[_Neutra]_<Speaker>.mp4``)
and any other folder of videos; ``bundled.build()`` makes the bundled corpus of the same shape.
"""

import hashlib

from wav2kp.corpus import bundled
from wav2kp.corpus.discovery import (
    CLIP_COLUMNS,
    VIDEO_EXTENSIONS,
    describe,
    discover,
    emotion_names,
    emotion_table,
    grid_speaker,
    parse_name,
    read_alignment,
)

#: Clips of a folder's ``quick`` subset (the bundled corpus' quick subset has as many).
QUICK_CLIPS = 24


def study_clips(corpus: str, subset: str | int | None = None):
    """The clip table a study stage works on: ``discover(corpus)``, restricted to ``subset``.

    For the bundled corpus ``subset`` is ``"quick"`` (24 clips) or ``"full"`` (132). For a
    folder: ``"full"`` or ``None``, every clip; ``"quick"``, :data:`QUICK_CLIPS` of them; a
    number ``N``, ``N`` of them -- always the same ones (the first by a hash of their names, so
    a larger subset holds a smaller one)."""
    clips = discover(corpus)
    if str(corpus) == "bundled":
        return bundled.select(clips, subset) if subset else clips
    if subset in (None, "full"):
        return clips
    if subset == "quick":
        n = QUICK_CLIPS
    elif isinstance(subset, int) or str(subset).isdigit():
        n = int(subset)
    else:
        raise ValueError(
            f"subset {subset!r}: use 'quick', 'full' or a number of clips for a folder corpus."
        )
    rank = clips["clip"].map(lambda c: hashlib.sha256(str(c).encode()).hexdigest())
    keep = rank.sort_values().index[:n]
    return clips.loc[sorted(keep)].reset_index(drop=True)


def extra_corpora(
    spec: dict | None, study: str | None = None
) -> tuple[dict[str, tuple[str, object]], list[str]]:
    """The corpora a study adds to its own (notebook parameters ``train_corpora`` and
    ``experiment_corpora``: ``{folder: subset}``, a relative folder taken from the repository
    root): ``({name: (folder, clip table)}, [what was skipped, and why])``. A folder that is not
    there is skipped with a note, so a study runs where the real corpora are absent; so is the
    ``study`` corpus itself (its clips are the study's: adding them again would leak its test
    sentences into training)."""
    from wav2kp import config

    found, skipped = {}, []
    own = None if study in (None, "bundled") else config.resolve(study)
    for folder, subset in (spec or {}).items():
        path = config.resolve(folder)
        if not path.is_dir():
            skipped.append(f"{folder}: not there ({path}), skipped")
            continue
        if own is not None and path == own:
            skipped.append(f"{folder}: the study's own corpus, not added again")
            continue
        found[config.corpus_name(path)] = (str(path), study_clips(str(path), subset))
    return found, skipped


__all__ = [
    "CLIP_COLUMNS",
    "VIDEO_EXTENSIONS",
    "bundled",
    "describe",
    "discover",
    "emotion_names",
    "emotion_table",
    "extra_corpora",
    "grid_speaker",
    "parse_name",
    "read_alignment",
    "study_clips",
]
