"""Prometheus metrics over real requests, uploads, WebSockets and lifecycles, scraped and parsed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry, generate_latest

import aiohttp_helpers as ah
from aiohttp_helpers.prometheus import setup_metrics
from aiohttp_helpers.testing import FormPart
from tests.support.apps import Serve, helped_app
from tests.support.metrics import Demo, parse, post, scrape, serve_demo, value
from tests.support.net import until


async def test_requests_by_route_template_and_status(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    _, base = await serve_demo(serve, tmp_path)
    for path in ("/items/1", "/items/2", "/no/such/path", "/secret/../x%00", "/boom"):
        async with session.get(base.with_path(path, encoded=True)) as resp:
            await resp.read()
    async with session.request("PROPFIND", base / "items" / "3") as resp:
        assert resp.status == 405
    samples = await scrape(session, base)

    total = "aiohttp_helpers_http_requests_total"
    assert value(samples, total, method="GET", route="/items/{id}", status="200") == 2
    # 404s of any path share one label value; the raw path never becomes a label.
    assert value(samples, total, method="GET", route="unmatched", status="404") == 2
    assert value(samples, total, method="GET", route="/boom", status="500") == 1
    assert value(samples, total, method="_OTHER", route="unmatched", status="405") == 1
    for sample in samples:
        for label in sample.labels.values():
            assert "no/such" not in label
            assert "secret" not in label
            assert "PROPFIND" not in label
    count = "aiohttp_helpers_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="/items/{id}") == 2
    assert value(samples, count, method="GET", route="/boom") == 0  # an error: no duration
    inf = value(
        samples,
        "aiohttp_helpers_http_request_duration_seconds_bucket",
        method="GET",
        route="/items/{id}",
        le="+Inf",
    )
    assert inf == 2
    # The scrape being answered is the one request in flight.
    assert value(samples, "aiohttp_helpers_http_requests_in_progress") == 1


async def test_requests_in_progress(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    demo, base = await serve_demo(serve, tmp_path)
    samples, held = await demo.scrape_while_held(session, base, session.get(base / "hold"))
    assert value(samples, "aiohttp_helpers_http_requests_in_progress") == 2
    async with await held as resp:
        assert await resp.text() == "held"
    samples = await scrape(session, base)
    assert value(samples, "aiohttp_helpers_http_requests_in_progress") == 1
    assert value(samples, "aiohttp_helpers_http_requests_total", route="/hold") == 1


async def test_uploads_files_bytes_refusals_and_spool(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    demo, base = await serve_demo(serve, tmp_path)
    url = base / "upload"
    small = FormPart(name="doc", filename="a.txt", data=b"x" * 100)
    large = FormPart(name="doc", filename="b.bin", data=b"y" * 50_000)
    assert await post(session, url, small, large) == 200
    assert await post(session, url, FormPart(name="doc", filename="c", data=b"z" * 200_000)) == 413
    png_lie = FormPart(name="avatar", filename="x.png", content_type="text/html", data=b"<p>")
    assert await post(session, url, png_lie) == 415
    async with session.post(url, data=b"{}", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 415

    samples = await scrape(session, base)
    assert value(samples, "aiohttp_helpers_upload_files_total", route="/upload") == 2
    assert value(samples, "aiohttp_helpers_upload_file_bytes_total", route="/upload") == 50_100
    refusals = "aiohttp_helpers_refusals_total"
    assert value(samples, refusals, route="/upload", problem="file-too-large", status="413") == 1
    assert value(samples, refusals, route="/upload", problem="type-not-allowed", status="415") == 1
    assert value(samples, refusals, route="/upload", problem="not-multipart", status="415") == 1
    body_bytes = value(
        samples, "aiohttp_helpers_http_request_body_bytes_total", method="POST", route="/upload"
    )
    assert body_bytes is not None
    assert body_bytes > 50_100 + 100_000
    assert value(samples, "aiohttp_helpers_upload_spooled_bytes") == 0

    # A spooled file still held by its request is on disk, and counted, until the request ends.
    samples, held = await demo.scrape_while_held(
        session, base, post(session, url, large, ("hold", "1"))
    )
    assert value(samples, "aiohttp_helpers_upload_spooled_bytes") == 50_000
    assert await held == 200
    samples = await scrape(session, base)
    assert value(samples, "aiohttp_helpers_upload_spooled_bytes") == 0
    assert value(samples, "aiohttp_helpers_upload_files_total", route="/upload") == 3


async def test_websockets_open_closed_codes_messages_refusals(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    demo, base = await serve_demo(serve, tmp_path, max_connections=2)
    url = base.with_scheme("ws") / "ws"
    registry = demo.helpers.websockets
    async with session.ws_connect(url) as one, session.ws_connect(url) as two:
        await until(lambda: len(registry) == 2)
        async with session.ws_connect(url) as three:  # over the cap
            msg = await three.receive()
            assert msg.type is WSMsgType.CLOSE
            assert msg.data == 1013
        await one.send_str("héllo")  # 6 bytes in UTF-8
        assert (await one.receive()).data == "héllo"
        await two.send_bytes(b"\x00" * 10)
        assert (await two.receive()).data == b"\x00" * 10
        samples = await scrape(session, base)
        assert value(samples, "aiohttp_helpers_websocket_connections") == 2
        messages = "aiohttp_helpers_websocket_messages_total"
        assert value(samples, messages, direction="in") == 2
        assert value(samples, messages, direction="out") == 2
        payload = "aiohttp_helpers_websocket_message_bytes_total"
        assert value(samples, payload, direction="in") == 16
        assert value(samples, payload, direction="out") == 16
        await one.close(code=4321, message=b"client leaves")  # the client closes first
        await two.send_str("crash")  # the handler fails: the server closes with 1011
        msg = await two.receive()
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1011
    async with session.ws_connect(url) as four:
        await four.send_str("bye")
        msg = await four.receive()
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1000
    await until(lambda: len(registry) == 0)

    samples = await scrape(session, base)
    assert value(samples, "aiohttp_helpers_websocket_connections") == 0
    assert value(samples, "aiohttp_helpers_websocket_opened_total", route="/ws") == 3
    closed = "aiohttp_helpers_websocket_closed_total"
    # A code the client chose collapses to its range: clients cannot mint label values.
    assert value(samples, closed, route="/ws", code="4xxx", closed_by="client") == 1
    assert value(samples, closed, route="/ws", code="1011", closed_by="server") == 1
    assert value(samples, closed, route="/ws", code="1000", closed_by="server") == 1
    refusals = "aiohttp_helpers_websocket_refusals_total"
    assert value(samples, refusals, route="/ws", reason="max-connections", code="1013") == 1
    # Counts survive the sockets that made them.
    assert value(samples, "aiohttp_helpers_websocket_messages_total", direction="in") == 4
    assert value(samples, "aiohttp_helpers_http_requests_total", route="/ws", status="101") == 4


async def test_registry_counters_read_when_the_registry_has_them(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    demo, base = await serve_demo(serve, tmp_path)
    async with session.ws_connect(base.with_scheme("ws") / "ws") as ws:
        await until(lambda: len(demo.helpers.websockets) == 1)
        await demo.helpers.websockets.broadcast("to all")
        assert (await ws.receive()).data == "to all"
        samples = await scrape(session, base)
    registry = demo.helpers.websockets
    for name in ("broadcasts", "deliveries", "slow_closes"):
        metric = value(samples, f"aiohttp_helpers_websocket_{name}_total")
        if hasattr(registry, name):  # the registry counts them (issue 13)
            assert metric == getattr(registry, name)
        else:  # nothing to read: no made-up zero
            assert metric is None


async def test_lifecycle_state_hooks_and_drain(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    demo, base = await serve_demo(serve, tmp_path)
    samples = await scrape(session, base)
    state = "aiohttp_helpers_app_state"
    assert value(samples, state, state="ready") == 1
    assert value(samples, state, state="draining") == 0
    warm = value(
        samples, "aiohttp_helpers_lifecycle_hook_duration_seconds", phase="startup", hook="warm"
    )
    assert warm is not None
    assert warm >= 0.01
    assert value(samples, "aiohttp_helpers_lifecycle_drain_seconds") == 0

    drain = asyncio.create_task(demo.helpers.lifecycle.drain(0.3))
    await until(lambda: demo.helpers.state is ah.AppState.DRAINING)
    await asyncio.sleep(0.05)
    samples = await scrape(session, base)
    assert value(samples, state, state="draining") == 1
    assert value(samples, state, state="ready") == 0
    so_far = value(samples, "aiohttp_helpers_lifecycle_drain_seconds")
    assert so_far is not None
    assert 0 < so_far < 0.3
    await drain


async def test_startup_failure_counted(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    app, helpers = helped_app()

    @helpers.lifecycle.on_startup(name="connect-db")
    async def connect(app: web.Application) -> None:
        raise ConnectionRefusedError("no database")

    metrics = setup_metrics(app, registry=registry)
    runner = web.AppRunner(app)
    with pytest.raises(ah.HookError, match="connect-db"):
        await runner.setup()
    samples = parse(generate_latest(registry).decode())
    failures = "aiohttp_helpers_lifecycle_hook_failures_total"
    assert value(samples, failures, phase="startup", hook="connect-db") == 1
    assert value(samples, "aiohttp_helpers_app_state", state="stopped") == 1
    await runner.cleanup()
    assert metrics.state is ah.AppState.STOPPED


async def test_sub_apps_routes_uploads_and_websockets(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path, app: web.Application
) -> None:
    api = web.Application()  # a sub-app with its own setup(): its own signals and registry
    api_helpers = ah.setup(api, limits=ah.UploadLimits(tmp_dir=tmp_path))

    async def item(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def upload(request: web.Request) -> web.Response:
        async with await ah.read_form(request) as form:
            return web.json_response({"files": len(form.files)})

    @ah.websocket_handler
    async def feed(request: web.Request, ws: ah.ServerWebSocket) -> None:
        await ws.send_str("welcome")

    api.router.add_get("/items/{id:\\d+}", item)
    api.router.add_post("/upload", upload)
    api.router.add_get("/feed", feed)
    setup_metrics(app, path="/internal/metrics", registry=CollectorRegistry())
    app.add_subapp("/api", api)
    base = await serve(app)
    async with session.get(base / "api" / "items" / "7") as resp:
        assert resp.status == 200
    part = FormPart(name="doc", filename="a.txt", data=b"a" * 10)
    assert await post(session, base / "api" / "upload", part) == 200
    async with session.ws_connect(base.with_scheme("ws") / "api" / "feed") as ws:
        assert (await ws.receive()).data == "welcome"
        assert (await ws.receive()).data == 1000
    await until(lambda: len(api_helpers.websockets) == 0)
    samples = await scrape(session, base, "/internal/metrics")
    total = "aiohttp_helpers_http_requests_total"
    assert value(samples, total, route="/api/items/{id}", status="200") == 1
    assert value(samples, "aiohttp_helpers_upload_files_total", route="/api/upload") == 1
    assert value(samples, "aiohttp_helpers_websocket_opened_total", route="/api/feed") == 1
    closed = "aiohttp_helpers_websocket_closed_total"
    assert value(samples, closed, route="/api/feed", code="1000", closed_by="server") == 1
    assert value(samples, "aiohttp_helpers_websocket_messages_total", direction="out") == 1


async def test_openmetrics_when_asked(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    _, base = await serve_demo(serve, tmp_path)
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with session.get(base / "metrics", headers=headers) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        text = await resp.text()
    assert text.endswith("# EOF\n")
    assert "aiohttp_helpers_app_state" in text


def test_refuses_without_setup_after_freeze_and_twice() -> None:
    with pytest.raises(RuntimeError, match=r"needs aiohttp_helpers\.setup\(app\) first"):
        setup_metrics(web.Application(), registry=CollectorRegistry())

    app = web.Application()
    ah.setup(app)
    setup_metrics(app, registry=CollectorRegistry())
    with pytest.raises(RuntimeError, match="already ran"):
        setup_metrics(app, registry=CollectorRegistry())

    parent, sub = web.Application(), web.Application()
    ah.setup(sub)
    parent.add_subapp("/sub", sub)  # freezes the sub-app
    with pytest.raises(RuntimeError, match="before the application is frozen"):
        setup_metrics(sub, registry=CollectorRegistry())

    with pytest.raises(ValueError, match="path must be a path"):
        setup_metrics(app, path="metrics")
    with pytest.raises(TypeError, match=r"needs an aiohttp\.web\.Application"):
        setup_metrics(object(), registry=CollectorRegistry())  # type: ignore[arg-type]


async def test_one_registry_per_app(serve: Serve) -> None:
    registry = CollectorRegistry(auto_describe=True)
    first, second = web.Application(), web.Application()
    ah.setup(first)
    ah.setup(second)
    setup_metrics(first, registry=registry)
    with pytest.raises(ValueError, match="give each app its own"):
        setup_metrics(second, registry=registry)
    # The default registry: taken by this app, given back at its cleanup.
    third = web.Application()
    ah.setup(third)
    setup_metrics(third)
    runner = web.AppRunner(third)
    await runner.setup()
    await runner.cleanup()
    fourth = web.Application()
    ah.setup(fourth)
    setup_metrics(fourth)
    runner = web.AppRunner(fourth)
    await runner.setup()
    await runner.cleanup()


@pytest.mark.parametrize(
    ("module", "extra", "blocked"),
    [
        pytest.param("aiohttp_helpers.prometheus", "prometheus", "prometheus_client", id="prom"),
        pytest.param("aiohttp_helpers.opentelemetry", "opentelemetry", "opentelemetry", id="otel"),
    ],
)
def test_optional_extras(module: str, extra: str, blocked: str) -> None:
    # Importing the package never imports either library.
    code = (
        "import sys, aiohttp_helpers\n"
        "assert not any(m.split('.')[0] in ('prometheus_client', 'opentelemetry')"
        " for m in sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    # Without the library, the module says which extra to install.
    code = f"import sys\nsys.modules[{blocked!r}] = None\nimport {module}\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert f"pip install 'aiohttp-helpers[{extra}]'" in done.stderr


async def test_demo_exposes_metrics(serve: Serve, session: aiohttp.ClientSession) -> None:
    from examples import demo

    base = await serve(demo.create_app())
    async with session.get(base / "limits") as resp:
        assert resp.status == 200
    samples = await scrape(session, base)
    assert value(samples, "aiohttp_helpers_http_requests_total", route="/limits") == 1
    assert value(samples, "aiohttp_helpers_app_state", state="ready") == 1


async def test_websocket_refusals_per_client_stopping_and_before_the_upgrade(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    demo, base = await serve_demo(serve, tmp_path, max_connections_per_client=1)
    url = base.with_scheme("ws") / "ws"
    async with session.ws_connect(url) as one:
        await until(lambda: len(demo.helpers.websockets) == 1)
        async with session.ws_connect(url) as two:
            assert (await two.receive()).data == 1013
        await one.send_str("bye")
        await one.receive()
    # A page on another origin: the package's Origin check refuses it before the upgrade.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(url, origin="http://evil.example")
    assert refused.value.status == 403
    drain = asyncio.create_task(demo.helpers.lifecycle.drain(5))
    await until(lambda: demo.helpers.state is ah.AppState.DRAINING)
    async with session.ws_connect(url) as late:
        assert (await late.receive()).data == 1001
    samples = await scrape(session, base)
    refusals = "aiohttp_helpers_websocket_refusals_total"
    assert value(samples, refusals, reason="max-connections-per-client", code="1013") == 1
    assert value(samples, refusals, route="/ws", reason="origin-not-allowed", code="403") == 1
    assert value(samples, refusals, reason="stopping", code="1001") == 1
    assert value(samples, "aiohttp_helpers_refusals_total", problem="origin-not-allowed") == 1
    drain.cancel()
    await asyncio.wait([drain])


async def test_cancelled_request_counts_as_499(
    serve: Serve, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    demo = Demo(tmp_path)
    base = await serve(demo.app, handler_cancellation=True)
    held = await demo.start_held(session.get(base / "hold"))
    held.cancel()  # the client goes away: the server cancels the handler
    with pytest.raises(asyncio.CancelledError):
        await held
    await until(lambda: demo.metrics._in_flight == 0)
    samples = await scrape(session, base)
    assert value(samples, "aiohttp_helpers_http_requests_total", route="/hold", status="499") == 1


async def test_no_route_when_path_is_none(serve: Serve, session: aiohttp.ClientSession) -> None:
    registry = CollectorRegistry()
    app = web.Application()
    ah.setup(app)
    setup_metrics(app, path=None, registry=registry)
    base = await serve(app)
    async with session.get(base / "metrics") as resp:
        assert resp.status == 404
    samples = parse(generate_latest(registry).decode())
    total = "aiohttp_helpers_http_requests_total"
    assert value(samples, total, route="unmatched", status="404") == 1


def test_label_helpers_for_what_a_round_trip_rarely_shows(tmp_path: Path) -> None:
    from aiohttp_helpers import _observe

    assert _observe.close_code_label(2999, "client") == "other"
    assert _observe.close_code_label(4000, "server") == "4000"
    assert _observe.close_code_label(3001, "client") == "3xxx"
    assert _observe.closed_by(web.WebSocketResponse()) == "unknown"
    assert _observe.spooled_bytes(tmp_path / "missing") == 0
    (tmp_path / "aiohttp-helpers-abc").write_bytes(b"x" * 7)
    (tmp_path / "someone-else").write_bytes(b"y" * 5)
    assert _observe.spooled_bytes(tmp_path) == 7
