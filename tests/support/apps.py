"""App factories and the ``serve`` helper behind the shared fixtures in ``tests/conftest.py``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from yarl import URL

import aiohttp_helpers as ah

__all__ = ["Serve", "helped_app", "record_stop", "routed_app", "serving", "slow_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: ``await serve(app, **AppRunner kwargs)`` → the base URL of the running app.
Serve = Callable[..., Awaitable[URL]]


def helped_app(**options: Any) -> tuple[web.Application, ah.Helpers]:
    """A fresh ``web.Application`` with ``ah.setup(app, **options)`` done."""
    app = web.Application()
    return app, ah.setup(app, **options)


def record_stop(helpers: ah.Helpers, events: list[tuple[str, float]], shutdown: str) -> None:
    """Append ``(state, time.monotonic())`` to ``events`` at each state change, and
    ``(shutdown, time.monotonic())`` from a shutdown hook of that name."""

    async def on_change(old: ah.AppState, new: ah.AppState) -> None:
        events.append((new.value, time.monotonic()))

    async def hook(app: web.Application) -> None:
        events.append((shutdown, time.monotonic()))

    helpers.lifecycle.on_state_change.append(on_change)
    helpers.lifecycle.on_shutdown(hook, name=shutdown)


def routed_app(get: Mapping[str, Handler], **options: Any) -> tuple[web.Application, ah.Helpers]:
    """``helped_app(**options)`` answering GET at each path of ``get`` with its handler."""
    app, helpers = helped_app(**options)
    for path, handler in get.items():
        app.router.add_get(path, handler)
    return app, helpers


def slow_app(
    get: Mapping[str, Handler] | None = None, **options: Any
) -> tuple[web.Application, ah.Helpers, asyncio.Event]:
    """``routed_app`` with ``/`` ("hello"), ``/slow`` ("done" once the returned event is set),
    ``/ws`` (a WebSocket read until it closes) and the handlers of ``get``."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    @ah.websocket_handler
    async def ws(request: web.Request, ws: ah.ServerWebSocket) -> None:
        async for _ in ws.messages():
            pass

    app, helpers = routed_app({"/": hello, "/slow": slow, "/ws": ws, **(get or {})}, **options)
    return app, helpers, release


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Serve]:
    """Start apps the way ``web.run_app`` does (no handler cancellation) on 127.0.0.1.

    Every runner started through the yielded ``serve`` is cleaned up on the way out.
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

    try:
        yield start
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
