"""``wav2kp live``: the stream protocol, bad clients, and the page end to end in headless
Chromium with a WAV file as the microphone (the shipped model: no study needed)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from wav2kp import live, media
from wav2kp.training import inference

RATE = inference.RATE


@pytest.fixture(scope="module")
def server():
    model = live.load_model(None)  # no study in the test home: the shipped model
    srv = live.Server(model, port=0)
    srv.start()
    yield srv
    srv.stop()


def _pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


#: Audio is sent at twice real time (the server allows a little ahead of the clock).
PACE = 2.0


async def _connect(url: str, headers: dict | None = None):
    import tornado.httpclient
    import tornado.websocket

    return await tornado.websocket.websocket_connect(
        tornado.httpclient.HTTPRequest(
            url.replace("http", "ws") + "ws", headers=headers or {"Origin": url.rstrip("/")}
        )
    )


async def _talk(url: str, messages: list, replies: int, pace: float | None = PACE) -> list:
    """Send ``messages`` (str or bytes; audio at ``pace`` × real time, ``None``: at once) over
    the WebSocket, collect up to ``replies``."""
    conn = await _connect(url)
    out = []
    for m in messages:
        await conn.write_message(m, binary=isinstance(m, bytes))
        if isinstance(m, bytes) and pace:
            await asyncio.sleep(len(m) / 2 / RATE / pace)
    sent = sum(len(m) for m in messages if isinstance(m, bytes)) / 2 / RATE
    while len(out) < replies:  # (queued chunks are computed together: replies may be fewer)
        msg = await asyncio.wait_for(conn.read_message(), 30)
        if msg is None:
            out.append(None)  # closed by the server
            break
        out.append(json.loads(msg))
        if sent and out[-1].get("audio_s", -1) >= sent - 1e-9:
            break  # every chunk answered
    conn.close()
    return out


# a server and several clients streaming for seconds: make test, not make test-fast
@pytest.mark.slow
def test_protocol_frames_bad_clients_and_the_others_go_on(server) -> None:
    import tornado.httpclient  # noqa: F401 - used by _talk

    url = server.url
    from test_predict import tone_speech

    speech = tone_speech(3.0, seed=2)
    chunks = [_pcm(speech[i : i + live.CHUNK]) for i in range(0, len(speech), live.CHUNK)]
    hello = json.dumps(
        {"hello": 1, "rate": RATE, "emotion": "Joy", "head_motion": "none", "blinks": False}
    )
    replies = asyncio.run(_talk(url, [hello, *chunks], 1 + len(chunks)))
    ready, frames = replies[0], [r for r in replies[1:] if r]
    assert ready["ready"] and ready["size"] == live.SIZE
    assert ready["latency_bound_ms"] == pytest.approx(server.live.latency_bound_ms, abs=0.1)
    got = [f for r in frames for f in r["frames"]]
    assert got and all(len(f) == 1 + 136 for f in got)
    assert frames[-1]["audio_s"] == pytest.approx(3.0)
    # the frames are the offline prediction's, on the canvas
    heard = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768  # what was sent
    offline = server.live.predictor.predict_audio(heard, fps=30, emotion="Joy")
    canvas = inference.canvas_transform(server.live.predictor.fs.reference, live.SIZE)
    px = canvas.apply(offline.normalised)
    for f in got:
        k = int(round(f[0] * 30))
        np.testing.assert_allclose(np.array(f[1:]).reshape(68, 2), px[k], atol=0.06)
    # with head motion and blinks (the server's default): what motion.animate gives offline
    from wav2kp.synthesis import motion

    alive = json.dumps({"hello": 1, "rate": RATE, "emotion": "Joy"})
    moved = asyncio.run(_talk(url, [alive, *chunks], 1 + len(chunks)))
    got_moved = [f for r in moved[1:] if r for f in r["frames"]]
    animated = motion.animate(
        offline.normalised, offline.times, heard, server.live.motion_model(), seed=0
    )
    px_moved = canvas.apply(animated)
    for f in got_moved:
        k = int(round(f[0] * 30))
        np.testing.assert_allclose(np.array(f[1:]).reshape(68, 2), px_moved[k], atol=0.06)
    assert np.abs(px_moved - px).max() > 1.0
    # garbage: an odd number of bytes, audio before hello, a bad hello, a wrong rate
    for messages in (
        [hello, b"\x00\x01\x02"],
        [b"\x00\x00"],
        ["not json"],
        [json.dumps({"hello": 1, "rate": 44100})],
        [json.dumps({"hello": 1, "head_motion": "wild"})],
    ):
        got = asyncio.run(_talk(url, messages, 3))
        errors = [r["error"] for r in got if r and "error" in r]
        assert errors and got[-1] is None, (messages, got)  # told why, then closed
    assert "even number of bytes" in asyncio.run(_talk(url, [hello, b"\x00"], 3))[1]["error"]
    # and the server still serves a good client
    again = asyncio.run(_talk(url, [hello, *chunks[:20]], 2))
    assert again[0]["ready"]


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_with_a_wav_as_microphone(server, chromium, tmp_path: Path) -> None:
    """Headless Chromium, the fake microphone reading a WAV: speech, 2 s of silence, speech.
    Frames arrive; the mouth opens when the file speaks and rests in its silence; the latency
    measured on the page is within the model's bound + 50 ms of transport (median)."""
    from scipy.signal import resample_poly

    from wav2kp.corpus import speech

    said = speech.synthesize("O vento levou as folhas secas pela janela aberta.", variant="f3")
    words = resample_poly(said.audio, RATE, said.sample_rate).astype(np.float32)
    gap = np.zeros(2 * RATE, np.float32)
    audio = np.concatenate([gap[: RATE // 2], words, gap, words, gap[:RATE]])
    wav = tmp_path / "mic.wav"
    media.write_wav(wav, audio, RATE)
    speaking = np.abs(audio) > 0.01
    t_words = len(words) / RATE

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}%noloop",
            ],
        )
        page = b.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server.url)
        page.click("#start")
        page.wait_for_function("window.live.frames.length > 0", timeout=20000)
        page.wait_for_timeout(int(1000 * len(audio) / RATE) + 500)
        page.screenshot(path=str(tmp_path / "live.png"))
        state = page.evaluate("window.live")
        shown = page.inner_text("#latency")
        b.close()
    assert problems == [] and state["errors"] == [] and state["state"] == "running"
    frames = state["frames"]
    t = np.array([f["t"] for f in frames])
    opening = np.array([f["opening"] for f in frames])
    latency = np.array([f["latency_ms"] for f in frames])
    assert len(frames) >= 25 * len(audio) / RATE  # ~30 fps
    inside = (t > 0.7) & (t < 0.5 + t_words - 0.2)
    silent = (t > 0.5 + t_words + 0.6) & (t < 0.5 + t_words + 1.4)
    assert inside.sum() > 20 and silent.sum() > 15 and speaking.any()
    rest = float(np.median(opening[silent]))
    assert opening[inside].mean() > rest + 0.05  # the mouth moves with the words
    assert opening[silent].std() < 0.02  # and rests in the silence
    # typical frames within the bound + 50 ms of transport; the tail gets more room, since this
    # test shares its machine with others (CI: a browser, a server and pytest on 2 cores): the
    # p95 goal under load is measured by benchmarks/live_load.py, not by a timed unit test
    bound = server.live.latency_bound_ms + 50
    assert np.median(latency) <= bound, latency
    assert np.percentile(latency, 95) <= bound + 100, latency
    assert "ms" in shown


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_says_when_the_microphone_is_refused(server, chromium) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=["--deny-permission-prompts"])
        page = b.new_page()
        page.goto(server.url)
        page.click("#start")
        page.wait_for_function("window.live.errors.length > 0", timeout=20000)
        text = page.inner_text("#status")
        b.close()
    assert "microphone" in text.lower() and "press start again" in text


def test_only_this_computer_s_own_names_and_page(server) -> None:
    """A request must name the server as 127.0.0.1:PORT or localhost:PORT (a DNS-rebound name
    that resolves to 127.0.0.1 gets 403), and a stream must come from the server's own page."""
    import tornado.httpclient

    port = server.port

    async def status(path: str, headers: dict) -> int:
        client = tornado.httpclient.AsyncHTTPClient()
        try:
            r = await client.fetch(f"http://127.0.0.1:{port}{path}", headers=headers,
                                   raise_error=False)  # fmt: skip
            return r.code
        finally:
            client.close()

    assert asyncio.run(status("/", {"Host": f"localhost:{port}"})) == 200
    assert asyncio.run(status("/", {"Host": f"127.0.0.1:{port}"})) == 200
    for host in (f"evil.example:{port}", "127.0.0.1", f"localhost:{port + 1}", f"[::1]:{port}"):
        assert asyncio.run(status("/", {"Host": host})) == 403, host
    url = server.url
    ok = {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"}

    async def knock(headers: dict) -> None:
        (await _connect(url, headers)).close()

    asyncio.run(knock(ok))
    for headers in (
        {"Host": f"rebound.example:{port}", "Origin": f"http://rebound.example:{port}"},
        {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example"},
        {"Host": f"127.0.0.1:{port}", "Origin": f"http://localhost:{port}"},  # not the same
    ):
        with pytest.raises(tornado.httpclient.HTTPClientError) as err:
            asyncio.run(knock(headers))
        assert err.value.code == 403, headers


@pytest.mark.slow
def test_sessions_are_capped_and_a_flood_is_closed_alone() -> None:
    """Beyond the cap a new stream is told so and closed (1013, try again later); a client that
    sends audio faster than real time is closed with the reason, while one at real time goes on
    without losing a frame."""
    srv = live.Server(live.load_model(None), port=0, max_sessions=2)
    url = srv.start()
    try:
        from test_predict import tone_speech

        speech = tone_speech(3.0, seed=3)
        chunks = [_pcm(speech[i : i + live.CHUNK]) for i in range(0, len(speech), live.CHUNK)]
        hello = json.dumps({"hello": 1, "rate": RATE, "head_motion": "none", "blinks": False})

        async def scene():
            calm = asyncio.create_task(_talk(url, [hello, *chunks], 1 + len(chunks), pace=1.0))
            holder = await _connect(url)  # the second session: the cap is reached
            await holder.write_message(hello)
            assert json.loads(await holder.read_message())["ready"]
            extra = await _talk(url, [hello], 2)  # a third at once: refused
            holder.close()
            await asyncio.sleep(0.3)  # its place is free again: a flood takes it
            flood = await _talk(url, [hello, *chunks * 3], 30, pace=None)
            return await calm, flood, extra

        calm, flood, extra = asyncio.run(scene())
        assert "error" in extra[0] and "2 sessions already" in extra[0]["error"]
        assert extra[-1] is None
        said = [r["error"] for r in flood if r and "error" in r]
        assert said and ("faster than real time" in said[0] or "cannot keep up" in said[0])
        assert flood[-1] is None
        frames = [f for r in calm[1:] if r for f in r["frames"]]
        times = np.array([f[0] for f in frames])
        assert calm[-1]["audio_s"] == pytest.approx(3.0)
        np.testing.assert_allclose(np.diff(times), 1 / 30, atol=1e-3)  # none lost, in order
        assert len(times) >= 80
    finally:
        srv.stop()


def test_any_run_can_go_live(tmp_path) -> None:
    """`wav2kp live --model RUN`: the offline default model works too (with its own, longer
    latency bound), and a bad run name is a clear error."""
    from wav2kp import config

    offline = live.load_model(str(config.shipped_dir()))
    assert offline.predictor.run_dir == config.shipped_dir()
    assert offline.latency_bound_ms == pytest.approx(346.0)
    session = live.Session(offline, "Anger", head_motion="none", blinks=False)
    frames = []
    for _ in range(60):  # 1.2 s in 20 ms chunks
        out = session.push(_pcm(0.1 * np.ones(live.CHUNK)))
        frames += out["frames"]
    assert out["audio_s"] == pytest.approx(1.2) and len(frames) >= 20
    with pytest.raises(inference.PredictError, match="no trained run"):
        live.load_model(str(tmp_path / "no_such_run"))
