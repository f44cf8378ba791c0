"""Soak: a bounded loopback load of hostile and valid uploads and WebSocket clients.

A server runs in its own process (this module with ``--serve``) with the package set up
the way an upload and chat service would run it. For ``--duration`` seconds (default 60,
or ``$SOAK_SECONDS``) this process drives it over 127.0.0.1 with ``--uploaders``
concurrent upload clients, each sending one request after another picked from a mix of
valid forms and files and hostile bodies (bombs, floods, malformed framing, traversal
names, clients that vanish or stall), and ``--websockets`` clients that connect, talk,
and close, some of them with oversized or invalid messages.

Every answer is checked against what its scenario must get (a status, or a close code),
and ``GET /ping`` is timed throughout. The report counts requests handled, answers by
kind and unexpected answers, and measures the server process once the load has stopped:
from outside, through ``/proc``, the temporary files and descriptors left and its RSS
after the warm-up and at the end; through ``/debug`` (in this app only), its Python
objects, tasks, connections and open WebSockets. Targets: 0 unexpected answers, 0 leaked
files, descriptors, tasks or connections, RSS growth under 64 MiB; the exit status is 1
when one is missed.

    python -m bench.soak [--duration 60] [--uploaders 6] [--websockets 8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import gzip
import hashlib
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import aiohttp_helpers as ah
from bench._harness import Server, fds, free_port, module_args, rss, table

MODULE = "bench.soak"

MiB = 1 << 20
KiB = 1 << 10
HOST = "127.0.0.1"
RSS_GROWTH_LIMIT = 64 * MiB
LIMITS = ah.UploadLimits(
    max_body_size=8 * MiB,
    max_file_size=4 * MiB,
    max_files=10,
    max_field_size=64 * KiB,
    max_fields=200,
    max_parts=210,
    max_header_size=4 * KiB,
    max_preamble_size=4 * KiB,
    max_depth=3,
    spool_max_size=64 * KiB,
    idle_timeout=1.0,
)
WS_SETTINGS = ah.WebSocketSettings(max_msg_size=64 * KiB, heartbeat=5.0)

# -- the server (its own process) ----------------------------------------------------------


def server_app(spool: Path, dest: Path) -> web.Application:
    async def form(request: web.Request) -> web.Response:
        async with await ah.read_form(request) as got:
            files = []
            for upload in got.files.values():
                # Saved and removed again: the save path runs, the disk does not fill.
                path = await upload.save(dest / f"{os.getpid()}-{id(upload)}-{upload.filename}")
                files.append({"name": upload.filename, "size": upload.size})
                await asyncio.to_thread(path.unlink)
        return web.json_response({"fields": len(got.fields), "files": files})

    async def parts(request: web.Request) -> web.Response:
        count = 0
        digest = hashlib.sha256()
        async for part in ah.iter_parts(request):
            count += 1
            async for chunk in part:
                digest.update(chunk)
        return web.json_response({"parts": count, "sha256": digest.hexdigest()})

    @ah.websocket_handler(messages="text")
    async def chat(request: web.Request, ws: ah.ServerWebSocket) -> None:
        async for text in ws.messages():
            await ws.send_str(text)

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def debug(request: web.Request) -> web.Response:
        """What the process holds: Python objects, tasks, open WebSockets (soak only)."""
        gc.collect()
        return web.json_response(
            {
                "objects": len(gc.get_objects()),
                # This handler's own task, and the connection's.
                "tasks": len(asyncio.all_tasks()) - 2,
                "websockets": len(helpers.websockets),
                "task_kinds": dict(
                    collections.Counter(
                        getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks()
                    )
                ),
            }
        )

    app = web.Application()
    helpers = ah.setup(app, limits=LIMITS.replace(tmp_dir=spool), websockets=WS_SETTINGS)
    app.router.add_post("/form", form)
    app.router.add_post("/parts", parts)
    app.router.add_get("/ws", chat)
    app.router.add_get("/ping", ping)
    app.router.add_get("/debug", debug)
    return app


def serve(port: int, spool: Path, dest: Path) -> None:
    web.run_app(
        server_app(spool, dest),
        host=HOST,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
    )


# -- what the clients send -----------------------------------------------------------------


def _part(*headers: str, data: bytes, boundary: bytes = b"Bq") -> bytes:
    head = "\r\n".join(headers).encode()
    return b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n"


def _field(name: str, value: bytes = b"v") -> bytes:
    return _part(f'Content-Disposition: form-data; name="{name}"', data=value)


def _file(filename: str, data: bytes, *headers: str, name: str = "f") -> bytes:
    return _part(
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"', *headers, data=data
    )


END = b"--Bq--\r\n"
CT = "multipart/form-data; boundary=Bq"
_RANDOM = random.Random(1)
SMALL = _RANDOM.randbytes(20 * KiB)
MEDIUM = _RANDOM.randbytes(1 * MiB)
LARGE = _RANDOM.randbytes(3 * MiB)
GZIP_BOMB = gzip.compress(b"\0" * MiB, 9, mtime=0) * 64  # 64 MiB of zeros in 64 KiB


def _nested(depth: int) -> bytes:
    inner = _part("Content-Disposition: attachment", data=b"deep", boundary=b"L0") + b"--L0--\r\n"
    for level in range(1, depth):
        outer = f"L{level}".encode()
        inner = (
            _part(
                f"Content-Type: multipart/mixed; boundary=L{level - 1}", data=inner, boundary=outer
            )
            + b"--"
            + outer
            + b"--\r\n"
        )
    return (
        _part(
            'Content-Disposition: form-data; name="n"',
            f"Content-Type: multipart/mixed; boundary=L{depth - 1}",
            data=inner,
        )
        + END
    )


@dataclass(frozen=True)
class Scenario:
    """One kind of request: what is sent, and every answer that is right for it."""

    name: str
    body: bytes
    expect: frozenset[int]
    route: str = "/form"
    content_type: str = CT
    weight: int = 1
    #: Stop sending after this many bytes and close (None: send it all).
    vanish_after: int | None = None
    #: Stop sending after this many bytes and wait for the answer (an idle client).
    stall_after: int | None = None


SCENARIOS = [
    Scenario(
        "valid form",
        _field("title", b"hello") + _file("a.txt", SMALL) + END,
        frozenset({200}),
        weight=6,
    ),
    Scenario(
        "valid 1 MiB file",
        _field("title") + _file("m.bin", MEDIUM) + END,
        frozenset({200}),
        weight=3,
    ),
    Scenario("valid 3 MiB file", _file("l.bin", LARGE) + END, frozenset({200}), weight=2),
    Scenario(
        "valid parts",
        _field("a") + _file("p.bin", MEDIUM) + _field("b") + END,
        frozenset({200}),
        route="/parts",
        weight=3,
    ),
    Scenario(
        "path traversal name",
        _file("../../etc/passwd", b"x") + END,
        frozenset({200}),
    ),
    Scenario(
        "boundary lookalikes",
        _file("look.bin", b"\r\n--Bqx" * (128 * KiB)) + END,
        frozenset({200}),
        route="/parts",
    ),
    Scenario("huge preamble", b"x" * (1 * MiB) + b"\r\n" + _field("a") + END, frozenset({413})),
    Scenario(
        "100k tiny fields",
        b"".join(_field(f"f{i}") for i in range(100_000)) + END,
        frozenset({413}),
    ),
    Scenario(
        "endless headers",
        b"--Bq\r\n" + b"X-Header: value\r\n" * (64 * KiB),
        frozenset({413}),
    ),
    Scenario(
        "gzip bomb",
        _file("bomb.bin", GZIP_BOMB, "Content-Encoding: gzip") + END,
        frozenset({413}),
        route="/parts",
    ),
    Scenario("deep nesting", _nested(40), frozenset({413})),
    Scenario("missing final boundary", _field("a") + _file("x.bin", SMALL), frozenset({400})),
    Scenario(
        "bad base64",
        _file("b.bin", b"@@@@" * 100, "Content-Transfer-Encoding: base64") + END,
        frozenset({400}),
    ),
    Scenario(
        "unknown encoding",
        _file("b.bin", b"x", "Content-Encoding: compress") + END,
        frozenset({415}),
    ),
    Scenario("not multipart", b'{"a": 1}', frozenset({415}), content_type="application/json"),
    Scenario(
        "body over the limit",
        _file("huge.bin", b"h" * (9 * MiB)) + END,
        frozenset({413}),
    ),
    Scenario(
        "client vanishes mid-file",
        _file("gone.bin", LARGE) + END,
        frozenset({0}),
        weight=2,
        vanish_after=2 * MiB,
    ),
    Scenario(
        "client stalls mid-file",
        _file("idle.bin", LARGE) + END,
        frozenset({408}),
        stall_after=2 * MiB,
    ),
]


# -- the clients ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What the load saw."""

    requests: int = 0
    ws_sessions: int = 0
    ws_messages: int = 0

    def __post_init__(self) -> None:
        self.expected: collections.Counter[str] = collections.Counter()
        self.unexpected: collections.Counter[str] = collections.Counter()
        self.pings: list[float] = []


async def _read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return status


async def _upload(port: int, scenario: Scenario) -> int:
    """Send one request as the scenario says; the status (0: no answer was wanted)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        body = scenario.body
        writer.write(
            (
                f"POST {scenario.route} HTTP/1.1\r\nHost: {HOST}\r\n"
                f"Content-Type: {scenario.content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        cut = scenario.vanish_after or scenario.stall_after
        sent = body if cut is None else body[:cut]

        async def send() -> None:
            with contextlib.suppress(ConnectionError):
                for i in range(0, len(sent), 256 * KiB):
                    writer.write(sent[i : i + 256 * KiB])
                    await writer.drain()

        sending = asyncio.create_task(send())
        if scenario.vanish_after is not None:
            await sending
            await asyncio.sleep(0.05)
            writer.transport.abort()
            return 0
        try:
            async with asyncio.timeout(30):
                return await _read_status(reader)
        finally:
            sending.cancel()
            await asyncio.wait([sending])
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def uploader(port: int, tally: Tally, until: float, seed: int) -> None:
    rng = random.Random(seed)
    weights = [s.weight for s in SCENARIOS]
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        scenario = rng.choices(SCENARIOS, weights)[0]
        try:
            status = await _upload(port, scenario)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            tally.unexpected[f"{scenario.name}: {type(exc).__name__}"] += 1
            continue
        tally.requests += 1
        if status in scenario.expect:
            tally.expected[f"{status or 'no answer'} {scenario.name}"] += 1
        else:
            tally.unexpected[f"{scenario.name}: status {status}"] += 1


async def pinger(port: int, tally: Tally, until: float) -> None:
    """How long ``GET /ping`` takes while the load runs, ten times a second."""
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        while loop.time() < until:
            started = loop.time()
            try:
                async with session.get(f"http://{HOST}:{port}/ping") as resp:
                    await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError as exc:
                tally.unexpected[f"ping: {type(exc).__name__}"] += 1
            else:
                if not ok:
                    tally.unexpected[f"ping: status {resp.status}"] += 1
            tally.pings.append(loop.time() - started)
            await asyncio.sleep(0.1)


async def ws_client(port: int, tally: Tally, until: float, seed: int) -> None:
    """Connect, exchange messages, close; now and then break a rule and expect its code."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    url = f"ws://{HOST}:{port}/ws"
    async with aiohttp.ClientSession() as session:
        while loop.time() < until:
            kind = rng.choices(["talk", "too big", "binary"], [8, 1, 1])[0]
            expected = {"talk": 1000, "too big": 1009, "binary": 1003}[kind]
            try:
                async with session.ws_connect(url, autoclose=False) as ws:
                    tally.ws_sessions += 1
                    for i in range(rng.randint(5, 50)):
                        text = f"m{i}-" + "x" * rng.randint(0, 2000)
                        await ws.send_str(text)
                        msg = await ws.receive(timeout=10)
                        if msg.type is not aiohttp.WSMsgType.TEXT or msg.data != text:
                            tally.unexpected[f"ws echo: {msg.type.name}"] += 1
                            break
                        tally.ws_messages += 1
                    if kind == "too big":
                        await ws.send_str("y" * (WS_SETTINGS.max_msg_size + 1))
                    elif kind == "binary":
                        await ws.send_bytes(b"\x00\x01")
                    else:
                        await ws.close(code=1000)
                    msg = await ws.receive(timeout=10)
                    code = ws.close_code if msg.type is aiohttp.WSMsgType.CLOSED else msg.data
                    if msg.type is aiohttp.WSMsgType.CLOSE:
                        await ws.close()
                    if code == expected:
                        tally.expected[f"ws close {code} ({kind})"] += 1
                    else:
                        tally.unexpected[f"ws {kind}: close {code}"] += 1
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                tally.unexpected[f"ws {kind}: {type(exc).__name__}"] += 1


# -- measuring the server ------------------------------------------------------------------


async def _debug(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{HOST}:{port}/debug") as resp,
    ):
        doc: dict[str, Any] = await resp.json()
        return doc


async def _quiet(port: int, spool: Path, within: float) -> dict[str, Any]:
    """Wait until the server holds no connection and no temporary file; its /debug then.

    After an early answer (a 413, say) aiohttp keeps reading what is left of the body for
    up to 10 s (its lingering time), even from a client that has gone: those connection
    tasks end by themselves, and are not leaks.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        doc = await _debug(port)
        # The /debug request's own connection is the one left.
        doc["connections"] = doc["task_kinds"].get("RequestHandler.start", 0) - 1
        quiet = doc["connections"] == 0 and not os.listdir(spool)
        if quiet or asyncio.get_running_loop().time() > deadline:
            return doc
        await asyncio.sleep(0.25)


async def _settle(check: Callable[[], bool], within: float) -> None:
    """Give the server up to ``within`` seconds to let go of what it still holds."""
    for _ in range(int(within * 10)):
        if check():
            return
        await asyncio.sleep(0.1)


async def run(duration: float, uploaders: int, websockets: int) -> bool:
    work = Path(tempfile.mkdtemp(prefix="ah-soak-"))
    spool, dest = work / "spool", work / "dest"
    spool.mkdir()
    dest.mkdir()
    port = free_port()
    command = module_args(MODULE, "--serve", str(port), str(spool), str(dest))
    # Leaving the block sends SIGTERM and gives the server 15 s to exit (then SIGKILL).
    server = Server(command, port=port, grace=15)
    try:
        with server:
            # Warm-up: a few seconds of the same mix, so that start-up allocations (imports,
            # caches, the executor's threads) are not counted as growth.
            warm = Tally()
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(uploader(port, warm, loop.time() + 3, seed) for seed in range(4)),
                ws_client(port, warm, loop.time() + 1, 99),
            )
            debug_start = await _quiet(port, spool, 15)
            await asyncio.sleep(0.2)
            rss_start, fds_start = rss(server.pid), fds(server.pid)

            tally = Tally()
            started = loop.time()
            until = started + duration
            await asyncio.gather(
                *(uploader(port, tally, until, 100 + i) for i in range(uploaders)),
                *(ws_client(port, tally, until, 200 + i) for i in range(websockets)),
                pinger(port, tally, until),
            )
            elapsed = loop.time() - started
            # Every client is gone: once aiohttp's lingering is over, what the server still
            # holds is a leak.
            debug_end = await _quiet(port, spool, 15)
            await _settle(lambda: fds(server.pid) <= fds_start, 3)
            rss_end, fds_end = rss(server.pid), fds(server.pid)
            leaked_files = sorted(os.listdir(spool)) + sorted(os.listdir(dest))
        code = server.returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)

    growth = rss_end - rss_start
    leaked_fds = max(0, fds_end - fds_start)
    unexpected = sum(tally.unexpected.values())
    pings = sorted(tally.pings)
    p99 = pings[min(len(pings) - 1, int(len(pings) * 0.99))] if pings else 0.0
    worst = pings[-1] if pings else 0.0
    rows: list[list[object]] = [
        ["requests handled", tally.requests],
        ["  per second", f"{tally.requests / elapsed:.1f}"],
        ["WebSocket sessions", tally.ws_sessions],
        ["WebSocket messages echoed", tally.ws_messages],
        ["expected answers, by kind:", ""],
        *([f"  {kind}", count] for kind, count in sorted(tally.expected.items())),
        ["unexpected answers", unexpected],
        *([f"  {kind}", count] for kind, count in sorted(tally.unexpected.items())),
        ["GET /ping under load: p99 / max (ms)", f"{p99 * 1e3:.0f} / {worst * 1e3:.0f}"],
        ["leaked temporary files", len(leaked_files)],
        ["leaked descriptors (server)", leaked_fds],
        ["descriptors start / end", f"{fds_start} / {fds_end}"],
        [
            "server RSS start / end (MiB)",
            f"{rss_start / MiB:.1f} / {rss_end / MiB:.1f} ({growth / MiB:+.1f})",
        ],
        ["Python objects start / end", f"{debug_start['objects']} / {debug_end['objects']}"],
        [
            "connections / tasks / WebSockets left at end",
            f"{debug_end['connections']} / {debug_end['tasks']} / {debug_end['websockets']}",
        ],
        ["server exit status", code],
    ]
    ok = (
        unexpected == 0
        and not leaked_files
        and leaked_fds == 0
        and debug_end["connections"] == 0
        and debug_end["tasks"] <= debug_start["tasks"]
        and debug_end["websockets"] == 0
        and growth < RSS_GROWTH_LIMIT
        and code == 0
        and tally.requests > 0
    )
    rows.append(["targets (0 unexpected, 0 leaks, RSS < +64 MiB)", "met" if ok else "MISSED"])
    print(f"\nsoak: {elapsed:.0f} s, {uploaders} upload clients, {websockets} WebSocket clients")
    print(table(["measure", "value"], rows))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=float(os.environ.get("SOAK_SECONDS", "60")),
        help="seconds of load (default 60, or $SOAK_SECONDS)",
    )
    parser.add_argument("--uploaders", type=int, default=6, help="concurrent upload clients")
    parser.add_argument("--websockets", type=int, default=8, help="concurrent WebSocket clients")
    parser.add_argument(
        "--serve", nargs=3, metavar=("PORT", "SPOOL", "DEST"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        port, spool, dest = args.serve
        serve(int(port), Path(spool), Path(dest))
        return
    if args.duration <= 0 or args.uploaders < 0 or args.websockets < 0:
        parser.error("--duration must be positive, the client counts not negative")
    sys.exit(0 if asyncio.run(run(args.duration, args.uploaders, args.websockets)) else 1)


if __name__ == "__main__":
    main()
