"""``aiohttp_helpers.gunicorn.Worker`` driven in this process: the stopping order, each signal.

The worker is built as gunicorn's master builds it (a real ``Config``, logger and listening
socket) and served on the test's loop, with aiohttp's client talking to it over loopback. The
real multi-process runs (SIGHUP reloads, SIGTERM stops) are in test_gunicorn_reload.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from gunicorn import glogging  # type: ignore[import-untyped]
from gunicorn.config import Config  # type: ignore[import-untyped]

import aiohttp_helpers as ah
from aiohttp_helpers.gunicorn import Worker
from tests.support.apps import slow_app
from tests.support.net import until

_made: list[Worker] = []


@pytest.fixture(autouse=True)
def _close_workers() -> Iterator[None]:
    yield
    while _made:
        worker = _made.pop()
        worker.tmp.close()
        for sock in worker.sockets:
            sock.close()


def make_worker(target: Any, **settings: Any) -> tuple[Worker, int]:
    cfg = Config()
    cfg.set("graceful_timeout", 10)
    for name, value in settings.items():
        cfg.set(name, value)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    worker = Worker(1, os.getppid(), [sock], None, 30, cfg, glogging.Logger(cfg))
    worker.wsgi = target
    _made.append(worker)
    return worker, sock.getsockname()[1]


def make_app(drain_delay: float = 0.3) -> tuple[web.Application, asyncio.Event]:
    app, _, release = slow_app(health="/health", drain_delay=drain_delay)
    return app, release


async def serving(worker: Worker, port: int) -> asyncio.Task[None]:
    worker.loop = asyncio.get_running_loop()
    task = asyncio.create_task(worker._serve())
    async with asyncio.timeout(10), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/health/live"):
                    return task
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int:
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    return int(msg.data)


async def test_sigterm_drains_finishes_requests_then_closes_with_1001(
    session: aiohttp.ClientSession,
) -> None:
    app, release = make_app()
    worker, port = make_worker(app)
    url = f"http://127.0.0.1:{port}"
    task = await serving(worker, port)
    ws = await session.ws_connect(f"{url}/ws")
    slow = asyncio.create_task(session.get(f"{url}/slow"))
    helpers = ah.get_helpers(app)
    await until(lambda: len(helpers.lifecycle.in_flight) > 0, 5.0, what="a request in flight")
    worker.handle_exit(signal.SIGTERM, None)
    async with session.get(f"{url}/health/ready") as resp:
        assert resp.status == 503  # at once, while still serving
    async with session.get(f"{url}/") as resp:
        assert (resp.status, resp.headers["Connection"]) == (200, "close")
    await asyncio.sleep(0.5)  # past drain_delay: waiting for the request in flight
    assert not task.done()
    async with session.get(f"{url}/") as resp:
        assert resp.status == 200  # still listening while a request is in flight
    release.set()
    resp = await slow
    assert (resp.status, await resp.text()) == (200, "done")
    assert await close_code(ws) == 1001
    await asyncio.wait_for(task, 10)
    assert helpers.state is ah.AppState.STOPPED
    assert [worker.replaced] == [False]


async def test_a_worker_the_master_replaces_closes_with_1012(
    session: aiohttp.ClientSession,
) -> None:
    app, _ = make_app(drain_delay=0)
    worker, port = make_worker(app)
    assert [worker.replaced] == [False]
    make_worker(web.Application())  # built with a new Config: what a reload does
    assert worker.replaced
    task = await serving(worker, port)
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws")
    worker.handle_exit(signal.SIGTERM, None)
    assert await close_code(ws) == 1012
    await asyncio.wait_for(task, 10)


async def test_max_requests_restarts_with_1012(session: aiohttp.ClientSession) -> None:
    app, _ = make_app(drain_delay=0)
    worker, port = make_worker(app, max_requests=2)
    task = await serving(worker, port)
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws")
    for _ in range(3):
        async with session.get(f"http://127.0.0.1:{port}/"):
            pass
    assert await close_code(ws) == 1012
    await asyncio.wait_for(task, 10)


async def test_quick_shutdown_does_not_drain(session: aiohttp.ClientSession) -> None:
    app, _ = make_app(drain_delay=30)
    worker, port = make_worker(app)
    task = await serving(worker, port)
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws")
    worker.handle_quit(signal.SIGQUIT, None)
    assert await close_code(ws) == 1001
    await asyncio.wait_for(task, 5)  # not the 30 s drain_delay


def sync_factory() -> web.Application:
    return make_app(drain_delay=0)[0]


async def async_factory() -> web.Application:
    return make_app(drain_delay=0)[0]


async def runner_factory() -> web.AppRunner:
    return web.AppRunner(make_app(drain_delay=0)[0])


@pytest.mark.parametrize(
    "factory",
    [
        pytest.param(sync_factory, id="sync-factory"),
        pytest.param(async_factory, id="async-factory"),
        pytest.param(runner_factory, id="app-runner"),
    ],
)
async def test_the_app_may_come_from_a_factory(
    session: aiohttp.ClientSession, factory: Callable[[], Any]
) -> None:
    worker, port = make_worker(factory)
    task = await serving(worker, port)
    async with session.get(f"http://127.0.0.1:{port}/") as resp:
        assert await resp.text() == "hello"
    worker.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(task, 10)


async def test_an_app_without_setup_is_served_and_stopped(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.Application()

    async def live(request: web.Request) -> web.Response:
        return web.Response(text="plain")

    app.router.add_get("/health/live", live)
    worker, port = make_worker(app)
    with caplog.at_level(logging.WARNING, logger="aiohttp_helpers.gunicorn"):
        task = await serving(worker, port)
    assert "setup() was not called" in caplog.text
    worker.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(task, 10)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        pytest.param(42, "should be an aiohttp Application", id="not-callable"),
        pytest.param(lambda: 42, "returned 42", id="factory-of-something-else"),
    ],
)
async def test_a_wrong_app_is_a_clear_error(target: Any, match: str) -> None:
    worker, _ = make_worker(target)
    worker.loop = asyncio.get_running_loop()
    with pytest.raises(RuntimeError, match=match):
        await worker._serve()


def test_run_serves_until_told_to_stop_then_exits_zero() -> None:
    app, _ = make_app(drain_delay=0)
    worker, _ = make_worker(app)
    loop = asyncio.new_event_loop()
    worker.loop = loop
    loop.call_later(0.3, worker.handle_exit, signal.SIGTERM, None)
    try:
        with pytest.raises(SystemExit) as exited:
            worker.run()
    finally:
        asyncio.set_event_loop(None)
    assert exited.value.code == 0
    assert loop.is_closed()
    assert ah.get_helpers(app).state is ah.AppState.STOPPED
