"""Prometheus metrics of an app's requests, uploads, WebSockets and lifecycle: ``setup_metrics()``.

Needs the ``prometheus`` extra (``pip install 'aiohttp-helpers[prometheus]'``)::

    helpers = ah.setup(app)
    setup_metrics(app)            # GET /metrics answers in the Prometheus text format

The request path only counts into plain dictionaries; the metric families are built when
``/metrics`` is scraped, so the cost per request stays a few dictionary updates.
"""

from __future__ import annotations

from bisect import bisect_left as _bisect
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from ._metric_names import COUNTERS
from ._observe import UNMATCHED, Observer, method_of, missing_extra, route_of

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import choose_encoder
except ImportError as exc:  # pragma: no cover (the extra is installed for the tests)
    raise missing_extra("prometheus", "prometheus-client") from exc

from .keys import METRICS_KEY
from .lifecycle import AppState

if TYPE_CHECKING:
    from .uploads import UploadedFile

__all__ = ["DURATION_BUCKETS", "PREFIX", "PrometheusMetrics", "setup_metrics"]

#: Every metric name starts with this.
PREFIX = "aiohttp_helpers_"
#: Upper bounds (seconds) of the request duration histogram's buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_CLIENT_CLOSED = 499


class _Route:
    """Requests of one (method, route): by status, their durations and body bytes."""

    __slots__ = ("body_bytes", "buckets", "statuses", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.statuses: dict[int, int] = {}
        self.total = 0.0
        self.body_bytes = 0


def _bump(counts: dict[tuple[str, ...], int], key: tuple[str, ...], by: int = 1) -> None:
    counts[key] = counts.get(key, 0) + by


class PrometheusMetrics(Observer):
    """What :func:`setup_metrics` installed: counts events, and is the registry's collector."""

    what = "aiohttp_helpers.prometheus.setup_metrics()"

    def __init__(self, app: web.Application, registry: CollectorRegistry) -> None:
        super().__init__(app)
        self.registry = registry
        self._routes: dict[tuple[str, str], _Route] = {}
        #: The same _Route objects, by the aiohttp route that matched (one method each).
        self._by_route: dict[AbstractRoute, _Route] = {}
        self._in_flight = 0
        #: The counts of each of COUNTERS, by its label values.
        self._counts: dict[str, dict[tuple[str, ...], int]] = {key: {} for key in COUNTERS}
        self._hook_seconds: dict[tuple[str, str], float] = {}
        self._hook_failures: dict[tuple[str, ...], int] = {}

    # -- events (on the event loop; plain dictionaries, no locks) ------------------------

    # The two receivers every request goes through do their work themselves (one call less).

    async def _request_start(self, request: web.Request) -> None:
        self._in_flight += 1

    async def _request_end(
        self, request: web.Request, response: web.StreamResponse, seconds: float
    ) -> None:
        # _count(), inlined: this runs for every request.
        self._in_flight -= 1
        route = request.match_info.route
        stats = self._by_route.get(route)
        if stats is None:
            stats = self._stats_for(request, route)
        stats.buckets[_bisect(DURATION_BUCKETS, seconds)] += 1
        stats.total += seconds
        status = response.status
        statuses = stats.statuses
        statuses[status] = statuses.get(status, 0) + 1
        if request.body_exists:
            stats.body_bytes += request.content.total_raw_bytes
        if status >= 400 or status == 101:
            refusal = self.refusal(request, response)
            if refusal is not None:
                key = (refusal.route, refusal.reason, str(refusal.code))
                if refusal.problem:
                    _bump(self._counts["refusals"], key)
                if refusal.websocket:
                    _bump(self._counts["ws_refusals"], key)

    def on_request_error(self, request: web.Request, exc: BaseException) -> None:
        # No duration: the middleware does not time a request that raised.
        status = 500 if isinstance(exc, Exception) else _CLIENT_CLOSED
        self._in_flight -= 1
        route = request.match_info.route
        stats = self._by_route.get(route) or self._stats_for(request, route)
        statuses = stats.statuses
        statuses[status] = statuses.get(status, 0) + 1
        if request.body_exists:
            stats.body_bytes += request.content.total_raw_bytes

    def _stats_for(self, request: web.Request, route: AbstractRoute) -> _Route:
        method = method_of(request)
        resource = route.resource
        # No route matched (404, 405): a new route object each time, one label for all.
        key = (method, UNMATCHED if resource is None else resource.canonical)
        stats = self._routes.get(key)
        if stats is None:
            stats = self._routes[key] = _Route()
        if resource is not None and route.method == request.method:  # not a "*" route
            self._by_route[route] = stats
        return stats

    def on_upload(self, request: web.Request, uploaded: UploadedFile) -> None:
        route = (route_of(request),)
        _bump(self._counts["files"], route)
        _bump(self._counts["file_bytes"], route, uploaded.size)

    def on_ws_open(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        _bump(self._counts["ws_opened"], (route_of(request),))

    def on_ws_close(
        self, request: web.Request, ws: web.WebSocketResponse, code: int, reason: str
    ) -> None:
        label, who = self.close_labels(ws, code)
        _bump(self._counts["ws_closed"], (route_of(request), label, who))

    def on_hook_done(
        self, phase: str, name: str, seconds: float, error: BaseException | None
    ) -> None:
        self._hook_seconds[phase, name] = seconds
        if error is not None:
            _bump(self._counts["hook_failures"], (phase, name))

    # -- collection (when scraped) ------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        """The families this collector makes, so that a registry can refuse duplicates."""
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        p = PREFIX
        yield from self._http_families()
        yield from self._counters("refusals", "files", "file_bytes")
        yield GaugeMetricFamily(
            p + "upload_spooled_bytes",
            "Bytes in the package's temporary upload files in tmp_dir now.",
            value=self.spooled_bytes(),
        )
        yield GaugeMetricFamily(
            p + "websocket_connections", "WebSockets open now.", value=self.open_websockets()
        )
        yield from self._counters("ws_opened", "ws_closed", "ws_refusals")
        totals = self.websocket_totals
        messages_in, bytes_in = totals.received()
        messages = CounterMetricFamily(
            p + "websocket_messages", "WebSocket data messages.", labels=["direction"]
        )
        messages.add_metric(["in"], messages_in)
        messages.add_metric(["out"], totals.messages_out)
        yield messages
        payload = CounterMetricFamily(
            p + "websocket_message_bytes",
            "Payload bytes of WebSocket data messages (text as UTF-8).",
            labels=["direction"],
        )
        payload.add_metric(["in"], bytes_in)
        payload.add_metric(["out"], totals.bytes_out)
        yield payload
        for name, value in self.registry_counters():
            yield CounterMetricFamily(f"{p}websocket_{name}", _REGISTRY_COUNTERS[name], value=value)

        state = GaugeMetricFamily(
            p + "app_state", "1 for the state the app is in, 0 for the others.", labels=["state"]
        )
        current = self.state
        for each in AppState:
            state.add_metric([each.value], 1 if each is current else 0)
        yield state
        hooks = GaugeMetricFamily(
            p + "lifecycle_hook_duration_seconds",
            "How long each lifecycle hook took the last time it ran.",
            labels=["phase", "hook"],
        )
        for (phase, name), seconds in list(self._hook_seconds.items()):
            hooks.add_metric([phase, name], seconds)
        yield hooks
        yield from self._counters("hook_failures")
        yield GaugeMetricFamily(
            p + "lifecycle_drain_seconds",
            "Seconds the app has drained (so far, while it drains), 0 before a drain.",
            value=self.draining_seconds() or 0.0,
        )

    def _counters(self, *keys: str) -> Iterator[Metric]:
        """The families of these :data:`COUNTERS`, from their counts."""
        for key in keys:
            spec = COUNTERS[key]
            family = CounterMetricFamily(PREFIX + spec.prometheus, spec.help, labels=spec.labels)
            for labels, value in list(self._counts[key].items()):
                family.add_metric(list(labels), value)
            yield family

    def _http_families(self) -> Iterator[Metric]:
        p = PREFIX
        requests = CounterMetricFamily(
            p + "http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        duration = HistogramMetricFamily(
            p + "http_request_duration_seconds",
            "Time from the package's middleware receiving a request to its answer.",
            labels=["method", "route"],
        )
        bounds = [*(f"{b:g}" for b in DURATION_BUCKETS), "+Inf"]
        for (method, route), stats in list(self._routes.items()):
            for status, count in list(stats.statuses.items()):
                requests.add_metric([method, route, str(status)], count)
            running = 0
            cumulative = []
            for bound, count in zip(bounds, stats.buckets, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            duration.add_metric([method, route], cumulative, stats.total)
        yield requests
        yield duration
        yield GaugeMetricFamily(
            p + "http_requests_in_progress",
            "HTTP requests being handled now.",
            value=self._in_flight,
        )
        body = CounterMetricFamily(
            p + "http_request_body_bytes",
            "Request body bytes received (as sent, before decompression), uploads included.",
            labels=["method", "route"],
        )
        for (method, route), stats in list(self._routes.items()):
            if stats.body_bytes:
                body.add_metric([method, route], stats.body_bytes)
        yield body


_REGISTRY_COUNTERS = {
    "broadcasts": "Broadcasts sent through helpers.websockets.",
    "deliveries": "Messages delivered to WebSockets by broadcasts.",
    "slow_closes": "WebSockets closed for taking broadcasts too slowly.",
}


def setup_metrics(
    app: web.Application,
    path: str | None = "/metrics",
    registry: CollectorRegistry | None = None,
) -> PrometheusMetrics:
    """Count the app's requests, uploads, WebSockets and lifecycle for Prometheus.

    Call it after ``aiohttp_helpers.setup(app)`` and before the app starts (or is
    mounted). ``GET path`` answers with every metric of ``registry`` (prometheus-client's
    default registry unless given) in the text format, or OpenMetrics when the scraper
    asks for it; ``path=None`` adds no route (expose ``registry`` yourself).

    Raises:
        RuntimeError: ``setup()`` was not called, the app is frozen, or this already ran.
        ValueError: ``registry`` already has metrics of these names (another app's).
    """
    if not isinstance(app, web.Application):
        raise TypeError(f"setup_metrics() needs an aiohttp.web.Application, got {app!r}")
    if path is not None and not str(path).startswith("/"):
        raise ValueError(f"path must be a path such as '/metrics', got {path!r}")
    if METRICS_KEY in app:
        raise RuntimeError("aiohttp_helpers.prometheus.setup_metrics() already ran on this app")
    target = REGISTRY if registry is None else registry
    metrics = PrometheusMetrics(app, target)
    try:
        target.register(metrics)
    except ValueError as exc:
        raise ValueError(
            f"{exc}: this registry already has aiohttp_helpers metrics (another app's?); "
            "give each app its own: setup_metrics(app, registry=CollectorRegistry())"
        ) from None
    metrics.connect()
    app[METRICS_KEY] = metrics

    async def unregister(app: web.Application) -> None:
        target.unregister(metrics)

    app.on_cleanup.append(unregister)
    if path is not None:

        async def scrape(request: web.Request) -> web.Response:
            encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
            return web.Response(
                body=encoder(target),
                headers={"Content-Type": content_type, "Cache-Control": "no-store"},
            )

        app.router.add_get(path, scrape, name="aiohttp_helpers.metrics")
    return metrics
