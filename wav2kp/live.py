"""``wav2kp live``: speak into the microphone, see the keypoints as they are predicted.

A small local server (tornado, bound to 127.0.0.1 only) serves one page. The page captures the
microphone with the browser's media API at 16 kHz (``AudioContext({sampleRate: 16000})`` and an
``AudioWorklet``), sends 20 ms chunks of 16-bit PCM over a WebSocket, and draws each frame of
keypoints the server sends back, with the latency measured on the page: how much audio the
microphone had captured when a frame arrived, minus that frame's time.

Each connection gets its own :class:`~wav2kp.training.inference.StreamingPredictor` (causal,
exact: what the offline prediction would give), so several pages can be open at once; a client
that sends something that is not audio gets a clear error and is closed, the others go on.

Reachable from this computer only: bound to 127.0.0.1, answering only ``Host: 127.0.0.1:PORT``
or ``localhost:PORT`` (a DNS-rebound name gets 403) and streams from its own page's ``Origin``.
Bounded: at most ``--max-sessions`` streams (default :data:`SESSIONS_PER_CORE` per core; more
are refused with 1013), each computed in a worker thread so that one session never holds up the
event loop; a client that sends faster than real time, that the machine cannot keep up with,
that stops reading its replies or that goes silent is told why and closed
(:func:`make_app`). ``benchmarks/live_load.py`` measures the latency under load.

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
import os
import threading
import time
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
#: Sessions per core the server holds at once by default; more are refused (1013).
SESSIONS_PER_CORE = 4
#: How far ahead of the clock (s of audio) a session may send before it is closed: a client
#: that sends faster than real time (a file, a flood) would take a core from the others.
AHEAD_S = 2.0
#: Audio waiting to be computed (s) beyond which a session is closed (the machine cannot keep
#: up with it; its frames would come later and later).
BACKLOG_S = 1.0
#: Replies a client may leave unread (about 2 s of them) before it is closed: it stopped reading.
UNREAD_REPLIES = 100
#: A connection closes without a hello within this many seconds, or after this long silent.
HELLO_TIMEOUT_S, IDLE_TIMEOUT_S = 10.0, 60.0


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

    @staticmethod
    def check(payload: bytes) -> None:
        """A chunk as the protocol has it: 16-bit samples, at most :data:`MAX_CHUNK_BYTES`."""
        if len(payload) % 2 or len(payload) > MAX_CHUNK_BYTES:
            raise ValueError(
                f"an audio chunk must be 16-bit samples (an even number of bytes, at most "
                f"{MAX_CHUNK_BYTES}); got {len(payload)} bytes."
            )

    def push(self, payload: bytes) -> dict:
        """Frames for ``payload`` (one chunk, or several queued ones joined: any length)."""
        if len(payload) % 2:
            self.check(payload)
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


def default_max_sessions() -> int:
    """The default cap on sessions at once: :data:`SESSIONS_PER_CORE` per core."""
    return SESSIONS_PER_CORE * (os.cpu_count() or 1)


def allowed_hosts(port: int) -> set[str]:
    """The ``Host`` headers the server answers: this computer's loopback names and its port
    (anything else, e.g. a DNS-rebound name that resolves to 127.0.0.1, gets 403)."""
    return {f"127.0.0.1:{port}", f"localhost:{port}"}


class _Limits:
    """What the server holds at once, shared by its handlers (all on the event loop)."""

    def __init__(self, max_sessions: int, workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.max_sessions = int(max_sessions)
        self.sessions: set = set()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wav2kp-live")


def make_app(
    live: LiveModel, port: int, max_sessions: int | None = None, workers: int | None = None
):
    """The tornado application on ``127.0.0.1:port``: ``/`` (the page) and ``/ws`` (the stream).

    Requests whose ``Host`` is not :func:`allowed_hosts` get 403, a WebSocket whose ``Origin``
    is not this page's is refused; at most ``max_sessions`` streams at once (more are told so
    and closed with 1013, "try again later"). Each session's audio is computed in a worker
    thread (``workers``: one per core), in order, several chunks at once when they queued up,
    so the event loop keeps serving the others; a session that sends audio faster than real
    time (by :data:`AHEAD_S`), whose queue outgrows :data:`BACKLOG_S`, that stops reading
    (:data:`UNREAD_REPLIES`) or that says nothing for :data:`IDLE_TIMEOUT_S` is told why and
    closed."""
    import tornado.ioloop
    import tornado.log
    import tornado.web
    import tornado.websocket

    page = _page()
    hosts = allowed_hosts(port)
    limits = _Limits(
        default_max_sessions() if max_sessions is None else max_sessions,
        workers or os.cpu_count() or 1,
    )

    class LocalOnly(tornado.web.RequestHandler):
        def prepare(self) -> None:
            if self.request.host not in hosts:
                raise tornado.web.HTTPError(
                    403, reason=f"wav2kp live answers only {' or '.join(sorted(hosts))}"
                )

    class PageHandler(LocalOnly):
        def get(self) -> None:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.write(page)

    class StreamHandler(tornado.websocket.WebSocketHandler, LocalOnly):
        session: Session | None = None

        def check_origin(self, origin: str) -> bool:  # this server's own page only
            return self.request.host in hosts and origin == f"http://{self.request.host}"

        def open(self) -> None:
            self.pending: list[bytes] = []
            self.queued = 0  # samples waiting to be computed
            self.received = 0  # samples since the hello
            self.busy, self.unread, self.closed = False, 0, False
            self.t_open = self.t_last = time.monotonic()
            if len(limits.sessions) >= limits.max_sessions:
                self._fail(
                    f"the server holds {limits.max_sessions} sessions already (its cap: "
                    "wav2kp live --max-sessions); try again when one ends.",
                    code=1013,
                )
                return
            limits.sessions.add(self)

        def on_message(self, message) -> None:
            self.t_last = time.monotonic()
            try:
                if isinstance(message, str):
                    self._hello(message)
                    return
                if self.session is None:
                    raise ValueError("audio before the hello message.")
                Session.check(message)
                self.received += len(message) // 2
                ahead = self.received / inference.RATE - (self.t_last - self.t_hello)
                if ahead > AHEAD_S:
                    raise ValueError(
                        f"audio is arriving faster than real time ({ahead:.1f} s ahead of the "
                        "clock): send it as it is recorded."
                    )
                self.pending.append(message)
                self.queued += len(message) // 2
                if self.queued > BACKLOG_S * inference.RATE:
                    raise ValueError(
                        f"more than {BACKLOG_S:g} s of audio is waiting to be computed: this "
                        "computer cannot keep up with this session."
                    )
                if not self.busy:
                    self.busy = True
                    tornado.ioloop.IOLoop.current().add_callback(self._drain)
            except (ValueError, TypeError, inference.PredictError) as err:
                self._fail(str(err))

        def _hello(self, message: str) -> None:
            if self.session is not None:
                raise ValueError("one hello per connection.")
            hello = json.loads(message)
            if not isinstance(hello, dict) or "hello" not in hello:
                raise ValueError("the first message must be {'hello': 1, ...}.")
            if int(hello.get("rate", inference.RATE)) != inference.RATE:
                raise ValueError(f"audio must be {inference.RATE} Hz mono int16.")
            motion = hello.get("head_motion")
            if motion not in (None, "none", "natural"):
                raise ValueError("head_motion must be 'none' or 'natural'.")
            self.session = Session(
                live, hello.get("emotion") or None, head_motion=motion, blinks=hello.get("blinks")
            )
            self.t_hello = time.monotonic()
            self._send(
                {
                    "ready": True,
                    "model": live.label,
                    "latency_bound_ms": round(live.latency_bound_ms, 1),
                    "future_ms": round(1000 * live.predictor.context_s[1], 1),
                    "size": SIZE,
                }
            )

        async def _drain(self) -> None:
            """Compute what queued up, in order, off the event loop, until nothing is left."""
            loop = asyncio.get_running_loop()
            try:
                while self.pending and not self.closed:
                    payload = b"".join(self.pending)
                    self.pending.clear()
                    self.queued = 0
                    reply = await loop.run_in_executor(limits.pool, self.session.push, payload)
                    if not self.closed:
                        self._send(reply)
            except (ValueError, TypeError, inference.PredictError) as err:
                self._fail(str(err))
            finally:
                self.busy = False

        def _send(self, reply: dict) -> None:
            if self.unread > UNREAD_REPLIES:
                self._fail(f"{self.unread} replies were never read: the client stopped reading.")
                return
            try:
                sent = self.write_message(json.dumps(reply))
            except tornado.websocket.WebSocketClosedError:
                return
            self.unread += 1
            sent.add_done_callback(self._taken)

        def _taken(self, _future) -> None:
            self.unread -= 1

        def idle(self, now: float) -> str | None:
            """Why this connection should be closed now (silent too long), else ``None``."""
            if self.session is None and now - self.t_open > HELLO_TIMEOUT_S:
                return f"no hello within {HELLO_TIMEOUT_S:g} s."
            if now - self.t_last > IDLE_TIMEOUT_S:
                return f"no audio for {IDLE_TIMEOUT_S:g} s."
            return None

        def _fail(self, text: str, code: int = 1003) -> None:
            with contextlib.suppress(tornado.websocket.WebSocketClosedError):
                self.write_message({"error": text})
            self.closed = True
            self.close(code=code, reason=text[:120])
            limits.sessions.discard(self)

        def on_close(self) -> None:
            self.closed = True
            self.session = None
            self.pending.clear()
            limits.sessions.discard(self)

    def sweep() -> None:
        now = time.monotonic()
        for handler in list(limits.sessions):
            why = handler.idle(now)
            if why is not None:
                handler._fail(why)

    def log_problems(handler) -> None:  # no access log line per request; errors only
        if handler.get_status() >= 400:
            tornado.log.access_log.warning(
                "%d %s", handler.get_status(), handler._request_summary()
            )

    app = tornado.web.Application(
        [(r"/", PageHandler), (r"/ws", StreamHandler)],
        websocket_max_message_size=MAX_CHUNK_BYTES + 1024,
        websocket_ping_interval=10,
        websocket_ping_timeout=10,
        log_function=log_problems,
    )
    app.limits, app.sweep = limits, sweep
    return app


class Server:
    """The live server on ``127.0.0.1:port`` (0: any free port) in a background thread:
    ``start()`` returns the URL; ``stop()`` ends it. ``max_sessions``: the cap on streams at
    once (default :func:`default_max_sessions`)."""

    def __init__(self, live: LiveModel, port: int = 8765, max_sessions: int | None = None) -> None:
        self.live, self.port = live, int(port)
        self.max_sessions = default_max_sessions() if max_sessions is None else int(max_sessions)
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}.")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _run(self) -> None:
        import tornado.httpserver
        import tornado.ioloop
        import tornado.netutil

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            sockets = tornado.netutil.bind_sockets(self.port, address="127.0.0.1")
            self.port = sockets[0].getsockname()[1]
            app = make_app(self.live, self.port, self.max_sessions)
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets(sockets)
            sweeper = tornado.ioloop.PeriodicCallback(app.sweep, 1000)
            sweeper.start()
        except BaseException as err:  # noqa: BLE001 - reported by start()
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            sweeper.stop()
            server.stop()
            app.limits.pool.shutdown(wait=False, cancel_futures=True)
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
