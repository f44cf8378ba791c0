"""WebSocket peers for the tests: aiohttp's client, the ``websockets`` library, raw frames.

Three independent clients talk to the servers under test: aiohttp's own client, the
``websockets`` library, and :class:`RawPeer`, which upgrades by hand over an asyncio
connection and writes frames byte by byte, so it can send what the others refuse to
(invalid close codes, bad UTF-8 in a close reason). ``recording_app`` serves an echo
handler and records every close.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiohttp
import pytest
import websockets
from aiohttp import web
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.websocket import CloseFrame
from aiohttp_helpers.websocket.handler import WrappedHandler
from tests.support.apps import Serve
from tests.support.net import until

__all__ = [
    "GUID",
    "PEER_KINDS",
    "PeerKind",
    "RawPeer",
    "app_at_root",
    "delivering_after",
    "one_registered",
    "open_peer",
    "raw_peer",
    "raw_session",
    "recording_app",
    "text_echo",
    "ws_url",
]

PeerKind = Literal["aiohttp", "websockets"]
PEER_KINDS = [pytest.param("aiohttp", id="aiohttp"), pytest.param("websockets", id="websockets")]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_url(base: URL, path: str = "/") -> str:
    return str(base.with_scheme("ws").with_path(path))


class Peer:
    """What a test does with a client, whichever library it is."""

    async def send_text(self, text: str) -> None:
        raise NotImplementedError

    async def send_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    async def send_raw_text(self, data: bytes) -> None:
        """A text frame carrying ``data`` as is (possibly not UTF-8)."""
        raise NotImplementedError

    async def receive(self, within: float = 5.0) -> str | bytes:
        raise NotImplementedError

    async def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError

    async def wait_closed(self, within: float = 5.0) -> CloseFrame | None:
        """Read until the connection ends; the server's close frame, or ``None`` if none came."""
        raise NotImplementedError

    def pause_reading(self) -> None:
        """Stop reading the socket (no pongs, no data drained)."""
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError


class AiohttpPeer(Peer):
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def send_raw_text(self, data: bytes) -> None:
        await self.ws.send_frame(data, aiohttp.WSMsgType.TEXT)

    async def receive(self, within: float = 5.0) -> str | bytes:
        msg = await self.ws.receive(timeout=within)
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
        data: str | bytes = msg.data
        return data

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())

    async def wait_closed(self, within: float = 5.0) -> CloseFrame | None:
        async with asyncio.timeout(within):
            while True:
                try:
                    msg = await self.ws.receive()
                except ConnectionResetError:
                    # A queued ping cannot be answered on a dropped connection: read on.
                    continue
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    return CloseFrame(msg.data, msg.extra or "")
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return None

    def pause_reading(self) -> None:
        # aiohttp's client answers pings only from receive(): not calling it is enough.
        pass

    def resume_reading(self) -> None:
        pass


class WebsocketsPeer(Peer):
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send(data)

    async def send_raw_text(self, data: bytes) -> None:
        await self.ws.send(data, text=True)

    async def receive(self, within: float = 5.0) -> str | bytes:
        async with asyncio.timeout(within):
            return await self.ws.recv()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def wait_closed(self, within: float = 5.0) -> CloseFrame | None:
        async with asyncio.timeout(within):
            try:
                while True:
                    await self.ws.recv()
            except websockets.ConnectionClosed as exc:
                if exc.rcvd is None:
                    return None
                return CloseFrame(exc.rcvd.code, exc.rcvd.reason)

    def pause_reading(self) -> None:
        self.ws.transport.pause_reading()

    def resume_reading(self) -> None:
        self.ws.transport.resume_reading()


@asynccontextmanager
async def open_peer(
    kind: PeerKind, url: str, **kwargs: Any
) -> AsyncIterator[AiohttpPeer | WebsocketsPeer]:
    """A connected client of ``kind``; closed (or dropped) at the end."""
    if kind == "aiohttp":
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, autoping=True, max_msg_size=0, **kwargs) as ws,
        ):
            yield AiohttpPeer(ws)
    else:
        async with websockets_connect(
            url, max_size=None, open_timeout=5, close_timeout=1, ping_interval=None, **kwargs
        ) as conn:
            yield WebsocketsPeer(conn)


class RawPeer:
    """A WebSocket client written frame by frame over a plain asyncio connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}

    @classmethod
    async def connect(cls, base: URL, path: str = "/", headers: str = "") -> RawPeer:
        assert base.host is not None
        assert base.port is not None
        reader, writer = await asyncio.open_connection(base.host, base.port)
        peer = cls(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {base.host}:{base.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = head.decode().split("\r\n")
        peer.status = int(status_line.split()[1])
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                peer.headers[name.strip().lower()] = value.strip()
        if peer.status == 101:
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            assert peer.headers["sec-websocket-accept"] == accept
        return peer

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        """Write one masked frame, whatever it contains."""
        first = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    def send_close(self, code: int | None, reason: bytes = b"") -> None:
        payload = b"" if code is None else struct.pack("!H", code) + reason
        self.send_frame(0x8, payload)

    async def read_frame(self, within: float = 5.0) -> tuple[int, bytes]:
        """The next frame from the server: ``(opcode, payload)``."""
        async with asyncio.timeout(within):
            first, second = await self.reader.readexactly(2)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(n)

    async def read_close(self, within: float = 5.0) -> CloseFrame:
        """Skip frames until the server's close frame; its code and reason."""
        while True:
            opcode, payload = await self.read_frame(within)
            if opcode == 0x8:
                assert len(payload) <= 125
                if not payload:
                    return CloseFrame(1005, "")
                (code,) = struct.unpack("!H", payload[:2])
                return CloseFrame(code, payload[2:].decode("utf-8"))

    async def at_eof(self, within: float = 5.0) -> bool:
        """Whether the server closes the TCP connection ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True

    def close(self) -> None:
        self.writer.close()


def recording_app(
    handler: WrappedHandler | None = None, **settings: Any
) -> tuple[web.Application, list[CloseFrame]]:
    """An app serving an echo handler at ``/``, recording what each socket closed with."""
    app = web.Application()
    helpers = ah.setup(app, websockets=ah.WebSocketSettings(**settings) if settings else None)
    closes: list[CloseFrame] = []

    async def on_close(
        request: web.Request, ws: web.WebSocketResponse, code: int, reason: str
    ) -> None:
        closes.append(CloseFrame(code, reason))

    helpers.signals.on_ws_close.append(on_close)

    if handler is None:
        handler = echo

    app.router.add_get("/", handler)
    return app, closes


@ah.websocket_handler
async def echo(request: web.Request, ws: ah.ServerWebSocket) -> None:
    """Send every message back as it came."""
    async for data in ws.messages():
        if isinstance(data, str):
            await ws.send_str(data)
        else:
            await ws.send_bytes(data)


def app_at_root(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    """A bare ``web.Application`` serving ``handler`` at ``/``."""
    app = web.Application()
    app.router.add_get("/", handler)
    return app


async def raw_peer(
    serve: Serve, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> RawPeer:
    """A :class:`RawPeer` upgraded at ``/`` of a bare app serving ``handler``."""
    return await RawPeer.connect(await serve(app_at_root(handler)))


@asynccontextmanager
async def raw_session(serve: Serve) -> AsyncIterator[tuple[RawPeer, list[CloseFrame]]]:
    """A :class:`RawPeer` on a :func:`recording_app`, and its closes; once the block ends
    the peer is closed and (unless the block raised) a close has been recorded."""
    app, closes = recording_app()
    peer = await RawPeer.connect(await serve(app))
    try:
        yield peer, closes
    finally:
        peer.close()
    await until(lambda: bool(closes))


def text_echo(
    make_ws: Callable[[], web.WebSocketResponse],
) -> Callable[[web.Request], Awaitable[web.WebSocketResponse]]:
    """A plain aiohttp handler (no helpers) that sends every text message back as it came:
    a ``str`` as text, undecoded text (``decode_text=False``) as binary."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = make_ws()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                if isinstance(msg.data, str):
                    await ws.send_str(msg.data)
                else:
                    await ws.send_bytes(msg.data)
        return ws

    return handler


@asynccontextmanager
async def one_registered(
    serve: Serve,
    app: web.Application,
    connect: Callable[[URL], Awaitable[RawPeer]] = RawPeer.connect,
) -> AsyncIterator[RawPeer]:
    """Serve ``app`` and connect one peer (``connect``: :meth:`RawPeer.connect`, which never
    reads unless told to); the block runs once ``app``'s registry holds it, and the peer is
    closed at its end."""
    registry = ah.get_helpers(app).websockets
    peer = await connect(await serve(app))
    try:
        await until(lambda: len(registry) == 1)
        yield peer
    finally:
        peer.close()


def delivering_after(
    cut: Callable[[asyncio.Transport], object], message: str, delivered: list[int]
) -> WrappedHandler:
    """A handler that does ``cut`` to its own connection's transport, then delivers
    ``message`` to every socket and appends to ``delivered`` how many took it."""

    @ah.websocket_handler
    async def handler(request: web.Request, ws: ah.ServerWebSocket) -> None:
        registry = ah.get_helpers(request.app).websockets
        assert request.transport is not None
        cut(request.transport)
        delivered.append(await registry.deliver(None, message))

    return handler
