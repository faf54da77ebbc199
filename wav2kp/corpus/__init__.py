"""Corpora: the clip table of a folder of videos, and the bundled synthetic corpus.

``discover(folder)`` reads CH-Unicamp-style names (``Em<E>_Fala<S>[_Neutra]_<Speaker>.mp4``)
and any other folder of videos; ``bundled.build()`` makes the bundled corpus of the same shape.
"""
from wav2kp.corpus.discovery import (
    CLIP_COLUMNS,
    VIDEO_EXTENSIONS,
    describe,
    discover,
    emotion_names,
    emotion_table,
    parse_name,
)

__all__ = ["CLIP_COLUMNS", "VIDEO_EXTENSIONS", "describe", "discover", "emotion_names", "emotion_table",
           "parse_name"]
