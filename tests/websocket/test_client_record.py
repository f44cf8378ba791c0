"""The client records its close as the server does: a subclass, not patched methods."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import ClientWebSocketResponse, web
from pytest_aiohttp import AiohttpServer

import aiohttp_helpers as ah
from aiohttp_helpers._compat import retype_client_ws
from aiohttp_helpers.websocket import ClientWebSocket, CloseRecord


def closing_app(code: int, reason: str) -> web.Application:
    @ah.websocket_handler
    async def handler(request: web.Request, ws: ah.ServerWebSocket) -> None:
        await ws.send_str("hello")
        raise ah.WSClose(code, reason)

    app = web.Application()
    app.router.add_get("/", handler)
    return app


class Custom(ClientWebSocketResponse):
    """A session's own WebSocket class, whose behaviour must survive."""

    def greeting(self) -> str:
        return "custom"


def stop_policy() -> ah.ReconnectPolicy:
    async def sleep(delay: float) -> None:
        raise AssertionError("no reconnect expected")

    return ah.ReconnectPolicy(sleep=sleep)


async def test_the_socket_is_a_subclass_and_keeps_its_methods(
    aiohttp_server: AiohttpServer,
) -> None:
    server = await aiohttp_server(closing_app(4000, "done here"))
    async with aiohttp.ClientSession() as session:
        conn = ah.ws_connect(session, server.make_url("/"), policy=stop_policy())
        async for ws in conn:
            assert isinstance(ws, ClientWebSocket)
            # Nothing is patched onto the instance: its methods are its class's.
            assert "receive" not in vars(ws)
            assert "close" not in vars(ws)
            async for msg in ws:
                assert msg.data == "hello"
            assert ws.close_record.first == (4000, "done here")
            assert ws.close_record.peer_first
    assert (conn.close_code, conn.close_reason) == (4000, "done here")


async def test_a_client_first_close_is_recorded_as_sent(aiohttp_server: AiohttpServer) -> None:
    @ah.websocket_handler
    async def echo(request: web.Request, ws: ah.ServerWebSocket) -> None:
        async for data in ws.messages():
            await ws.send_str(data)

    app = web.Application()
    app.router.add_get("/", echo)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession(ws_response_class=ClientWebSocket) as session:
        conn = ah.ws_connect(session, server.make_url("/"), policy=stop_policy())
        async for ws in conn:
            await ws.close(code=4001, message=b"leaving")
        record = ws.close_record
    assert record.first == record.sent == (4001, "leaving")
    assert not record.peer_first


@pytest.mark.parametrize("own_class", [False, True], ids=["default-class", "session-class"])
async def test_a_sessions_own_class_is_kept(aiohttp_server: AiohttpServer, own_class: bool) -> None:
    server = await aiohttp_server(closing_app(4002, "bye"))
    session_class = ClientWebSocket if own_class else Custom
    async with aiohttp.ClientSession(ws_response_class=session_class) as session:
        conn = ah.ws_connect(session, server.make_url("/"), policy=stop_policy())
        async for ws in conn:
            assert isinstance(ws, ClientWebSocket)
            if own_class:
                assert type(ws) is ClientWebSocket
            else:
                assert isinstance(ws, Custom)
                assert ws.greeting() == "custom"
                assert type(ws).__name__ == "RecordingCustom"
            async for _ in ws:
                pass
    assert (conn.close_code, conn.close_reason) == (4002, "bye")


async def test_adopt_is_idempotent_and_the_retype_is_checked(
    aiohttp_server: AiohttpServer,
) -> None:
    server = await aiohttp_server(closing_app(1000, ""))
    async with aiohttp.ClientSession() as session, session.ws_connect(server.make_url("/")) as ws:
        recording = ClientWebSocket.adopt(ws)
        assert recording is ws
        assert isinstance(recording.close_record, CloseRecord)
        assert ClientWebSocket.adopt(recording) is recording
        with pytest.raises(TypeError, match="not a subclass of ClientWebSocket"):
            retype_client_ws(recording, Custom)
