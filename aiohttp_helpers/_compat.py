"""Every aiohttp internal the package relies on, each behind one function.

aiohttp offers no public way to do what these do. Each names the aiohttp versions it was
written and tested for and the upstream issue that would make it unnecessary; when a
release gives a public way, only this module changes. ``tests/core/test_compat.py``
checks, on real aiohttp objects, that the internals read here still exist. Where a
name may be missing (another aiohttp), the function degrades as its docstring says
instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiohttp import payload, web, web_runner
from aiohttp.streams import StreamReader

if TYPE_CHECKING:
    from ssl import SSLContext

    from aiohttp._websocket.writer import WebSocketWriter as WebSocketWriter
    from aiohttp.client_ws import ClientWebSocketResponse
    from aiohttp.worker import GunicornWebWorker

    AnyWebSocket = web.WebSocketResponse | ClientWebSocketResponse

__all__ = [
    "TESTED_AIOHTTP",
    "FrameParser",
    "bytes_payload_value",
    "connection_closed",
    "expect_handler",
    "gunicorn_access_log_format",
    "gunicorn_ssl_context",
    "install_ws_parser",
    "on_frame_sent",
    "part_headers",
    "read_buffered",
    "request_transport_gone",
    "retype_client_ws",
    "run_app_handles",
    "set_expect_handler",
    "stale_drain_cancelled",
    "websocket_mask",
    "writable_ws",
    "writer_paused",
    "ws_closing",
    "ws_transport",
]

#: The aiohttp releases these workarounds were written and tested for (``aiohttp<3.15``).
TESTED_AIOHTTP = ">=3.14,<3.15"

_ClientWS = TypeVar("_ClientWS", bound="ClientWebSocketResponse")


# -- WebSockets: the writer and transport behind a response ----------------------------


def ws_transport(ws: AnyWebSocket) -> asyncio.Transport | None:
    """The transport under a server or client WebSocket, ``None`` before it starts.

    aiohttp 3.14: neither response type exposes its transport; its writer holds it.
    Upstream: aio-libs/aiohttp#8171 (no public access to a WebSocket's transport).
    """
    writer = getattr(ws, "_writer", None)
    transport: asyncio.Transport | None = getattr(writer, "transport", None)
    return transport


def ws_closing(ws: web.WebSocketResponse) -> bool:
    """Whether aiohttp has begun closing ``ws`` (a close frame came, or was sent).

    aiohttp 3.14: a close frame from the peer sets ``_closing`` (and ``close_code``)
    before aiohttp calls ``close()`` to answer it; only ``closed`` is public, and it turns
    true later. Upstream: no upstream issue found (aio-libs/aiohttp#7682 asks for the
    close message on the client side).
    """
    return bool(ws._closing)


def writable_ws(ws: web.WebSocketResponse) -> WebSocketWriter | None:
    """The writer of ``ws`` when a frame may still be written to it now, else ``None``.

    aiohttp 3.14: no public way writes a prepared frame; the writer holds the transport
    and the protocol, and its state (and the response's) says whether a frame may still
    go out. Upstream: aio-libs/aiohttp#8171 (the transport); no upstream issue found
    for writing a prepared frame (aio-libs/aiohttp#9348 added ``send_frame``, which
    still frames the payload per socket).
    """
    writer = ws._writer
    if writer is None or ws._closed or writer._closing or writer.transport.is_closing():
        return None
    return writer


def writer_paused(writer: WebSocketWriter) -> bool:
    """Whether the connection under ``writer`` is over its write buffer's high-water mark.

    aiohttp 3.14: the protocol's flow-control flag is private (``BaseProtocol._paused``).
    Upstream: no upstream issue found.
    """
    return bool(writer.protocol._paused)


def on_frame_sent(ws: web.WebSocketResponse, callback: Callable[[bytes, int], None]) -> bool:
    """Call ``callback(payload, opcode)`` for every frame ``ws`` sends; ``False`` if it cannot.

    aiohttp 3.14: every frame (``send_str``, ``send_bytes``, ``send_json``,
    ``send_frame``, ``ping``, ``close``) goes through the response's writer, which has no
    counters and no hook of its own. Upstream: no upstream issue found.
    """
    writer = getattr(ws, "_writer", None)
    send_frame = getattr(writer, "send_frame", None)
    if send_frame is None:  # pragma: no cover (an aiohttp without a writer's send_frame)
        return False

    async def reporting_send_frame(message: bytes, opcode: int, *args: Any, **kw: Any) -> Any:
        callback(message, opcode)
        return await send_frame(message, opcode, *args, **kw)

    writer.send_frame = reporting_send_frame  # type: ignore[union-attr]
    return True


def retype_client_ws(ws: ClientWebSocketResponse, cls: type[_ClientWS]) -> _ClientWS:
    """``ws`` made an instance of ``cls``, a subclass of its class that adds only behaviour.

    aiohttp 3.14: a ``ClientSession`` takes its WebSocket class once, for every
    ``ws_connect()`` (``ws_response_class``); no call can ask for another, and
    ``ws_connect(session, url)`` is handed a session it did not make. Changing the
    class of the response it returns (a plain Python object, no ``__slots__``) keeps
    aiohttp's state and gives it the subclass's methods, where replacing the methods of
    one instance would hide them from type checkers. Upstream: no upstream issue found.
    """
    if not issubclass(cls, type(ws)):
        raise TypeError(f"{cls.__name__} is not a subclass of {type(ws).__name__}")
    try:
        ws.__class__ = cls
    except TypeError as exc:  # a later aiohttp gave the class __slots__, say
        raise TypeError(
            f"cannot make this aiohttp's {type(ws).__name__} a {cls.__name__} ({exc}); "
            "pass ws_response_class=aiohttp_helpers.websocket.ClientWebSocket to the "
            "ClientSession instead"
        ) from exc
    return ws  # type: ignore[return-value]


class FrameParser(Protocol):
    """What :func:`install_ws_parser` puts in place of aiohttp's frame reader."""

    def feed_data(self, data: bytes) -> tuple[bool, bytes]: ...

    def feed_eof(self) -> None: ...


def install_ws_parser(
    ws: web.WebSocketResponse,
    request: web.BaseRequest,
    start: Callable[[], None],
    make: Callable[[Any, Any, bool], FrameParser],
) -> bool:
    """Run ``start()`` (aiohttp's ``_post_start``) with ``make(...)``'s parser in place.

    ``make(reader, queue, decode_text)`` gets aiohttp's frame reader, the message queue
    it feeds and the response's ``decode_text``; its parser becomes the connection's
    payload parser and is fed the bytes that came with the upgrade request first, so
    that it sees every client byte. Answers ``False`` (leaving aiohttp's reader in place
    and feeding it those bytes) when this aiohttp is not the one it was written for.

    aiohttp 3.14: the reader becomes the connection's payload parser inside
    ``_post_start`` and is fed ``RequestHandler._message_tail`` there; neither the
    parser nor the tail is public. Upstream: no upstream issue found (related:
    aio-libs/aiohttp#12734, the upgrade tail of a failed upgrade).
    """
    handler: Any = request.protocol
    tail: bytes = getattr(handler, "_message_tail", b"")
    if tail:
        handler._message_tail = b""
    start()
    reader, queue = ws._parser, ws._reader
    if (
        reader is None or queue is None or handler._payload_parser is not reader
    ):  # pragma: no cover (another aiohttp)
        if tail:
            handler.data_received(tail)
        return False
    parser = make(reader, queue, ws._decode_text)
    handler._payload_parser = parser
    if tail:
        failed, _ = parser.feed_data(tail)
        if failed:
            handler.close()
    return True


def stale_drain_cancelled() -> bool:
    """Whether a ``CancelledError`` just caught came from aiohttp, not from a cancellation.

    aiohttp 3.14: once a drain is cancelled (a send bounded by a timeout, say), the
    protocol keeps the cancelled waiter (``BaseProtocol._drain_waiter``), and every later
    drain on that connection raises ``CancelledError`` at once, although nobody
    cancelled the task: the peer is not reading. Upstream: no upstream issue found; it
    follows from aio-libs/aiohttp#12307 (the fix of #12281), which awaits the waiter
    without ``asyncio.shield``.
    """
    task = asyncio.current_task()
    return task is not None and not task.cancelling()


try:
    # aiohttp 3.14: the C masking function aiohttp's reader and writer use; not exported.
    # Upstream: no upstream issue found (moved to aiohttp._websocket in aio-libs/aiohttp#9543).
    from aiohttp._websocket.helpers import websocket_mask
except ImportError:  # pragma: no cover (another aiohttp)

    def websocket_mask(mask: bytes, data: bytearray) -> None:
        """XOR ``data`` in place with the 4-byte ``mask`` repeated."""
        n = len(data)
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
        data[:] = (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


# -- request bodies --------------------------------------------------------------------


def connection_closed(exc: RuntimeError) -> bool:
    """Whether ``exc`` is aiohttp saying that a body read came after the connection was lost.

    aiohttp 3.14: ``StreamReader`` raises a plain ``RuntimeError("Connection closed.")``
    for it, told apart only by its message. Upstream: no upstream issue found (related:
    aio-libs/aiohttp#7198, ``ConnectionResetError`` when the transport is closed).
    """
    return str(exc) == "Connection closed."


def read_buffered(content: StreamReader) -> bytes:
    """The body bytes ``content`` still buffers, even after the connection was lost.

    aiohttp 3.14: once the connection is lost every read raises at once, although bytes
    that arrived before are still buffered; only the private ``_read_nowait`` hands them
    over. Answers ``b""`` where it is missing. Upstream: no upstream issue found.
    """
    read = getattr(content, "_read_nowait", None)
    if read is None:  # pragma: no cover (another aiohttp)
        return b""
    data: bytes = read(-1)
    return data


def request_transport_gone(content: StreamReader) -> bool:
    """Whether the connection a request body arrives on is closed or closing.

    aiohttp 3.14: the body's ``StreamReader`` keeps its protocol private (``_protocol``),
    and so the transport. Upstream: no upstream issue found.
    """
    protocol: Any = getattr(content, "_protocol", None)
    transport = getattr(protocol, "transport", None)
    return transport is None or bool(transport.is_closing())


# -- routes, payloads, runners, gunicorn -----------------------------------------------


def expect_handler(route: web.ResourceRoute) -> Callable[..., Any]:
    """The ``Expect: 100-continue`` handler of ``route``.

    aiohttp 3.14 (and 4): the handler is only given to ``add_route()``; no getter or
    setter exists. Upstream: no upstream issue found.
    """
    handler: Callable[..., Any] = route._expect_handler
    return handler


def set_expect_handler(route: web.ResourceRoute, handler: Callable[..., Any]) -> None:
    """Replace the ``Expect: 100-continue`` handler of ``route`` (see :func:`expect_handler`)."""
    route._expect_handler = handler


def bytes_payload_value(part: payload.BytesPayload) -> bytes:
    """The bytes a ``BytesPayload`` will send.

    aiohttp 3.14 (and 4): kept in ``_value``, nowhere public. Upstream: no upstream
    issue found.
    """
    data: bytes = part._value
    return data


def part_headers(part: payload.Payload) -> bytes:
    """A multipart part's header block as ``MultipartWriter`` writes it (CRLF-ended).

    aiohttp 3.14: ``Payload._binary_headers`` is private. Upstream: no upstream issue
    found.
    """
    head: bytes = part._binary_headers
    return head


def run_app_handles(loop: asyncio.AbstractEventLoop, sig: int) -> bool:
    """Whether ``loop``'s handler for ``sig`` is aiohttp's runner's graceful exit.

    aiohttp 3.14: no public way tells whether a runner handles signals (the runner is
    not reachable from the app and its ``_handle_signals`` is private), and asyncio
    (3.11 to 3.14) keeps no public record of a loop's signal callbacks. So this reads the
    loop's ``_signal_handlers`` and compares with aiohttp's ``_raise_graceful_exit``; if
    either name goes away the answer is ``False``. Upstream: no upstream issue found
    (related: aio-libs/aiohttp#4414, ``GracefulExit`` under ``handle_signals``).
    """
    raise_exit: object = getattr(web_runner, "_raise_graceful_exit", None)
    handle = getattr(loop, "_signal_handlers", {}).get(sig)
    callback: object = getattr(handle, "_callback", None)
    return raise_exit is not None and callback is raise_exit


def gunicorn_access_log_format(worker: GunicornWebWorker, source: str) -> str:
    """gunicorn's ``access_log_format`` as aiohttp's worker turns it into aiohttp's.

    aiohttp 3.14: the check is the worker's private ``_get_valid_log_format``.
    Upstream: aio-libs/aiohttp#705 (gunicorn's default format is not aiohttp's).
    """
    return worker._get_valid_log_format(source)


def gunicorn_ssl_context(worker: GunicornWebWorker) -> SSLContext:
    """The SSL context aiohttp's worker builds from gunicorn's configuration.

    aiohttp 3.14: the worker's private ``_create_ssl_context``. Upstream: no upstream
    issue found.
    """
    return worker._create_ssl_context(worker.cfg)
