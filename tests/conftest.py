"""Shared fixtures: every test server listens on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from .redis_server import RedisServer

Serve = Callable[..., Awaitable[URL]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start apps the way ``web.run_app`` does (no handler cancellation) on 127.0.0.1.

    ``await serve(app, **AppRunner kwargs)`` returns the base URL; every runner is
    cleaned up when the test ends.
    """
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, **kwargs: Any) -> URL:
        runner = web.AppRunner(app, **kwargs)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return URL.build(scheme="http", host="127.0.0.1", port=port)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` shared by the session's tests, on a free loopback port.

    Fails (never skips) when ``redis-server`` is not installed. Tests that stop or pause
    the server start their own :class:`~tests.redis_server.RedisServer` instead.
    """
    try:
        server = RedisServer()
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.close()
