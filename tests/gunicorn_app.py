"""The gunicorn example's app, plus what the gunicorn tests observe from outside.

Served as ``tests.gunicorn_app:create_app()`` with ``-c python:examples.gunicorn_app``. Each
worker appends ``startup PID`` and ``cleanup PID`` to the file named by ``AH_TEST_EVENTS``
from its lifecycle hooks, and ``/ws/whoami`` is a socket that says ``worker PID``, joins the
demo chat's group and then only listens.
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

    app.router.add_get("/ws/whoami", whoami)
    return app
