"""Benchmark: frames per second of the renderers in wav2kp.synthesis.render.

    python benchmarks/render.py [--frames 60]

``FaceRenderer.render`` (piecewise-affine warp + mouth interior) of the bundled corpus face at
256 and 512 px, over a mouth that opens to 0.3 inter-ocular distances and closes again; then
``sketch_frame`` and ``edge_map`` at 256 px on the same keypoints. Each figure is timed after 3
warm-up frames, in this process (OpenCV uses its own thread pool: the core count is printed).
The goal is a face renderer of at least 30 fps at 256 px on 2 cores. The last line is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import cv2
import numpy as np

from wav2kp.synthesis.render import FaceRenderer, edge_map, open_mouth, sketch_frame

GOAL_FPS_256 = 30.0
WARM_UP = 3


def fps(draw: Callable[[np.ndarray], np.ndarray], seq: np.ndarray) -> float:
    """Frames per second of ``draw`` over the keypoints ``seq`` (T, 68, 2), after warm-up."""
    for p in seq[:WARM_UP]:
        draw(p)
    t0 = time.perf_counter()
    for p in seq:
        draw(p)
    return len(seq) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60, help="frames per figure (default 60)")
    args = ap.parse_args()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    opening = 0.3 * np.sin(np.linspace(0.0, np.pi, args.frames))
    figures: dict[str, float | int | bool] = {
        "benchmark": "render",
        "frames": args.frames,
        "cores": cores,
        "opencv_threads": cv2.getNumThreads(),
    }
    seq256 = None
    for size in (256, 512):
        t0 = time.perf_counter()
        renderer = FaceRenderer(size=size)
        setup = time.perf_counter() - t0
        seq = open_mouth(np.repeat(renderer.rest[None], args.frames, axis=0), opening)
        figures[f"face_fps_{size}"] = round(fps(renderer.render, seq), 1)
        figures[f"face_setup_s_{size}"] = round(setup, 2)
        print(
            f"FaceRenderer.render {size}x{size}: {figures[f'face_fps_{size}']:.1f} fps "
            f"({len(renderer.triangles)} triangles; setup {setup:.2f} s incl. dlib)"
        )
        if size == 256:
            seq256 = seq
    figures["sketch_fps_256"] = round(fps(lambda p: sketch_frame(p, (256, 256)), seq256), 1)
    print(f"sketch_frame 256x256: {figures['sketch_fps_256']:.1f} fps")
    figures["edge_fps_256"] = round(fps(lambda p: edge_map(p, (256, 256)), seq256), 1)
    print(f"edge_map 256x256: {figures['edge_fps_256']:.1f} fps")
    figures["goal_met"] = bool(figures["face_fps_256"] >= GOAL_FPS_256)
    print(
        f"goal: face renderer >= {GOAL_FPS_256:.0f} fps at 256 px on 2 cores "
        f"({cores} here): {'met' if figures['goal_met'] else 'NOT met'}"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
