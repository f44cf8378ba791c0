"""The event plumbing the Prometheus and OpenTelemetry modules share (no third-party import).

An :class:`Observer` connects itself to one app's request signals, upload and WebSocket
signals and lifecycle signals, and turns them into calls of its ``on_*`` methods with label
values that never come from the client, except through the route template.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from aiohttp import WSMsgType, web

from ._compat import on_frame_sent
from .config import UploadLimits
from .errors import HelpersError
from .keys import LIFECYCLE_KEY, PROBLEM_KEY, SIGNALS_KEY, UPLOAD_LIMITS_KEY, WEBSOCKETS_KEY
from .serving import AppState
from .websocket.close import TOO_MANY, TOO_MANY_FROM_CLIENT
from .websocket.server import ServerWebSocket

if TYPE_CHECKING:
    from .uploads import UploadedFile
    from .websocket.registry import WebSocketRegistry

__all__ = [
    "UNMATCHED",
    "Observer",
    "Refusal",
    "WebSocketTotals",
    "close_code_label",
    "closed_by",
    "is_websocket_upgrade",
    "method_of",
    "missing_extra",
    "problem_of",
    "problem_slug",
    "refusal_reason",
    "route_of",
    "spooled_bytes",
]

#: The route label of every request that matched no route (404, 405): one value for all.
UNMATCHED = "unmatched"
#: The methods that keep their name as a label value; any other becomes ``_OTHER``.
_METHODS = {
    m: m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
}
_PROBLEM_PREFIX = "urn:aiohttp-helpers:problem:"
_TEMP_PREFIX = "aiohttp-helpers-"
#: Close codes a client may send and that keep their own label value (RFC 6455 and IANA).
_KNOWN_CODES = frozenset(range(1000, 1016))
ClosedBy = Literal["server", "client", "none", "unknown"]


_DEFAULT_LIMITS = UploadLimits()


class Refusal(NamedTuple):
    """A request the package refused: with a problem document, or a WebSocket closed at once."""

    #: The route template (label value).
    route: str
    #: The problem's slug (``file-too-large``), or why a socket was not admitted.
    reason: str
    #: The HTTP status of the problem, or the close code the socket was closed with.
    code: int
    #: Whether a problem document answered (the request counts as a refusal).
    problem: bool
    #: Whether it was a WebSocket upgrade (it counts as a WebSocket refusal).
    websocket: bool
    #: The close reason a refused socket was closed with (``""`` for a problem).
    close_reason: str = ""


def missing_extra(extra: str, package: str) -> ImportError:
    """The error of ``aiohttp_helpers.<extra>`` imported without its extra installed."""
    return ImportError(
        f"aiohttp_helpers.{extra} needs {package}: pip install 'aiohttp-helpers[{extra}]'"
    )


def method_of(request: web.BaseRequest) -> str:
    """The request's method as a label value: a standard method, or ``_OTHER``."""
    return _METHODS.get(request.method, "_OTHER")


def route_of(request: web.Request) -> str:
    """The route template that matched (``/items/{id}``), or :data:`UNMATCHED`."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED
    canonical = getattr(resource, "canonical", None)
    return canonical if isinstance(canonical, str) and canonical else UNMATCHED


def problem_slug(exc: HelpersError) -> str:
    """The short form of a problem type: ``file-too-large`` for FileTooLarge."""
    kind = exc.problem_type()
    return kind[len(_PROBLEM_PREFIX) :] if kind.startswith(_PROBLEM_PREFIX) else kind


def close_code_label(code: int, closed_by: ClosedBy) -> str:
    """A close code as a label value.

    The server's own codes keep their value; a client can send any code from 3000 to
    4999, so those collapse to ``3xxx`` / ``4xxx`` when the client closed first.
    """
    if closed_by == "server" or code in _KNOWN_CODES:
        return str(code)
    if 3000 <= code <= 4999:
        return f"{code // 1000}xxx"
    return "other"


def closed_by(ws: web.WebSocketResponse) -> ClosedBy:
    """Who sent the first close frame: server, client, none (connection lost), unknown."""
    if isinstance(ws, ServerWebSocket):
        return ws.closed_by or "none"
    return "unknown"


def refusal_reason(ws: ServerWebSocket) -> str:
    """Why a socket was not admitted: a cap, or the app stopping."""
    if ws.refused is TOO_MANY:
        return "max-connections"
    if ws.refused is TOO_MANY_FROM_CLIENT:
        return "max-connections-per-client"
    return "stopping"


def spooled_bytes(directory: str | os.PathLike[str] | None) -> int:
    """Bytes in the package's temporary upload files in ``directory`` now."""
    total = 0
    try:
        with os.scandir(directory if directory is not None else tempfile.gettempdir()) as it:
            for entry in it:
                if entry.name.startswith(_TEMP_PREFIX):
                    with contextlib.suppress(OSError):  # removed while we looked
                        total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        return 0
    return total


class WebSocketTotals:
    """Data messages and payload bytes in and out of an app's WebSockets, live.

    Received data is counted by each :class:`ServerWebSocket` (``messages_in``,
    ``bytes_in``): the totals are those of the sockets closed so far plus those still
    open. Sent data is counted as the frames go out, from the socket's writer.
    """

    __slots__ = ("bytes_in", "bytes_out", "messages_in", "messages_out", "open")

    def __init__(self) -> None:
        self.messages_in = 0
        self.bytes_in = 0
        self.messages_out = 0
        self.bytes_out = 0
        self.open: weakref.WeakSet[ServerWebSocket] = weakref.WeakSet()

    def received(self) -> tuple[int, int]:
        """Messages and bytes received, by the closed sockets and the open ones."""
        messages, size = self.messages_in, self.bytes_in
        for ws in list(self.open):
            messages += ws.messages_in
            size += ws.bytes_in
        return messages, size

    def opened(self, ws: web.WebSocketResponse) -> None:
        if isinstance(ws, ServerWebSocket):
            self.open.add(ws)
        self._count_sends(ws)

    def closed(self, ws: web.WebSocketResponse) -> None:
        if isinstance(ws, ServerWebSocket) and ws in self.open:
            self.open.discard(ws)
            self.messages_in += ws.messages_in
            self.bytes_in += ws.bytes_in

    def _count_sends(self, ws: web.WebSocketResponse) -> None:
        totals = self
        data_kinds = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)

        def count(message: bytes, opcode: int) -> None:
            if opcode in data_kinds:
                totals.messages_out += 1
                totals.bytes_out += len(message)

        on_frame_sent(ws, count)


class Observer:
    """Receives an app's events; the Prometheus and OpenTelemetry sides override ``on_*``.

    Connecting appends receivers to the app's request signals and lifecycle signals (frozen
    when the app starts), so it must happen after ``setup()`` and before then.
    """

    #: Which setup function this is, for error messages.
    what = "observer"

    def __init__(self, app: web.Application) -> None:
        self.app = app
        signals = app.get(SIGNALS_KEY)
        lifecycle = app.get(LIFECYCLE_KEY)
        websockets = app.get(WEBSOCKETS_KEY)
        if signals is None or lifecycle is None or websockets is None:
            raise RuntimeError(
                f"{self.what} needs aiohttp_helpers.setup(app) first: call setup(app), "
                f"then {self.what}"
            )
        if app.frozen or app.pre_frozen or signals.frozen:
            raise RuntimeError(
                f"{self.what} must be called before the application is frozen; this one "
                "already is (add_subapp() freezes a sub-app at once, and so does starting "
                f"the app): call {self.what} right after aiohttp_helpers.setup(app)"
            )
        self.signals = signals
        self.lifecycle = lifecycle
        self.websockets = websockets
        #: The sub-apps that went through setup() themselves (found at startup), and
        #: their WebSocket registries.
        self.sub_apps: list[web.Application] = []
        self.sub_websockets: list[WebSocketRegistry] = []
        self.websocket_totals = WebSocketTotals()
        self.drain_started: float | None = None
        self.drain_seconds: float | None = None

    @property
    def state(self) -> AppState:
        return self.lifecycle.state

    def connect(self) -> None:
        """Append this observer's receivers to the app's signals."""
        signals = self.signals
        lifecycle = self.lifecycle
        pairs: list[tuple[Any, Callable[..., Awaitable[None]]]] = [
            (signals.on_request_start, self._request_start),
            (signals.on_request_end, self._request_end),
            (signals.on_request_error, self._request_error),
            (signals.on_upload, self._upload),
            (signals.on_ws_open, self._ws_open),
            (signals.on_ws_close, self._ws_close),
            (lifecycle.on_state_change, self._state_change),
            (lifecycle.on_hook_done, self._hook_done),
        ]
        for signal, receiver in pairs:
            signal.append(receiver)
        # Before any sub-app's own on_startup freezes its signals (add_subapp() appends those).
        self.app.on_startup.insert(0, self._connect_sub_apps)

    async def _connect_sub_apps(self, app: web.Application) -> None:
        """Listen to the uploads and WebSockets of sub-apps that have their own setup().

        Their handlers send to their own app's signals; requests go through the outermost
        middleware, so the request signals are the root's alone.
        """
        pending = [self.app]
        seen = {id(self.app)}
        while pending:
            for resource in pending.pop().router.resources():
                sub = resource.get_info().get("app")
                if not isinstance(sub, web.Application) or id(sub) in seen:
                    continue
                seen.add(id(sub))
                pending.append(sub)
                signals = sub.get(SIGNALS_KEY)
                if signals is None or signals.frozen:
                    continue
                self.sub_apps.append(sub)
                websockets = sub.get(WEBSOCKETS_KEY)
                if websockets is not None:
                    self.sub_websockets.append(websockets)
                signals.on_upload.append(self._upload)
                signals.on_ws_open.append(self._ws_open)
                signals.on_ws_close.append(self._ws_close)

    # -- receivers (async, as aiosignal wants): thin, the work is in the on_* methods --

    async def _request_start(self, request: web.Request) -> None:
        self.on_request_start(request)

    async def _request_end(
        self, request: web.Request, response: web.StreamResponse, seconds: float
    ) -> None:
        self.on_request_end(request, response, seconds)

    async def _request_error(self, request: web.Request, exc: BaseException) -> None:
        self.on_request_error(request, exc)

    async def _upload(self, request: web.Request, uploaded: UploadedFile) -> None:
        self.on_upload(request, uploaded)

    async def _ws_open(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.websocket_totals.opened(ws)
        self.on_ws_open(request, ws)

    async def _ws_close(
        self, request: web.Request, ws: web.WebSocketResponse, code: int, reason: str
    ) -> None:
        self.websocket_totals.closed(ws)
        self.on_ws_close(request, ws, code, reason)

    async def _state_change(self, old: AppState, new: AppState) -> None:
        if new is AppState.DRAINING:
            self.drain_started = time.perf_counter()
        elif old is AppState.DRAINING and self.drain_started is not None:
            self.drain_seconds = time.perf_counter() - self.drain_started
            self.on_drained(self.drain_seconds)

    async def _hook_done(
        self, phase: str, name: str, seconds: float, error: BaseException | None
    ) -> None:
        self.on_hook_done(phase, name, seconds, error)

    # -- what the two sides implement ---------------------------------------------------

    def on_request_start(self, request: web.Request) -> None:
        """A request reached the package's middleware."""

    def on_request_end(
        self, request: web.Request, response: web.StreamResponse, seconds: float
    ) -> None:
        """A request was answered (``response.status``), the package's refusals included."""

    def on_request_error(self, request: web.Request, exc: BaseException) -> None:
        """A request ended in an exception (aiohttp answers 500) or was cancelled."""

    def on_upload(self, request: web.Request, uploaded: UploadedFile) -> None:
        """``read_form()`` finished reading one file."""

    def on_ws_open(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        """A WebSocket was admitted and its handler starts."""

    def on_ws_close(
        self, request: web.Request, ws: web.WebSocketResponse, code: int, reason: str
    ) -> None:
        """A WebSocket closed with ``code``."""

    def on_drained(self, seconds: float) -> None:
        """The app left the DRAINING state after ``seconds``."""

    def on_hook_done(
        self, phase: str, name: str, seconds: float, error: BaseException | None
    ) -> None:
        """A lifecycle hook ran (``error`` is its :class:`HookError` when it failed)."""

    # -- reading what the app knows, at collection time ----------------------------------

    def draining_seconds(self) -> float | None:
        """Seconds of the drain in progress, or of the last one."""
        if self.state is AppState.DRAINING and self.drain_started is not None:
            return time.perf_counter() - self.drain_started
        return self.drain_seconds

    def open_websockets(self) -> int:
        return sum(len(registry) for registry in (self.websockets, *self.sub_websockets))

    def registry_counters(self) -> Iterator[tuple[str, int]]:
        """The registry's broadcast counters, those it has (``broadcasts``, ...)."""
        registry = self.websockets
        for name in ("broadcasts", "deliveries", "slow_closes"):
            value = getattr(registry, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                yield name, value

    # -- labels both exporters derive from an event ----------------------------------------

    @staticmethod
    def refusal(request: web.Request, response: web.StreamResponse) -> Refusal | None:
        """How the package refused ``request``, if it did (``response`` is its answer)."""
        status = response.status
        if status >= 400:
            problem = problem_of(request)
            if problem is None:
                return None
            websocket = is_websocket_upgrade(request)
            return Refusal(route_of(request), problem_slug(problem), status, True, websocket)
        if status == 101 and isinstance(response, ServerWebSocket) and response.refused:
            refused = response.refused
            reason = refusal_reason(response)
            return Refusal(route_of(request), reason, refused.code, False, True, refused.reason)
        return None

    @staticmethod
    def close_labels(ws: web.WebSocketResponse, code: int) -> tuple[str, ClosedBy]:
        """A closed socket's close code label and who closed it first."""
        who = closed_by(ws)
        return close_code_label(code, who), who

    def spooled_bytes(self) -> int:
        directories = {
            app.get(UPLOAD_LIMITS_KEY, _DEFAULT_LIMITS).tmp_dir
            for app in (self.app, *self.sub_apps)
        }
        return sum(spooled_bytes(directory) for directory in directories)


def problem_of(request: web.Request) -> HelpersError | None:
    """The package error the middleware answered ``request`` with, if any."""
    return request.get(PROBLEM_KEY)


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"
