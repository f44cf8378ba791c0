"""Shared fixtures: every test server listens on 127.0.0.1 only.

The helpers behind them live in :mod:`tests.support`; test modules import from there,
never from each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser

import aiohttp_helpers as ah

from .support.apps import Serve, serving
from .support.browser import launched_browser
from .support.processes import Server, launching
from .support.redis_server import RedisServer, running_redis

__all__ = ["Serve"]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start apps the way ``web.run_app`` does (no handler cancellation) on 127.0.0.1.

    ``await serve(app, **AppRunner kwargs)`` returns the base URL; every runner is
    cleaned up when the test ends.
    """
    async with serving() as start:
        yield start


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An ``aiohttp.ClientSession`` closed when the test ends."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def app() -> web.Application:
    """A fresh ``web.Application`` with ``ah.setup()`` done (default options)."""
    application = web.Application()
    ah.setup(application)
    return application


@pytest.fixture
def helpers(app: web.Application) -> ah.Helpers:
    """The :class:`~aiohttp_helpers.Helpers` that ``ah.setup()`` gave the ``app`` fixture."""
    return ah.get_helpers(app)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` shared by the session's tests, on a free loopback port.

    Fails (never skips) when ``redis-server`` is not installed. Tests that stop or pause
    the server start their own :class:`~tests.support.redis_server.RedisServer` instead.
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


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop, restart or freeze."""
    with running_redis() as server:
        yield server


@pytest.fixture
async def lifecycle_app() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """``await lifecycle_app(*args)``: ``tests/support/lifecycle_app.py`` as a process."""
    async with launching() as start:
        yield start


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, through Playwright (fails, never skips, when missing)."""
    async with launched_browser() as launched:
        yield launched
