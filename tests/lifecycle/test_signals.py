"""Request signals over real HTTP: what each receiver gets for 2xx, 4xx and unhandled errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.signals import SafeSignal
from tests.support.apps import Serve, helped_app

# -- SafeSignal ----------------------------------------------------------------------------


async def test_receivers_run_in_order_and_a_failure_skips_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    signal: SafeSignal[int] = SafeSignal(object(), "on_thing")

    async def first(n: int) -> None:
        calls.append(f"first:{n}")

    async def broken(n: int) -> None:
        calls.append(f"broken:{n}")
        raise RuntimeError("receiver bug")

    async def last(n: int) -> None:
        calls.append(f"last:{n}")

    signal.extend([first, broken, last])
    signal.freeze()
    with caplog.at_level(logging.ERROR, logger="aiohttp_helpers.signals"):
        await signal.send(7)
    assert calls == ["first:7", "broken:7", "last:7"]
    [record] = caplog.records
    assert "of on_thing failed" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "receiver bug"


async def test_strict_mode_reraises_the_first_error_after_all_ran() -> None:
    calls: list[str] = []
    signal: SafeSignal[()] = SafeSignal(object(), "on_thing", strict=True)

    async def one() -> None:
        calls.append("one")
        raise KeyError("one")

    async def two() -> None:
        calls.append("two")
        raise ValueError("two")

    signal.extend([one, two])
    signal.freeze()
    with pytest.raises(KeyError, match="one"):
        await signal.send()
    assert calls == ["one", "two"]


async def test_send_needs_freeze() -> None:
    signal: SafeSignal[()] = SafeSignal(object(), "on_thing")
    assert signal.name == "on_thing"
    assert repr(signal) == "<SafeSignal on_thing frozen=False receivers=[]>"
    with pytest.raises(RuntimeError, match="cannot send non-frozen signal on_thing"):
        await signal.send()


async def test_request_signals_freeze_with_the_app(
    aiohttp_client: AiohttpClient, app: web.Application, helpers: ah.Helpers
) -> None:
    signals = helpers.signals
    assert [signals.frozen, signals.on_request_end.frozen] == [False, False]
    await aiohttp_client(app)
    assert [signals.frozen, signals.on_request_end.frozen] == [True, True]
    assert [s.name for s in helpers.signals] == [
        "on_request_start",
        "on_request_end",
        "on_request_error",
        "on_upload",
        "on_ws_open",
        "on_ws_close",
    ]

    async def late(request: web.Request) -> None: ...

    with pytest.raises(RuntimeError, match="frozen"):
        helpers.signals.on_request_start.append(late)


# -- over HTTP -----------------------------------------------------------------------------


@dataclass
class Seen:
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    handled: list[web.Request] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]

    def args(self, kind: str) -> tuple[Any, ...]:
        return next(args for k, args in self.calls if k == kind)


def make_app(seen: Seen, *, strict: bool = False) -> tuple[web.Application, ah.Helpers]:
    app, helpers = helped_app(strict_signals=strict)

    async def on_start(request: web.Request) -> None:
        seen.calls.append(("start", (request,)))

    async def on_end(request: web.Request, response: web.StreamResponse, seconds: float) -> None:
        seen.calls.append(("end", (request, response, seconds)))
        seen.done.set()

    async def on_error(request: web.Request, exc: BaseException) -> None:
        seen.calls.append(("error", (request, exc)))
        seen.done.set()

    helpers.signals.on_request_start.append(on_start)
    helpers.signals.on_request_end.append(on_end)
    helpers.signals.on_request_error.append(on_error)

    async def ok(request: web.Request) -> web.Response:
        seen.handled.append(request)
        await asyncio.sleep(0.05)
        return web.Response(text="ok", status=201)

    async def conflict(request: web.Request) -> web.Response:
        seen.handled.append(request)
        raise web.HTTPConflict(text="taken")

    async def too_large(request: web.Request) -> web.Response:
        seen.handled.append(request)
        raise ah.FileTooLarge("avatar", 10)

    async def boom(request: web.Request) -> web.Response:
        seen.handled.append(request)
        raise LookupError("bug in the handler")

    async def slow(request: web.Request) -> web.Response:
        seen.handled.append(request)
        seen.started.set()
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    app.router.add_get("/ok", ok)
    app.router.add_get("/conflict", conflict)
    app.router.add_get("/too-large", too_large)
    app.router.add_get("/boom", boom)
    app.router.add_get("/slow", slow)
    return app, helpers


Base = Callable[[web.Application], Awaitable[URL]]


@pytest.fixture(params=["run_app-like", "test-client"])
def base(request: pytest.FixtureRequest, serve: Serve, aiohttp_server: Any) -> Base:
    """Serve an app with handler_cancellation off (as run_app) or on (pytest-aiohttp)."""

    async def start(app: web.Application) -> URL:
        if request.param == "run_app-like":
            return await serve(app)
        server = await aiohttp_server(app)
        return URL(str(server.make_url("/")))

    return start


@pytest.fixture
async def served(base: Base) -> tuple[Seen, URL]:
    """``make_app()`` served by ``base``: what its receivers see, and its URL."""
    seen = Seen()
    app, _ = make_app(seen)
    return seen, await base(app)


async def fetch(url: URL) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def test_2xx(served: tuple[Seen, URL]) -> None:
    seen, url = served
    assert await fetch(url / "ok") == (201, "ok")
    assert seen.kinds() == ["start", "end"]
    [handled] = seen.handled
    assert seen.args("start") == (handled,)
    request, response, seconds = seen.args("end")
    assert request is handled
    assert isinstance(response, web.Response)
    assert response.status == 201
    assert 0.04 < seconds < 5


async def test_4xx_via_http_exception_is_a_response(served: tuple[Seen, URL]) -> None:
    seen, url = served
    assert await fetch(url / "conflict") == (409, "taken")
    assert seen.kinds() == ["start", "end"]
    request, response, seconds = seen.args("end")
    assert request is seen.handled[0]
    assert isinstance(response, web.HTTPConflict)
    assert response.status == 409
    assert seconds >= 0


async def test_package_error_is_a_response(served: tuple[Seen, URL]) -> None:
    seen, url = served
    status, _ = await fetch(url / "too-large")
    assert status == 413
    assert seen.kinds() == ["start", "end"]
    _, response, _ = seen.args("end")
    assert response.status == 413
    assert response.content_type == "application/problem+json"


async def test_unhandled_error(served: tuple[Seen, URL], caplog: pytest.LogCaptureFixture) -> None:
    seen, url = served
    with caplog.at_level(logging.ERROR, logger="aiohttp.server"):
        status, body = await fetch(url / "boom")
    assert status == 500
    assert "bug in the handler" not in body
    assert seen.kinds() == ["start", "error"]
    request, exc = seen.args("error")
    assert request is seen.handled[0]
    assert isinstance(exc, LookupError)
    assert exc.args == ("bug in the handler",)


async def test_client_gone_under_handler_cancellation(aiohttp_server: Any) -> None:
    seen = Seen()
    app, _ = make_app(seen)
    server = await aiohttp_server(app)  # handler_cancellation=True
    _, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(seen.started.wait(), 5)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(seen.done.wait(), 5)
    assert seen.kinds() == ["start", "error"]
    _, exc = seen.args("error")
    assert isinstance(exc, asyncio.CancelledError)


@pytest.mark.parametrize(
    "broken", [pytest.param(k, id=k) for k in ("on_request_start", "on_request_end")]
)
async def test_failing_receiver_neither_breaks_the_request_nor_skips_others(
    base: Base, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    app, helpers = make_app(seen)

    async def bad(*args: Any) -> None:
        raise RuntimeError("metrics backend down")

    getattr(helpers.signals, broken).insert(0, bad)
    url = await base(app)
    with caplog.at_level(logging.ERROR, logger="aiohttp_helpers.signals"):
        assert await fetch(url / "ok") == (201, "ok")
    assert seen.kinds() == ["start", "end"]
    assert any(f"of {broken} failed" in r.getMessage() for r in caplog.records)


async def test_failing_error_receiver_keeps_the_500(base: Base) -> None:
    seen = Seen()
    app, helpers = make_app(seen)

    async def bad(request: web.Request, exc: BaseException) -> None:
        raise RuntimeError("alerting down")

    helpers.signals.on_request_error.insert(0, bad)
    url = await base(app)
    status, _ = await fetch(url / "boom")
    assert status == 500
    assert seen.kinds() == ["start", "error"]


async def test_strict_mode_surfaces_a_failing_receiver(serve: Serve) -> None:
    seen = Seen()
    app, helpers = make_app(seen, strict=True)

    async def bad(request: web.Request) -> None:
        raise RuntimeError("receiver bug")

    helpers.signals.on_request_start.insert(0, bad)
    url = await serve(app)
    status, _ = await fetch(url / "ok")
    assert status == 500
    assert seen.kinds() == ["start"]  # the other receiver still ran; the handler did not


async def test_no_receivers_no_calls(base: Base, app: web.Application, helpers: ah.Helpers) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    url = await base(app)
    assert await fetch(url) == (200, "ok")
    assert not any(helpers.signals)


def test_wants_request_events() -> None:
    helpers = ah.setup(web.Application())
    assert helpers.signals.wants_request_events is False

    async def on_upload(request: web.Request, uploaded: Any) -> None: ...

    helpers.signals.on_upload.append(on_upload)
    assert helpers.signals.wants_request_events is False

    async def on_end(
        request: web.Request, response: web.StreamResponse, seconds: float
    ) -> None: ...

    helpers.signals.on_request_end.append(on_end)
    assert helpers.signals.wants_request_events is True
