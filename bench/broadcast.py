"""Broadcast fan-out: 1,000 clients on one process in memory, or over 2 processes through Redis.

Each server is ``web.run_app`` in its own process on 127.0.0.1; a real ``redis-server``
(persistence off, a free port) carries the Redis case. The clients (plain sockets that
parse the server's frames, so that they cost little) run in this process, split evenly
between the servers. One server broadcasts; every message carries the monotonic clock at
the moment ``broadcast()`` was called, so latency is measured from the call to the moment
a client has the frame (CLOCK_MONOTONIC is shared by the processes of one machine).

Two measures per round: a burst of back-to-back broadcasts (messages per second, from the
first call to the last frame at the last client) and a paced run (p50 / p99 latency of
every delivery). The two setups alternate, ``--rounds`` times each; medians are shown.
Prints a table; asserts nothing.

    python bench/broadcast.py [--clients 1000] [--rounds 3] [--burst 40] [--paced 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.abspath(__file__)
PAD = "x" * 64
#: Broadcasts per second in the paced run: below either setup's capacity, so that the
#: latency is that of one fan-out, not of a queue.
PACED_RATE = 5.0


# -- servers (run in their own process) --------------------------------------------------


def serve(port: int, redis_url: str | None) -> None:
    """Serve ``/ws`` (clients), ``/count`` and ``/fire`` (broadcasts) until SIGTERM."""
    from aiohttp import web

    import aiohttp_helpers as ah

    backend = ah.RedisBroadcast(redis_url, channel="bench") if redis_url else None
    app = web.Application()
    websockets = ah.setup(
        app,
        websockets=ah.WebSocketSettings(heartbeat=None, broadcast=backend, send_timeout=30.0),
    ).websockets

    @ah.websocket_handler
    async def idle(request: web.Request, ws: ah.ServerWebSocket) -> None:
        async for _ in ws.messages():
            pass

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"sockets": len(websockets)})

    async def fire(request: web.Request) -> web.Response:
        """Broadcast ``n`` messages, ``rate`` per second (0: back to back)."""
        n, rate = int(request.query["n"]), float(request.query["rate"])
        loop = asyncio.get_running_loop()
        began = loop.time()
        for seq in range(n):
            if rate:
                await asyncio.sleep(max(0.0, began + seq / rate - loop.time()))
            await websockets.broadcast(f"{seq} {time.monotonic():.6f} {PAD}")
        return web.json_response({"seconds": loop.time() - began})

    app.router.add_get("/ws", idle)
    app.router.add_get("/count", count)
    app.router.add_post("/fire", fire)

    def ready(_banner: str) -> None:
        print("ready", flush=True)

    web.run_app(app, host="127.0.0.1", port=port, print=ready, access_log=None, backlog=2048)


# -- clients (in this process) -----------------------------------------------------------


@dataclass
class Tally:
    """What the clients received in the current run."""

    expected: int = 0
    frames: int = 0
    last: float = 0.0
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self, expected: int) -> None:
        self.expected, self.frames, self.last = expected, 0, 0.0
        self.latencies = []
        self.done = asyncio.Event()


class Client(asyncio.Protocol):
    """A WebSocket client that only reads: counts text frames and their latency."""

    def __init__(self, port: int, tally: Tally, upgraded: asyncio.Future[None]) -> None:
        self.port, self.tally, self.upgraded = port, tally, upgraded
        self.buf = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(f"upgrade refused: {bytes(buf[:40])!r}"))
                return
            del buf[: end + 4]
            self.open = True
            self.upgraded.set_result(None)
        tally, pos, size = self.tally, 0, len(buf)
        while size - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            if buf[pos] & 0x0F == 0x1:
                stamp = buf[pos + head : pos + head + length].split(b" ", 2)[1]
                tally.latencies.append(now - float(stamp))
                tally.frames += 1
            pos += head + length
        del buf[:pos]
        if tally.frames >= tally.expected and tally.expected and not tally.done.is_set():
            tally.last = now
            tally.done.set()


async def _connect(port: int, tally: Tally) -> Client:
    loop = asyncio.get_running_loop()
    upgraded: asyncio.Future[None] = loop.create_future()
    _, client = await loop.create_connection(
        lambda: Client(port, tally, upgraded), "127.0.0.1", port
    )
    await upgraded
    return client


async def _http(port: int, method: str, path: str) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    raw = await reader.read()
    writer.close()
    result: dict[str, Any] = json.loads(raw.partition(b"\r\n\r\n")[2])
    return result


# -- orchestration -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Redis:
    """A throwaway ``redis-server`` on a free loopback port, persistence off."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (make sysdeps installs it)")
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.close()
        raise SystemExit("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _start_server(redis_url: str | None) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    args = [sys.executable, HERE, "--serve", str(port)] + (
        ["--redis", redis_url] if redis_url else []
    )
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("a server did not start")
    return proc, port


@dataclass
class Round:
    rate: float
    p50: float
    p99: float


async def _one_round(
    redis_url: str | None, processes: int, clients: int, burst: int, paced: int, tally: Tally
) -> Round:
    servers = [_start_server(redis_url) for _ in range(processes)]
    conns: list[Client] = []
    try:
        ports = [port for _, port in servers]
        sem = asyncio.Semaphore(100)

        async def one(i: int) -> Client:
            async with sem:
                return await _connect(ports[i % len(ports)], tally)

        conns = await asyncio.gather(*(one(i) for i in range(clients)))
        for port in ports:  # every socket registered before the first broadcast
            await _registered(port, clients // len(ports))
        fire_port = ports[0]
        await _warm_up(fire_port, clients, tally)

        tally.reset(burst * clients)
        began = time.monotonic()
        await _http(fire_port, "POST", f"/fire?n={burst}&rate=0")
        async with asyncio.timeout(120):
            await tally.done.wait()
        rate = burst / (tally.last - began)

        tally.reset(paced * clients)
        await _http(fire_port, "POST", f"/fire?n={paced}&rate={PACED_RATE}")
        async with asyncio.timeout(120):
            await tally.done.wait()
        latencies = sorted(tally.latencies)
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return Round(rate, p50, p99)
    finally:
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        for proc, _ in servers:
            proc.terminate()
            proc.wait(30)


async def _registered(port: int, sockets: int) -> None:
    async with asyncio.timeout(30):
        while True:
            if (await _http(port, "GET", "/count"))["sockets"] >= sockets:
                return
            await asyncio.sleep(0.01)


async def _warm_up(port: int, clients: int, tally: Tally) -> None:
    tally.reset(10 * clients)
    await _http(port, "POST", "/fire?n=10&rate=0")
    async with asyncio.timeout(60):
        await tally.done.wait()


async def run(clients: int, rounds: int, burst: int, paced: int) -> None:
    redis = Redis()
    tally = Tally()
    setups = {  # label: (Redis URL or None for in memory, server processes)
        "1 process, in memory (default)": (None, 1),
        "2 processes, RedisBroadcast": (redis.url, 2),
        "1 process, RedisBroadcast": (redis.url, 1),
    }
    results: dict[str, list[Round]] = {label: [] for label in setups}
    started = time.monotonic()
    try:
        for i in range(rounds):
            labels = list(setups)
            for label in labels[i % 3 :] + labels[: i % 3]:
                url, processes = setups[label]
                result = await _one_round(url, processes, clients, burst, paced, tally)
                results[label].append(result)
    finally:
        redis.close()

    def med(label: str, what: str) -> float:
        return float(statistics.median(getattr(r, what) for r in results[label]))

    print(
        f"Broadcast fan-out to {clients} clients: {burst} back-to-back broadcasts, then "
        f"{paced} paced at {PACED_RATE:g}/s; median of {rounds} rounds, setups rotated"
    )
    base = next(iter(setups))
    width = max(len(label) for label in setups)
    print(
        f"{'setup':<{width}}  {'broadcasts/s':>12}  {'deliveries/s':>12}  {'p50':>8}  {'p99':>8}"
        f"  {'rate ratio':>10}  {'p99 ratio':>9}"
    )
    for label in setups:
        rate, p99 = med(label, "rate"), med(label, "p99")
        print(
            f"{label:<{width}}  {rate:>12,.0f}  {rate * clients:>12,.0f}  "
            f"{med(label, 'p50') * 1e3:>6.1f}ms  {p99 * 1e3:>6.1f}ms"
            f"  {rate / med(base, 'rate'):>9.2f}x  {p99 / med(base, 'p99'):>8.2f}x"
        )
    print("(ratios: against 1 process in memory, measured in the same run)")
    print(f"total {time.monotonic() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--paced", type=int, default=10)
    parser.add_argument("--serve", type=int, metavar="PORT")
    parser.add_argument("--redis")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.redis)
        return
    asyncio.run(run(args.clients, args.rounds, args.burst, args.paced))


if __name__ == "__main__":
    main()
