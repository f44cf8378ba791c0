"""``@websocket_handler``: a prepared, registered socket that always ends with the right code."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from aiohttp import WSCloseCode, WSMessage, WSMsgType, hdrs, web

from .._compat import install_ws_parser, ws_closing, ws_transport
from ..config import WebSocketSettings
from ..errors import OriginNotAllowed
from ..keys import HELPERS_KEY, WS_SETTINGS_KEY
from ..origins import check_origin
from .close import TOO_SLOW, CloseFrame, close_websocket, encode_reason, stale_drain_cancelled
from .codes import check_close_code, may_send
from .frames import StrictFrames

if TYPE_CHECKING:
    from ..signals import RequestSignals
    from .registry import WebSocketRegistry

__all__ = ["MessageKind", "Messages", "ServerWebSocket", "WSClose", "websocket_handler"]

log = logging.getLogger("aiohttp_helpers.websocket")

MessageKind = Literal["any", "text", "bytes", "json"]

#: What a wrapped handler looks like: ``async def handler(request, ws) -> None``.
WSHandler = Callable[[web.Request, "ServerWebSocket"], Awaitable[None]]
#: What ``@websocket_handler`` returns: an aiohttp handler.
WrappedHandler = Callable[[web.Request], Awaitable["ServerWebSocket"]]

INTERNAL_ERROR = CloseFrame(WSCloseCode.INTERNAL_ERROR, "internal server error")
IDLE = CloseFrame(WSCloseCode.OK, "idle timeout")
NORMAL = CloseFrame(WSCloseCode.OK, "")
HANDLER_CANCELLED = CloseFrame(WSCloseCode.GOING_AWAY, "server going away")
NOT_TEXT = CloseFrame(WSCloseCode.UNSUPPORTED_DATA, "binary messages are not accepted")
NOT_BINARY = CloseFrame(WSCloseCode.UNSUPPORTED_DATA, "text messages are not accepted")
BAD_JSON = CloseFrame(WSCloseCode.INVALID_TEXT, "message is not valid JSON")
#: Reasons for the codes aiohttp sends on its own, without one.
_PROTOCOL_REASONS: dict[int, str] = {
    WSCloseCode.PROTOCOL_ERROR: "protocol error",
    WSCloseCode.INVALID_TEXT: "text message is not valid UTF-8",
    WSCloseCode.MESSAGE_TOO_BIG: "message too big",
}


class WSClose(Exception):
    """Raise it in a WebSocket handler to end the connection with ``code`` and ``reason``.

    Raises:
        ValueError: ``code`` may not be sent (checked here, not when the frame goes out).
    """

    def __init__(self, code: int = WSCloseCode.OK, reason: str = "") -> None:
        self.code = check_close_code(code)
        self.reason = encode_reason(reason).decode("utf-8")
        super().__init__(self.code, self.reason)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}".rstrip()


class ServerWebSocket(web.WebSocketResponse):
    """The ``WebSocketResponse`` that wrapped handlers get.

    On top of aiohttp's it:

    - validates every close code it sends and cuts reasons to 123 UTF-8 bytes;
    - records the close frames sent and received (:attr:`close_sent`,
      :attr:`close_received`): :attr:`close_code` and :attr:`close_reason` are those of
      the frame that began the closing handshake, or 1006 when the connection ended
      without one (aiohttp reports 1006 after a protocol error, and ``async for``
      hides the reason);
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
        self.close_sent: CloseFrame | None = None
        self.close_received: CloseFrame | None = None
        self._first_close: CloseFrame | None = None
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
    def close_code(self) -> int | None:
        """The code the connection ended with (``None`` while it is open)."""
        first = self._first_close
        if first is not None:
            return first.code
        return super().close_code

    @property
    def closed_by(self) -> Literal["server", "client"] | None:
        """Who sent the first close frame; ``None`` while open or when none came (1006)."""
        first = self._first_close
        if first is None:
            return None
        return "client" if first is self.close_received else "server"

    @property
    def close_reason(self) -> str:
        """The reason that came with :attr:`close_code` (``""`` if none)."""
        first = self._first_close
        return "" if first is None else first.reason

    def _record_received(self, frame: CloseFrame) -> None:
        self.close_received = frame
        if self._first_close is None:
            self._first_close = frame

    def _record_sent(self, frame: CloseFrame) -> None:
        self.close_sent = frame
        if self._first_close is None:
            self._first_close = frame

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes | str = b"", drain: bool = True
    ) -> bool:
        """Close with a validated ``code`` and a ``message`` cut to 123 UTF-8 bytes.

        Raises:
            ValueError: ``code`` may not be sent.
        """
        if ws_transport(self) is None or self.closed:
            return await super().close(code=code, message=b"", drain=drain)
        # A close frame from the peer sets the closing state and close_code before aiohttp
        # calls close() to answer it (see _compat.ws_closing); anything else is our own.
        peer = super().close_code
        # A lost connection also sets _closing, with 1006 and the exception recorded.
        lost = peer == WSCloseCode.ABNORMAL_CLOSURE and self.exception() is not None
        if ws_closing(self) and peer is not None and not lost:
            if peer == 0:
                # An empty close frame: "no status received"; answer with a plain 1000.
                self._record_received(CloseFrame(1005, ""))
                code, payload = WSCloseCode.OK, b""
            elif may_send(peer):
                self._record_received(CloseFrame(peer, ""))
                code, payload = peer, b""
            else:
                log.debug("peer sent the invalid close code %d", peer)
                code, payload = WSCloseCode.PROTOCOL_ERROR, b"invalid close code"
                self._record_sent(CloseFrame(code, payload.decode()))
        else:
            code = check_close_code(code)
            payload = encode_reason(message)
            if not payload and code in _PROTOCOL_REASONS:
                payload = _PROTOCOL_REASONS[code].encode()
            transport = ws_transport(self)
            if transport is not None and not transport.is_closing():
                self._record_sent(CloseFrame(code, payload.decode("utf-8")))
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
        code = msg.data or 1005
        received = self.close_received
        if received is not None and received.code == code and not received.reason:
            frame = CloseFrame(code, msg.extra or "")
            self.close_received = frame
            if self._first_close is received:
                self._first_close = frame
        elif received is None and (code == 1005 or may_send(code)):
            self._record_received(CloseFrame(code, msg.extra or ""))

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


_UNSET: Any = object()


@overload
def websocket_handler(func: WSHandler, /) -> WrappedHandler: ...


@overload
def websocket_handler(
    *,
    heartbeat: float | None = ...,
    max_msg_size: int = ...,
    receive_timeout: float | None = ...,
    protocols: tuple[str, ...] = ...,
    compress: bool = ...,
    messages: MessageKind = ...,
    close_timeout: float = ...,
    max_connections: int | None = ...,
    max_connections_per_client: int | None = ...,
    allowed_origins: tuple[str, ...] | None = ...,
    strict_frames: bool = ...,
) -> Callable[[WSHandler], WrappedHandler]: ...


def websocket_handler(
    func: WSHandler | None = None,
    /,
    *,
    heartbeat: float | None = _UNSET,
    max_msg_size: int = _UNSET,
    receive_timeout: float | None = _UNSET,
    protocols: tuple[str, ...] = _UNSET,
    compress: bool = _UNSET,
    messages: MessageKind = _UNSET,
    close_timeout: float = _UNSET,
    max_connections: int | None = _UNSET,
    max_connections_per_client: int | None = _UNSET,
    allowed_origins: tuple[str, ...] | None = _UNSET,
    strict_frames: bool = _UNSET,
) -> WrappedHandler | Callable[[WSHandler], WrappedHandler]:
    """Turn ``async def handler(request, ws) -> None`` into an aiohttp WebSocket handler.

    The wrapper prepares a :class:`ServerWebSocket` with the app's
    :class:`~aiohttp_helpers.WebSocketSettings` (looked up through
    ``request.config_dict``) and the overrides given here, registers it in
    ``helpers.websockets``, runs the handler, and closes the socket with the code the
    way the handler ended calls for:

    ==========================================  =====================================
    the handler returns                         1000
    ``raise WSClose(code, reason)``             that code and reason
    data of the wrong kind / bad JSON           1003 / 1007 (from :meth:`messages`)
    text that is not UTF-8 / message too big    1007 / 1009 (sent by aiohttp)
    any other exception                         1011, logged with its traceback
    the app is stopping                         1001, or 1012 when restarting
    a connection cap is reached                 1013
    an unmasked frame, a non-minimal length     1002 (``strict_frames``)
    ==========================================  =====================================

    Over a cap, or while the app is stopping, the upgrade is accepted and closed at
    once, because a browser cannot see an HTTP status. An ``Origin`` that
    ``allowed_origins`` does not allow is refused before the upgrade, with 403
    (:class:`~aiohttp_helpers.OriginNotAllowed`): the page that sent it is not the
    app's, and must learn nothing.
    """
    overrides = {
        name: value
        for name, value in (
            ("heartbeat", heartbeat),
            ("max_msg_size", max_msg_size),
            ("receive_timeout", receive_timeout),
            ("protocols", protocols),
            ("compress", compress),
            ("messages", messages),
            ("close_timeout", close_timeout),
            ("max_connections", max_connections),
            ("max_connections_per_client", max_connections_per_client),
            ("allowed_origins", allowed_origins),
            ("strict_frames", strict_frames),
        )
        if value is not _UNSET
    }
    # Checked now, so that a bad value fails when the route is declared.
    defaults = WebSocketSettings().replace(**overrides)

    def decorate(handler: WSHandler) -> WrappedHandler:
        if not asyncio.iscoroutinefunction(handler):
            raise TypeError("websocket_handler() wraps an async def handler(request, ws)")
        cache: dict[int, tuple[WebSocketSettings, WebSocketSettings]] = {}

        def settings_for(request: web.Request) -> WebSocketSettings:
            base = request.config_dict.get(WS_SETTINGS_KEY)
            if base is None:
                return defaults
            hit = cache.get(id(base))
            if hit is None or hit[0] is not base:
                hit = (base, base.replace(**overrides) if overrides else base)
                cache[id(base)] = hit
            return hit[1]

        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> ServerWebSocket:
            return await _serve(request, handler, settings_for(request))

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate


async def _serve(
    request: web.Request, handler: WSHandler, settings: WebSocketSettings
) -> ServerWebSocket:
    _check_origin(request, settings)
    ws = ServerWebSocket(
        messages=settings.messages,
        strict_frames=settings.strict_frames,
        timeout=settings.close_timeout,
        receive_timeout=settings.receive_timeout,
        heartbeat=settings.heartbeat,
        protocols=settings.protocols,
        compress=settings.compress,
        max_msg_size=settings.max_msg_size,
    )
    await ws.prepare(request)
    helpers = request.config_dict.get(HELPERS_KEY)
    registry = helpers.websockets if helpers is not None else None
    if registry is not None:
        refusal = registry.admit(ws, client=request.remote or "", settings=settings)
        if refusal is not None:
            log.debug("WebSocket refused with %d: %s", refusal.code, refusal.reason)
            ws.refused = refusal
            await close_websocket(ws, *refusal, timeout=settings.close_timeout)
            return ws
    signals = helpers.signals if helpers is not None else None
    frame: CloseFrame | None = NORMAL
    try:
        if signals is not None and signals.on_ws_open and signals.on_ws_open.frozen:
            await signals.on_ws_open.send(request, ws)
        await handler(request, ws)
    except WSClose as exc:
        frame = CloseFrame(exc.code, exc.reason)
    except asyncio.CancelledError:
        if not stale_drain_cancelled():
            # The server cancelled the handler (client gone, or shutdown past its timeout).
            frame = HANDLER_CANCELLED
            raise
        # A send found the peer not reading (see stale_drain_cancelled): not a cancellation.
        log.debug("WebSocket handler stopped: the peer is not reading")
        frame = TOO_SLOW
    except GeneratorExit:  # pragma: no cover (only when a loop is torn down mid-handler)
        # The coroutine is being destroyed with its loop: nothing can be awaited any more.
        frame = None
        raise
    except Exception as exc:
        if isinstance(exc, ConnectionError) and (ws.closed or _transport_closing(request)):
            # A send on a socket that closed under the handler: the end, not an error.
            log.debug("WebSocket handler stopped: %s", exc)
        else:
            log.exception("WebSocket handler %s failed", getattr(handler, "__qualname__", handler))
            frame = INTERNAL_ERROR
    finally:
        if frame is not None:
            await _finish(request, ws, frame, settings, registry, signals)
        elif registry is not None:  # pragma: no cover (see GeneratorExit above)
            registry.discard(ws)
    return ws


def _check_origin(request: web.Request, settings: WebSocketSettings) -> None:
    """Refuse, before the upgrade, a request from a page the app does not trust."""
    try:
        check_origin(
            request.headers.getall(hdrs.ORIGIN, []), request.host, settings.allowed_origins
        )
    except OriginNotAllowed as exc:
        log.info(
            "WebSocket upgrade to %s refused with 403: %s (Origin %r, Host %r)",
            request.path,
            exc.why,
            exc.origin,
            exc.host,
        )
        # An HTTPException too: the package's middleware answers it, or aiohttp itself
        # on an app without setup(), with the same problem document.
        raise


def _strict_frames(reader: Any, queue: Any, decode_text: bool) -> StrictFrames:
    return StrictFrames(reader, queue, check_text=decode_text)


def _transport_closing(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _finish(
    request: web.Request,
    ws: ServerWebSocket,
    frame: CloseFrame,
    settings: WebSocketSettings,
    registry: WebSocketRegistry | None,
    signals: RequestSignals | None,
) -> None:
    try:
        if not ws.closed:
            await close_websocket(ws, *frame, timeout=settings.close_timeout)
    finally:
        if registry is not None:
            registry.discard(ws)
        if signals is not None and signals.on_ws_close and signals.on_ws_close.frozen:
            code = ws.close_code
            await signals.on_ws_close.send(
                request, ws, WSCloseCode.ABNORMAL_CLOSURE if code is None else code, ws.close_reason
            )
