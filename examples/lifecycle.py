"""Ordered startup, readiness and graceful draining behind a load balancer.

Run ``python examples/lifecycle.py --drain 5``, then in another terminal
``curl -i http://127.0.0.1:8082/health/ready`` and send the server SIGTERM (or press
Ctrl+C): for five seconds /health/ready answers 503 while / still answers, then the
requests in flight finish (``drain_timeout`` at the most), ``/clock`` streams end, the
shutdown hooks run and the resources close, newest first. ``curl -N
http://127.0.0.1:8082/clock`` is a server-sent events stream: refused with 503 while
the server drains, ended cleanly when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web

import aiohttp_helpers as ah

log = logging.getLogger("lifecycle-example")


class Database:
    """Stands for a connection pool: something to open at startup and close at the end."""

    def __init__(self) -> None:
        self.open = False

    async def connect(self) -> None:
        await asyncio.sleep(0.01)
        self.open = True

    async def close(self) -> None:
        await asyncio.sleep(0.01)
        self.open = False

    async def fetch_greeting(self) -> str:
        if not self.open:
            raise RuntimeError("the database is closed")
        return "hello"


DATABASE = web.AppKey("database", Database)
GREETING = web.AppKey("greeting", str)
STATUSES = web.AppKey("statuses", Counter[int])


async def index(request: web.Request) -> web.Response:
    return web.Response(text=f"{request.app[GREETING]}\n")


async def stats(request: web.Request) -> web.Response:
    helpers = ah.get_helpers(request.app)
    return web.json_response(
        {
            "state": helpers.state.value,
            "statuses": {str(status): n for status, n in request.app[STATUSES].items()},
        }
    )


def event_stream() -> web.StreamResponse:
    """The response ``/clock`` streams: headers set here, before they are sent."""
    return web.StreamResponse(headers={"Content-Type": "text/event-stream"})


@ah.stream_handler(event_stream)
async def clock(request: web.Request, stream: web.StreamResponse) -> None:
    """Server-sent events, one a second, until the client leaves or the server stops."""
    streams = ah.get_helpers(request.app).streams
    while not streams.closing:
        await stream.write(f"data: {time.strftime('%H:%M:%S')}\n\n".encode())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await streams.wait_closing()


def create_app(*, drain_delay: float = 5.0, drain_timeout: float = 20.0) -> web.Application:
    app = web.Application()
    # /health/live and /health/ready for the orchestrator; drain_delay should be a little
    # longer than the load balancer's readiness period times its failure threshold, and
    # drain_timeout as long as the slowest upload you are willing to wait for.
    helpers = ah.setup(app, health="/health", drain_delay=drain_delay, drain_timeout=drain_timeout)
    lifecycle = helpers.lifecycle
    app[STATUSES] = Counter()

    @lifecycle.context(name="database", timeout=10)
    async def database(app: web.Application) -> AsyncIterator[None]:
        db = Database()
        await db.connect()
        app[DATABASE] = db
        yield
        await db.close()  # runs last: every hook that needs the database is done by then

    @lifecycle.on_startup(name="greeting", after="database", timeout=5)
    async def load_greeting(app: web.Application) -> None:
        app[GREETING] = await app[DATABASE].fetch_greeting()

    @lifecycle.on_shutdown(name="report", after="database", timeout=5)
    async def report(app: web.Application) -> None:
        # After the drain, before the database closes.
        log.info("served: %s", dict(sorted(app[STATUSES].items())))

    async def count(request: web.Request, response: web.StreamResponse, seconds: float) -> None:
        statuses = request.app[STATUSES]
        statuses[response.status] += 1

    helpers.signals.on_request_end.append(count)
    app.router.add_get("/", index)
    app.router.add_get("/stats", stats)
    app.router.add_get("/clock", clock)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8082, help="port to listen on (default: %(default)s)"
    )
    parser.add_argument("--drain", type=float, default=5.0, help="drain_delay in seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    web.run_app(create_app(drain_delay=args.drain), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
