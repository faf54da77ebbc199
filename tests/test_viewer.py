"""wav2kp.evaluation.viewer: drawing keypoints, the side-by-side comparison video and the keypoint player,
on a tiny synthetic clip (12 frames of 64x48 at 25 fps with a 440 Hz tone)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from wav2kp import media, shapes
from wav2kp.evaluation.viewer import (
    MODEL_COLOURS,
    QUANTUM,
    TRUTH_COLOUR,
    ClipView,
    KeypointPlayer,
    comparison_frames,
    comparison_video,
    draw_keypoints,
    load_frames,
    model_colours,
    mouth_error,
    scale_points,
)

W, H, N, FPS, RATE = 64, 48, 12, 25, 16000
SHIFT = np.array([3.0, 3.0])


def _face(cx: float, cy: float, size: float) -> np.ndarray:
    """A 68-point face (dlib layout) centred at ``(cx, cy)``, ``size`` px wide."""

    def ellipse(n: int, rx: float, ry: float, x0: float, y0: float) -> np.ndarray:
        a = np.pi + 2 * np.pi * np.arange(n) / n  # from the left corner, clockwise
        return np.c_[x0 + rx * np.cos(a), y0 - ry * np.sin(a)]

    jaw = np.linspace(np.pi, 0, 17)
    pts = np.concatenate(
        [
            np.c_[0.5 * np.cos(jaw), 0.05 + 0.55 * np.sin(jaw)],  # jaw, chin at the bottom
            np.c_[np.linspace(-0.42, -0.12, 5), np.full(5, -0.30)],  # right brow
            np.c_[np.linspace(0.12, 0.42, 5), np.full(5, -0.30)],  # left brow
            np.c_[np.zeros(4), np.linspace(-0.15, 0.08, 4)],  # nose bridge
            np.c_[np.linspace(-0.10, 0.10, 5), np.full(5, 0.14)],  # nostrils
            ellipse(6, 0.09, 0.04, -0.25, -0.18),  # right eye
            ellipse(6, 0.09, 0.04, 0.25, -0.18),  # left eye
            ellipse(12, 0.20, 0.09, 0.0, 0.33),  # outer lip
            ellipse(8, 0.12, 0.04, 0.0, 0.33),  # inner lip
        ]
    )
    return pts * size + [cx, cy]


def _image(k: int) -> np.ndarray:
    """A smooth grey-blue frame that changes a little from frame to frame."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([40 + x, 40 + y, np.full_like(x, 60 + 5 * k)], axis=-1).astype(np.uint8)


def _clip(folder: Path, name: str, n: int = N, audio: bool = True) -> ClipView:
    video = folder / f"{name}.mp4"
    media.write_video(video, (_image(k) for k in range(n)), None, size=(W, H), fps=FPS)
    wav = None
    if audio:
        wav = folder / f"{name}.wav"
        t = np.arange(int(RATE * n / FPS)) / RATE
        media.write_wav(wav, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE)
    times = np.arange(n) / FPS
    truth = np.repeat(_face(W / 2, H / 2 - 2, 36)[None], n, axis=0)
    truth[n // 2] = np.nan
    return ClipView(
        name,
        video,
        times,
        truth,
        {"shifted": truth + SHIFT, "exact": truth.copy()},
        audio=wav,
        title="synthetic",
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, ClipView]:
    folder = tmp_path_factory.mktemp("viewer")
    return {"a": _clip(folder, "a"), "b": _clip(folder, "b", n=8, audio=False)}


# ------------------------------------------------------------------------------- drawing


def test_draw_keypoints_puts_the_colour_on_every_point_and_skips_nan() -> None:
    img = np.zeros((120, 160, 3), dtype=np.uint8)
    pts = np.round(_face(80, 55, 80))
    pts[10] = np.nan  # a missing point: nothing there
    colour = (255, 0, 0)
    out = draw_keypoints(img, pts, colour=colour, radius=2, lines=False)
    assert out is not img and not img.any()  # a copy; the input is untouched
    ok = np.isfinite(pts).all(axis=1)
    xy = pts[ok].astype(int)
    assert (out[xy[:, 1], xy[:, 0]] == colour).all()  # disc centres are fully coloured
    assert (out[..., 1:] == 0).all()  # only red was drawn
    drawn = out[..., 0] > 0
    assert 67 * 9 <= drawn.sum() <= 67 * 25  # ~ a radius-2 disc per point
    x10, y10 = np.round(_face(80, 55, 80)[10]).astype(int)
    assert not out[y10 - 1 : y10 + 2, x10 - 1 : x10 + 2].any()

    with_lines = draw_keypoints(img, pts, colour=colour, radius=2, lines=True)
    assert with_lines[..., 0].astype(bool).sum() > drawn.sum() + 100  # the polylines
    nose = _face(80, 55, 80)[27:31]  # midway along the nose bridge
    mid = np.round((nose[0] + nose[1]) / 2).astype(int)
    assert with_lines[mid[1], mid[0], 0] > 100

    blank = draw_keypoints(img, np.full((68, 2), np.nan), colour=colour)
    np.testing.assert_array_equal(blank, img)


def test_draw_keypoints_is_sub_pixel_and_takes_grey() -> None:
    grey = np.full((20, 20), 50, dtype=np.uint8)
    a = np.full((68, 2), np.nan)
    b = a.copy()
    a[0] = (10.0, 10.0)
    b[0] = (10.5, 10.0)
    img_a = draw_keypoints(grey, a, colour=(255, 255, 255), radius=2, lines=False)
    img_b = draw_keypoints(grey, b, colour=(255, 255, 255), radius=2, lines=False)
    assert img_a.shape == (20, 20, 3)
    assert img_a[10, 10, 0] == 255 and (img_a[10, 0] == 50).all()
    # half a pixel to the right: the right neighbour gets brighter, the left one darker
    assert img_b[10, 13, 0] > img_a[10, 13, 0] + 50 and img_b[10, 7, 0] < img_a[10, 7, 0] - 50
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        draw_keypoints(grey, np.zeros((20, 2)))


def test_scale_points_mouth_error_and_colours() -> None:
    np.testing.assert_allclose(scale_points([[0.0, 9.0]], 0.5), [[-0.25, 4.25]])
    np.testing.assert_allclose(scale_points([[1.0, 1.0]], (2.0, 0.5)), [[2.5, 0.25]])
    truth = _face(100, 100, 100)
    iod = float(shapes.inter_ocular(truth))
    err = mouth_error(truth + [3.0, 4.0], truth)  # 5 px on every mouth point
    assert err.shape == () and float(err) == pytest.approx(100 * 5 / iod)
    moved = truth.copy()
    moved[:48] += 50  # only non-mouth points move
    assert float(mouth_error(moved, truth)) == 0.0
    seq = mouth_error(np.stack([truth, truth + 1]), np.stack([truth, truth * np.nan]))
    assert seq[0] == 0.0 and np.isnan(seq[1])
    colours = model_colours([f"m{i}" for i in range(len(MODEL_COLOURS) + 1)])
    assert (
        colours["m0"] == MODEL_COLOURS[0] and colours[f"m{len(MODEL_COLOURS)}"] == MODEL_COLOURS[0]
    )


def test_clip_view_checks_shapes_and_fps(clips) -> None:
    a = clips["a"]
    assert a.fps() == Fraction(25)
    with pytest.raises(ValueError, match=r"clip 'bad'.*'short'.*\(9, 68, 2\)"):
        ClipView("bad", a.video, a.times, a.truth, {"short": a.truth[:9]})
    ntsc = ClipView("ntsc", a.video, np.arange(N) * 1001 / 30000, a.truth)
    assert ntsc.fps() == Fraction(30000, 1001)


def test_load_frames_shrinks_to_max_size(clips) -> None:
    frames, scale = load_frames(clips["a"].video, max_size=32)
    assert scale == 0.5 and len(frames) == N and frames[0].shape == (24, 32, 3)
    frames, scale = load_frames(clips["a"].video, max_size=1000)  # never enlarged
    assert scale == 1.0 and frames[0].shape == (H, W, 3)
    assert np.abs(frames[3].astype(int) - _image(3)).mean() < 3


# ------------------------------------------------------------------------------ comparison


def test_comparison_frames_panels(clips) -> None:
    a = clips["a"]
    frames = list(comparison_frames(a, panel=100))
    assert len(frames) == N
    # 3 panels of 100 px; 48 * 100 / 64 = 75 rows, padded to 76
    assert all(f.shape == (76, 300, 3) for f in frames)
    assert not frames[0][75].any()  # the padding row is black
    odd = next(comparison_frames(a, models=["exact"], panel=101, max_frames=1))
    assert odd.shape == (76, 202, 3)  # 2 * 101 = 202; 75.75 -> 76
    assert len(list(comparison_frames(a, models=["exact"], panel=64, max_frames=5))) == 5

    f = frames[0]
    panels = [f[:75, i * 100 : (i + 1) * 100].astype(int) for i in range(3)]
    # in the model panels, the model's colour lies where its (scaled) points are
    for i, (name, off) in enumerate([("shifted", SHIFT), ("exact", 0.0)], start=1):
        colour = np.array(model_colours(["shifted", "exact"])[name])
        pts = np.round(scale_points(a.truth[0] + off, 100 / 64)[shapes.MOUTH]).astype(int)
        pix = panels[i][pts[:, 1], pts[:, 0]]
        assert np.abs(pix - colour).sum(axis=1).mean() < 60, name
    # the truth panel has truth colour on the truth's mouth and no model colour
    pts = np.round(scale_points(a.truth[0], 100 / 64)[shapes.MOUTH]).astype(int)
    assert np.abs(panels[0][pts[:, 1], pts[:, 0]] - TRUTH_COLOUR).sum(axis=1).mean() < 60
    # far from the face (right-hand edge, below the label) every panel is the video frame
    video = frames[0][30:40, 92:100]
    for i in range(3):
        np.testing.assert_array_equal(f[30:40, i * 100 + 92 : i * 100 + 100], video)
    # the model panels differ (shifted vs exact), the frame without truth has no truth drawn
    assert np.abs(panels[1] - panels[2]).sum() > 1000
    nan_frame = frames[N // 2][:75, :100].astype(int)
    assert np.abs(nan_frame[30:60] - frames[0][:75, :100].astype(int)[30:60]).sum() > 1000

    with pytest.raises(ValueError, match=r"clip 'a'.*\['nope'\]"):
        comparison_frames(a, models=["nope"])  # raised at the call, not lazily


def test_comparison_video_writes_frames_audio_and_size(clips, tmp_path) -> None:
    out = comparison_video(clips["a"], tmp_path / "cmp.mp4", panel=96)
    assert out == tmp_path / "cmp.mp4"
    info = media.probe(out, scan_timestamps=True)
    assert info["n_frames"] == N and info["fps"] == 25
    assert (info["width"], info["height"]) == (288, 72)  # 3 x 96; 48 * 1.5 = 72
    assert info["has_audio"] and info["audio_rate"] == RATE
    assert info["duration"] == pytest.approx(N / FPS, abs=0.08)
    audio = media.decode_audio(out, rate=RATE)
    assert 0.15 < np.sqrt(np.mean(audio[2000:4000] ** 2)) < 0.26  # the tone (RMS 0.21)
    assert not list(tmp_path.glob(".*partial*"))

    short = comparison_video(
        clips["a"], tmp_path / "short.mp4", models=["exact"], panel=64, max_seconds=0.2
    )
    info = media.probe(short, scan_timestamps=True)
    assert info["n_frames"] == 5 and (info["width"], info["height"]) == (128, 48)
    assert info["duration"] == pytest.approx(0.2, abs=0.08)

    silent = comparison_video(clips["b"], tmp_path / "b.mp4", panel=64)
    info = media.probe(silent, scan_timestamps=True)
    assert info["n_frames"] == 8 and not info["has_audio"]


def test_mismatched_lengths_name_the_clip(clips, tmp_path) -> None:
    a = clips["a"]
    bad = ClipView("clip_x", a.video, a.times, a.truth, dict(a.preds))
    bad.preds["shifted"] = bad.preds["shifted"][:-2]  # changed after construction
    with pytest.raises(ValueError, match=r"clip 'clip_x'.*'shifted'"):
        comparison_video(bad, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()

    longer = np.arange(N + 3) / FPS  # 15 times for a 12-frame video
    far = ClipView("clip_y", a.video, longer, np.zeros((N + 3, 68, 2)))
    with pytest.raises(ValueError, match=r"clip 'clip_y'.*12 frames.*15 frame times"):
        comparison_video(far, tmp_path / "y.mp4")
    with pytest.raises(ValueError, match="clip_y"):
        KeypointPlayer([far]).data()

    # one frame more or less is tolerated: the longer side is cut
    near = ClipView("clip_z", a.video, np.arange(N + 1) / FPS, np.zeros((N + 1, 68, 2)))
    assert len(list(comparison_frames(near, panel=32))) == N
    fewer = ClipView("clip_w", a.video, a.times[:-1], a.truth[:-1])
    out = comparison_video(fewer, tmp_path / "w.mp4", panel=32)
    assert media.probe(out, scan_timestamps=True)["n_frames"] == N - 1


# ---------------------------------------------------------------------------------- player


def _unpack(b64: str, n: int) -> np.ndarray:
    import base64

    q = np.frombuffer(base64.b64decode(b64), dtype="<i2").reshape(n, 68, 2).astype(float)
    return np.where(q == -32768, np.nan, q / QUANTUM)


def test_keypoint_player_embeds_everything(clips) -> None:
    """One self-contained block: the videos as data URLs, frame times, truth and predictions to
    1/QUANTUM px (NaN kept), the models with their colours; no address outside the page."""
    import json
    import re

    p = KeypointPlayer(clips)
    data = p.data()
    assert data["models"] == ["shifted", "exact"] and data["model"] == "shifted"
    assert KeypointPlayer(clips, model="exact").data()["model"] == "exact"
    with pytest.raises(ValueError, match="'other' is not one of"):
        KeypointPlayer(clips, model="other")
    assert data["colours"] == {"shifted": "#00e5ff", "exact": "#ff4df0"}
    a = data["clips"][0]
    assert a["clip"] == "a" and a["title"] == "synthetic" and (a["w"], a["h"]) == (W, H)
    assert a["video"].startswith("data:video/mp4;base64,")
    assert np.allclose(a["times"], clips["a"].times)
    truth = _unpack(a["truth"], N)
    assert np.isnan(truth[N // 2]).all() and not np.isnan(truth[0]).any()
    np.testing.assert_allclose(truth[0], clips["a"].truth[0], atol=0.5 / QUANTUM)
    np.testing.assert_allclose(
        _unpack(a["preds"]["shifted"], N)[0], clips["a"].truth[0] + SHIFT, atol=0.5 / QUANTUM
    )
    page = p.html()
    assert p._repr_html_() == page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing fetched
    assert "import " not in page.split("<script>")[1]  # no module loaded from elsewhere
    embedded = page.split('class="w2k-data">')[1].split("</script>")[0]
    assert json.loads(embedded)["models"] == ["shifted", "exact"]
    # a clip without a model's prediction offers only what it has
    only = ClipView("only_exact", clips["a"].video, clips["a"].times, clips["a"].truth,
                    {"exact": clips["a"].truth})  # fmt: skip
    d = KeypointPlayer([only], models=["shifted", "exact"]).data()
    assert list(d["clips"][0]["preds"]) == ["exact"]


def test_keypoint_player_refuses_bad_input(clips, tmp_path) -> None:
    with pytest.raises(ValueError, match="twice"):
        KeypointPlayer([clips["a"], clips["a"]])
    with pytest.raises(ValueError, match="at least one"):
        KeypointPlayer([])
    gone = ClipView("gone", tmp_path / "nothing.mp4", clips["a"].times, clips["a"].truth)
    with pytest.raises(FileNotFoundError, match="gone"):
        KeypointPlayer([gone])
    out = KeypointPlayer(clips).save(tmp_path / "p" / "player.html")
    assert out.read_text().startswith("<!DOCTYPE html>") and not list(out.parent.glob(".*"))
