"""Corpora: the clip table of a folder of videos, and the bundled synthetic corpus.

``discover(folder)`` reads CH-Unicamp-style names (``Em<E>_Fala<S>[_Neutra]_<Speaker>.mp4``)
and any other folder of videos; ``bundled.build()`` makes the bundled corpus of the same shape.
"""

from wav2kp.corpus import bundled
from wav2kp.corpus.discovery import (
    CLIP_COLUMNS,
    VIDEO_EXTENSIONS,
    describe,
    discover,
    emotion_names,
    emotion_table,
    parse_name,
)


def study_clips(corpus: str, subset: str | None = None):
    """The clip table a study stage works on: ``discover(corpus)``, and for the bundled corpus
    only the clips of ``subset`` (``quick`` or ``full``; ``None``: every clip built)."""
    clips = discover(corpus)
    if str(corpus) == "bundled" and subset:
        clips = bundled.select(clips, subset)
    return clips


__all__ = [
    "CLIP_COLUMNS",
    "VIDEO_EXTENSIONS",
    "bundled",
    "describe",
    "discover",
    "emotion_names",
    "emotion_table",
    "parse_name",
    "study_clips",
]
