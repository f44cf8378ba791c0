"""The helpers for users' own tests: ``receive_close`` and ``assert_closed_with``."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.websocket import CloseFrame, assert_closed_with, receive_close


def _app() -> web.Application:
    @ah.websocket_handler(messages="text", heartbeat=None)
    async def handler(request: web.Request, ws: ah.ServerWebSocket) -> None:
        async for text in ws.messages():
            if text == "drop":
                assert request.transport is not None
                request.transport.abort()
                await asyncio.sleep(1)
            elif text.startswith("close "):
                _, code, reason = text.split(" ", 2)
                raise ah.WSClose(int(code), reason)
            elif text == "empty":
                await ws.send_frame(b"", web.WSMsgType.CLOSE)
            else:
                await ws.send_str(f"echo {text}")

    app = web.Application()
    ah.setup(app)
    app.router.add_get("/", handler)
    return app


async def test_receive_close_skips_messages(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_app())
    async with client.ws_connect("/") as ws:
        await ws.send_str("one")
        await ws.send_str("close 4000 bye")
        assert await receive_close(ws) == CloseFrame(4000, "bye")


async def test_receive_close_reports_a_dropped_connection(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_app())
    async with client.ws_connect("/") as ws:
        await ws.send_str("drop")
        assert await receive_close(ws) == CloseFrame(1006, "")


async def test_receive_close_reports_an_empty_close_frame(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_app())
    async with client.ws_connect("/") as ws:
        await ws.send_str("empty")
        assert await receive_close(ws) == CloseFrame(1005, "")


async def test_receive_close_times_out(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_app())
    async with client.ws_connect("/") as ws:
        with pytest.raises(AssertionError, match=r"did not close within 0\.1s"):
            await receive_close(ws, timeout=0.1)


async def test_assert_closed_with(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_app())
    async with client.ws_connect("/") as ws:
        await ws.send_str("close 4001 name taken")
        frame = await assert_closed_with(ws, 4001, "name taken")
        assert frame == CloseFrame(4001, "name taken")
    async with client.ws_connect("/") as ws:
        await ws.send_str("close 4001 name taken")
        await assert_closed_with(ws, 4001)
    async with client.ws_connect("/") as ws:
        await ws.send_str("close 4001 name taken")
        with pytest.raises(
            AssertionError,
            match=r"expected the WebSocket to close with 1000, got 4001 'name taken'",
        ):
            await assert_closed_with(ws, 1000)
    async with client.ws_connect("/") as ws:
        await ws.send_str("close 4001 name taken")
        with pytest.raises(AssertionError, match=r"close with 4001 'other', got 4001"):
            await assert_closed_with(ws, 4001, "other")
