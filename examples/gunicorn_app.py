"""The demo app under gunicorn: several workers, Redis between them, 1012 on a graceful reload.

Run it from the repository root (``REDIS_URL`` is optional: without it, a broadcast reaches
the sockets of its own worker only; ``python examples/gunicorn_app.py`` does the same, on
http://127.0.0.1:8084/; ``--help`` tells its options)::

    REDIS_URL=redis://127.0.0.1:6379/0 python -m gunicorn -c python:examples.gunicorn_app \\
        examples.gunicorn_app:create_app

This module is both the application factory and the gunicorn configuration. All the
lifecycle work is the package's worker class, ``aiohttp_helpers.gunicorn.Worker``: on SIGTERM
a worker drains (readiness 503) while it still accepts connections, waits for the requests
in flight, then stops listening and stops the app; on a graceful reload (SIGHUP to the
master) its WebSockets close with 1012 SERVICE_RESTART, so reconnecting clients wait a few
seconds and come back to the new workers; on a stop they close with 1001. The same, without
this file: ``gunicorn -k aiohttp_helpers.gunicorn.Worker -w 2 examples.gunicorn_app:create_app``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from aiohttp import web

import aiohttp_helpers as ah

__all__ = ["create_app", "main"]

# -- gunicorn settings (names gunicorn knows; it ignores the rest of the module) -------------

worker_class = "aiohttp_helpers.gunicorn.Worker"
bind = os.environ.get("BIND", "127.0.0.1:8084")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
#: Seconds a stopping worker has; the worker gives at most 80 % of it to draining and to
#: the requests in flight (drain_delay + drain_timeout), the rest to stopping the app.
graceful_timeout = 15


def create_app() -> web.Application:
    """The demo app; broadcasts go through Redis when ``REDIS_URL`` is set."""
    from examples import demo  # here: `python examples/gunicorn_app.py` runs without it

    app = demo.create_app()
    url = os.environ.get("REDIS_URL")
    if url:
        settings = ah.get_helpers(app).websocket_settings
        ah.configure(app, websockets=settings.replace(broadcast=ah.RedisBroadcast(url)))
    return app


def main(argv: list[str] | None = None) -> None:
    """Run gunicorn with this module as configuration and application (127.0.0.1:8084)."""
    host, _, port = bind.rpartition(":")
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="REDIS_URL (optional) carries broadcasts between the workers.",
    )
    parser.add_argument("--host", default=host, help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=int(port), help="port to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=workers, help="worker processes (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    os.chdir(root)
    address = f"{args.host}:{args.port}"
    print(f"demo under gunicorn on http://{address}/ (Ctrl-C to stop)", flush=True)
    options = [
        "-c",
        "python:examples.gunicorn_app",
        "--bind",
        address,
        "--workers",
        str(args.workers),
    ]
    os.execv(
        sys.executable,
        [sys.executable, "-m", "gunicorn", *options, "examples.gunicorn_app:create_app"],
    )


if __name__ == "__main__":
    main()
