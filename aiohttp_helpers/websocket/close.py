"""Closing a WebSocket safely: a valid code, a reason that fits, a bounded wait."""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from aiohttp import ClientWebSocketResponse, web

from .._compat import stale_drain_cancelled, ws_transport
from .codes import check_close_code

__all__ = [
    "MAX_REASON_BYTES",
    "TOO_SLOW",
    "CloseFrame",
    "abort_websocket",
    "close_websocket",
    "encode_reason",
    "stale_drain_cancelled",
    "truncate_reason",
]

log = logging.getLogger("aiohttp_helpers.websocket")

#: A close frame's payload is at most 125 bytes, two of which carry the code.
MAX_REASON_BYTES = 123

AnyWebSocket = web.WebSocketResponse | ClientWebSocketResponse


class CloseFrame(NamedTuple):
    """A close code and its reason, as sent or received."""

    code: int
    reason: str


#: What a peer that does not take messages in time is closed with.
TOO_SLOW = CloseFrame(1008, "too slow to receive messages")


def encode_reason(reason: str | bytes) -> bytes:
    """``reason`` as UTF-8, cut to 123 bytes on a character boundary.

    Raises:
        TypeError: ``reason`` is neither ``str`` nor ``bytes``.
        ValueError: ``reason`` is ``bytes`` that are not UTF-8.
    """
    if isinstance(reason, str):
        try:
            data = reason.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate has no UTF-8 form: it becomes "?" rather than an error.
            data = reason.encode("utf-8", "replace")
    elif isinstance(reason, bytes | bytearray):
        data = bytes(reason)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("a close reason must be UTF-8 text") from None
    else:
        raise TypeError(f"a close reason is a str, got {type(reason).__name__}")
    if len(data) <= MAX_REASON_BYTES:
        return data
    # The input is valid UTF-8, so a cut leaves at most one incomplete character at the end.
    return data[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


def truncate_reason(reason: str) -> str:
    """``reason`` shortened to at most 123 UTF-8 bytes, never splitting a character."""
    return encode_reason(reason).decode("utf-8")


def abort_websocket(ws: AnyWebSocket) -> None:
    """Drop the connection at once, discarding anything still buffered for the peer."""
    transport = ws_transport(ws)
    if transport is not None:
        transport.abort()


async def close_websocket(
    ws: AnyWebSocket,
    code: int = 1000,
    reason: str = "",
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 (past it the connection is dropped, not cancelled)
) -> bool:
    """Close ``ws`` with a valid ``code`` and ``reason``, waiting at most ``timeout`` seconds.

    The reason is cut to 123 UTF-8 bytes on a character boundary. A socket that is
    already closed is left alone (``False``); one that is closing gets no second close
    frame. Past ``timeout`` (a peer that does not read, or does not answer the closing
    handshake) the connection is dropped. Works on server and client sockets.

    Returns:
        ``True`` when this call closed the socket.

    Raises:
        ValueError: ``code`` may not be sent (1004, 1005, 1006, 1015, below 1000,
            1016-2999, above 4999), or ``reason`` is bytes that are not UTF-8.
        TypeError: ``code`` is not an ``int`` or ``reason`` not a ``str``.
    """
    code = check_close_code(code)
    message = encode_reason(reason)
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if ws.closed:
        return False
    try:
        async with asyncio.timeout(timeout):
            return await ws.close(code=code, message=message)
    except TimeoutError:
        log.debug("closing handshake with code %d took over %gs: connection dropped", code, timeout)
        abort_websocket(ws)
        return True
    except asyncio.CancelledError:
        if stale_drain_cancelled():
            log.debug("the peer is not reading: connection dropped instead of closed")
            abort_websocket(ws)
            return True
        raise
