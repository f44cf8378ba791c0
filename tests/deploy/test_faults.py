"""Faults: clients that vanish mid-upload, servers that stop mid-traffic, a disk that fills up.

After each fault the server is checked the same way: no temporary file left, no
descriptor left open, no task left pending, nothing logged as an error, and the server
(when it is still meant to run) answers the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import random
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
import websockets
from aiohttp import web
from websockets.asyncio.client import connect as websockets_connect
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.apps import Serve, helped_app
from tests.support.net import free_port, until
from tests.support.uploads import listing, open_fds, open_files

MiB = 1 << 20
FILE = random.Random(7).randbytes(2 * MiB)
BODY = multipart_body(
    ("title", "hello"),
    FormPart(name="f", data=FILE, filename="a.bin", content_type="application/octet-stream"),
    ("after", "x"),
    boundary="Bq",
)
# Where a client gives up: inside the first headers, just after a delimiter, inside the
# file at random places (seeded: the same points every run), just before the end.
_FIRST_FILE_BYTE = BODY.data.index(FILE[:64])
POINTS = sorted(
    {
        10,
        BODY.data.index(b"--Bq", 5) + 6,
        _FIRST_FILE_BYTE,
        *random.Random(11).sample(range(_FIRST_FILE_BYTE, len(BODY.data) - 100), 5),
        len(BODY.data) - 1,
    }
)


def other_tasks(baseline: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks that are neither running the test nor were there before the fault."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t not in baseline}


@dataclass
class Handled:
    """What the upload handlers of one app saw."""

    started: int = 0
    finished: int = 0
    outcomes: list[BaseException | None] = field(default_factory=list)

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Count one handler run and record how it ended."""
        self.started += 1
        try:
            yield
            self.outcomes.append(None)
        except BaseException as exc:
            self.outcomes.append(exc)
            raise
        finally:
            self.finished += 1


def upload_app(spool: Path, dest: Path, handled: Handled) -> web.Application:
    """``/form`` reads a form and saves its files; ``/save`` saves each part as it streams."""

    async def form(request: web.Request) -> web.Response:
        with handled.handling():
            async with await ah.read_form(request) as got:
                names = [str(await f.save(dest)) for f in got.files.values()]
        return web.json_response({"fields": len(got.fields), "saved": names})

    async def save(request: web.Request) -> web.Response:
        with handled.handling():
            sizes = {}
            async for part in ah.iter_parts(request):
                if part.filename:
                    await part.save(dest / part.filename)
                    sizes[part.filename] = part.size
                else:
                    await part.release()
        return web.json_response(sizes)

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    app = web.Application()
    ah.setup(app, limits=ah.UploadLimits(spool_max_size=0, tmp_dir=spool, idle_timeout=5))
    app.router.add_post("/form", form)
    app.router.add_post("/save", save)
    app.router.add_get("/ping", ping)
    return app


def _head(path: str, length: int = len(BODY.data)) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {BODY.content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _ping(url: URL) -> None:
    async with aiohttp.ClientSession() as session, session.get(url / "ping") as resp:
        assert resp.status == 200
        assert await resp.text() == "pong"


# -- clients that go away ----------------------------------------------------------------


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    spool, dest = tmp_path / "spool", tmp_path / "dest"
    spool.mkdir()
    dest.mkdir()
    return spool, dest


@pytest.mark.parametrize(
    "cancellation",
    [
        pytest.param(False, id="run_app-no-handler-cancellation"),
        pytest.param(True, id="handler-cancellation"),
    ],
)
@pytest.mark.parametrize(
    "route", [pytest.param("/form", id="read_form"), pytest.param("/save", id="part-save")]
)
@pytest.mark.parametrize(
    "how", [pytest.param("close", id="fin"), pytest.param("abort", id="reset")]
)
async def test_client_disconnect_at_many_points(
    serve: Serve,
    dirs: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
    cancellation: bool,
    route: str,
    how: Literal["close", "abort"],
) -> None:
    caplog.set_level(logging.DEBUG)
    spool, dest = dirs
    handled = Handled()
    url = await serve(upload_app(spool, dest, handled), handler_cancellation=cancellation)
    assert url.host is not None
    await _ping(url)
    fds = open_fds()
    tasks = other_tasks(set())
    for offset in POINTS:
        _, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(_head(route) + BODY.data[:offset])
        await writer.drain()
        # Let the server read what came and wait for more: then the client is gone.
        await asyncio.sleep(0.03)
        if how == "abort":
            writer.transport.abort()
        else:
            writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await until(lambda: handled.finished == handled.started, what=f"handler at {offset}")
        await until(lambda: listing(spool) == [], what=f"temporary files at {offset}")
        await until(lambda: open_fds() <= fds, what=f"descriptors at {offset}")
        await until(lambda: not other_tasks(tasks), what=f"tasks at {offset}")
        saved = listing(dest)
        if saved:
            # part.save() put the file in place before the client left; only whole.
            assert saved == ["a.bin"], f"a partial file was left at {offset}"
            assert route == "/save"
            assert offset >= _FIRST_FILE_BYTE + len(FILE)
            assert (dest / "a.bin").read_bytes() == FILE
            (dest / "a.bin").unlink()
        assert open_files(spool) == []
        assert open_files(dest) == []
        await _ping(url)
    assert handled.started == len(POINTS)
    for outcome in handled.outcomes:
        # The body ended early: the connection's loss, or a cancelled handler; never data.
        assert isinstance(outcome, ConnectionError | asyncio.CancelledError), repr(outcome)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- a server that stops mid-upload ------------------------------------------------------


async def _stalled_upload(url: URL, path: str, sent: asyncio.Event) -> bytes:
    """Send half the body, then nothing: what the server answered (b"" for nothing)."""
    assert url.host is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(_head(path) + BODY.data[: len(BODY.data) // 2])
        await writer.drain()
        sent.set()
        return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _slow_upload(url: URL, path: str, begun: asyncio.Event) -> tuple[int, Any]:
    """An upload still streaming when the server is told to stop; (0, None) if cut off."""

    async def body() -> AsyncIterator[bytes]:
        for i, chunk in enumerate(BODY.chunks(256 * 1024)):
            yield chunk
            if i == 2:
                begun.set()
            await asyncio.sleep(0.02)

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url / path[1:], data=body(), headers=BODY.headers) as resp,
        ):
            return resp.status, await resp.json()
    except aiohttp.ClientError:
        return 0, None


@pytest.mark.parametrize(
    "cancellation",
    [
        pytest.param(False, id="run_app-no-handler-cancellation"),
        pytest.param(True, id="handler-cancellation"),
    ],
)
@pytest.mark.parametrize(
    "drain", [pytest.param(0.0, id="no-drain"), pytest.param(0.6, id="drain-first")]
)
async def test_server_shutdown_during_uploads(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture, cancellation: bool, drain: float
) -> None:
    caplog.set_level(logging.DEBUG)
    spool, dest = dirs
    handled = Handled()
    fds = open_fds()
    tasks = other_tasks(set())
    app = upload_app(spool, dest, handled)
    runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=cancellation)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = URL.build(scheme="http", host="127.0.0.1", port=runner.addresses[0][1])

    sent = [asyncio.Event() for _ in range(4)]
    stalled = [
        asyncio.create_task(_stalled_upload(url, path, ev))
        for path, ev in zip(["/form", "/form", "/save", "/save"], sent, strict=True)
    ]
    begun = asyncio.Event()
    slow = asyncio.create_task(_slow_upload(url, "/save", begun))
    for ev in [*sent, begun]:
        await asyncio.wait_for(ev.wait(), 5)
    # Every stalled upload is spooling to disk (read_form) or into place (part.save).
    await until(lambda: len(listing(spool)) == 2, what="two spooled uploads")

    loop = asyncio.get_running_loop()
    started = loop.time()
    if drain:
        # What SIGTERM does under run_app: keep serving, unready, before the runner stops.
        await ah.get_helpers(app).lifecycle.drain(drain)
    await runner.cleanup()
    stopped = loop.time() - started
    answers = await asyncio.gather(*stalled)
    status, sizes = await slow

    if drain:
        # The upload that could finish while the app drained did, completely.
        assert status == 200
    if status == 200:
        assert sizes == {"a.bin": len(FILE)}
        assert (dest / "a.bin").read_bytes() == FILE
    else:
        # aiohttp<3.15: once the runner stops, the rest of a body in flight is dropped
        # (RequestHandler.close() makes data_received() ignore it): the package ends an
        # upload not done by then with 503 + Retry-After (issue 12), nothing of it kept.
        assert status == 503
        assert listing(dest) == []
    # The stalled ones too, at once rather than after idle_timeout: nothing of them kept.
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"\r\nRetry-After: 1\r\n" in answer, answer
    assert stopped < drain + 3
    assert handled.started == handled.finished == 5
    assert listing(spool) == []
    assert open_files(dest) == []
    assert all(not name.startswith(".") for name in listing(dest))
    await until(lambda: open_fds() <= fds, what="descriptors")
    await until(lambda: not other_tasks(tasks), what="tasks")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- a server that stops mid-conversation ---------------------------------------------------


@ah.websocket_handler(heartbeat=None)
async def echo(request: web.Request, ws: ah.ServerWebSocket) -> None:
    async for data in ws.messages():
        await ws.send_str(data if isinstance(data, str) else data.decode())


@dataclass
class Talk:
    """One client's side of the traffic: what it sent and what came back."""

    sent: list[str] = field(default_factory=list)
    echoed: list[str] = field(default_factory=list)
    close: ah.CloseFrame | None = None

    async def run(
        self,
        read: Callable[[], Coroutine[Any, Any, None]],
        send: Callable[[str], Awaitable[Any]],
        going: asyncio.Event,
        name: str,
        *,
        gone: type[Exception],
        closed: Callable[[], bool] = lambda: False,
    ) -> None:
        """Read in the background and send every 2 ms until ``gone`` is raised (or
        ``closed()``); set ``going`` after the 21st message."""
        reading = asyncio.create_task(read())
        with contextlib.suppress(gone):
            for i in range(100_000):
                if closed():
                    break
                message = f"{name}-{i}"
                self.sent.append(message)
                await send(message)
                if i == 20:
                    going.set()
                await asyncio.sleep(0.002)
        await reading


async def _talk_aiohttp(url: str, talk: Talk, going: asyncio.Event, name: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def read() -> None:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    talk.echoed.append(msg.data)
            talk.close = ah.CloseFrame(ws.close_code or 0, "")

        await talk.run(
            read, ws.send_str, going, name, gone=ConnectionError, closed=lambda: ws.closed
        )


async def _talk_websockets(url: str, talk: Talk, going: asyncio.Event, name: str) -> None:
    async with websockets_connect(url, open_timeout=5, ping_interval=None) as conn:

        async def read() -> None:
            try:
                while True:
                    data = await conn.recv()
                    assert isinstance(data, str)
                    talk.echoed.append(data)
            except websockets.ConnectionClosed as exc:
                rcvd = exc.rcvd
                talk.close = None if rcvd is None else ah.CloseFrame(rcvd.code, rcvd.reason)

        await talk.run(read, conn.send, going, name, gone=websockets.ConnectionClosed)


@pytest.mark.parametrize(
    ("restarting", "expected"),
    [
        pytest.param(False, ah.CloseFrame(1001, "server shutting down"), id="1001"),
        pytest.param(True, ah.CloseFrame(1012, "server restarting"), id="1012"),
    ],
)
async def test_server_shutdown_during_websocket_traffic(
    caplog: pytest.LogCaptureFixture, restarting: bool, expected: ah.CloseFrame
) -> None:
    caplog.set_level(logging.DEBUG)
    fds = open_fds()
    tasks = other_tasks(set())
    app, helpers = helped_app()
    helpers.lifecycle.restarting = restarting
    app.router.add_get("/ws", echo)
    runner = web.AppRunner(app, shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"ws://127.0.0.1:{runner.addresses[0][1]}/ws"

    talks = [Talk() for _ in range(8)]
    going = [asyncio.Event() for _ in talks]
    clients = [
        asyncio.create_task((_talk_aiohttp if i % 2 else _talk_websockets)(url, talk, ev, f"c{i}"))
        for i, (talk, ev) in enumerate(zip(talks, going, strict=True))
    ]
    for ev in going:
        await asyncio.wait_for(ev.wait(), 5)
    assert len(helpers.websockets) == len(talks)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await runner.cleanup()
    stopped = loop.time() - started
    await asyncio.wait_for(asyncio.gather(*clients), 5)

    assert stopped < 2, f"shutdown took {stopped:.2f} s"
    for i, talk in enumerate(talks):
        if i % 2 == 0:
            assert talk.close == expected
        else:
            # aiohttp's client reports the code only.
            assert talk.close == ah.CloseFrame(expected.code, "")
        # Every echo came back in order, none twice, none skipped: a prefix of what was sent.
        assert talk.echoed == talk.sent[: len(talk.echoed)]
        assert len(talk.echoed) > 20
    assert len(helpers.websockets) == 0
    await until(lambda: open_fds() <= fds, what="descriptors")
    await until(lambda: not other_tasks(tasks), what="tasks")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- the spool directory fills up --------------------------------------------------------

# A server whose files may not grow past FSIZE bytes (RLIMIT_FSIZE). With SIGXFSZ
# ignored, a write past the limit fails with EFBIG: the same failure, at the same place,
# as a full disk, and no mount or root needed.
FULL_DISK_SERVER = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from aiohttp import web
    import aiohttp_helpers as ah

    port, spool, dest, fsize = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    async def form(request):
        async with await ah.read_form(request) as got:
            saved = [str(await f.save(dest, overwrite=True)) for f in got.files.values()]
        return web.json_response(saved)

    async def save(request):
        sizes = {}
        async for part in ah.iter_parts(request):
            if part.filename:
                await part.save(dest / part.filename, overwrite=True)
                sizes[part.filename] = part.size
        return web.json_response(sizes)

    async def ping(request):
        return web.Response(text="pong")

    app = web.Application()
    ah.setup(app, limits=ah.UploadLimits(spool_max_size=64 * 1024, tmp_dir=spool))
    app.router.add_post("/form", form)
    app.router.add_post("/save", save)
    app.router.add_get("/ping", ping)
    web.run_app(app, host="127.0.0.1", port=port, print=None, shutdown_timeout=2)
    """
)


@contextlib.asynccontextmanager
async def full_disk_server(
    spool: Path, dest: Path, fsize: int
) -> AsyncIterator[tuple[asyncio.subprocess.Process, URL]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FULL_DISK_SERVER,
        str(port),
        str(spool),
        str(dest),
        str(fsize),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = URL.build(scheme="http", host="127.0.0.1", port=port)
    try:
        async with asyncio.timeout(20):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    await _ping(url)
                    break
                await asyncio.sleep(0.05)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:  # pragma: no cover - a server that ignores SIGTERM
            proc.kill()
            await proc.wait()


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize(
    "path", [pytest.param("/form", id="read_form-spool"), pytest.param("/save", id="part-save")]
)
async def test_full_disk_is_507_and_the_server_keeps_serving(
    dirs: tuple[Path, Path], path: str
) -> None:
    spool, dest = dirs
    async with full_disk_server(spool, dest, fsize=MiB) as (proc, url):
        small = multipart_body(FormPart(name="f", data=b"s" * 300_000, filename="small.bin"))
        async with (
            aiohttp.ClientSession() as session,
            session.post(url / path[1:], data=small.data, headers=small.headers) as r,
        ):
            assert r.status == 200, await r.text()
        await until(lambda: listing(spool) == [], what="temporary files after a good upload")
        baseline = _fd_count(proc.pid)

        for _ in range(3):
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    url / path[1:], data=io.BytesIO(BODY.data), headers=BODY.headers
                ) as resp,
            ):
                assert resp.status == 507, await resp.text()
                doc = await resp.json(content_type=None)
            assert doc["type"].endswith("insufficient-storage")
            assert doc["detail"] == "no room left to store the upload"
            # The partial file is gone, the saved one untouched, nothing held open.
            await until(lambda: listing(spool) == [], what="temporary files")
            assert listing(dest) == ["small.bin"]
            await until(lambda: _fd_count(proc.pid) <= baseline, what="server descriptors")
            # And the server goes on serving, uploads included.
            await _ping(url)
            async with (
                aiohttp.ClientSession() as session,
                session.post(url / path[1:], data=small.data, headers=small.headers) as resp,
            ):
                assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert proc.stderr is not None
        stderr = (await proc.stderr.read()).decode()
    assert "Traceback" not in stderr, stderr
