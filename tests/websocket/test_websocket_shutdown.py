"""A real server process stopped with SIGTERM: every connected client gets 1001 promptly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import connect as websockets_connect

from aiohttp_helpers.websocket import CloseFrame
from tests.support.net import free_port, wait_ok

SERVER = textwrap.dedent(
    """
    import sys
    from aiohttp import web
    import aiohttp_helpers as ah

    @ah.websocket_handler(heartbeat=None)
    async def echo(request, ws):
        async for data in ws.messages():
            await ws.send_str(data if isinstance(data, str) else data.decode())

    async def ready(request):
        return web.Response(text="ok")

    app = web.Application()
    helpers = ah.setup(app)
    helpers.lifecycle.restarting = sys.argv[2] == "restart"
    app.router.add_get("/ws", echo)
    app.router.add_get("/up", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, shutdown_timeout=60)
    """
)


@contextlib.asynccontextmanager
async def server_process(mode: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, str(port), mode, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        await wait_ok(f"http://127.0.0.1:{port}/up", 20.0, what="the server process")
        yield proc, port
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def aiohttp_close(ws: aiohttp.ClientWebSocketResponse) -> CloseFrame | None:
    msg = await ws.receive()
    if msg.type is aiohttp.WSMsgType.CLOSE:
        return CloseFrame(msg.data, msg.extra or "")
    return None


async def websockets_close(url: str, opened: asyncio.Queue[None]) -> CloseFrame | None:
    async with websockets_connect(url, open_timeout=5, ping_interval=None) as conn:
        await conn.send("hello")
        assert await conn.recv() == "hello"
        opened.put_nowait(None)
        try:
            await conn.recv()
        except websockets.ConnectionClosed as exc:
            return None if exc.rcvd is None else CloseFrame(exc.rcvd.code, exc.rcvd.reason)
    raise AssertionError("the server sent a message instead of closing")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param("stop", CloseFrame(1001, "server shutting down"), id="sigterm-1001"),
        pytest.param("restart", CloseFrame(1012, "server restarting"), id="restarting-1012"),
    ],
)
async def test_sigterm_closes_every_client_promptly(mode: str, expected: CloseFrame) -> None:
    clients = 10
    async with server_process(mode) as (proc, port), aiohttp.ClientSession() as session:
        url = f"ws://127.0.0.1:{port}/ws"
        sockets = [await session.ws_connect(url) for _ in range(clients)]
        for ws in sockets:
            await ws.send_str("ping")
            assert await ws.receive_str(timeout=5) == "ping"
        opened: asyncio.Queue[None] = asyncio.Queue()
        other = [asyncio.create_task(websockets_close(url, opened)) for _ in range(clients)]
        async with asyncio.timeout(10):
            for _ in range(clients):
                await opened.get()

        loop = asyncio.get_running_loop()
        started = loop.time()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            frames = await asyncio.gather(*(aiohttp_close(ws) for ws in sockets), *other)
            elapsed = loop.time() - started
            assert await proc.wait() == 0
        exited = loop.time() - started
    assert frames == [expected] * (2 * clients)
    # shutdown_timeout is 60 s: plain aiohttp would hold these sockets for 2 x 60 s.
    assert elapsed < 5
    assert exited < 10
