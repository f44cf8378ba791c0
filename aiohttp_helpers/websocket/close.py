"""Close frames: checked and encoded, the package's named ones, ``WSClose``, who closed first.

Everything the package knows about a close frame is here, as the ``websockets`` library's
``Close`` holds it: :class:`CloseFrame` reads one from an aiohttp message
(:meth:`CloseFrame.from_message`), checks one before it is sent (:meth:`CloseFrame.checked`:
a code that may be sent, a reason cut to 123 UTF-8 bytes on a character boundary) and
encodes its payload; the frames the package sends for its own reasons are named once,
below; :class:`CloseRecord` keeps the frames a connection sent and received and which came
first, filled by the server's and the client's WebSocket classes alike; and
:func:`close_websocket` closes any socket with a checked frame within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, NamedTuple

from aiohttp import ClientWebSocketResponse, WSCloseCode, WSMessage, web

from .._compat import stale_drain_cancelled, ws_transport
from .codes import check_close_code

__all__ = [
    "BAD_JSON",
    "HANDLER_CANCELLED",
    "IDLE",
    "INTERNAL_ERROR",
    "MAX_REASON_BYTES",
    "NORMAL",
    "NOT_BINARY",
    "NOT_TEXT",
    "PROTOCOL_REASONS",
    "RESTART",
    "SHUTDOWN",
    "TOO_MANY",
    "TOO_MANY_FROM_CLIENT",
    "TOO_SLOW",
    "CloseFrame",
    "CloseRecord",
    "WSClose",
    "abort_websocket",
    "close_websocket",
    "encode_reason",
    "stale_drain_cancelled",
    "truncate_reason",
]

log = logging.getLogger("aiohttp_helpers.websocket")

#: A close frame's payload is at most 125 bytes, two of which carry the code.
MAX_REASON_BYTES = 123

#: The code a close frame without one is reported with (RFC 6455, section 7.1.5).
NO_STATUS: Final = 1005

AnyWebSocket = web.WebSocketResponse | ClientWebSocketResponse


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


class CloseFrame(NamedTuple):
    """A close code and its reason, as sent or received."""

    code: int
    reason: str

    @classmethod
    def from_message(cls, msg: WSMessage) -> CloseFrame:
        """The frame an aiohttp ``CLOSE`` message carries (1005 when it had no code)."""
        return cls(msg.data or NO_STATUS, msg.extra or "")

    @classmethod
    def checked(cls, code: int, reason: str | bytes = "") -> CloseFrame:
        """A frame that may be sent: ``code`` checked, ``reason`` cut to 123 UTF-8 bytes.

        Raises:
            ValueError: ``code`` may not be sent, or ``reason`` is bytes that are not UTF-8.
            TypeError: ``code`` is not an ``int`` or ``reason`` not text.
        """
        return cls(check_close_code(code), encode_reason(reason).decode("utf-8"))

    @property
    def payload(self) -> bytes:
        """The frame's payload on the wire: the code in two bytes, then the UTF-8 reason."""
        return self.code.to_bytes(2, "big") + encode_reason(self.reason)


# -- the frames the package sends for its own reasons -----------------------------------

#: The handler returned.
NORMAL = CloseFrame(WSCloseCode.OK, "")
#: No message came for ``receive_timeout`` seconds.
IDLE = CloseFrame(WSCloseCode.OK, "idle timeout")
#: The handler raised an exception it did not handle (the reason never is its text).
INTERNAL_ERROR = CloseFrame(WSCloseCode.INTERNAL_ERROR, "internal server error")
#: The server cancelled the handler.
HANDLER_CANCELLED = CloseFrame(WSCloseCode.GOING_AWAY, "server going away")
#: Data of the kind the handler does not take.
NOT_TEXT = CloseFrame(WSCloseCode.UNSUPPORTED_DATA, "binary messages are not accepted")
NOT_BINARY = CloseFrame(WSCloseCode.UNSUPPORTED_DATA, "text messages are not accepted")
#: A text message that is not JSON, where JSON is expected.
BAD_JSON = CloseFrame(WSCloseCode.INVALID_TEXT, "message is not valid JSON")
#: A peer that does not take messages in time.
TOO_SLOW = CloseFrame(WSCloseCode.POLICY_VIOLATION, "too slow to receive messages")
#: The app is stopping, or restarting.
SHUTDOWN = CloseFrame(WSCloseCode.GOING_AWAY, "server shutting down")
RESTART = CloseFrame(WSCloseCode.SERVICE_RESTART, "server restarting")
#: A connection cap is reached.
TOO_MANY = CloseFrame(WSCloseCode.TRY_AGAIN_LATER, "too many connections: try again later")
TOO_MANY_FROM_CLIENT = CloseFrame(
    WSCloseCode.TRY_AGAIN_LATER, "too many connections from your address: try again later"
)
#: Reasons for the codes aiohttp sends on its own, without one.
PROTOCOL_REASONS: Final[dict[int, str]] = {
    WSCloseCode.PROTOCOL_ERROR: "protocol error",
    WSCloseCode.INVALID_TEXT: "text message is not valid UTF-8",
    WSCloseCode.MESSAGE_TOO_BIG: "message too big",
}


class WSClose(Exception):
    """Raise it in a WebSocket handler to end the connection with ``code`` and ``reason``.

    Not an error: control flow that the handler wrapper turns into a close frame.

    Raises:
        ValueError: ``code`` may not be sent (checked here, not when the frame goes out).
    """

    def __init__(self, code: int = WSCloseCode.OK, reason: str = "") -> None:
        self.code, self.reason = CloseFrame.checked(code, reason)
        super().__init__(self.code, self.reason)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}".rstrip()

    @property
    def frame(self) -> CloseFrame:
        """The frame the connection is closed with."""
        return CloseFrame(self.code, self.reason)


# -- who closed first ------------------------------------------------------------------


class CloseRecord:
    """The close frames one connection sent and received, and which came first.

    aiohttp reports the code of the peer's answer even when this side closed first, reads
    1006 after a protocol error it answered itself, and ``async for msg in ws`` hides the
    peer's reason. The server's and the client's WebSocket classes fill a record as the
    frames go past, so both sides tell the same story.
    """

    __slots__ = ("first", "received", "sent")

    def __init__(self) -> None:
        #: The last frame this side sent, and the peer's frame.
        self.sent: CloseFrame | None = None
        self.received: CloseFrame | None = None
        #: The frame that began the closing handshake (``None``: none yet, or none at all).
        self.first: CloseFrame | None = None

    def __repr__(self) -> str:
        return f"CloseRecord(first={self.first!r}, sent={self.sent!r}, received={self.received!r})"

    def on_sent(self, frame: CloseFrame) -> None:
        """Record a frame this side sent."""
        self.sent = frame
        if self.first is None:
            self.first = frame

    def on_received(self, frame: CloseFrame) -> None:
        """Record the peer's frame; its reason, learnt later, completes one recorded without.

        aiohttp answers a peer's close (so the frame's code is known) before its message,
        with the reason, comes out of ``receive()``.
        """
        received = self.received
        if received is None:
            self.received = frame
            if self.first is None:
                self.first = frame
        elif received.code == frame.code and not received.reason:
            self.received = frame
            if self.first is received:
                self.first = frame

    @property
    def peer_first(self) -> bool:
        """Whether the peer's frame began the closing handshake."""
        first = self.first
        return first is not None and first is self.received


# -- closing ----------------------------------------------------------------------------


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
    frame = CloseFrame.checked(code, reason)
    code, message = frame.code, frame.reason.encode("utf-8")
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
