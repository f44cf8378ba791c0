"""The demo app under gunicorn: several workers, Redis between them, 1012 on a graceful reload.

Run it from the repository root (``REDIS_URL`` is optional: without it, a broadcast reaches
the sockets of its own worker only; ``python examples/gunicorn_app.py`` does the same)::

    REDIS_URL=redis://127.0.0.1:6379/0 python -m gunicorn -c python:examples.gunicorn_app \\
        'examples.gunicorn_app:create_app()'

This module is both the application factory and the gunicorn configuration: the
``-c python:...`` form matters, as it loads the hooks below into the master. The hooks
tell a worker why it is being stopped. Gunicorn sends SIGTERM to the workers both when
the master stops (SIGTERM, SIGINT) and when it replaces them on a graceful reload (SIGHUP,
after spawning the new ones); only the master knows which. So each worker gets one byte of
memory shared with the master (an anonymous shared mapping, created before the fork); on a
reload the master sets it in the workers it is about to replace, and a worker that sees it
once it starts stopping sets ``helpers.lifecycle.restarting``: its WebSockets then close
with 1012 SERVICE_RESTART, not 1001, and reconnecting clients wait a few seconds and come
back to the new workers. Each worker runs its own copy of the app, lifecycle hooks included.
"""

from __future__ import annotations

import logging
import mmap
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

import aiohttp_helpers as ah

__all__ = [
    "child_exit",
    "create_app",
    "main",
    "on_reload",
    "post_fork",
    "post_worker_init",
    "pre_fork",
]

log = logging.getLogger("examples.gunicorn_app")

# -- gunicorn settings (names gunicorn knows; it ignores the rest of the module) -------------

worker_class = "aiohttp.GunicornWebWorker"
bind = os.environ.get("BIND", "127.0.0.1:8080")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
#: Seconds a stopping worker has to finish (aiohttp's worker gives the app 95% of it).
graceful_timeout = 15

#: The attribute of gunicorn's worker object that holds the shared byte.
_REPLACED = "aiohttp_helpers_replaced"


def create_app() -> web.Application:
    """The demo app; broadcasts go through Redis when ``REDIS_URL`` is set."""
    from examples import demo  # here: `python examples/gunicorn_app.py` runs without it

    app = demo.create_app()
    url = os.environ.get("REDIS_URL")
    if url:
        settings = ah.get_helpers(app).websocket_settings
        ah.configure(app, websockets=settings.replace(broadcast=ah.RedisBroadcast(url)))
    return app


# -- gunicorn server hooks ------------------------------------------------------------------


def pre_fork(server: Any, worker: Any) -> None:
    """Master, before forking ``worker``: give it a byte shared with the master (0 = stop)."""
    setattr(worker, _REPLACED, mmap.mmap(-1, 1))


def post_fork(server: Any, worker: Any) -> None:
    """Worker, just forked: let go of the siblings' bytes (only the master needs them)."""
    for sibling in list(server.WORKERS.values()):
        flag = getattr(sibling, _REPLACED, None)
        if sibling is not worker and flag is not None:
            flag.close()


def on_reload(server: Any) -> None:
    """Master, on SIGHUP, before spawning new workers: mark the ones about to be replaced."""
    for worker in server.WORKERS.values():
        flag = getattr(worker, _REPLACED, None)
        if flag is not None:
            flag[0] = 1


def post_worker_init(worker: Any) -> None:
    """Worker, app loaded, not started: when it stops, 1012 if it is being replaced."""
    app = worker.wsgi
    flag = getattr(worker, _REPLACED, None)
    if not isinstance(app, web.Application) or flag is None:
        log.warning("cannot tell this worker's reloads apart: WebSockets will close with 1001")
        return
    lifecycle = ah.get_helpers(app).lifecycle

    async def note_reload(old: ah.AppState, new: ah.AppState) -> None:
        if new in (ah.AppState.DRAINING, ah.AppState.STOPPING) and flag[0]:
            lifecycle.restarting = True

    lifecycle.on_state_change.append(note_reload)


def child_exit(server: Any, worker: Any) -> None:
    """Master, a worker has exited: release its byte."""
    flag = getattr(worker, _REPLACED, None)
    if flag is not None:
        flag.close()


def main() -> None:
    """Run gunicorn with this module as configuration and application (127.0.0.1:8080)."""
    root = Path(__file__).resolve().parent.parent
    os.chdir(root)
    print(f"demo under gunicorn on http://{bind}/ (Ctrl-C to stop)", flush=True)
    args = ["-m", "gunicorn", "-c", "python:examples.gunicorn_app"]
    os.execv(sys.executable, [sys.executable, *args, "examples.gunicorn_app:create_app()"])


if __name__ == "__main__":
    main()
