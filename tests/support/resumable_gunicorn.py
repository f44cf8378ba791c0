"""The resumable-upload test app under gunicorn: each answer names the worker that gave it.

Served as ``tests.support.resumable_gunicorn:create_app()``; the directories come from
``AH_RESUMABLE_DIR`` and ``AH_RESUMABLE_SAVE``.
"""

from __future__ import annotations

import os

from aiohttp import web

from tests.support.resumable_app import create_app as create_resumable_app

__all__ = ["create_app"]


async def _name_worker(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Worker"] = str(os.getpid())


def create_app() -> web.Application:
    app = create_resumable_app(os.environ["AH_RESUMABLE_DIR"], os.environ["AH_RESUMABLE_SAVE"])
    app.on_response_prepare.append(_name_worker)
    return app
