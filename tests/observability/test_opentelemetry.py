"""OpenTelemetry spans and metrics over real requests, uploads and WebSockets (in-memory SDK)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.opentelemetry import setup_tracing
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.apps import Serve
from tests.support.metrics import boom, crashing_echo
from tests.support.net import until

A = "aiohttp_helpers."


class Telemetry:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def server_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.kind is SpanKind.SERVER]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert isinstance(data, MetricsData)
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def point(self, name: str, **attributes: Any) -> Any:
        found = [
            p
            for p in self.points(name)
            if all(p.attributes.get(k) == v for k, v in attributes.items())
        ]
        assert len(found) == 1, f"{name} {attributes}: {self.points(name)}"
        return found[0]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracer_provider.shutdown()
    t.meter_provider.shutdown()


def make_app(
    telemetry: Telemetry, tmp: Path, *, middlewares: tuple[Any, ...] = (), **ws: Any
) -> web.Application:
    app = web.Application(middlewares=list(middlewares))
    helpers = ah.setup(
        app,
        limits=ah.UploadLimits(max_file_size=10_000, spool_max_size=100, tmp_dir=tmp),
        websockets=ah.WebSocketSettings(**ws),
    )

    @helpers.lifecycle.on_startup(name="warm")
    async def warm(app: web.Application) -> None:
        pass

    tracer = telemetry.tracer_provider.get_tracer("test")

    async def item(request: web.Request) -> web.Response:
        with tracer.start_as_current_span("load item"):
            return web.Response(text=request.match_info["id"])

    async def upload(request: web.Request) -> web.Response:
        async with await ah.read_form(request) as form:
            return web.json_response({"files": len(form.files)})

    app.router.add_get("/items/{id}", item)
    app.router.add_get("/boom", boom)
    app.router.add_post("/upload", upload)
    app.router.add_get("/ws", crashing_echo)
    setup_tracing(
        app, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    return app


async def get(session: aiohttp.ClientSession, url: URL, **kwargs: Any) -> int:
    async with session.get(url, **kwargs) as resp:
        await resp.read()
        return resp.status


async def test_server_span_per_request(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    base = await serve(make_app(telemetry, tmp_path))
    assert await get(session, base / "items" / "42") == 200
    assert await get(session, base / "nowhere") == 404
    assert await get(session, base / "boom") == 500

    ok, missing, failed = telemetry.server_spans()
    assert ok.name == "GET /items/{id}"
    assert ok.attributes is not None
    assert ok.attributes["http.route"] == "/items/{id}"
    assert ok.attributes["http.request.method"] == "GET"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.attributes["url.path"] == "/items/42"
    inner = next(s for s in telemetry.spans() if s.name == "load item")
    assert inner.parent is not None
    assert inner.parent.span_id == ok.context.span_id  # the handler's spans nest under it

    assert missing.name == "GET"  # no route: no route in the name, nor a raw path
    assert missing.attributes is not None
    assert "http.route" not in missing.attributes
    assert missing.attributes["http.response.status_code"] == 404
    assert missing.status.status_code is StatusCode.UNSET

    assert failed.name == "GET /boom"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in failed.events] == ["exception"]

    duration = telemetry.point("http.server.request.duration", **{"http.route": "/items/{id}"})
    assert duration.count == 1
    assert duration.attributes["http.response.status_code"] == 200
    assert telemetry.point("http.server.request.duration", **{"error.type": "RuntimeError"})
    active = telemetry.point("http.server.active_requests", **{"http.request.method": "GET"})
    assert active.value == 0


async def test_incoming_trace_context_is_the_parent(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    base = await serve(make_app(telemetry, tmp_path))
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{span_id}-01"}
    assert await get(session, base / "items" / "1", headers=headers) == 200
    (span,) = telemetry.server_spans()
    assert span.context.trace_id == int(trace_id, 16)
    assert span.parent is not None
    assert span.parent.span_id == int(span_id, 16)


async def test_uploads_and_refusals(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    base = await serve(make_app(telemetry, tmp_path))
    body = multipart_body(FormPart(name="doc", filename="a.txt", data=b"a" * 1000))
    headers = {"Content-Type": body.content_type}
    async with session.post(base / "upload", data=body.data, headers=headers) as resp:
        assert resp.status == 200
    big = multipart_body(FormPart(name="doc", filename="b.txt", data=b"b" * 20_000))
    headers = {"Content-Type": big.content_type}
    async with session.post(base / "upload", data=big.data, headers=headers) as resp:
        assert resp.status == 413

    ok, refused = telemetry.server_spans()
    (event,) = ok.events
    assert event.name == A + "upload"
    assert event.attributes is not None
    assert event.attributes[A + "upload.size"] == 1000
    assert event.attributes[A + "upload.field"] == "doc"
    assert event.attributes[A + "upload.in_memory"] is False
    assert refused.attributes is not None
    assert refused.attributes[A + "problem.type"] == "file-too-large"
    assert refused.attributes["http.response.status_code"] == 413
    assert refused.status.status_code is StatusCode.UNSET  # a 4xx is the client's doing
    assert [e.name for e in refused.events] == [A + "refused"]

    assert telemetry.point(A + "upload.files").value == 1
    assert telemetry.point(A + "upload.bytes").value == 1000
    refusal = telemetry.point(A + "refusals", **{A + "problem.type": "file-too-large"})
    assert refusal.value == 1
    assert refusal.attributes["http.response.status_code"] == 413
    sizes = telemetry.point("http.server.request.body.size", **{"http.response.status_code": 200})
    assert sizes.sum == len(body.data)
    assert telemetry.point(A + "upload.spooled").value == 0


async def test_websocket_facts(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    app = make_app(telemetry, tmp_path, max_connections=1)
    registry = ah.get_helpers(app).websockets
    url = (await serve(app)).with_scheme("ws") / "ws"
    async with session.ws_connect(url) as ws:
        await until(lambda: len(registry) == 1)
        assert telemetry.point(A + "websocket.connections").value == 1
        async with session.ws_connect(url) as refused:
            msg = await refused.receive()
            assert msg.type is WSMsgType.CLOSE
            assert msg.data == 1013
        await ws.send_str("hi")
        assert (await ws.receive()).data == "hi"
        await ws.send_str("crash")
        msg = await ws.receive()
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1011
    await until(lambda: len(telemetry.server_spans()) == 2)

    refused_span, served = telemetry.server_spans()
    assert refused_span.attributes is not None
    assert refused_span.attributes[A + "websocket.refused"] == "max-connections"
    assert refused_span.attributes[A + "websocket.close_code"] == 1013
    assert served.name == "GET /ws"
    assert served.attributes is not None
    assert served.attributes["http.response.status_code"] == 101
    assert served.attributes[A + "websocket.close_code"] == 1011
    assert served.attributes[A + "websocket.closed_by"] == "server"
    assert served.attributes[A + "websocket.messages_in"] == 2
    names = [e.name for e in served.events]
    assert names == [A + "websocket.open", A + "websocket.close"]

    closed = telemetry.point(A + "websocket.closed", **{A + "websocket.close_code": "1011"})
    assert closed.value == 1
    refusals = telemetry.point(A + "websocket.refusals", **{A + "websocket.close_code": "1013"})
    assert refusals.value == 1
    assert telemetry.point(A + "websocket.opened").value == 1
    assert telemetry.point(A + "websocket.connections").value == 0
    assert telemetry.point(A + "websocket.messages", **{A + "direction": "in"}).value == 2
    assert telemetry.point(A + "websocket.messages", **{A + "direction": "out"}).value == 1
    assert telemetry.point(A + "websocket.bytes", **{A + "direction": "out"}).value == 2


async def test_lifecycle_metrics(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    app = make_app(telemetry, tmp_path)
    await serve(app)
    helpers = ah.get_helpers(app)
    assert telemetry.point(A + "app.state", **{A + "app.state": "ready"}).value == 1
    hook = telemetry.point(A + "lifecycle.hook.duration", **{A + "lifecycle.hook": "warm"})
    assert hook.count == 1
    assert hook.attributes[A + "lifecycle.phase"] == "startup"
    await helpers.lifecycle.drain(0.05)
    assert telemetry.point(A + "app.state", **{A + "app.state": "draining"}).value == 1


async def test_startup_failure_metric(
    telemetry: Telemetry, tmp_path: Path, app: web.Application, helpers: ah.Helpers
) -> None:
    @helpers.lifecycle.on_startup(name="connect-db", timeout=0.05)
    async def connect(app: web.Application) -> None:
        await asyncio.sleep(10)

    setup_tracing(app, meter_provider=telemetry.meter_provider)
    runner = web.AppRunner(app)
    with pytest.raises(ah.HookTimeout, match="connect-db"):
        await runner.setup()
    await runner.cleanup()
    failure = telemetry.point(A + "lifecycle.hook.failures", **{A + "lifecycle.hook": "connect-db"})
    assert failure.value == 1


# The instrumentation subclasses web.Application, which aiohttp warns about.
@pytest.mark.filterwarnings("ignore:Inheritance class _InstrumentedApplication:DeprecationWarning")
async def test_no_second_span_under_the_aiohttp_server_instrumentation(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    instrumentor = AioHttpServerInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        app = make_app(telemetry, tmp_path)  # web.Application is the instrumented one now
    finally:
        instrumentor.uninstrument()
    base = await serve(app)
    assert await get(session, base / "items" / "5") == 200
    big = multipart_body(FormPart(name="doc", filename="b.txt", data=b"b" * 20_000))
    headers = {"Content-Type": big.content_type}
    async with session.post(base / "upload", data=big.data, headers=headers) as resp:
        assert resp.status == 413

    spans = telemetry.server_spans()
    assert len(spans) == 2  # one per request: the instrumentation's, not a second of ours
    item, refused = spans
    assert item.instrumentation_scope is not None
    assert item.instrumentation_scope.name == "opentelemetry.instrumentation.aiohttp_server"
    assert item.name == "GET /items/{id}"
    assert refused.attributes is not None
    assert refused.attributes[A + "problem.type"] == "file-too-large"
    assert refused.attributes["http.route"] == "/upload"
    # The HTTP metrics are the instrumentation's to record: none of ours doubles them.
    assert telemetry.points("http.server.request.duration") == []


async def item_span_under_edge(
    serve: Serve,
    session: aiohttp.ClientSession,
    telemetry: Telemetry,
    tmp_path: Path,
    kind: SpanKind = SpanKind.INTERNAL,
) -> ReadableSpan:
    """GET ``/items/9`` through an outer middleware that opens a span "edge" of ``kind``;
    the one server span that the request leaves."""
    outer_tracer = telemetry.tracer_provider.get_tracer("outer")

    @web.middleware
    async def outer(request: web.Request, handler: Handler) -> web.StreamResponse:
        with outer_tracer.start_as_current_span("edge", kind=kind):
            return await handler(request)

    base = await serve(make_app(telemetry, tmp_path, middlewares=(outer,)))
    assert await get(session, base / "items" / "9") == 200
    (span,) = telemetry.server_spans()
    return span


async def test_no_second_span_under_an_outer_server_span(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    span = await item_span_under_edge(serve, session, telemetry, tmp_path, SpanKind.SERVER)
    assert span.name == "GET /items/{id}"  # renamed by route, as the conventions say
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/items/{id}"
    assert span.attributes["http.response.status_code"] == 200


async def test_an_outer_internal_span_is_the_parent(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    span = await item_span_under_edge(serve, session, telemetry, tmp_path)
    edge = next(s for s in telemetry.spans() if s.name == "edge")
    assert span.parent is not None
    assert span.parent.span_id == edge.context.span_id


def test_refuses_without_setup_after_freeze_and_twice(telemetry: Telemetry) -> None:
    with pytest.raises(RuntimeError, match=r"needs aiohttp_helpers\.setup\(app\) first"):
        setup_tracing(web.Application())
    app = web.Application()
    ah.setup(app)
    setup_tracing(app, tracer_provider=telemetry.tracer_provider)
    with pytest.raises(RuntimeError, match="already ran"):
        setup_tracing(app)
    parent, sub = web.Application(), web.Application()
    ah.setup(sub)
    parent.add_subapp("/sub", sub)
    with pytest.raises(RuntimeError, match="before the application is frozen"):
        setup_tracing(sub)
    with pytest.raises(TypeError, match=r"needs an aiohttp\.web\.Application"):
        setup_tracing(object())  # type: ignore[arg-type]
    assert trace.get_tracer_provider() is not telemetry.tracer_provider


class Forbidden(ah.HelpersError):
    """A refusal before the upgrade, as an Origin check answers one."""

    status = 403
    title = "Forbidden"


async def test_5xx_answers_cancellations_and_refused_upgrades(
    serve: Serve, session: aiohttp.ClientSession, telemetry: Telemetry, tmp_path: Path
) -> None:
    app = make_app(telemetry, tmp_path)
    entered = asyncio.Event()

    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503)

    async def hang(request: web.Request) -> web.Response:
        entered.set()
        await asyncio.sleep(30)
        raise AssertionError("not cancelled")

    async def guarded(request: web.Request) -> web.Response:
        raise Forbidden("this origin may not open a WebSocket here")

    app.router.add_get("/unavailable", unavailable)
    app.router.add_get("/hang", hang)
    app.router.add_get("/guarded", guarded)
    base = await serve(app, handler_cancellation=True)
    assert await get(session, base / "unavailable") == 503
    held = asyncio.create_task(session.get(base / "hang"))
    await asyncio.wait_for(entered.wait(), 5)
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    await until(lambda: len(telemetry.server_spans()) == 2)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await session.ws_connect(base.with_scheme("ws") / "guarded")

    unavailable_span, hung, refused = telemetry.server_spans()
    assert unavailable_span.status.status_code is StatusCode.ERROR
    assert unavailable_span.attributes is not None
    assert unavailable_span.attributes["error.type"] == "503"
    assert hung.attributes is not None
    assert hung.attributes["error.type"] == "CancelledError"
    assert "http.response.status_code" not in hung.attributes
    assert refused.attributes is not None
    assert refused.attributes[A + "problem.type"] == "forbidden"
    refusal = telemetry.point(A + "websocket.refusals", **{A + "problem.type": "forbidden"})
    assert refusal.attributes["http.response.status_code"] == 403
    assert (
        telemetry.point("http.server.active_requests", **{"http.request.method": "GET"}).value == 0
    )
