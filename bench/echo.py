"""WebSocket benchmarks: echo throughput of the handler wrapper, and closing 1,000 sockets.

Each server runs in its own process (``web.run_app`` on 127.0.0.1), the load comes from
another process, and the two sides of a comparison are measured in the same run,
interleaved. The load generator writes pre-masked frames over plain sockets, so that the
server, not the client, is what the echo figure measures. Prints a table; asserts nothing.

    python -m bench.echo [--rounds 7] [--seconds 2] [--clients 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import struct
import sys
import time
from typing import Any

from bench._harness import Server, free_port, module_args, run_json, table

MODULE = "bench.echo"
PAYLOAD = b"x" * 64
#: Size of the large text messages whose early UTF-8 check is priced.
BIG_TEXT = 256 * 1024
#: shutdown_timeout of the plain aiohttp server in the shutdown run (run_app's default is 60 s).
PLAIN_SHUTDOWN_TIMEOUT = 1.0


# -- servers (run in their own process) --------------------------------------------------


def serve(kind: str, port: int) -> None:
    """Serve ``/echo`` and ``/idle`` the way ``kind`` says until SIGTERM."""
    from aiohttp import WSMsgType, web

    import aiohttp_helpers as ah

    app = web.Application()
    shutdown_timeout = 60.0
    if kind in ("helpers", "helpers-lax"):
        ah.setup(app)

        # helpers-lax: the same without the strict frame checks, to price them.
        @ah.websocket_handler(heartbeat=None, strict_frames=kind == "helpers")
        async def echo(request: web.Request, ws: ah.ServerWebSocket) -> None:
            async for data in ws.messages():
                if isinstance(data, str):
                    await ws.send_str(data)
                else:
                    await ws.send_bytes(data)

        app.router.add_get("/echo", echo)
        app.router.add_get("/idle", echo)
    else:
        shutdown_timeout = PLAIN_SHUTDOWN_TIMEOUT

        async def plain_echo(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
            return ws

        app.router.add_get("/echo", plain_echo)
        app.router.add_get("/idle", plain_echo)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        print=None,
        access_log=None,
        backlog=2048,
        shutdown_timeout=shutdown_timeout,
    )


# -- load (runs in its own process) ------------------------------------------------------


def _length_header(first: int, n: int, mask_bit: int) -> bytes:
    if n < 126:
        return struct.pack("!BB", first, mask_bit | n)
    if n < 65536:
        return struct.pack("!BBH", first, mask_bit | 126, n)
    return struct.pack("!BBQ", first, mask_bit | 127, n)


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")
    return _length_header(0x81, len(payload), 0x80) + mask + masked


async def _upgrade(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {head[:40]!r}")
    return reader, writer


async def load_echo(
    port: int, seconds: float, connections: int, batch: int, size: int = len(PAYLOAD)
) -> dict[str, Any]:
    """Echo ``batch`` text frames of ``size`` bytes at a time on each connection; messages/s."""
    payload = PAYLOAD * (size // len(PAYLOAD)) + PAYLOAD[: size % len(PAYLOAD)]
    frame = _masked_text_frame(payload) * batch
    # The server's frames are not masked.
    answer = (len(_length_header(0x81, size, 0)) + size) * batch
    conns = [await _upgrade(port, "/echo") for _ in range(connections)]
    done = 0
    stop_at = time.monotonic() + seconds

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            writer.write(frame)
            await reader.readexactly(answer)
            done += batch

    started = time.monotonic()
    await asyncio.gather(*(pump(r, w) for r, w in conns))
    elapsed = time.monotonic() - started
    for _, writer in conns:
        writer.close()
    return {"rate": done / elapsed, "messages": done}


async def load_shutdown(port: int, clients: int) -> dict[str, Any]:
    """Hold ``clients`` idle sockets; after the SIGTERM time arrives on stdin, time the ends."""
    sem = asyncio.Semaphore(100)

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with sem:
            return await _upgrade(port, "/idle")

    conns = await asyncio.gather(*(one() for _ in range(clients)))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    sigterm_at = float(line)

    async def ending(reader: asyncio.StreamReader) -> tuple[int, float]:
        code = 1006
        try:
            first, second = await reader.readexactly(2)
            if first & 0x0F == 0x8:
                payload = await reader.readexactly(second & 0x7F)
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        return code, time.monotonic() - sigterm_at

    async with asyncio.timeout(60):
        ends = await asyncio.gather(*(ending(reader) for reader, _ in conns))
    for _, writer in conns:
        writer.close()
    codes: dict[str, int] = {}
    for code, _ in ends:
        codes[str(code)] = codes.get(str(code), 0) + 1
    times = sorted(t for _, t in ends)
    return {"codes": codes, "max": times[-1], "median": times[len(times) // 2]}


# -- orchestration -----------------------------------------------------------------------


def _server(kind: str) -> Server:
    port = free_port()
    return Server(module_args(MODULE, "--serve", kind, str(port)), port=port)


def _run_load(*args: str) -> dict[str, Any]:
    return run_json(module_args(MODULE, "--load", *args))


def _cpu(server: Server) -> float:
    seconds = server.cpu_seconds()
    if seconds is None:
        raise SystemExit("this bench reads CPU time from Linux's /proc")
    return seconds


def bench_echo(rounds: int, seconds: float) -> list[tuple[str, str, str, str]]:
    kinds = ("plain", "helpers", "helpers-lax")
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    with contextlib.ExitStack() as stack:
        servers = {kind: stack.enter_context(_server(kind)) for kind in kinds}
        for i in range(rounds):
            # Each round in another order, so that no kind always runs first or last.
            order = kinds[i % 3 :] + kinds[: i % 3]
            if i % 2:
                order = order[::-1]
            for kind in order:
                server = servers[kind]
                before = _cpu(server)
                result = _run_load("echo", str(server.port), str(seconds), "4", "64")
                rates[kind].append(result["rate"])
                # CPU time per message: steadier than the rate on a machine shared with
                # other work, which the rate also measures.
                cpu[kind].append((_cpu(server) - before) / result["messages"])

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    # Large text messages: the early UTF-8 check unmasks and decodes the part of each
    # message that arrives before its end. Server CPU only, strict vs without.
    big: dict[str, list[float]] = {"helpers": [], "helpers-lax": []}
    with contextlib.ExitStack() as stack:
        servers = {kind: stack.enter_context(_server(kind)) for kind in big}
        for i in range(rounds):
            for kind in ("helpers", "helpers-lax") if i % 2 == 0 else ("helpers-lax", "helpers"):
                server = servers[kind]
                before = _cpu(server)
                args = ("echo", str(server.port), str(seconds), "2", "1", str(BIG_TEXT))
                result = _run_load(*args)
                big[kind].append((_cpu(server) - before) / result["messages"])
    big_us = {kind: statistics.median(v) * 1e6 for kind, v in big.items()}

    median = {kind: statistics.median(rates[kind]) for kind in kinds}
    strict = [x / y for x, y in zip(rates["helpers"], rates["helpers-lax"], strict=True)]
    us = {kind: statistics.median(cpu[kind]) * 1e6 for kind in kinds}
    return [
        ("echo: hand-written aiohttp loop", f"{median['plain']:,.0f} msg/s", "1.00 x", ""),
        (
            "echo: @websocket_handler + ws.messages()",
            f"{median['helpers']:,.0f} msg/s",
            f"{ratio('helpers', 'plain'):.2f} x",
            ">= 0.9 x",
        ),
        (
            "echo: the same, strict_frames=False",
            f"{median['helpers-lax']:,.0f} msg/s",
            f"{ratio('helpers-lax', 'plain'):.2f} x",
            "",
        ),
        (
            "echo: server CPU per message, strict vs without",
            f"{us['helpers']:.2f} us vs {us['helpers-lax']:.2f} us (plain {us['plain']:.2f} us)",
            f"{us['helpers'] / us['helpers-lax']:.3f} x",
            "<= 1.05 x",
        ),
        (
            f"echo {BIG_TEXT // 1024} KiB text: server CPU per message, strict vs without",
            f"{big_us['helpers']:.0f} us vs {big_us['helpers-lax']:.0f} us",
            f"{big_us['helpers'] / big_us['helpers-lax']:.3f} x",
            "",
        ),
        (
            "echo: strict frame checks vs without them",
            f"{min(strict):.2f}-{max(strict):.2f} x over the rounds (rates: noisy when shared)",
            f"{ratio('helpers', 'helpers-lax'):.2f} x",
            "",
        ),
    ]


def _shutdown_once(kind: str, clients: int) -> dict[str, Any]:
    with _server(kind) as server:
        load_args = module_args(MODULE, "--load", "shutdown", str(server.port), str(clients))
        # The load generator prints "ready" once every client is connected.
        with Server(load_args, interactive=True, ready_within=120) as load:
            if load.banner != "ready":
                raise RuntimeError("the load generator did not connect")
            sigterm_at = time.monotonic()
            server.send_signal()
            load.send(f"{sigterm_at}")
            result: dict[str, Any] = json.loads(load.readline())
            server.wait(timeout=60)
            result["exit"] = time.monotonic() - sigterm_at
            load.wait(timeout=10)
            return result


def bench_shutdown(clients: int, rounds: int) -> list[tuple[str, str, str, str]]:
    rows = []
    for kind, label, target in (
        ("helpers", "shutdown: setup() + @websocket_handler", "<= 1 s"),
        ("plain", f"shutdown: plain aiohttp (shutdown_timeout={PLAIN_SHUTDOWN_TIMEOUT:g} s)", ""),
    ):
        runs = [_shutdown_once(kind, clients) for _ in range(rounds)]
        worst = statistics.median(r["max"] for r in runs)
        codes = ", ".join(f"{n} x {code}" for code, n in sorted(runs[-1]["codes"].items()))
        exit_ = statistics.median(r["exit"] for r in runs)
        rows.append(
            (
                label,
                f"all {clients} closed in {worst:.3f} s ({codes}); process exit {exit_:.2f} s",
                "",
                target,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--echo-only", action="store_true", help="skip the shutdown runs")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.load:
        what, port, *rest = args.load
        if what == "echo":
            sizes = [int(x) for x in rest[3:4]]
            result = asyncio.run(
                load_echo(int(port), float(rest[0]), int(rest[1]), int(rest[2]), *sizes)
            )
        else:
            result = asyncio.run(load_shutdown(int(port), int(rest[0])))
        print(json.dumps(result), flush=True)
        return

    started = time.monotonic()
    rows = bench_echo(args.rounds, args.seconds)
    if not args.echo_only:
        rows += bench_shutdown(args.clients, 2)
    print(
        f"WebSockets ({args.rounds} interleaved echo rounds of {args.seconds:g} s; "
        f"{args.clients} idle clients at SIGTERM, median of 2)"
    )
    print(table(["case", "result", "ratio", "target"], rows, left=2))
    print(
        f"(plain aiohttp's shutdown_timeout is cut to {PLAIN_SHUTDOWN_TIMEOUT:g} s here so the "
        "bench stays quick; run_app's default of 60 s holds such sockets for 2 x 60 s)"
    )
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
