"""``wav2kp live``: speak into the microphone, see the keypoints as they are predicted.

A small local server (tornado, bound to 127.0.0.1 only) serves one page. The page captures the
microphone with the browser's media API at 16 kHz (``AudioContext({sampleRate: 16000})`` and an
``AudioWorklet``), sends 20 ms chunks of 16-bit PCM over a WebSocket, and draws each frame of
keypoints the server sends back, with the latency measured on the page: how much audio the
microphone had captured when a frame arrived, minus that frame's time.

Each connection gets its own :class:`~wav2kp.training.inference.StreamingPredictor` (causal,
exact: what the offline prediction would give), so several pages can be open at once; a client
that sends something that is not audio gets a clear error and is closed, the others go on.

The protocol (JSON text messages, binary audio):

- client -> server, first: ``{"hello": 1, "rate": 16000, "emotion": "Joy" | null,
  "head_motion": "natural" | "none", "blinks": true | false}`` (the last two optional: the
  server's defaults);
- client -> server: binary chunks of little-endian int16 mono samples at 16 kHz;
- server -> client: ``{"ready": ..., "model": ..., "latency_bound_ms": ..., "size": ...}``, then
  ``{"frames": [[t, x0, y0, x1, y1, ...], ...], "audio_s": s, "compute_ms": ms}`` as frames
  become computable (points in canvas pixels), ``{"error": "..."}`` before closing on bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wav2kp.training import inference

#: Samples per chunk the page sends (20 ms at 16 kHz).
CHUNK = 320
#: The largest chunk the server accepts (one second); bigger messages are an error.
MAX_CHUNK_BYTES = 2 * inference.RATE
#: Canvas size (px) of the page's sketch.
SIZE = 360


@dataclass
class LiveModel:
    """What every connection predicts with: a loaded predictor and where it came from, and
    the head motion and blinks a page gets unless it asks otherwise."""

    predictor: inference.Predictor
    label: str
    head_motion: str = "natural"
    blinks: bool = True
    strength: float = 1.0
    _motion: object = None

    def motion_model(self):
        if self._motion is None:
            from wav2kp.synthesis import motion

            self._motion = motion.load_default()
        return self._motion

    @property
    def latency_bound_ms(self) -> float:
        """Future context + the MFCC window's look-ahead + one hop + one chunk (the streaming
        latency bound, before transport)."""
        cfg = self.predictor.fs.mfcc
        future = self.predictor.context_s[1]
        return 1000 * (
            future + cfg.fft_size / 2 / inference.RATE + cfg.hop_s + CHUNK / inference.RATE
        )


def load_model(model: str | Path | None = None) -> LiveModel:
    """``model`` (a run folder or name), else the last study's live model
    (:func:`wav2kp.results.live_run`), else the live model shipped with the package
    (``wav2kp/shipped_live``), else :meth:`Predictor.default`."""
    from wav2kp import config, results

    if model:
        return LiveModel(inference.Predictor(config.find_run(model)), str(model))
    choice = results.live_run()
    if choice is not None:
        return LiveModel(inference.Predictor(choice.run, why=choice.reason), choice.label)
    shipped = config.shipped_dir(live=True)
    if shipped is not None:
        why = "the live model shipped with the package (no study has trained one yet)"
        return LiveModel(inference.Predictor(shipped, why=why), "shipped live model")
    p = inference.Predictor.default()
    return LiveModel(p, p.name)


class Session:
    """One connection's stream: audio in, frames (canvas pixels) out."""

    def __init__(
        self,
        live: LiveModel,
        emotion: str | None,
        fps: float = 30.0,
        head_motion: str | None = None,
        blinks: bool | None = None,
        seed: int = 0,
    ) -> None:
        from wav2kp.synthesis import motion

        p = live.predictor
        self.streamer = inference.StreamingPredictor(p, fps=fps, emotion=emotion)
        self.to_canvas = inference.canvas_transform(p.fs.reference, SIZE)
        head_motion = live.head_motion if head_motion is None else head_motion
        blinks = live.blinks if blinks is None else bool(blinks)
        self.motion = None
        if head_motion != "none" or blinks:
            self.motion = motion.MotionStream(
                live.motion_model(), head_motion, live.strength, blinks, seed
            )

    def push(self, payload: bytes) -> dict:
        if len(payload) % 2 or len(payload) > MAX_CHUNK_BYTES:
            raise ValueError(
                f"an audio chunk must be 16-bit samples (an even number of bytes, at most "
                f"{MAX_CHUNK_BYTES}); got {len(payload)} bytes."
            )
        samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
        before = self.streamer.compute_s
        times, pts = self.streamer.push(samples)
        if self.motion is not None:
            self.motion.push_audio(samples)
            pts = self.motion.apply(times, pts)
        px = self.to_canvas.apply(pts) if len(pts) else pts
        frames = [[round(float(t), 4), *np.round(p.ravel(), 1).tolist()] for t, p in zip(times, px)]
        return {
            "frames": frames,
            "audio_s": self.streamer.n_audio / inference.RATE,
            "compute_ms": round(1000 * (self.streamer.compute_s - before), 2),
        }


def make_app(live: LiveModel):
    """The tornado application: ``/`` (the page) and ``/ws`` (the stream)."""
    import tornado.log
    import tornado.web
    import tornado.websocket

    page = _page()

    class PageHandler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.write(page)

    class StreamHandler(tornado.websocket.WebSocketHandler):
        session: Session | None = None

        def check_origin(self, origin: str) -> bool:  # pages of this server only
            host = self.request.host
            return origin in (f"http://{host}", f"https://{host}")

        def on_message(self, message) -> None:
            try:
                if isinstance(message, str):
                    hello = json.loads(message)
                    if not isinstance(hello, dict) or "hello" not in hello:
                        raise ValueError("the first message must be {'hello': 1, ...}.")
                    if int(hello.get("rate", inference.RATE)) != inference.RATE:
                        raise ValueError(f"audio must be {inference.RATE} Hz mono int16.")
                    motion = hello.get("head_motion")
                    if motion not in (None, "none", "natural"):
                        raise ValueError("head_motion must be 'none' or 'natural'.")
                    self.session = Session(
                        live,
                        hello.get("emotion") or None,
                        head_motion=motion,
                        blinks=hello.get("blinks"),
                    )
                    self.write_message(
                        {
                            "ready": True,
                            "model": live.label,
                            "latency_bound_ms": round(live.latency_bound_ms, 1),
                            "future_ms": round(1000 * live.predictor.context_s[1], 1),
                            "size": SIZE,
                        }
                    )
                    return
                if self.session is None:
                    raise ValueError("audio before the hello message.")
                self.write_message(json.dumps(self.session.push(message)))
            except (ValueError, TypeError, inference.PredictError) as err:
                self._fail(str(err))

        def _fail(self, text: str) -> None:
            with contextlib.suppress(tornado.websocket.WebSocketClosedError):
                self.write_message({"error": text})
            self.close(code=1003, reason=text[:120])

        def on_close(self) -> None:
            self.session = None

    def log_problems(handler) -> None:  # no access log line per request; errors only
        if handler.get_status() >= 400:
            tornado.log.access_log.warning(
                "%d %s", handler.get_status(), handler._request_summary()
            )

    return tornado.web.Application(
        [(r"/", PageHandler), (r"/ws", StreamHandler)],
        websocket_max_message_size=MAX_CHUNK_BYTES + 1024,
        log_function=log_problems,
    )


class Server:
    """The live server on ``127.0.0.1:port`` (0: any free port) in a background thread:
    ``start()`` returns the URL; ``stop()`` ends it."""

    def __init__(self, live: LiveModel, port: int = 8765) -> None:
        self.live, self.port = live, int(port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _run(self) -> None:
        import tornado.httpserver
        import tornado.netutil

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            sockets = tornado.netutil.bind_sockets(self.port, address="127.0.0.1")
            self.port = sockets[0].getsockname()[1]
            server = tornado.httpserver.HTTPServer(make_app(self.live))
            server.add_sockets(sockets)
        except BaseException as err:  # noqa: BLE001 - reported by start()
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.stop()
            loop.close()

    def start(self) -> str:
        self._thread = threading.Thread(target=self._run, name="wav2kp-live", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise OSError(f"wav2kp live: cannot listen on 127.0.0.1:{self.port} ({self._error}).")
        return self.url

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def _page() -> str:
    from importlib import resources

    return resources.files("wav2kp").joinpath("live.html").read_text("utf-8")
