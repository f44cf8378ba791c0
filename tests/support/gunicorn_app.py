"""The gunicorn example's app, plus what the gunicorn tests observe from outside.

Served as ``tests.support.gunicorn_app:create_app()`` with ``-c python:examples.gunicorn_app``,
or as ``tests.support.gunicorn_app:create_app`` with ``-k aiohttp_helpers.gunicorn.Worker``. Each
worker appends ``startup PID`` and ``cleanup PID`` to the file named by ``AH_TEST_EVENTS`` from its
lifecycle hooks, ``/ws/whoami`` is a socket that says ``worker PID``, joins the demo chat's
group and then only listens, and ``GET /pid`` answers the worker's PID. ``AH_DRAIN_DELAY``
sets the app's ``drain_delay``.
"""

from __future__ import annotations

import os

from aiohttp import web

import aiohttp_helpers as ah
from examples import gunicorn_app

__all__ = ["create_app"]


def _record(event: str) -> None:
    with open(os.environ["AH_TEST_EVENTS"], "a", encoding="utf-8") as events:
        events.write(f"{event} {os.getpid()}\n")


def create_app() -> web.Application:
    app = gunicorn_app.create_app()
    helpers = ah.get_helpers(app)
    helpers.lifecycle.drain_delay = float(os.environ.get("AH_DRAIN_DELAY", "0"))

    @helpers.lifecycle.on_startup(name="test-startup")
    async def started(app: web.Application) -> None:
        _record("startup")

    @helpers.lifecycle.on_cleanup(name="test-cleanup")
    async def cleaned(app: web.Application) -> None:
        _record("cleanup")

    @ah.websocket_handler
    async def whoami(request: web.Request, ws: ah.ServerWebSocket) -> None:
        helpers.websockets.join(ws, "chat")
        await ws.send_str(f"worker {os.getpid()}")
        async for _ in ws.messages():
            pass

    async def pid(request: web.Request) -> web.Response:
        return web.Response(text=str(os.getpid()))

    app.router.add_get("/ws/whoami", whoami)
    app.router.add_get("/pid", pid)
    return app
