"""An app whose WebSocket broadcasts go through Redis, for the multi-process tests.

In-process, tests call :func:`create_app`. As a process, ``python tests/support/redis_app.py
--redis URL --channel NAME [--name NAME]`` serves it on 127.0.0.1 with ``web.run_app``,
on a port the system picks, and prints ``{"port": N}`` once it listens.

Routes:

- ``GET /ws?group=G``: a WebSocket that joins ``G`` (if given) and says ``joined NAME``;
  a message ``say:TEXT`` broadcasts ``TEXT`` to ``G`` (to everyone without a group),
  ``all:TEXT`` to everyone, ``bytes:TEXT`` the UTF-8 bytes of ``TEXT`` to everyone.
- ``POST /broadcast?group=G``: broadcasts the request body (text) and answers ``sent``.
- ``GET /stats``: the backend's counters, and how many sockets are open, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket

from aiohttp import web

import aiohttp_helpers as ah

__all__ = ["backend_of", "create_app"]


def backend_of(app: web.Application) -> ah.RedisBroadcast:
    backend = ah.get_helpers(app).websocket_settings.broadcast
    assert isinstance(backend, ah.RedisBroadcast)
    return backend


def create_app(
    redis_url: str,
    *,
    channel: str,
    name: str = "app",
    ping_interval: float = 5.0,
    timeout: float = 5.0,
    reconnect_delay: tuple[float, float] = (0.05, 0.5),
) -> web.Application:
    """An app with its own :class:`~aiohttp_helpers.RedisBroadcast` on ``channel``."""
    app = web.Application()
    backend = ah.RedisBroadcast(
        redis_url,
        channel=channel,
        ping_interval=ping_interval,
        timeout=timeout,
        reconnect_delay=reconnect_delay,
    )
    settings = ah.WebSocketSettings(broadcast=backend, heartbeat=None, close_timeout=2.0)
    helpers = ah.setup(app, websockets=settings)
    websockets = helpers.websockets

    @ah.websocket_handler
    async def chat(request: web.Request, ws: ah.ServerWebSocket) -> None:
        group = request.query.get("group")
        if group:
            websockets.join(ws, group)
        await ws.send_str(f"joined {name}")
        async for data in ws.messages():
            command, _, text = str(data).partition(":")
            if command == "say":
                await websockets.broadcast(text, group=group)
            elif command == "all":
                await websockets.broadcast(text)
            elif command == "bytes":
                await websockets.broadcast(text.encode())

    async def broadcast(request: web.Request) -> web.Response:
        await websockets.broadcast(await request.text(), group=request.query.get("group"))
        return web.Response(text="sent")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": name,
                "pid": os.getpid(),
                "connected": backend.connected,
                "published": backend.published,
                "dropped": backend.dropped,
                "received": backend.received,
                "outages": backend.outages,
                "sockets": len(websockets),
            }
        )

    app.router.add_get("/ws", chat)
    app.router.add_post("/broadcast", broadcast)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--name", default="app")
    args = parser.parse_args()
    app = create_app(args.redis, channel=args.channel, name=args.name)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def ready(_banner: str) -> None:  # run_app calls it once the socket listens
        print(json.dumps({"port": port}), flush=True)

    web.run_app(app, sock=sock, print=ready, shutdown_timeout=5.0)


if __name__ == "__main__":
    main()
