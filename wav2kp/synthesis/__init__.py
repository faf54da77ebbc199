"""Stage 05, synthesis: keypoint sketches, vid2vid edge maps and export, a face photo animated
by the keypoints, and the outputs of ``wav2kp predict`` (notebook 05).

- :mod:`~wav2kp.synthesis.render`: :class:`FaceRenderer`, :func:`sketch_frame`,
  :func:`edge_map`, :func:`export_vid2vid`;
- :mod:`~wav2kp.synthesis.outputs`: keypoints as npy/csv, the sketch and face videos with the
  recording's audio, panels for comparisons; :func:`predict_recording`, ``wav2kp predict``'s
  pipeline;
- :mod:`~wav2kp.synthesis.motion`: head motion and blinks from speech, and notebook 05's
  comparison of their statistics with real videos.
"""

from wav2kp.synthesis import motion, outputs, render
from wav2kp.synthesis.outputs import (
    keypoint_table,
    panel_frames,
    panel_video,
    place,
    predict_recording,
    recording_audio,
    write_outputs,
)
from wav2kp.synthesis.render import FaceRenderer, edge_map, export_vid2vid, sketch_frame

__all__ = [
    "FaceRenderer",
    "edge_map",
    "export_vid2vid",
    "keypoint_table",
    "outputs",
    "panel_frames",
    "panel_video",
    "motion",
    "place",
    "predict_recording",
    "recording_audio",
    "render",
    "sketch_frame",
    "write_outputs",
]
