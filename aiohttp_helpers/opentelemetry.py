"""OpenTelemetry traces and metrics of an app's requests, uploads, WebSockets: ``setup_tracing()``.

Needs the ``opentelemetry`` extra (``pip install 'aiohttp-helpers[opentelemetry]'``, the
API only; configure an SDK, or any other implementation, in the application)::

    helpers = ah.setup(app)
    setup_tracing(app)            # the global tracer and meter providers unless given

Each request gets a server span named as the HTTP semantic conventions say
(``GET /items/{id}``), unless an upstream instrumentation (such as
opentelemetry-instrumentation-aiohttp-server) already made the server span: then that one
gets the route, the status and the package's facts, and no second span is made.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextvars import Token
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._metric_names import COUNTERS
from ._observe import UNMATCHED, Observer, method_of, missing_extra, route_of

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.metrics import CallbackOptions, Counter, MeterProvider, Observation
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover (the extra is installed for the tests)
    raise missing_extra("opentelemetry", "opentelemetry-api") from exc

from . import __version__
from .keys import SPAN_KEY, TRACING_KEY
from .lifecycle import AppState
from .websocket.server import ServerWebSocket

if TYPE_CHECKING:
    from .uploads import UploadedFile

__all__ = ["OpenTelemetryObserver", "RequestTrace", "setup_tracing"]

#: The instrumentation scope of the package's tracer and meter.
SCOPE = "aiohttp_helpers"
#: The HTTP semantic conventions' advice for ``http.server.request.duration``.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_A = "aiohttp_helpers."
#: The registry's counters that become observable counters.
_REGISTRY = ("broadcasts", "deliveries", "slow_closes")
#: The descriptions of the observable instruments, by name (after ``aiohttp_helpers.``).
_OBSERVED = {
    "websocket.connections": "WebSockets open now.",
    "websocket.messages": "WebSocket data messages, in and out.",
    "websocket.bytes": "Payload bytes of WebSocket data messages, in and out.",
    **{f"websocket.{name}": f"helpers.websockets.{name}" for name in _REGISTRY},
    "upload.spooled": "Bytes in the package's temporary upload files now.",
    "app.state": "1 for the state the app is in, 0 for the others.",
}


class RequestTrace:
    """One request's span, and whether this package made it (and must end it)."""

    __slots__ = ("attributes", "owned", "span", "started", "token")

    def __init__(
        self, span: Span, owned: bool, token: Token[Context] | None, attributes: dict[str, Any]
    ) -> None:
        self.span = span
        self.owned = owned
        self.token = token
        self.attributes = attributes
        self.started = time.perf_counter()


class OpenTelemetryObserver(Observer):
    """What :func:`setup_tracing` installed on an app."""

    what = "aiohttp_helpers.opentelemetry.setup_tracing()"

    def __init__(
        self,
        app: web.Application,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        super().__init__(app)
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.meter = meter
        self.duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.active = meter.create_up_down_counter(
            "http.server.active_requests",
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self.body_size = meter.create_histogram(
            "http.server.request.body.size",
            unit="By",
            description="Size of HTTP server request bodies (as received).",
        )
        #: The package's labelled counters (:data:`~aiohttp_helpers._observe.COUNTERS`).
        self.counters: dict[str, Counter] = {
            key: meter.create_counter(_A + spec.otel, unit=spec.unit, description=spec.description)
            for key, spec in COUNTERS.items()
        }
        self.hook_duration = meter.create_histogram(
            _A + "lifecycle.hook.duration", unit="s", description="Lifecycle hook durations."
        )
        self.drain_duration = meter.create_histogram(
            _A + "lifecycle.drain.duration", unit="s", description="How long the app drained."
        )
        gauge, counter = meter.create_observable_gauge, meter.create_observable_counter
        # What is read when the meter collects (descriptions in _OBSERVED).
        for create, name, callback, unit in [
            (gauge, "websocket.connections", self._observe_connections, "{connection}"),
            (counter, "websocket.messages", self._observe_messages, "{message}"),
            (counter, "websocket.bytes", self._observe_bytes, "By"),
            *((counter, f"websocket.{n}", self._registry_callback(n), "") for n in _REGISTRY),
            (gauge, "upload.spooled", self._observe_spooled, "By"),
            (gauge, "app.state", self._observe_state, ""),
        ]:
            create(_A + name, callbacks=[callback], unit=unit, description=_OBSERVED[name])

    # -- requests -----------------------------------------------------------------------

    def on_request_start(self, request: web.Request) -> None:
        method = method_of(request)
        route = route_of(request)
        attributes: dict[str, Any] = {"http.request.method": method, "url.scheme": request.scheme}
        current = trace.get_current_span()
        if getattr(current, "kind", None) is SpanKind.SERVER:
            # An upstream instrumentation made the server span (and records the HTTP metrics).
            span, owned, token = current, False, None  # type: Span, bool, Token[Context] | None
            if route != UNMATCHED:
                span.set_attribute("http.route", route)
                span.update_name(f"{'HTTP' if method == '_OTHER' else method} {route}")
        else:
            parent = (
                None if current.get_span_context().is_valid else propagate.extract(request.headers)
            )
            span_attributes = dict(attributes)
            span_attributes["url.path"] = request.path
            if route != UNMATCHED:
                span_attributes["http.route"] = route
            if request.remote:
                span_attributes["client.address"] = request.remote
            version = request.version
            span_attributes["network.protocol.version"] = (
                f"{version.major}.{version.minor}" if version.minor else str(version.major)
            )
            name = "HTTP" if method == "_OTHER" else method
            span = self.tracer.start_span(
                f"{name} {route}" if route != UNMATCHED else name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=span_attributes,
            )
            owned = True
            token = otel_context.attach(trace.set_span_in_context(span))
            self.active.add(1, attributes)
        if route != UNMATCHED:
            attributes["http.route"] = route
        request[SPAN_KEY] = RequestTrace(span, owned, token, attributes)

    def on_request_end(
        self, request: web.Request, response: web.StreamResponse, seconds: float
    ) -> None:
        state = request.get(SPAN_KEY)
        if state is None:
            return
        span = state.span
        status = response.status
        span.set_attribute("http.response.status_code", status)
        attributes = state.attributes
        if status >= 500:
            attributes["error.type"] = str(status)
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        refusal = self.refusal(request, response) if status >= 400 or status == 101 else None
        if refusal is not None and refusal.problem:
            slug = refusal.reason
            span.set_attribute(_A + "problem.type", slug)
            span.add_event(
                _A + "refused", {_A + "problem.type": slug, "http.response.status_code": status}
            )
            labels: dict[str, str | int] = {
                "http.route": refusal.route,
                _A + "problem.type": slug,
                "http.response.status_code": status,
            }
            self.counters["refusals"].add(1, labels)
            if refusal.websocket:
                self.counters["ws_refusals"].add(1, labels)
        elif refusal is not None:
            span.set_attribute(_A + "websocket.refused", refusal.reason)
            span.set_attribute(_A + "websocket.close_code", refusal.code)
            span.set_attribute(_A + "websocket.close_reason", refusal.close_reason)
            labels = {
                "http.route": refusal.route,
                _A + "websocket.refused": refusal.reason,
                _A + "websocket.close_code": str(refusal.code),
            }
            self.counters["ws_refusals"].add(1, labels)
        self._finish(request, state, status, seconds)

    def on_request_error(self, request: web.Request, exc: BaseException) -> None:
        state = request.get(SPAN_KEY)
        if state is None:
            return
        span = state.span
        kind = type(exc).__qualname__
        state.attributes["error.type"] = kind
        span.set_attribute("error.type", kind)
        if isinstance(exc, Exception):
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, kind))
            span.set_attribute("http.response.status_code", 500)
            self._finish(request, state, 500, time.perf_counter() - state.started)
        else:
            self._finish(request, state, None, time.perf_counter() - state.started)

    def _finish(
        self, request: web.Request, state: RequestTrace, status: int | None, seconds: float
    ) -> None:
        if not state.owned:
            return
        attributes = state.attributes
        method = attributes["http.request.method"]
        self.active.add(-1, {"http.request.method": method, "url.scheme": request.scheme})
        if status is not None:
            attributes["http.response.status_code"] = status
        self.duration.record(seconds, attributes)
        if request.body_exists:
            self.body_size.record(request.content.total_raw_bytes, attributes)
        state.span.end()
        if state.token is not None:
            otel_context.detach(state.token)

    # -- uploads and WebSockets --------------------------------------------------------

    def on_upload(self, request: web.Request, uploaded: UploadedFile) -> None:
        route = route_of(request)
        self.counters["files"].add(1, {"http.route": route})
        self.counters["file_bytes"].add(uploaded.size, {"http.route": route})
        state = request.get(SPAN_KEY)
        if state is not None:
            state.span.add_event(
                _A + "upload",
                {
                    _A + "upload.field": uploaded.name,
                    _A + "upload.size": uploaded.size,
                    _A + "upload.content_type": uploaded.content_type,
                    _A + "upload.in_memory": uploaded.in_memory,
                },
            )

    def on_ws_open(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.counters["ws_opened"].add(1, {"http.route": route_of(request)})
        state = request.get(SPAN_KEY)
        if state is not None:
            state.span.add_event(_A + "websocket.open")

    def on_ws_close(
        self, request: web.Request, ws: web.WebSocketResponse, code: int, reason: str
    ) -> None:
        label, who = self.close_labels(ws, code)
        self.counters["ws_closed"].add(
            1,
            {
                "http.route": route_of(request),
                _A + "websocket.close_code": label,
                _A + "websocket.closed_by": who,
            },
        )
        state = request.get(SPAN_KEY)
        if state is None:
            return
        facts: dict[str, Any] = {
            _A + "websocket.close_code": code,
            _A + "websocket.close_reason": reason,
            _A + "websocket.closed_by": who,
        }
        if isinstance(ws, ServerWebSocket):
            facts[_A + "websocket.messages_in"] = ws.messages_in
            facts[_A + "websocket.bytes_in"] = ws.bytes_in
        state.span.set_attributes(facts)
        state.span.add_event(_A + "websocket.close", facts)

    # -- lifecycle ----------------------------------------------------------------------

    def on_hook_done(
        self, phase: str, name: str, seconds: float, error: BaseException | None
    ) -> None:
        attributes = {_A + "lifecycle.phase": phase, _A + "lifecycle.hook": name}
        self.hook_duration.record(seconds, attributes)
        if error is not None:
            self.counters["hook_failures"].add(1, attributes)

    def on_drained(self, seconds: float) -> None:
        self.drain_duration.record(seconds)

    # -- observable instruments ---------------------------------------------------------

    def _observe_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.open_websockets())]

    def _observe_messages(self, options: CallbackOptions) -> Iterable[Observation]:
        totals = self.websocket_totals
        return _in_and_out(totals.received()[0], totals.messages_out)

    def _observe_bytes(self, options: CallbackOptions) -> Iterable[Observation]:
        totals = self.websocket_totals
        return _in_and_out(totals.received()[1], totals.bytes_out)

    def _registry_callback(self, name: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value) for key, value in self.registry_counters() if key == name]

        return observe

    def _observe_spooled(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.spooled_bytes())]

    def _observe_state(self, options: CallbackOptions) -> Iterable[Observation]:
        current = self.state
        return [
            Observation(1 if each is current else 0, {_A + "app.state": each.value})
            for each in AppState
        ]


def _in_and_out(received: int, sent: int) -> list[Observation]:
    return [
        Observation(received, {_A + "direction": "in"}),
        Observation(sent, {_A + "direction": "out"}),
    ]


def setup_tracing(
    app: web.Application,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> OpenTelemetryObserver:
    """Trace the app's requests and measure its uploads, WebSockets and lifecycle.

    Call it after ``aiohttp_helpers.setup(app)`` and before the app starts (or is
    mounted). ``None`` uses OpenTelemetry's global providers.

    Raises:
        RuntimeError: ``setup()`` was not called, the app is frozen, or this already ran.
    """
    if not isinstance(app, web.Application):
        raise TypeError(f"setup_tracing() needs an aiohttp.web.Application, got {app!r}")
    if TRACING_KEY in app:
        raise RuntimeError("aiohttp_helpers.opentelemetry.setup_tracing() already ran on this app")
    observer = OpenTelemetryObserver(app, tracer_provider, meter_provider)
    observer.connect()
    app[TRACING_KEY] = observer
    return observer
