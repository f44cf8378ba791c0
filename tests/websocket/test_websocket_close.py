"""``close_websocket``: valid codes only, reasons cut on a character boundary, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

import aiohttp_helpers as ah
from aiohttp_helpers.websocket import MAX_REASON_BYTES, CloseFrame, truncate_reason
from aiohttp_helpers.websocket.close import encode_reason
from tests.support.apps import Serve
from tests.support.net import until
from tests.support.peers import PEER_KINDS, PeerKind, app_at_root, open_peer, raw_peer, ws_url

# -- reasons -------------------------------------------------------------------------

EDGE_REASONS = [
    pytest.param("a" * 123, "a" * 123, id="ascii-123-fits"),
    pytest.param("a" * 124, "a" * 123, id="ascii-124-cut"),
    pytest.param("a" * 121 + "é", "a" * 121 + "é", id="2-byte-ends-at-123"),
    pytest.param("a" * 122 + "é", "a" * 122, id="2-byte-straddles-123"),
    pytest.param("€" * 41, "€" * 41, id="3-byte-exactly-123"),
    pytest.param("€" * 42, "€" * 41, id="3-byte-one-over"),
    pytest.param("a" * 121 + "€", "a" * 121, id="3-byte-straddles"),
    pytest.param("😀" * 31, "😀" * 30, id="4-byte-124"),
    pytest.param("a" * 120 + "😀", "a" * 120, id="4-byte-straddles"),
    pytest.param("a" * 119 + "😀", "a" * 119 + "😀", id="4-byte-ends-at-123"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize(("reason", "expected"), EDGE_REASONS)
def test_truncate_reason_at_the_edge(reason: str, expected: str) -> None:
    assert truncate_reason(reason) == expected
    assert len(expected.encode()) <= MAX_REASON_BYTES


@given(st.text())
def test_truncate_reason_is_the_longest_valid_prefix(text: str) -> None:
    cut = truncate_reason(text)
    data = cut.encode("utf-8", "replace")
    assert len(data) <= MAX_REASON_BYTES
    clean = text.encode("utf-8", "replace").decode("utf-8")
    assert clean.startswith(cut)
    if cut != clean:
        # One more character would not fit.
        assert len(clean[: len(cut) + 1].encode()) > MAX_REASON_BYTES


def test_encode_reason_checks_its_input() -> None:
    assert encode_reason(b"ok") == b"ok"
    assert encode_reason("lone \ud800 surrogate") == b"lone ? surrogate"
    with pytest.raises(ValueError, match="a close reason must be UTF-8 text"):
        encode_reason(b"\xff")
    with pytest.raises(TypeError, match="a close reason is a str"):
        encode_reason(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", PEER_KINDS)
@pytest.mark.parametrize(("reason", "expected"), EDGE_REASONS)
async def test_reason_at_the_edge_over_the_wire(
    serve: Serve, kind: PeerKind, reason: str, expected: str
) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ah.close_websocket(ws, 4000, reason)
        return ws

    async with open_peer(kind, ws_url(await serve(app_at_root(handler)))) as peer:
        # An oversized close frame would be a protocol error for both libraries.
        assert await peer.wait_closed() == CloseFrame(4000, expected)


# -- codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "match"),
    [
        pytest.param(1004, r"1004 \(RESERVED\) may not be sent", id="1004"),
        pytest.param(1005, r"1005 \(NO_STATUS_RCVD\) may not be sent", id="1005"),
        pytest.param(1006, r"1006 \(ABNORMAL_CLOSURE\) may not be sent", id="1006"),
        pytest.param(1015, r"1015 \(TLS_HANDSHAKE\) may not be sent", id="1015"),
        pytest.param(999, "999 is not a WebSocket close code", id="below-1000"),
        pytest.param(1016, "1016 is not a WebSocket close code", id="1016"),
        pytest.param(2999, "2999 is not a WebSocket close code", id="2999"),
        pytest.param(5000, "5000 is not a WebSocket close code", id="above-4999"),
        pytest.param(70000, "70000 is not a WebSocket close code", id="above-65535"),
    ],
)
async def test_codes_that_may_not_be_sent_are_refused(serve: Serve, code: int, match: str) -> None:
    outcome: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            await ah.close_websocket(ws, code, "nope")
        except ValueError as exc:
            outcome["error"] = exc
        outcome["closed"] = ws.closed
        await ws.close(code=4000, message=b"after the refusal")
        return ws

    async with open_peer("websockets", ws_url(await serve(app_at_root(handler)))) as peer:
        # Nothing went out for the refused code: the next, valid close is the first frame.
        assert await peer.wait_closed() == CloseFrame(4000, "after the refusal")
    with pytest.raises(ValueError, match=match):
        raise outcome["error"]
    assert outcome["closed"] is False


async def test_bad_arguments(serve: Serve) -> None:
    errors: list[BaseException] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            await ah.close_websocket(ws, "1000")  # type: ignore[arg-type]
        except TypeError as exc:
            errors.append(exc)
        try:
            await ah.close_websocket(ws, 1000, 12)  # type: ignore[arg-type]
        except TypeError as exc:
            errors.append(exc)
        try:
            await ah.close_websocket(ws, 1000, timeout=0)
        except ValueError as exc:
            errors.append(exc)
        await ah.close_websocket(ws)
        return ws

    async with open_peer("aiohttp", ws_url(await serve(app_at_root(handler)))) as peer:
        assert await peer.wait_closed() == CloseFrame(1000, "")
    assert [type(e) for e in errors] == [TypeError, TypeError, ValueError]
    assert "a close code is an int" in str(errors[0])
    assert "a close reason is a str" in str(errors[1])
    assert "timeout must be positive" in str(errors[2])


async def timed_close(ws: web.WebSocketResponse, timings: list[float], *, within: float) -> None:
    """``close_websocket(ws, 1001, "bye", timeout=within)`` succeeds; how long it took goes
    to ``timings``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await ah.close_websocket(ws, 1001, "bye", timeout=within)
    timings.append(loop.time() - started)


# -- safe on closing and closed sockets ------------------------------------------------


async def test_safe_on_closed_and_closing_sockets(serve: Serve) -> None:
    results: list[Any] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        msg = await ws.receive()
        results.append((msg.type, msg.data))
        # Closing: the peer's close frame arrived and has not been answered yet.
        results.append(await ah.close_websocket(ws, 1000, "answering"))
        results.append(await ah.close_websocket(ws, 1000, "twice"))
        results.append(await ah.close_websocket(ws, 1011, "three times"))
        return ws

    with contextlib.closing(await raw_peer(serve, handler)) as peer:
        peer.send_close(4321, b"client leaves")
        assert await peer.read_close() == CloseFrame(1000, "answering")
        assert await peer.at_eof()
    await until(lambda: len(results) == 4)
    assert results == [(aiohttp.WSMsgType.CLOSE, 4321), True, False, False]


async def test_concurrent_closes_send_one_frame(serve: Serve) -> None:
    results: list[bool] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        results.extend(
            await asyncio.gather(
                ah.close_websocket(ws, 4001, "first"),
                ah.close_websocket(ws, 4002, "second"),
                ah.close_websocket(ws, 4003, "third"),
            )
        )
        return ws

    with contextlib.closing(await raw_peer(serve, handler)) as peer:
        assert await peer.read_close() == CloseFrame(4001, "first")
        peer.send_close(4001)
        assert await peer.at_eof()
    await until(lambda: len(results) == 3)
    assert results == [True, False, False]


async def test_peer_that_never_answers_is_dropped_after_the_timeout(serve: Serve) -> None:
    timings: list[float] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=30)
        await ws.prepare(request)
        await timed_close(ws, timings, within=0.2)
        return ws

    with contextlib.closing(await raw_peer(serve, handler)) as peer:
        assert await peer.read_close() == CloseFrame(1001, "bye")
        # The raw peer never answers the close: the server drops the connection.
        assert await peer.at_eof(within=5)
    await until(lambda: bool(timings))
    assert 0.15 < timings[0] < 2


Fill = Callable[[web.Request, web.WebSocketResponse], Awaitable[None]]


async def time_the_close(
    serve: Serve,
    within: float,
    fill: Fill,
    after: Callable[[web.Request], Awaitable[None]] | None = None,
) -> float:
    """How long a timed close (:func:`timed_close`, ``within``) takes in a handler that
    first runs ``fill`` against a raw peer that never reads, then checks the socket is
    closed and runs ``after`` (if given)."""
    timings: list[float] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=30)
        await ws.prepare(request)
        await fill(request, ws)
        await timed_close(ws, timings, within=within)
        assert ws.closed
        if after is not None:
            await after(request)
        return ws

    with contextlib.closing(await raw_peer(serve, handler)):
        await until(lambda: bool(timings), within=10)
    return timings[0]


async def test_peer_that_does_not_read_is_dropped_after_the_timeout(serve: Serve) -> None:
    sending: list[asyncio.Task[None]] = []

    async def fill(request: web.Request, ws: web.WebSocketResponse) -> None:
        transport = request.transport
        assert transport is not None
        # One big message fills every buffer between us and the peer; its send waits.
        sending.append(asyncio.create_task(ws.send_bytes(b"\x00" * 2**25)))
        await until(lambda: transport.get_write_buffer_size() > 0)

    async def after(request: web.Request) -> None:
        assert request.transport is not None
        assert request.transport.is_closing()
        await asyncio.gather(*sending, return_exceptions=True)

    assert 0.15 < await time_the_close(serve, 0.2, fill, after) < 2


async def test_peer_that_did_not_take_a_send_in_time_is_dropped_at_once(serve: Serve) -> None:
    """aiohttp<3.15 leaves a cancelled drain waiter behind: the close must not hang on it."""

    async def fill(request: web.Request, ws: web.WebSocketResponse) -> None:
        blob = b"\x00" * 2**20
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):
                while True:  # fill every buffer between us and the peer
                    await ws.send_bytes(blob)

    assert await time_the_close(serve, 5, fill) < 1


async def test_client_side_socket(serve: Serve) -> None:
    closes: list[CloseFrame] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        msg = await ws.receive()
        closes.append(CloseFrame(msg.data, msg.extra or ""))
        return ws

    base = await serve(app_at_root(handler))
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(base)
        with pytest.raises(ValueError, match="may not be sent"):
            await ah.close_websocket(ws, 1006)
        assert await ah.close_websocket(ws, 4000, "ü" * 100)
        assert not await ah.close_websocket(ws, 4000)
    assert closes == [CloseFrame(4000, "ü" * 61)]


async def test_unprepared_socket_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match=r"prepare\(\) first"):
        await ah.close_websocket(web.WebSocketResponse(), 1000)


async def test_a_cancelled_close_is_cancelled(serve: Serve) -> None:
    outcome: list[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=30)
        await ws.prepare(request)
        closing = asyncio.create_task(ah.close_websocket(ws, 1001, timeout=30))
        await asyncio.sleep(0.1)
        closing.cancel()
        try:
            await closing
        except asyncio.CancelledError:
            outcome.append("cancelled")
        return ws

    with contextlib.closing(await raw_peer(serve, handler)) as peer:
        assert (await peer.read_close()).code == 1001
        await until(lambda: bool(outcome))
    assert outcome == ["cancelled"]


def test_abort_without_a_connection_does_nothing() -> None:
    ah.websocket.close.abort_websocket(web.WebSocketResponse())
