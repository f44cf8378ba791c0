"""``@websocket_handler``: a prepared, registered socket that always ends with the right code."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, overload

from aiohttp import WSCloseCode, hdrs, web

from ..config import WebSocketSettings
from ..errors import OriginNotAllowed
from ..keys import SIGNALS_KEY, WEBSOCKETS_KEY, WS_SETTINGS_KEY
from ..origins import check_origin
from .close import (
    HANDLER_CANCELLED,
    INTERNAL_ERROR,
    NORMAL,
    TOO_SLOW,
    CloseFrame,
    WSClose,
    close_websocket,
    stale_drain_cancelled,
)
from .server import MessageKind, ServerWebSocket

if TYPE_CHECKING:
    from ..signals import RequestSignals
    from .registry import WebSocketRegistry

__all__ = ["websocket_handler"]

log = logging.getLogger("aiohttp_helpers.websocket")

#: What a wrapped handler looks like: ``async def handler(request, ws) -> None``.
WSHandler = Callable[[web.Request, ServerWebSocket], Awaitable[None]]
#: What ``@websocket_handler`` returns: an aiohttp handler.
WrappedHandler = Callable[[web.Request], Awaitable[ServerWebSocket]]


class _AppSetting:
    """An option left out of ``@websocket_handler(...)``: the app's setting applies.

    Its ``repr`` is the setting's default, so that ``help()`` and
    ``inspect.signature()`` show the value a route gets on an app that sets none.
    """

    __slots__ = ("default",)

    def __init__(self, default: object) -> None:
        self.default = default

    def __repr__(self) -> str:
        return repr(self.default)


_DEFAULTS = WebSocketSettings()
#: The defaults of ``@websocket_handler(...)``'s options: the app's settings.
_APP: dict[str, Any] = {
    field.name: _AppSetting(getattr(_DEFAULTS, field.name))
    for field in dataclasses.fields(WebSocketSettings)
}


def _given(value: object) -> bool:
    return not isinstance(value, _AppSetting)


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
    heartbeat: float | None = _APP["heartbeat"],
    max_msg_size: int = _APP["max_msg_size"],
    receive_timeout: float | None = _APP["receive_timeout"],
    protocols: tuple[str, ...] = _APP["protocols"],
    compress: bool = _APP["compress"],
    messages: MessageKind = _APP["messages"],
    close_timeout: float = _APP["close_timeout"],
    max_connections: int | None = _APP["max_connections"],
    max_connections_per_client: int | None = _APP["max_connections_per_client"],
    allowed_origins: tuple[str, ...] | None = _APP["allowed_origins"],
    strict_frames: bool = _APP["strict_frames"],
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

    An option left out takes the app's setting; the defaults shown are those of an app
    that sets none.
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
        if _given(value)
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
    registry = request.config_dict.get(WEBSOCKETS_KEY)
    if registry is not None:
        refusal = registry.admit(ws, client=request.remote or "", settings=settings)
        if refusal is not None:
            log.debug("WebSocket refused with %d: %s", refusal.code, refusal.reason)
            ws.refused = refusal
            await close_websocket(ws, *refusal, timeout=settings.close_timeout)
            return ws
    signals = request.config_dict.get(SIGNALS_KEY)
    frame: CloseFrame | None = NORMAL
    try:
        if signals is not None and signals.on_ws_open and signals.on_ws_open.frozen:
            await signals.on_ws_open.send(request, ws)
        await handler(request, ws)
    except WSClose as exc:
        frame = exc.frame
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
