"""wav2kp.synthesis.render: keypoint sketches, vid2vid edge maps and export, and FaceRenderer on any photo.

Fast: the one slow step is the corpus face at 256 px (dlib on the bundled photo, ~2 s, cached
by ``load_template``); the 16-frame video is encoded at 256 px.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from wav2kp import media, shapes
from wav2kp.corpus.face import load_template
from wav2kp.synthesis.render import (
    EDGE_ARCS,
    MOUTH_COLOUR,
    FaceRenderer,
    catmull_rom,
    edge_map,
    export_vid2vid,
    open_mouth,
    sketch_frame,
)

SIZE = 256
#: The opened mouth of the brief: lower lip and jaw straight down the face by 0.25 IOD.
DROPPED = [56, 57, 58, 65, 66, 67, 5, 6, 7, 8, 9, 10, 11]
#: Points where two arcs of the edge map meet.
JOINS = sorted({i for arc in EDGE_ARCS for i in (arc[0], arc[-1])})


@pytest.fixture(scope="module")
def renderer() -> FaceRenderer:
    return FaceRenderer(size=SIZE)


@pytest.fixture(scope="module")
def rest(renderer: FaceRenderer) -> np.ndarray:
    return renderer.rest


def _dropped(r: FaceRenderer, amount: float) -> np.ndarray:
    pts = r.rest
    pts[DROPPED] += amount * r.iod * r.rot[1]
    return pts


def _signed_areas(r: FaceRenderer, keypoints: np.ndarray) -> np.ndarray:
    ctrl = np.concatenate([keypoints, r.anchors])
    a, b, c = (ctrl[r.triangles[:, i]] for i in range(3))
    return 0.5 * (
        (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    )


# ------------------------------------------------------------------------------------ sketch


def test_sketch_draws_dark_lines_and_points_on_white(rest: np.ndarray) -> None:
    img = sketch_frame(rest, (SIZE, SIZE))
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    grey = img.mean(axis=2)
    for part, closed in shapes.POLYLINES:
        idx = shapes.PARTS[part]
        pairs = list(zip(idx[:-1], idx[1:])) + ([(idx[-1], idx[0])] if closed else [])
        for a, b in pairs:
            x, y = np.rint((rest[a] + rest[b]) / 2).astype(int)
            assert grey[y, x] < 128, f"{part} segment {a}-{b} is not drawn"
    x, y = np.rint(rest).astype(int).T
    assert np.all(grey[y, x] < 100)  # every point is a dark disc
    assert np.all(img[:10] == 255) and np.all(img[:, :10] == 255)  # far from the face: white
    dark = (grey < 128).sum()
    assert 1500 < dark < 6000  # lines ~2 px wide, ~900 px long


def test_sketch_colours_and_nan(rest: np.ndarray) -> None:
    img = sketch_frame(
        rest, (SIZE, 200), background=(0, 0, 40), colour=(255, 0, 0), thickness=1, point_radius=0
    )
    assert img.shape == (200, SIZE, 3)
    assert np.all(img[0, 0] == (0, 0, 40))
    assert img[..., 0].max() > 200 and (img[..., 0] > 100).sum() > 300  # red lines
    assert np.all(img[..., 1] == 0) and img[..., 2].max() == 40  # blends of the two
    blank = sketch_frame(np.full((68, 2), np.nan), (SIZE, SIZE))
    assert np.all(blank == 255)
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        sketch_frame(rest[:60], (SIZE, SIZE))


# ---------------------------------------------------------------------------------- edge map


def test_catmull_rom_interpolates_without_overshoot() -> None:
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])  # uneven, collinear
    curve = catmull_rom(pts, step=0.5)
    assert np.allclose(curve[:, 1], 0.0)
    assert np.all(np.diff(curve[:, 0]) > 0)  # no loop, no overshoot
    assert curve[0, 0] == 0.0 and curve[-1, 0] == 11.0
    assert np.max(np.linalg.norm(np.diff(curve, axis=0), axis=1)) <= 0.5 + 1e-9
    arc = np.array([[0.0, 0.0], [10.0, 8.0], [20.0, 10.0], [30.0, 8.0], [40.0, 0.0]])
    curve = catmull_rom(arc)
    dist = np.linalg.norm(curve[:, None] - arc[None], axis=2).min(axis=0)
    assert np.all(dist < 1e-9)  # passes through every point
    assert curve[:, 1].max() <= 10.0 + 0.5  # the top stays near the apex


def test_edge_map_is_binary_and_touches_every_keypoint(rest: np.ndarray) -> None:
    e = edge_map(rest, (SIZE, SIZE))
    assert e.shape == (SIZE, SIZE) and e.dtype == np.uint8
    assert set(np.unique(e)) == {0, 255}
    dist = cv2.distanceTransform(np.where(e > 0, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
    x, y = np.rint(rest).astype(int).T
    assert dist[y, x].max() <= 1.0  # every curve passes its points
    assert sorted({i for arc in EDGE_ARCS for i in arc}) == list(range(68))
    assert not edge_map(np.full((68, 2), np.nan), (SIZE, SIZE)).any()
    part = rest.copy()
    part[36:48] = np.nan  # no eyes: their arcs are left out
    pe = edge_map(part, (SIZE, SIZE))
    eyes = np.zeros_like(pe)
    cv2.fillPoly(
        eyes, [np.rint(rest[36:42]).astype(np.int32), np.rint(rest[42:48]).astype(np.int32)], 255
    )
    assert (pe & eyes).sum() == 0 and (e & eyes).sum() > 0


@pytest.mark.parametrize("part", ["right_eye", "left_eye", "outer_lip", "inner_lip"])
def test_closed_curves_do_not_leak(renderer: FaceRenderer, part: str) -> None:
    pts = open_mouth(renderer.rest, 0.2)  # the inner lips apart
    e = edge_map(pts, (SIZE, SIZE))
    idx = shapes.PARTS[part]
    seed = tuple(int(v) for v in np.rint(pts[idx].mean(axis=0)))
    if part == "outer_lip":  # inside the lip, not the mouth gap
        seed = tuple(int(v) for v in np.rint((pts[51] + pts[62]) / 2))
    filled = e.copy()
    mask = np.zeros((SIZE + 2, SIZE + 2), np.uint8)
    area = cv2.floodFill(filled, mask, seed, 128, flags=4)[0]
    reached = mask[1:-1, 1:-1] > 0
    assert not (
        reached[0].any() or reached[-1].any() or reached[:, 0].any() or reached[:, -1].any()
    )
    assert 0 < area < shapes.polygon_area(pts[idx]) + 0.5 * len(idx) * 8


def test_edge_lines_are_one_pixel_wide_at_any_scale(renderer: FaceRenderer) -> None:
    pts = open_mouth(renderer.rest, 0.2)
    counts = []
    for scale in (1, 2, 4):
        e = edge_map(pts * scale + (scale - 1) / 2, (SIZE * scale, SIZE * scale)) > 0
        blocks = np.argwhere(e[:-1, :-1] & e[1:, :-1] & e[:-1, 1:] & e[1:, 1:])[:, ::-1] + 0.5
        # only where two arcs meet at an acute corner (eye and lip corners, the nose) can two
        # 1-px lines touch side by side
        gap = np.linalg.norm(blocks[:, None] - (pts[JOINS] * scale + (scale - 1) / 2)[None], axis=2)
        assert np.all(gap.min(axis=1, initial=np.inf) < 2.5), f"thick line at scale {scale}"
        length = sum(
            np.linalg.norm(np.diff(catmull_rom(pts[list(a)] * scale), axis=0), axis=1).sum()
            for a in EDGE_ARCS
        )
        assert 0.7 < e.sum() / length < 1.05  # 8-connected: 1/sqrt(2)..1 px per px
        counts.append(e.sum())
    assert 1.8 < counts[1] / counts[0] < 2.2 and 1.8 < counts[2] / counts[1] < 2.2


# ------------------------------------------------------------------------------- vid2vid export


def _sequence(r: FaceRenderer, n: int) -> np.ndarray:
    return open_mouth(np.repeat(r.rest[None], n, axis=0), np.linspace(0.0, 0.3, n)) + 0.3


def test_export_vid2vid_layout_and_round_trip(renderer: FaceRenderer, tmp_path: Path) -> None:
    seq = _sequence(renderer, 4)
    out = export_vid2vid(tmp_path / "v2v", seq, renderer.size, name="clip")
    assert out == tmp_path / "v2v"
    for sub, ext in (("keypoints", "txt"), ("edges", "png"), ("img", "jpg")):
        files = sorted((out / f"test_{sub}" / "clip").iterdir())
        assert [f.name for f in files] == [f"{k:05d}.{ext}" for k in range(4)]
    for k in range(4):
        back = np.loadtxt(out / "test_keypoints" / "clip" / f"{k:05d}.txt", delimiter=",")
        assert back.shape == (68, 2)
        assert np.abs(back - seq[k]).max() <= 0.5
        edges = cv2.imread(str(out / "test_edges" / "clip" / f"{k:05d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(edges, edge_map(seq[k], renderer.size))
        img = cv2.imread(str(out / "test_img" / "clip" / f"{k:05d}.jpg"))[..., ::-1]
        assert img.shape == (SIZE, SIZE, 3)
        assert np.abs(img.astype(int) - sketch_frame(seq[k], renderer.size)).mean() < 4
    readme = (out / "README.txt").read_text()
    assert "--dataset_mode face" in readme and str(out.resolve()) in readme
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2v"]


def test_export_vid2vid_frames_replace_and_errors(renderer: FaceRenderer, tmp_path: Path) -> None:
    seq = _sequence(renderer, 3)
    out = tmp_path / "v2v"
    export_vid2vid(out, seq, renderer.size)  # sketches, 3 frames
    frames = [renderer.render(p) for p in seq[:2]]
    export_vid2vid(out, seq[:2], renderer.size, frames=frames)
    assert len(list((out / "test_keypoints" / "seq0000").iterdir())) == 2
    assert len(list((out / "test_img" / "seq0000").iterdir())) == 2
    img = cv2.imread(str(out / "test_img" / "seq0000" / "00001.jpg"))[..., ::-1]
    assert np.abs(img.astype(int) - frames[1]).mean() < 3  # the given frame (JPEG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2v"]  # no temp folders left

    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(ValueError, match="frames ran out at frame 1"):
        export_vid2vid(out, seq, renderer.size, frames=frames[:1])
    with pytest.raises(ValueError, match="more frames"):
        export_vid2vid(out, seq[:1], renderer.size, frames=frames)
    with pytest.raises(ValueError, match=r"expected uint8 \(256, 256, 3\)"):
        export_vid2vid(out, seq[:1], renderer.size, frames=[frames[0][:100]])
    bad = seq.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="frame 1"):
        export_vid2vid(out, bad, renderer.size)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # earlier export kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2v"]

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a vid2vid export"):
        export_vid2vid(other, seq, renderer.size)
    assert (other / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------- FaceRenderer


def test_render_rest_reproduces_the_corpus_face(renderer: FaceRenderer) -> None:
    tpl = load_template("grace_hopper", SIZE)
    assert renderer.size == (SIZE, SIZE)
    np.testing.assert_array_equal(renderer.rest, tpl.rest)
    frame = renderer.render(renderer.rest)
    assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8
    assert np.abs(frame.astype(float) - tpl.image).mean() < 1.0
    np.testing.assert_array_equal(renderer.render(np.full((68, 2), np.nan)), tpl.image)


def test_open_mouth_is_painted_dark(renderer: FaceRenderer) -> None:
    pts = _dropped(renderer, 0.25)
    assert shapes.mouth_opening(pts) - shapes.mouth_opening(renderer.rest) > 0.2 * renderer.iod
    frame = renderer.render(pts).astype(float)
    mouth = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(mouth, [np.rint(pts[60:68]).astype(np.int32)], 1)
    inner = cv2.erode(mouth, np.ones((3, 3), np.uint8)).astype(bool)
    assert inner.sum() > 150
    photo = renderer.image.astype(float)
    assert frame[inner].mean() < photo[inner].mean() - 40  # darker than the lips it replaces
    cavity = np.linalg.norm(frame[inner] - MOUTH_COLOUR, axis=1) < 10
    assert cavity.mean() > 0.4  # the rest: the band of teeth
    far = np.zeros((SIZE, SIZE), bool)
    far[:40] = True  # background above the head: still
    assert np.abs(frame[far] - photo[far]).max() <= 1


def test_no_triangle_flips_while_opening(renderer: FaceRenderer) -> None:
    rest = _signed_areas(renderer, renderer.rest)
    assert np.all(np.abs(rest) > 1.0) and np.all(np.sign(rest) == np.sign(rest[0]))
    for amount in np.linspace(0.0, 0.6, 13):
        now = _signed_areas(renderer, open_mouth(renderer.rest, amount))
        assert np.all(np.sign(now) == np.sign(rest)), f"flip at opening {amount:.2f} IOD"


def test_open_mouth_opens_by_the_given_amount(rest: np.ndarray) -> None:
    iod = shapes.inter_ocular(rest)
    out = open_mouth(np.stack([rest, rest]), np.array([0.0, 0.3]))
    np.testing.assert_array_equal(out[0], rest)
    gap = shapes.mouth_opening(out[1]) - shapes.mouth_opening(rest)
    assert abs(gap - 0.3 * iod) < 0.02 * iod
    assert np.allclose(out[1, 17:48], rest[17:48])  # brows, nose, eyes stay


def test_retarget_and_displacement(renderer: FaceRenderer) -> None:
    zeros = np.zeros((5, 68, 2))
    np.testing.assert_array_equal(renderer.retarget(zeros), np.repeat(renderer.rest[None], 5, 0))
    d = np.zeros((68, 2))
    d[8] = [0.0, 0.1]  # chin 0.1 IOD down the face
    d[36] = [0.2, 0.0]  # corner towards the left eye
    px = renderer.retarget(d)
    _, ex, ey = shapes.face_frame(renderer.rest)
    np.testing.assert_allclose(px[8] - renderer.rest[8], 0.1 * renderer.iod * ey, atol=1e-9)
    np.testing.assert_allclose(px[36] - renderer.rest[36], 0.2 * renderer.iod * ex, atol=1e-9)
    np.testing.assert_allclose(renderer.displacement(px), d, atol=1e-12)


def test_crop_maps_given_rest_keypoints() -> None:
    tpl = load_template("grace_hopper", SIZE)
    small = FaceRenderer(tpl.image, rest=tpl.rest, size=128)
    assert small.size == (128, 128)
    jaw = np.linalg.norm(small.rest[16] - small.rest[0])
    assert abs(jaw - 0.57 * 128) < 0.5
    scale = 128 / (np.linalg.norm(tpl.rest[16] - tpl.rest[0]) / 0.57)
    assert abs(small.iod / shapes.inter_ocular(tpl.rest) - scale) < 0.005
    centre = small.rest.mean(axis=0) - [0, 0.08 * 128]  # face centred, as load_template
    assert np.abs(centre - 64).max() < 0.5
    # the keypoints sit on the same features: the face patch matches a plain resize
    half = cv2.resize(tpl.image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    pts = (tpl.rest + 0.5) * 0.5 - 0.5
    x, y = np.rint(small.rest[27:48]).astype(int).T
    u, v = np.rint(pts[27:48]).astype(int).T
    assert np.abs(small.image[y, x].astype(int) - half[v, u]).mean() < 25
    big = FaceRenderer(small.image, rest=small.rest, size=SIZE)  # scaling up
    assert abs(np.linalg.norm(big.rest[16] - big.rest[0]) - 0.57 * SIZE) < 1e-6
    x, y = np.rint(big.rest[27:48]).astype(int).T  # the same features
    u, v = np.rint(small.rest[27:48]).astype(int).T
    assert np.abs(big.image[y, x].astype(int) - small.image[v, u]).mean() < 25
    odd = FaceRenderer(tpl.image[:255, :201], rest=tpl.rest)
    assert odd.size == (200, 254)


def test_from_file(tmp_path: Path) -> None:
    tpl = load_template("grace_hopper", SIZE)
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), tpl.image[..., ::-1])
    r = FaceRenderer.from_file(photo)
    assert r.size == (SIZE, SIZE)
    assert np.abs(r.rest - tpl.rest).max() < 0.01  # the same consensus keypoints
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ValueError, match=r"notes\.png.*not an image"):
        FaceRenderer.from_file(text)
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((96, 96, 3), 128, np.uint8))
    with pytest.raises(ValueError, match=r"no face found in .*grey\.png"):
        FaceRenderer.from_file(grey)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        FaceRenderer.from_file(tmp_path / "missing.jpg")


def test_render_video_is_playable(renderer: FaceRenderer, tmp_path: Path) -> None:
    n, rate = 16, 16000
    seq = open_mouth(np.repeat(renderer.rest[None], n, 0), 0.25 * np.sin(np.linspace(0, np.pi, n)))
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(rate * n // 30) / rate)).astype(np.float32)
    path = renderer.render_video(tmp_path / "talk.mp4", seq, audio=audio, audio_rate=rate)
    info = media.probe(path)
    assert info["n_frames"] == n and info["has_audio"] and info["audio_rate"] == rate
    assert (info["width"], info["height"]) == (SIZE, SIZE)
    assert [p.name for p in tmp_path.iterdir()] == ["talk.mp4"]
