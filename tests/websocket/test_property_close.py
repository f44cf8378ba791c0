"""Property tests of close codes and reasons, checked on the bytes of real close frames.

For any ``int`` code and any text reason, every way the package closes a WebSocket
(``close_websocket``, ``ServerWebSocket.close``, ``raise WSClose``, and
``close_websocket`` on a client socket) either refuses the code with ``ValueError`` and
sends nothing, or sends exactly that code with the longest prefix of the reason whose
UTF-8 form fits in 123 bytes: a valid close frame, cut on a character boundary.
"""

from __future__ import annotations

import asyncio
import struct

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

import aiohttp_helpers as ah
from tests.support.apps import Serve
from tests.support.peers import RawPeer

SENDABLE = {*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)}

CODES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(0, 70_000),
    st.sampled_from([0, 999, 1000, 1003, 1004, 1005, 1006, 1007, 1014, 1015, 1016, 2999, 3000]),
    st.sampled_from([4999, 5000, 65535, 65536, -1, 2**16 + 1000, 2**32 + 1000]),
)
# Any text: surrogates, astral characters, and lengths on both sides of 123 bytes.
REASONS = st.one_of(
    st.text(max_size=200),
    st.text(st.characters(min_codepoint=0x80), min_size=30, max_size=130),
    st.text(st.sampled_from(["a", "é", "€", "😀", "\ud800"]), max_size=140),
)
VIA = st.sampled_from(["close_websocket", "ServerWebSocket.close", "WSClose", "client"])


#: What ``ServerWebSocket`` says when it closes with these codes and no reason.
DEFAULT_REASONS = {
    1002: "protocol error",
    1007: "text message is not valid UTF-8",
    1009: "message too big",
}


def expected_reason(reason: str, code: int = 0, via: str = "") -> str:
    """The longest prefix of ``reason`` (lone surrogates as ``?``) that fits in 123 bytes.

    An empty one on a :class:`ah.ServerWebSocket` (its ``close()`` or ``WSClose``) with a
    protocol code is that code's default reason.
    """
    if not reason and via in ("ServerWebSocket.close", "WSClose"):
        return DEFAULT_REASONS.get(code, "")
    out: list[str] = []
    size = 0
    for ch in reason:
        ch = "?" if 0xD800 <= ord(ch) <= 0xDFFF else ch
        size += len(ch.encode())
        if size > 123:
            break
        out.append(ch)
    return "".join(out)


class Case:
    """What one example asks the server (or client) to close with, and what happened."""

    def __init__(self) -> None:
        self.code = 0
        self.reason = ""
        self.via = ""
        self.refused: BaseException | None = None
        self.received: tuple[int, str] | None = None
        self.done = asyncio.Event()


class Current:
    """The example being run: the one server serves every example of a test."""

    case = Case()


def _app(current: Current) -> web.Application:
    async def plain(request: web.Request) -> web.WebSocketResponse:
        case = current.case
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            await ah.close_websocket(ws, case.code, case.reason)
        except ValueError as exc:
            case.refused = exc
            await ws.send_str("refused")
            await ws.close()
        return ws

    @ah.websocket_handler(heartbeat=None)
    async def wrapped(request: web.Request, ws: ah.ServerWebSocket) -> None:
        case = current.case
        if case.via == "WSClose":
            try:
                error = ah.WSClose(case.code, case.reason)
            except ValueError as exc:
                case.refused = exc
                await ws.send_str("refused")
                return
            raise error
        try:
            await ws.close(code=case.code, message=case.reason)
        except ValueError as exc:
            case.refused = exc
            await ws.send_str("refused")

    @ah.websocket_handler(heartbeat=None)
    async def receiver(request: web.Request, ws: ah.ServerWebSocket) -> None:
        case = current.case
        async for _ in ws.messages():
            pass
        frame = ws.close_received
        case.received = None if frame is None else (frame.code, frame.reason)
        case.done.set()

    app = web.Application()
    ah.setup(app)
    app.router.add_get("/plain", plain)
    app.router.add_get("/wrapped", wrapped)
    app.router.add_get("/receiver", receiver)
    return app


async def _server_closes(base: URL, case: Case) -> tuple[int, bytes] | None:
    """The close frame the server sent, as raw bytes; None when it refused the code."""
    path = "/plain" if case.via == "close_websocket" else "/wrapped"
    peer = await RawPeer.connect(base, path)
    try:
        assert peer.status == 101
        opcode, payload = await peer.read_frame()
        if opcode == 0x1:
            assert payload == b"refused"
            opcode, payload = await peer.read_frame()
            assert opcode == 0x8
            assert struct.unpack("!H", payload[:2])[0] == 1000
            return None
        assert opcode == 0x8
        (code,) = struct.unpack("!H", payload[:2])
        return code, payload[2:]
    finally:
        peer.send_close(1000)
        peer.close()


async def _client_closes(
    session: aiohttp.ClientSession, base: URL, case: Case
) -> tuple[int, bytes] | None:
    async with session.ws_connect(base.with_scheme("ws").with_path("/receiver")) as ws:
        try:
            await ah.close_websocket(ws, case.code, case.reason, timeout=5)
        except ValueError as exc:
            case.refused = exc
            await ws.close(code=1000)
            await asyncio.wait_for(case.done.wait(), 5)
            assert case.received == (1000, "")
            return None
    await asyncio.wait_for(case.done.wait(), 5)
    assert case.received is not None
    # The server parsed the frame; aiohttp's reader refuses a reason that is not UTF-8.
    return case.received[0], case.received[1].encode()


@pytest.fixture
async def server(serve: Serve) -> tuple[URL, Current]:
    current = Current()
    return await serve(_app(current)), current


@pytest.mark.timeout(60)
@settings(
    max_examples=80,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(code=CODES, reason=REASONS, via=VIA)
@example(code=1007, reason="", via="ServerWebSocket.close")
@example(code=1009, reason="", via="WSClose")
@example(code=1002, reason="", via="close_websocket")
async def test_any_code_and_reason(
    server: tuple[URL, Current], code: int, reason: str, via: str
) -> None:
    base, current = server
    case = current.case = Case()
    case.code, case.reason, case.via = code, reason, via
    if via == "client":
        async with aiohttp.ClientSession() as session:
            sent = await _client_closes(session, base, case)
    else:
        sent = await _server_closes(base, case)
    if code not in SENDABLE:
        assert sent is None, f"{code} may not be sent, yet a close frame carried it"
        assert isinstance(case.refused, ValueError)
        assert str(code) in str(case.refused)
        return
    assert case.refused is None
    assert sent is not None
    got_code, payload = sent
    assert got_code == code
    assert len(payload) <= 123
    assert payload.decode("utf-8") == expected_reason(reason, code, via)
