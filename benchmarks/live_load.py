"""The live server under load: N well-behaved clients streaming real-time speech at once, plus one
that floods (sends audio as fast as it can) and one that stops reading its replies.

    python benchmarks/live_load.py [--clients 8 16] [--seconds 60] [--model RUN]

``wav2kp live`` runs in its own process (as a user starts it), on 127.0.0.1 with a session cap
above the load. Each well-behaved client sends 20 ms chunks of the corpus voice on the clock
(every chunk at its real time) and measures, for every reply, the time from sending the chunk
that completed the reply's audio to receiving the reply; it checks that its frames come in
order, one every 1/30 s, none missing. The flooder and the non-reader are run beside them: what
ended them (the server's message, or still open) is reported. For each client count, one after
the other: p50 / p95 / max latency over all well-behaved clients, each client's p95, frames lost
or out of order. The last line is one JSON object with every figure (goal: p95 <= 150 ms with 8
clients on a 2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import corpus_voice  # noqa: E402 - the benchmark folder's own helper

RATE, CHUNK = 16000, 320
GOAL_P95_MS = 150.0


def start_server(model: str | None, cap: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "wav2kp", "live", "--port", "0", "--max-sessions", str(cap)]
    if model:
        cmd += ["--model", model]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    for line in proc.stdout:
        found = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
        if found:
            return proc, found.group(1)
        if time.monotonic() - t0 > 120:
            break
    proc.kill()
    raise SystemExit("wav2kp live did not start")


def pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


async def connect(url: str):
    import tornado.httpclient
    import tornado.websocket

    return await tornado.websocket.websocket_connect(
        tornado.httpclient.HTTPRequest(
            url.replace("http", "ws") + "ws", headers={"Origin": url.rstrip("/")}
        )
    )


HELLO = json.dumps({"hello": 1, "rate": RATE})


async def good_client(url: str, audio: np.ndarray, t_start: float) -> dict:
    """Stream ``audio`` on the clock from ``t_start``; latencies (ms) and frame checks."""
    conn = await connect(url)
    await conn.write_message(HELLO)
    ready = json.loads(await conn.read_message())
    chunks = [audio[i : i + CHUNK] for i in range(0, len(audio) - CHUNK + 1, CHUNK)]
    sent_at = np.zeros(len(chunks))
    latencies, times, error = [], [], None

    async def reader() -> None:
        nonlocal error
        while True:
            msg = await conn.read_message()
            now = time.perf_counter()
            if msg is None:
                return
            reply = json.loads(msg)
            if "error" in reply:
                error = reply["error"]
                return
            k = int(round(reply["audio_s"] * RATE / CHUNK)) - 1  # the chunk that completed it
            latencies.append(1000 * (now - sent_at[k]))
            times.extend(f[0] for f in reply["frames"])
            if k == len(chunks) - 1:
                return

    task = asyncio.create_task(reader())
    for i, chunk in enumerate(chunks):
        due = t_start + (i + 1) * CHUNK / RATE  # a chunk leaves when it has been recorded
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sent_at[i] = time.perf_counter()
        await conn.write_message(pcm(chunk), binary=True)
    await asyncio.wait_for(task, 60)
    conn.close()
    t = np.asarray(times)
    steps = np.diff(t)
    return {
        "ready": bool(ready.get("ready")),
        "error": error,
        "latency_ms": latencies,
        "frames": len(t),
        "lost_or_reordered": int(np.sum(np.abs(steps - 1 / 30) > 1e-3)) if len(t) > 1 else 0,
        "first_frame_s": float(t[0]) if len(t) else None,
    }


async def flooder(url: str, audio: np.ndarray) -> str:
    """Send the whole recording at once, then read what the server says."""
    conn = await connect(url)
    await conn.write_message(HELLO)
    await conn.read_message()
    t0 = time.perf_counter()
    try:
        for i in range(0, len(audio) - CHUNK + 1, CHUNK):
            await conn.write_message(pcm(audio[i : i + CHUNK]), binary=True)
    except Exception:  # noqa: BLE001 - closed by the server mid-flood: what did it say?
        pass
    while True:
        msg = await asyncio.wait_for(conn.read_message(), 90)
        if msg is None:
            return "closed without a message"
        reply = json.loads(msg)
        if "error" in reply:
            return f"closed after {time.perf_counter() - t0:.2f} s: {reply['error']}"


def _frame(payload: bytes) -> bytes:
    """A masked binary WebSocket frame (client to server)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (
        bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    )
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def non_reader(url: str, audio: np.ndarray, t_start: float) -> str:
    """A raw socket: the handshake, the hello, audio on the clock, and never a byte read (its
    receive buffer made small, so that the server's replies back up)."""
    host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{host}:{port}\r\n\r\n"
        ).encode()
    )
    sock.recv(1024)  # the 101 answer: the last thing it reads
    sock.sendall(_frame(HELLO.encode()).replace(b"\x82", b"\x81", 1))  # a text frame
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        for i in range(0, len(audio) - CHUNK + 1, CHUNK):
            due = t_start + (i // CHUNK + 1) * CHUNK / RATE
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await loop.sock_sendall(sock, _frame(pcm(audio[i : i + CHUNK])))
    except OSError as err:
        return f"closed by the server after {time.perf_counter() - t_start:.1f} s ({err.strerror})"
    finally:
        sock.close()
    return "still open at the end (its replies fit the buffers)"


async def scene(url: str, n: int, audio: np.ndarray) -> dict:
    t_start = time.perf_counter() + 1.0
    goods = [good_client(url, np.roll(audio, 7919 * k), t_start) for k in range(n)]
    rude = [flooder(url, audio), non_reader(url, audio, t_start)]
    *results, flood, deaf = await asyncio.gather(*goods, *rude)
    lat = np.concatenate([r["latency_ms"] for r in results])
    return {
        "clients": n,
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "max_ms": round(float(lat.max()), 1),
        "per_client_p95_ms": [round(float(np.percentile(r["latency_ms"], 95)), 1) for r in results],
        "frames_per_client": sorted({r["frames"] for r in results}),
        "lost_or_reordered": int(sum(r["lost_or_reordered"] for r in results)),
        "errors": [r["error"] for r in results if r["error"]],
        "flooder": flood,
        "non_reader": deaf,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default=None, help="run folder or name (default: live's own)")
    args = ap.parse_args()
    audio = corpus_voice(args.seconds).astype(np.float32)
    out = {"cores": os.cpu_count(), "seconds": args.seconds, "runs": []}
    for n in args.clients:
        proc, url = start_server(args.model, cap=n + 4)
        try:
            run = asyncio.run(scene(url, n, audio))
        finally:
            proc.terminate()
            proc.wait(10)
        print(
            f"{n:2d} clients: p50 {run['p50_ms']} ms, p95 {run['p95_ms']} ms, max {run['max_ms']} "
            f"ms, {run['lost_or_reordered']} frames lost or out of order; flooder: "
            f"{run['flooder']}; non-reader: {run['non_reader']}",
            flush=True,
        )
        out["runs"].append(run)
    eight = [r for r in out["runs"] if r["clients"] == 8]
    out["goal_p95_ms"] = GOAL_P95_MS
    out["meets_goal_at_8"] = bool(eight and eight[0]["p95_ms"] <= GOAL_P95_MS) if eight else None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
