"""Broadcast fan-out: ours against a plain aiohttp send loop and ``websockets.broadcast()``.

Every setup is a server in a process of its own on 127.0.0.1, measured in the same run,
in rotated order, ``--rounds`` times at each client count (1,000 and 10,000 by default):

- ``ours``: ``helpers.websockets.broadcast()`` (in memory, the default backend);
- ``plain aiohttp``: ``for ws in sockets: await ws.send_str(msg)`` over aiohttp sockets;
- ``websockets``: the ``websockets`` library's asyncio server and ``websockets.broadcast()``;
- ``ours, Redis, 2 procs`` (with ``--redis``, 1,000 clients): two server processes of
  ours joined by ``RedisBroadcast`` on a throwaway ``redis-server``, clients split.

The clients are plain asyncio sockets that parse the server's frames, spread over
``--client-procs`` processes, so that they cost little. Each server answers a tiny line
protocol on a control port: ``count``, ``rss`` and ``fire N RATE`` (broadcast ``N``
messages, ``RATE`` per second, 0 for back to back; answers the seconds it took).

Three measures per round:

- **hand-off**: the clients stop reading, the server broadcasts ``--burst`` messages back
  to back and times it; deliveries/s = burst x clients / seconds. This is the server's
  cost of fan-out (the frames are in the kernel's buffers when a send returns), free of
  the clients' costs;
- **end to end**: the same burst with the clients reading, from the ``fire`` command to
  the last frame at the last client;
- **latency**: ``--paced`` messages at 5/s, each stamped with the monotonic clock when it
  was broadcast; p50 / p99 of every delivery.

And the server's memory per idle connection: (RSS with every client connected - RSS
before the first) / clients. Medians of the rounds are shown, with ratios against ours.
Prints tables; asserts nothing.

    python -m bench.broadcast [--clients 1000,10000] [--rounds 3] [--burst 40] [--redis]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench._harness import (
    Server,
    connect,
    free_port,
    median,
    module_args,
    raise_nofile,
    redis_server,
    rss,
    table,
)

MODULE = "bench.broadcast"
PAD = "x" * 64
PACED_RATE = 5.0
NOFILE = 20000
SETUPS = ("ours", "plain aiohttp", "websockets")
REDIS = "ours, Redis, 2 procs"


# -- servers (each in its own process) -----------------------------------------------------

Fire = Callable[[str], Awaitable[None]]


async def _control(port: int, fire: Fire, count: Callable[[], int]) -> None:
    """Serve the control protocol on ``port`` until cancelled."""
    loop = asyncio.get_running_loop()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := (await reader.readline()).decode().split():
            if line[0] == "count":
                answer = str(count())
            elif line[0] == "rss":
                gc.collect()
                answer = str(rss(os.getpid()))
            else:
                n, rate = int(line[1]), float(line[2])
                began = loop.time()
                for seq in range(n):
                    if rate:
                        await asyncio.sleep(max(0.0, began + seq / rate - loop.time()))
                    await fire(f"{seq} {time.monotonic():.6f} {PAD}")
                answer = f"{loop.time() - began:.6f}"
            writer.write(answer.encode() + b"\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", port)
    async with server:
        await asyncio.Future()


async def _until_stopped() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


async def serve(kind: str, port: int, control: int, redis_url: str | None) -> None:
    """Serve WebSockets at ``/ws`` on ``port`` the way ``kind`` says, until SIGTERM."""
    raise_nofile(NOFILE)
    if kind == "websockets":
        await _serve_websockets(port, control)
        return

    from aiohttp import web

    import aiohttp_helpers as ah

    app = web.Application()
    fire: Fire
    if kind == "plain":
        sockets: set[web.WebSocketResponse] = set()

        async def plain(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            sockets.add(ws)
            try:
                async for _ in ws:
                    pass
            finally:
                sockets.discard(ws)
            return ws

        async def send_loop(msg: str) -> None:
            for ws in list(sockets):
                await ws.send_str(msg)

        app.router.add_get("/ws", plain)
        fire, count = send_loop, sockets.__len__
    else:
        backend = ah.RedisBroadcast(redis_url, channel="bench") if redis_url else None
        registry = ah.setup(
            app, websockets=ah.WebSocketSettings(heartbeat=None, broadcast=backend)
        ).websockets

        @ah.websocket_handler
        async def idle(request: web.Request, ws: ah.ServerWebSocket) -> None:
            async for _ in ws.messages():
                pass

        app.router.add_get("/ws", idle)
        fire, count = registry.broadcast, registry.__len__

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    task = asyncio.create_task(_control(control, fire, count))
    print("ready", flush=True)
    await _until_stopped()
    task.cancel()
    await runner.cleanup()


async def _serve_websockets(port: int, control: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast
    from websockets.asyncio.server import serve as ws_serve

    async def hold(conn: ServerConnection) -> None:
        await conn.wait_closed()

    async with ws_serve(
        hold, "127.0.0.1", port, compression=None, ping_interval=None, backlog=2048
    ) as server:

        async def fire(msg: str) -> None:
            broadcast(server.connections, msg)

        task = asyncio.create_task(_control(control, fire, lambda: len(server.connections)))
        print("ready", flush=True)
        await _until_stopped()
        task.cancel()


# -- clients (in --client-procs processes) ---------------------------------------------------


@dataclass
class Tally:
    """What this process's clients received since the last ``expect``."""

    expected: int = 0
    frames: int = 0
    last: float = 0.0
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


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
        if tally.expected and tally.frames >= tally.expected and not tally.done.is_set():
            tally.last = now
            tally.done.set()


async def clients(ports: list[int], count: int) -> None:
    """Open ``count`` clients over ``ports``, then obey commands read from stdin."""
    raise_nofile(NOFILE)
    loop = asyncio.get_running_loop()
    tally = Tally()
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> Client:
        async with sem:
            upgraded: asyncio.Future[None] = loop.create_future()
            port = ports[i % len(ports)]
            _, client = await loop.create_connection(
                lambda: Client(port, tally, upgraded), "127.0.0.1", port
            )
            await upgraded
            return client

    conns = await asyncio.gather(*(one(i) for i in range(count)))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while words := (await reader.readline()).decode().split():
        if words[0] == "pause":
            for conn in conns:
                assert conn.transport is not None
                conn.transport.pause_reading()
            print("ok", flush=True)
        elif words[0] == "expect":
            tally.expected, tally.frames, tally.latencies = int(words[1]), 0, []
            tally.done = asyncio.Event()
            for conn in conns:
                assert conn.transport is not None
                if not conn.transport.is_reading():
                    conn.transport.resume_reading()
            print("ok", flush=True)
            async with asyncio.timeout(300):
                await tally.done.wait()
            lat = sorted(tally.latencies)
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"{tally.last:.6f} {p50:.6f} {p99:.6f}", flush=True)
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()


# -- orchestration (this process) ------------------------------------------------------------


class Control:
    """A connection to a server's control port."""

    def __init__(self, port: int) -> None:
        self.sock = connect(port)
        self.file = self.sock.makefile("rw", encoding="ascii")

    def ask(self, line: str) -> str:
        self.file.write(line + "\n")
        self.file.flush()
        return self.file.readline().strip()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@dataclass
class Round:
    handoff: float  # deliveries/s, clients not reading (nan when not measured)
    e2e: float  # deliveries/s, clients reading
    p50: float
    p99: float
    per_conn: float  # bytes of server RSS per idle connection


def _one_round(
    setup: str, n: int, burst: int, paced: int, procs: int, redis_url: str | None
) -> Round:
    kind = {"ours": "ours", "plain aiohttp": "plain", "websockets": "websockets"}.get(setup, "ours")
    processes = 2 if setup == REDIS else 1
    with contextlib.ExitStack() as stack:
        servers, controls = [], []
        for _ in range(processes):
            port, control = free_port(), free_port()
            args = module_args(
                MODULE, "--serve", kind, "--port", str(port), "--control", str(control)
            )
            if setup == REDIS:
                assert redis_url is not None
                args += ["--redis-url", redis_url]
            servers.append((stack.enter_context(Server(args)), port))
            controls.append(Control(control))
            stack.callback(controls[-1].close)
        before = sum(int(c.ask("rss")) for c in controls)
        ports = ",".join(str(port) for _, port in servers)
        share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        clients_ = [
            stack.enter_context(
                Server(
                    module_args(MODULE, "--client-ports", ports, "--count", str(k)),
                    interactive=True,
                    ready_within=300,
                )
            )
            for k in share
        ]
        deadline = time.monotonic() + 60
        while sum(int(c.ask("count")) for c in controls) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("not every client was registered")
            time.sleep(0.05)
        per_conn = (sum(int(c.ask("rss")) for c in controls) - before) / n
        fire = controls[0]

        def burst_run(reading: bool, count: int, rate: float) -> tuple[float, float, float, float]:
            if not reading:
                for c in clients_:
                    c.send("pause")
                    assert c.readline() == "ok"
            for c, k in zip(clients_, share, strict=True):
                c.send(f"expect {count * k}")
                if reading:
                    assert c.readline() == "ok"
            began = time.monotonic()
            seconds = float(fire.ask(f"fire {count} {rate}"))
            if not reading:
                for c in clients_:
                    assert c.readline() == "ok"
            last, p50, p99 = zip(*(map(float, c.readline().split()) for c in clients_), strict=True)
            return seconds, max(last) - began, max(p50), max(p99)

        burst_run(True, 10, 0)  # warm up
        handoff = float("nan")
        if setup != REDIS:
            seconds, *_ = burst_run(False, burst, 0)
            handoff = burst * n / seconds
        _, e2e_seconds, _, _ = burst_run(True, burst, 0)
        _, _, p50, p99 = burst_run(True, paced, PACED_RATE)
        return Round(handoff, burst * n / e2e_seconds, p50, p99, per_conn)


def run(counts: list[int], rounds: int, burst: int, paced: int, procs: int, redis: bool) -> None:
    limit = raise_nofile(NOFILE)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server()) if redis else None
        for n in counts:
            if n + 100 > limit:
                print(f"skipping {n} clients: the open-file limit is {limit}")
                continue
            setups = list(SETUPS) + ([REDIS] if redis and n <= 1000 else [])
            results: dict[str, list[Round]] = {label: [] for label in setups}
            for i in range(rounds):
                order = setups[i % len(setups) :] + setups[: i % len(setups)]
                for label in order:
                    results[label].append(_one_round(label, n, burst, paced, procs, redis_url))
            _report(n, burst, paced, rounds, results)
    print(f"total {time.monotonic() - started:.0f} s")


def _report(n: int, burst: int, paced: int, rounds: int, results: dict[str, list[Round]]) -> None:
    def med(label: str, what: str) -> float:
        return median(getattr(r, what) for r in results[label])

    print(
        f"\nBroadcast to {n:,} clients: {burst} back-to-back messages (hand-off: clients not "
        f"reading; end to end: reading), {paced} paced at {PACED_RATE:g}/s; median of "
        f"{rounds} rounds, setups rotated"
    )
    ours = "ours"
    rows = []
    for label in results:
        handoff, e2e = med(label, "handoff"), med(label, "e2e")
        rows.append(
            [
                label,
                "-" if handoff != handoff else f"{handoff:,.0f}",
                "-" if handoff != handoff else f"{med(ours, 'handoff') / handoff:.2f}x",
                f"{e2e:,.0f}",
                f"{med(ours, 'e2e') / e2e:.2f}x",
                f"{med(label, 'p50') * 1e3:.1f} ms",
                f"{med(label, 'p99') * 1e3:.1f} ms",
                f"{med(label, 'per_conn') / 1024:.1f} KiB",
            ]
        )
    print(
        table(
            ["setup", "hand-off/s", "ours vs", "end-to-end/s", "ours vs", "p50", "p99",
             "RSS/conn"],
            rows,
        )
    )  # fmt: skip
    print("(deliveries per second; 'ours vs' = ours / that setup, measured in the same run)")


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--clients", default="1000,10000", help="client counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--paced", type=int, default=10)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--redis", action="store_true", help="add ours over RedisBroadcast")
    parser.add_argument("--serve", choices=["ours", "plain", "websockets"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--control", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", "--redis-url", dest="redis_url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-ports", dest="client_ports", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.control, args.redis_url))
    elif args.client_ports:
        asyncio.run(clients([int(p) for p in args.client_ports.split(",")], args.count))
    else:
        counts = [int(c) for c in args.clients.split(",")]
        run(counts, args.rounds, args.burst, args.paced, args.client_procs, args.redis)


if __name__ == "__main__":
    main()
