"""Broadcast fan-out: one frame for all, slow clients closed (1008) and never waited for.

The bound these tests hold the registry to: ``broadcast()`` writes to every socket in one
pass and never waits for any of them, so a call returns in well under ``BOUND`` seconds
whatever a client does, and a client that keeps reading gets every message as soon as
the loop runs, while a client that stopped reading is closed with 1008 once it is more
than ``broadcast_backlog`` bytes past its write buffer's high-water mark, or over that
mark for longer than ``send_timeout``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
import zlib
from contextlib import AsyncExitStack

import aiohttp
import pytest
import websockets
from aiohttp import web
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.websocket import CloseFrame
from tests.support.apps import Serve
from tests.support.net import until
from tests.support.peers import (
    GUID,
    RawPeer,
    delivering_after,
    one_registered,
    recording_app,
    ws_url,
)

#: Generous: one pass over a handful of sockets takes microseconds; the old registry
#: held every broadcast for ``send_timeout`` (30 s here) behind a client that did not read.
BOUND = 1.0
TOO_SLOW = CloseFrame(1008, "too slow to receive messages")


@ah.websocket_handler
async def listener(request: web.Request, ws: ah.ServerWebSocket) -> None:
    """Joins the group in the query string; echoes what it is sent (compressed if agreed)."""
    group = request.query.get("group")
    if group:
        ah.get_helpers(request.app).websockets.join(ws, group)
    await ws.send_str("joined")
    async for data in ws.messages():
        if isinstance(data, str):
            await ws.send_str(data)
        else:
            await ws.send_bytes(data)


async def stalled_peer(base: URL, path: str = "/", extensions: str = "") -> RawPeer:
    """A raw client with a tiny receive buffer that reads the upgrade and then stops."""
    assert base.host is not None
    assert base.port is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (base.host, base.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    header = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {base.host}:{base.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{header}\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    assert b"Sec-WebSocket-Accept: " + accept in head
    peer = RawPeer(reader, writer)
    opcode, payload = await peer.read_frame()
    assert opcode == 0x1
    assert (_inflate(payload) if extensions else payload) == b"joined"
    return peer


async def read_messages(peer: RawPeer) -> tuple[list[bytes], CloseFrame]:
    """Every data frame until the close frame, then the close frame (answered)."""
    received: list[bytes] = []
    while True:
        opcode, payload = await peer.read_frame(10)
        if opcode == 0x8:
            (code,) = struct.unpack("!H", payload[:2])
            peer.send_close(code)
            return received, CloseFrame(code, payload[2:].decode())
        received.append(payload)


class Reader:
    """An aiohttp client that keeps reading, noting when each message arrived."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.arrivals: list[tuple[str, float]] = []
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.arrivals.append((msg.data, loop.time()))


async def connect(
    stack: AsyncExitStack, session: aiohttp.ClientSession, url: str, compress: int = 0
) -> aiohttp.ClientWebSocketResponse:
    ws = await stack.enter_async_context(session.ws_connect(url, max_msg_size=0, compress=compress))
    assert await ws.receive_str(timeout=5) == "joined"
    return ws


@pytest.mark.parametrize("group", [None, "room"], ids=["everyone", "group"])
async def test_a_client_that_stops_reading_never_delays_the_others(
    serve: Serve, session: aiohttp.ClientSession, group: str | None
) -> None:
    app, closes = recording_app(
        listener, send_timeout=30, close_timeout=10, broadcast_backlog=64 * 1024
    )
    registry = ah.get_helpers(app).websockets
    base = await serve(app)
    query = f"?group={group}" if group else ""
    slow = await stalled_peer(base, "/" + query)
    loop = asyncio.get_running_loop()
    try:
        async with AsyncExitStack() as stack:
            readers = [
                Reader(await connect(stack, session, ws_url(base) + query)) for _ in range(3)
            ]
            await until(lambda: len(registry) == 4)
            sent: list[float] = []
            pad = "x" * 32000
            for n in range(400):
                started = loop.time()
                await registry.broadcast(f"{n} {pad}", group=group)
                sent.append(loop.time())
                assert sent[-1] - started < BOUND, n
                await asyncio.sleep(0)
            await until(lambda: all(len(r.arrivals) == 400 for r in readers), 10)
            for reader in readers:
                # Every message, in order, each soon after its broadcast: no gap.
                assert [int(text.split()[0]) for text, _ in reader.arrivals] == list(range(400))
                assert all(at - sent[n] < BOUND for n, (_, at) in enumerate(reader.arrivals))
            assert registry.slow_closes == 1
            assert registry.broadcasts == 400
            # The slow one got an unbroken run of the first messages, then 1008.
            received, close = await read_messages(slow)
            assert close == TOO_SLOW
            assert 0 < len(received) < 400
            assert [int(p.split()[0]) for p in received] == list(range(len(received)))
            assert registry.deliveries == 3 * 400 + len(received)
            await until(lambda: TOO_SLOW in closes)
            assert len(registry) == 3
    finally:
        slow.close()


async def test_a_client_over_its_high_water_mark_for_send_timeout_is_closed(
    serve: Serve,
) -> None:
    app, closes = recording_app(
        listener, send_timeout=0.3, close_timeout=10, broadcast_backlog=2**30
    )
    registry = ah.get_helpers(app).websockets
    async with one_registered(serve, app, stalled_peer) as slow:
        blob = b"\x02" * 2**22
        assert await registry.deliver(None, blob) == 1
        # Far over the mark, well within the backlog: it still takes messages...
        assert await registry.deliver(None, b"second") == 1
        await asyncio.sleep(0.5)
        # ... until it has been over the mark for longer than send_timeout.
        assert await registry.deliver(None, b"third") == 0
        assert registry.slow_closes == 1
        # Closed once: later broadcasts skip it without counting it again.
        assert await registry.deliver(None, b"fourth") == 0
        assert registry.slow_closes == 1
        received, close = await read_messages(slow)
        assert received == [blob, b"second"]
        assert close == TOO_SLOW
        await until(lambda: TOO_SLOW in closes)


async def test_with_no_backlog_a_socket_over_its_mark_is_closed_at_once(serve: Serve) -> None:
    app, closes = recording_app(listener, send_timeout=30, close_timeout=10, broadcast_backlog=0)
    registry = ah.get_helpers(app).websockets
    async with one_registered(serve, app, stalled_peer) as slow:
        blob = b"\x02" * 2**22
        assert await registry.deliver(None, blob) == 1
        assert await registry.deliver(None, b"next") == 0
        received, close = await read_messages(slow)
        assert (received, close) == ([blob], TOO_SLOW)
    await until(lambda: TOO_SLOW in closes)


def _inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


async def test_compressed_sockets_get_a_frame_they_can_read_and_keep_their_context(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    app, _ = recording_app(listener)
    registry = ah.get_helpers(app).websockets
    base = await serve(app)
    url = ws_url(base)
    text = "the same words again and again " * 40
    async with AsyncExitStack() as stack:
        plain = await connect(stack, session, url)
        # Context takeover (what browsers ask for): the uncompressed frame.
        takeover = await connect(stack, session, url, compress=15)
        # No context takeover, two window sizes: one compressed frame per window size.
        no_takeover = await stack.enter_async_context(
            websockets.connect(
                url,
                extensions=[ClientPerMessageDeflateFactory(server_no_context_takeover=True)],
            )
        )
        assert await no_takeover.recv() == "joined"
        raw = await stalled_peer(
            base, extensions="permessage-deflate; server_no_context_takeover; "
            "server_max_window_bits=10",
        )  # fmt: skip
        try:
            await until(lambda: len(registry) == 4)
            for _ in range(2):
                # The handler's own compressed messages around the broadcast: the
                # compression context of each socket must survive it.
                await takeover.send_str(text)
                assert await takeover.receive_str(timeout=5) == text
                assert await registry.deliver(None, text) == 4
                assert await takeover.receive_str(timeout=5) == text
                assert await plain.receive_str(timeout=5) == text
                await no_takeover.send(text)
                assert await no_takeover.recv() == text
                assert await no_takeover.recv() == text
            await registry.broadcast(b"\x00" * 1000)
            assert await takeover.receive_bytes(timeout=5) == b"\x00" * 1000
            assert await no_takeover.recv() == b"\x00" * 1000
            # On the wire: RSV1 set, deflated, small.
            for expected, opcode in ((text, 0x1), (text, 0x1), ("\x00" * 1000, 0x2)):
                first, second = await raw.reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", await raw.reader.readexactly(2))
                payload = await raw.reader.readexactly(size)
                assert (first & 0x40, first & 0x0F) == (0x40, opcode)
                assert size < len(expected) // 4
                assert _inflate(payload) == expected.encode("latin-1")
        finally:
            raw.close()


async def test_sockets_not_open_are_skipped(serve: Serve) -> None:
    registry = ah.WebSocketRegistry()
    unprepared = web.WebSocketResponse()
    registry.add(unprepared)
    assert await registry.deliver(None, "nobody") == 0
    assert (registry.broadcasts, registry.deliveries) == (1, 0)


def test_broadcast_backlog_is_validated() -> None:
    assert ah.WebSocketSettings(broadcast_backlog=0).broadcast_backlog == 0
    with pytest.raises(ValueError, match="broadcast_backlog must be 0 or more"):
        ah.WebSocketSettings(broadcast_backlog=-1)
    with pytest.raises(TypeError, match="broadcast_backlog must be an int"):
        ah.WebSocketSettings(broadcast_backlog=1.5)  # type: ignore[arg-type]


async def test_a_transport_that_refuses_the_write_is_skipped(serve: Serve) -> None:
    delivered: list[int] = []

    # After write_eof() the transport raises on write (and is not "closing").
    handler = delivering_after(lambda t: t.write_eof(), "refused", delivered)
    app, _ = recording_app(handler, close_timeout=0.5)
    base = await serve(app)
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(base)) as ws:
        # The server wrote EOF: the connection ends without a close frame.
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSED
    await until(lambda: bool(delivered))
    assert delivered == [0]
