"""``ServerWebSocket``: the ``WebSocketResponse`` wrapped handlers get, and its message iterator."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Literal

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from .._compat import install_ws_parser, ws_closing, ws_transport
from .close import (
    BAD_JSON,
    IDLE,
    NO_STATUS,
    NOT_BINARY,
    NOT_TEXT,
    PROTOCOL_REASONS,
    CloseFrame,
    CloseRecord,
    WSClose,
)
from .codes import may_send
from .frames import StrictFrames

__all__ = ["MessageKind", "Messages", "ServerWebSocket"]

log = logging.getLogger("aiohttp_helpers.websocket")

MessageKind = Literal["any", "text", "bytes", "json"]


class ServerWebSocket(web.WebSocketResponse):
    """The ``WebSocketResponse`` that wrapped handlers get.

    On top of aiohttp's it:

    - validates every close code it sends and cuts reasons to 123 UTF-8 bytes;
    - records the close frames sent and received (:attr:`close_sent`,
      :attr:`close_received`, both in :attr:`close_record`): :attr:`close_code` and
      :attr:`close_reason` are those of the frame that began the closing handshake, or
      1006 when the connection ended without one (aiohttp reports 1006 after a protocol
      error, and ``async for`` hides the reason);
    - echoes the peer's close code, as RFC 6455 suggests, and answers an invalid one
      with 1002;
    - offers :meth:`messages`, an iterator of text, bytes or parsed JSON;
    - with ``strict_frames`` (the default), fails the connection on client frames that
      aiohttp lets through: unmasked or with a non-minimal length (1002), and text that
      is not UTF-8 as soon as the bad byte arrives (1007); see
      :mod:`aiohttp_helpers.websocket.frames`.
    """

    def __init__(
        self, *, messages: MessageKind = "any", strict_frames: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.message_kind: MessageKind = messages
        self.strict_frames = strict_frames
        #: The close frames sent and received, and which came first.
        self.close_record = CloseRecord()
        #: Data messages received and their payload bytes (text counted as UTF-8).
        self.messages_in = 0
        self.bytes_in = 0
        #: The frame the socket was closed with at once because it was not admitted (a
        #: connection cap: 1013; the app stopping: 1001/1012), else ``None``.
        self.refused: CloseFrame | None = None

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        if not self.strict_frames:
            super()._post_start(request, protocol, writer)
            return
        # StrictFrames takes the place of aiohttp's reader, so every client byte is checked.
        start = functools.partial(super()._post_start, request, protocol, writer)
        if not install_ws_parser(self, request, start, _strict_frames):  # pragma: no cover
            # Not the aiohttp this was written for: its reader stays as it is.
            log.warning("strict WebSocket frame checks are off: unknown aiohttp reader")

    @property
    def close_sent(self) -> CloseFrame | None:
        """The last close frame this server sent (``None`` if none)."""
        return self.close_record.sent

    @property
    def close_received(self) -> CloseFrame | None:
        """The client's close frame (``None`` if none came)."""
        return self.close_record.received

    @property
    def close_code(self) -> int | None:
        """The code the connection ended with (``None`` while it is open)."""
        first = self.close_record.first
        if first is not None:
            return first.code
        return super().close_code

    @property
    def closed_by(self) -> Literal["server", "client"] | None:
        """Who sent the first close frame; ``None`` while open or when none came (1006)."""
        record = self.close_record
        if record.first is None:
            return None
        return "client" if record.peer_first else "server"

    @property
    def close_reason(self) -> str:
        """The reason that came with :attr:`close_code` (``""`` if none)."""
        first = self.close_record.first
        return "" if first is None else first.reason

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes | str = b"", drain: bool = True
    ) -> bool:
        """Close with a validated ``code`` and a ``message`` cut to 123 UTF-8 bytes.

        Raises:
            ValueError: ``code`` may not be sent.
        """
        if ws_transport(self) is None or self.closed:
            return await super().close(code=code, message=b"", drain=drain)
        record = self.close_record
        # A close frame from the peer sets the closing state and close_code before aiohttp
        # calls close() to answer it (see _compat.ws_closing); anything else is our own.
        peer = super().close_code
        # A lost connection also sets _closing, with 1006 and the exception recorded.
        lost = peer == WSCloseCode.ABNORMAL_CLOSURE and self.exception() is not None
        if ws_closing(self) and peer is not None and not lost:
            if peer == 0:
                # An empty close frame: "no status received"; answer with a plain 1000.
                record.on_received(CloseFrame(NO_STATUS, ""))
                code, payload = WSCloseCode.OK, b""
            elif may_send(peer):
                record.on_received(CloseFrame(peer, ""))
                code, payload = peer, b""
            else:
                log.debug("peer sent the invalid close code %d", peer)
                code, payload = WSCloseCode.PROTOCOL_ERROR, b"invalid close code"
                record.on_sent(CloseFrame(code, payload.decode()))
        else:
            frame = CloseFrame.checked(code, message)
            code, payload = frame.code, frame.reason.encode("utf-8")
            if not payload and code in PROTOCOL_REASONS:
                payload = PROTOCOL_REASONS[code].encode()
            transport = ws_transport(self)
            if transport is not None and not transport.is_closing():
                record.on_sent(CloseFrame(code, payload.decode("utf-8")))
        return await super().close(code=code, message=payload, drain=drain)

    async def receive(self, timeout: float | None = None) -> WSMessage:  # noqa: ASYNC109
        """aiohttp's ``receive()``, recording the peer's close frame on the way past."""
        msg = await super().receive(timeout)
        if msg.type is WSMsgType.CLOSE:
            self._on_close_message(msg)
        elif msg.type is _TEXT or msg.type is _BINARY:
            self._count_in(msg.data)
        return msg

    def _count_in(self, data: str | bytes) -> None:
        self.messages_in += 1
        if isinstance(data, str) and not data.isascii():
            self.bytes_in += len(data.encode("utf-8", "surrogatepass"))
        else:
            self.bytes_in += len(data)

    def _on_close_message(self, msg: WSMessage) -> None:
        frame = CloseFrame.from_message(msg)
        record = self.close_record
        received = record.received
        if (received is not None and received.code == frame.code) or (
            received is None and (frame.code == NO_STATUS or may_send(frame.code))
        ):
            record.on_received(frame)

    def messages(self) -> Messages:
        """Iterate over incoming messages as :attr:`message_kind` says.

        ``"any"`` yields text as ``str`` and binary as ``bytes``; ``"text"`` and
        ``"bytes"`` yield only that kind; ``"json"`` yields parsed text messages.
        Iteration ends when the connection closes. Data of the wrong kind raises
        :class:`WSClose` with 1003, JSON that does not parse with 1007, and no message
        for ``receive_timeout`` seconds with 1000 ("idle timeout"): the handler wrapper
        closes the socket with that code.
        """
        return Messages(self, self.message_kind)


_TEXT, _BINARY, _CLOSE = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CLOSE


class Messages:
    """The async iterator :meth:`ServerWebSocket.messages` returns."""

    __slots__ = ("_binary", "_json", "_receive", "_text", "_ws")

    def __init__(self, ws: ServerWebSocket, kind: MessageKind) -> None:
        self._ws = ws
        # The hot path: aiohttp's own receive(), bound once; close frames are recorded here.
        self._receive = web.WebSocketResponse.receive.__get__(ws)
        self._text = kind in ("any", "text")
        self._binary = kind in ("any", "bytes")
        self._json = kind == "json"

    def __aiter__(self) -> Messages:
        return self

    async def __anext__(self) -> Any:
        try:
            msg = await self._receive()
        except TimeoutError:
            raise WSClose(*IDLE) from None
        kind = msg.type
        if kind is _TEXT or kind is _BINARY:
            self._ws._count_in(msg.data)
        if kind is _TEXT:
            if self._text:
                return msg.data
            if self._json:
                try:
                    return json.loads(msg.data)
                except (ValueError, RecursionError):
                    raise WSClose(*BAD_JSON) from None
            raise WSClose(*NOT_BINARY)
        if kind is _BINARY:
            if self._binary:
                return msg.data
            raise WSClose(*NOT_TEXT)
        if kind is _CLOSE:
            self._ws._on_close_message(msg)
        # CLOSE, CLOSING, CLOSED or ERROR: aiohttp has already answered the peer.
        raise StopAsyncIteration


def _strict_frames(reader: Any, queue: Any, decode_text: bool) -> StrictFrames:
    return StrictFrames(reader, queue, check_text=decode_text)
