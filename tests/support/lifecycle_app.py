"""An app served by ``web.run_app`` for the lifecycle tests; it reports what happens as JSON lines.

Run as ``python tests/support/lifecycle_app.py [--drain SECONDS] [--drain-timeout SECONDS] [--fail
HOOK]``: the first line gives the port (127.0.0.1, picked by the system); then one line per
event, each with the wall-clock time, so that the test can order them against what it saw
over HTTP. ``POST /upload`` saves a multipart form's files and answers their SHA-256;
``GET /events`` is a server-sent events stream (aiohttp-sse) that ticks every 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp_sse import EventSourceResponse

import aiohttp_helpers as ah

FAILURES = ("cache", "plain-startup", "flush", "files", "sub-pool-exit", "never")


def emit(event: str, **data: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **data}), flush=True)


def create_app(drain_delay: float, fail: str, drain_timeout: float = 30.0) -> web.Application:
    app = web.Application()
    helpers = ah.setup(
        app,
        health="/health",
        drain_delay=drain_delay,
        drain_timeout=drain_timeout,
        limits=ah.UploadLimits(idle_timeout=5),
    )
    lifecycle = helpers.lifecycle
    saved = Path(tempfile.mkdtemp(prefix="ah-lifecycle-"))

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def upload(request: web.Request) -> web.Response:
        emit("upload-start")
        try:
            form = await ah.read_form(request)
            digests = {}
            for name, file in form.files.items():
                await file.save(saved / f"{time.monotonic_ns()}-{name}")
                digests[name] = {"sha256": file.sha256, "size": file.size}
        except BaseException as exc:
            emit("upload-end", outcome=type(exc).__name__)
            raise
        emit("upload-end", outcome="saved")
        return web.json_response(digests)

    @ah.stream_handler(EventSourceResponse)
    async def events(request: web.Request, sse: EventSourceResponse) -> None:
        emit("stream-open")
        n = 0
        try:
            while sse.is_connected():
                await sse.send(f"tick {n}")
                n += 1
                await asyncio.sleep(0.05)
        finally:
            emit("stream-end", sent=n)

    app.router.add_get("/", hello)
    app.router.add_post("/upload", upload)
    app.router.add_get("/events", events)

    async def state_changed(old: ah.AppState, new: ah.AppState) -> None:
        emit("state", state=new.value)

    lifecycle.on_state_change.append(state_changed)

    @lifecycle.context(name="db")
    async def db(app: web.Application) -> AsyncIterator[None]:
        emit("db-open")
        yield
        emit("db-close")

    @lifecycle.on_startup(name="cache", after="db")
    async def cache(app: web.Application) -> None:
        emit("cache-start")
        if fail == "cache":
            raise RuntimeError("cache server unreachable")

    @lifecycle.on_shutdown(name="flush")
    async def flush(app: web.Application) -> None:
        emit("flush", state=helpers.state.value)
        if fail == "flush":
            raise RuntimeError("metrics sink refused the flush")

    @lifecycle.on_cleanup(name="files", after="cache")
    async def files(app: web.Application) -> None:
        emit("files-cleanup")
        if fail == "files":
            raise OSError("temporary directory vanished")

    @lifecycle.on_startup(name="never", timeout=0.2)
    async def never(app: web.Application) -> None:
        if fail == "never":
            await asyncio.Event().wait()

    # A sub-app with its own hooks: one depends on the parent's "db".
    sub = web.Application()
    sub_lifecycle = ah.setup(sub).lifecycle

    @sub_lifecycle.context(name="sub-pool", after="db")
    async def sub_pool(app: web.Application) -> AsyncIterator[None]:
        emit("sub-pool-open")
        yield
        emit("sub-pool-close")
        if fail == "sub-pool-exit":
            raise RuntimeError("pool did not close cleanly")

    @sub_lifecycle.on_shutdown(name="sub-flush")
    async def sub_flush(app: web.Application) -> None:
        emit("sub-flush")

    app.add_subapp("/sub", sub)

    # Plain aiohttp hooks, registered after setup(): they run after the package's.
    async def plain_ctx(app: web.Application) -> AsyncIterator[None]:
        emit("plain-ctx-open")
        yield
        emit("plain-ctx-close")

    async def plain_startup(app: web.Application) -> None:
        emit("plain-startup")
        if fail == "plain-startup":
            raise RuntimeError("plain hook failed")

    app.cleanup_ctx.append(plain_ctx)
    app.on_startup.append(plain_startup)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drain", type=float, default=0.0)
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--fail", choices=FAILURES, default=None)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    emit("port", port=sock.getsockname()[1])
    web.run_app(
        create_app(args.drain, args.fail or "", args.drain_timeout),
        sock=sock,
        print=None,
        access_log=None,
        shutdown_timeout=5,
    )
    emit("exited")


if __name__ == "__main__":
    main()
