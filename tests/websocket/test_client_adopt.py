"""When the client socket cannot be made a recording one, the connection is closed, not lost."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientWebSocketResponse, web
from pytest_aiohttp import AiohttpServer

import aiohttp_helpers as ah
from aiohttp_helpers._compat import retype_client_ws


class Unsubclassable(ClientWebSocketResponse):
    """A session's own WebSocket class that refuses subclasses."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("Unsubclassable may not be subclassed")


async def test_a_failed_adopt_closes_the_connection(aiohttp_server: AiohttpServer) -> None:
    closes: list[tuple[int | None, str | None]] = []
    closed = asyncio.Event()

    @ah.websocket_handler
    async def handler(request: web.Request, ws: ah.ServerWebSocket) -> None:
        async for _ in ws:
            pass
        closes.append((ws.close_code, ws.closed_by))
        closed.set()

    app = web.Application()
    ah.setup(app)
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession(ws_response_class=Unsubclassable) as session:
        feed = ah.ws_connect(session, str(server.make_url("/")))
        with pytest.raises(TypeError, match="may not be subclassed"):
            async for _ in feed:
                pass
        await asyncio.wait_for(closed.wait(), 5)
    assert closes == [(1000, "client")]  # a clean close from the client, not a 1006


def test_retyping_an_object_of_another_layout_names_the_way_out() -> None:
    class Other(ClientWebSocketResponse):
        __slots__ = ("extra",)

    ws = object.__new__(ClientWebSocketResponse)
    with pytest.raises(TypeError, match="ws_response_class=aiohttp_helpers"):
        retype_client_ws(ws, Other)
