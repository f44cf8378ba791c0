"""The error middleware over real HTTP: problem+json, text/plain, and what it leaves alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers import errors
from aiohttp_helpers.keys import REQUEST_SCOPE_KEY
from aiohttp_helpers.scope import request_scope
from tests.support.apps import Serve, helped_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ERRORS: list[tuple[str, errors.HelpersError]] = [
    ("body", errors.BodyTooLarge(100)),
    ("file", errors.FileTooLarge("avatar", 10)),
    ("field", errors.FieldTooLarge("title", 20)),
    ("files", errors.TooManyFiles(3)),
    ("fields", errors.TooManyFields(4)),
    ("parts", errors.TooManyParts(5)),
    ("headers", errors.HeadersTooLarge("part headers are longer than 16 bytes", limit=16)),
    ("preamble", errors.PreambleTooLarge(64)),
    ("nesting", errors.NestingTooDeep(2, "inner")),
    ("decoded", errors.DecodedTooLarge("doc", 1000)),
    ("malformed", errors.MalformedMultipart("missing final boundary")),
    ("not-multipart", errors.NotMultipart("application/json")),
    ("encoding", errors.UnsupportedEncoding("Content-Encoding", "lzma", "doc")),
    ("type", errors.TypeNotAllowed("avatar", "text/html", ("image/png",))),
    ("idle", errors.UploadIdleTimeout(2.5)),
    ("storage", errors.InsufficientStorage("no room left to store the upload")),
]


def _one_route(handler: Handler, method: str = "GET") -> web.Application:
    """An app with the helpers set up and ``handler`` at ``/``."""
    app = web.Application()
    ah.setup(app)
    app.router.add_route(method, "/", handler)
    return app


def _app() -> web.Application:
    app = web.Application()
    ah.setup(app)
    for name, exc in ERRORS:

        async def handler(request: web.Request, exc: errors.HelpersError = exc) -> web.Response:
            raise exc

        app.router.add_get(f"/{name}", handler)
    return app


@pytest.mark.parametrize(("name", "exc"), [pytest.param(n, e, id=n) for n, e in ERRORS])
async def test_problem_json(
    aiohttp_client: AiohttpClient, name: str, exc: errors.HelpersError
) -> None:
    client = await aiohttp_client(_app())
    resp = await client.get(f"/{name}")
    assert resp.status == exc.status
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Cache-Control"] == "no-store"
    doc = await resp.json(content_type=None)
    assert doc["status"] == exc.status
    assert doc["title"] == exc.title
    assert doc["detail"] == str(exc)
    assert doc["type"].startswith("urn:aiohttp-helpers:problem:")
    assert doc["instance"] == f"/{name}"
    assert doc.get("field") == exc.field
    assert doc.get("limit") == exc.limit


@pytest.mark.parametrize(("name", "exc"), [pytest.param(n, e, id=n) for n, e in ERRORS])
async def test_text_plain_when_asked(
    aiohttp_client: AiohttpClient, name: str, exc: errors.HelpersError
) -> None:
    client = await aiohttp_client(_app())
    resp = await client.get(f"/{name}", headers={"Accept": "text/plain"})
    assert resp.status == exc.status
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert text == f"{exc.status} {exc.title}: {exc.detail}\n"


async def test_statuses_follow_the_design_table(aiohttp_client: AiohttpClient) -> None:
    expected = {
        "body": 413, "file": 413, "field": 413, "files": 413, "fields": 413, "parts": 413,
        "headers": 413, "preamble": 413, "nesting": 413, "decoded": 413,
        "malformed": 400, "not-multipart": 415, "encoding": 415, "type": 415,
        "idle": 408, "storage": 507,
    }  # fmt: skip
    client = await aiohttp_client(_app())
    for name, status in expected.items():
        resp = await client.get(f"/{name}")
        assert resp.status == status, name


async def test_problem_extension_members(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_app())
    doc = await (await client.get("/type")).json(content_type=None)
    assert doc["allowed"] == ["image/png"]
    assert doc["field"] == "avatar"
    assert doc["type"] == "urn:aiohttp-helpers:problem:type-not-allowed"


@pytest.mark.parametrize(
    ("accept", "text"),
    [
        pytest.param("", False, id="none"),
        pytest.param("*/*", False, id="any"),
        pytest.param("application/json", False, id="json"),
        pytest.param("application/problem+json, text/plain;q=0.5", False, id="problem-first"),
        pytest.param("text/plain", True, id="text"),
        pytest.param("text/*", True, id="text-range"),
        pytest.param("text/plain, application/json;q=0.9", True, id="text-higher"),
        pytest.param("text/plain;q=0.1, */*;q=0.5", False, id="text-lower-than-any"),
        pytest.param("text/plain;q=bogus, application/json", False, id="bad-q"),
        pytest.param("text/html,application/xhtml+xml,*/*;q=0.8", False, id="browser"),
        pytest.param("text/plain;q=0.5, */*;q=0.5", False, id="tie-goes-to-json"),
        pytest.param("text/plain;q=2", True, id="q-clamped"),
        pytest.param(",,text/plain", True, id="empty-items"),
    ],
)
async def test_accept_negotiation(aiohttp_client: AiohttpClient, accept: str, text: bool) -> None:
    client = await aiohttp_client(_app())
    resp = await client.get("/file", headers={"Accept": accept} if accept else {})
    assert resp.status == 413
    assert resp.content_type == ("text/plain" if text else "application/problem+json")


async def test_unexpected_exceptions_are_left_to_aiohttp(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret /srv/app/settings.py details")

    client = await aiohttp_client(_one_route(boom))
    with caplog.at_level(logging.ERROR, logger="aiohttp.server"):
        resp = await client.get("/")
    assert resp.status == 500
    body = await resp.text()
    assert "secret" not in body
    assert "/srv/app" not in body
    assert any("Error handling request" in r.getMessage() for r in caplog.records)


async def test_http_exceptions_pass_through(aiohttp_client: AiohttpClient) -> None:
    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound(text="nope")

    client = await aiohttp_client(_one_route(missing))
    resp = await client.get("/")
    assert resp.status == 404
    assert await resp.text() == "nope"
    resp = await client.get("/not-routed")
    assert resp.status == 404


async def test_request_scope_runs_cleanups_after_the_request(aiohttp_client: AiohttpClient) -> None:
    ran: list[str] = []

    async def async_cleanup() -> None:
        ran.append("async")

    def failing_cleanup() -> None:
        ran.append("failing")
        raise OSError("disk gone")

    async def handler(request: web.Request) -> web.Response:
        scope = request_scope(request)
        assert scope is not None
        scope.push(lambda: ran.append("sync"))
        scope.push(failing_cleanup)
        scope.push(async_cleanup)
        scope.push(lambda: ran.append("discarded"))
        discarded = scope._callbacks[-1]
        scope.discard(discarded)
        scope.discard(discarded)
        assert not ran
        return web.Response(text="ok")

    client = await aiohttp_client(_one_route(handler))
    resp = await client.get("/")
    assert resp.status == 200
    assert ran == ["async", "failing", "sync"]


async def test_scope_is_closed_after_the_request(aiohttp_client: AiohttpClient) -> None:
    kept: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        kept["scope"] = request[REQUEST_SCOPE_KEY]
        return web.Response(text="ok")

    client = await aiohttp_client(_one_route(handler))
    assert (await client.get("/")).status == 200
    scope = kept["scope"]
    assert scope.closed
    with pytest.raises(RuntimeError, match="scope is closed"):
        scope.push(lambda: None)


@pytest.mark.parametrize(
    "cancellation",
    [pytest.param(False, id="run-app-default"), pytest.param(True, id="handler-cancellation")],
)
async def test_client_disconnect_is_not_an_error(
    serve: Serve, caplog: pytest.LogCaptureFixture, cancellation: bool
) -> None:
    cleaned = asyncio.Event()
    reading = asyncio.Event()

    async def slow_upload(request: web.Request) -> web.Response:
        scope = request_scope(request)
        assert scope is not None
        scope.push(cleaned.set)
        reading.set()
        await request.read()
        return web.Response(text="read it all")

    url = await serve(_one_route(slow_upload, "POST"), handler_cancellation=cancellation)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
    await writer.drain()
    with caplog.at_level(logging.DEBUG):
        await asyncio.wait_for(reading.wait(), 5)
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(cleaned.wait(), 5)
        await asyncio.sleep(0.05)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    if not cancellation:
        assert any("client went away" in r.getMessage() for r in caplog.records)
    assert await reader.read() == b""


async def test_connection_error_with_live_client_is_an_error(
    aiohttp_client: AiohttpClient,
) -> None:
    errors_seen: list[BaseException] = []

    async def handler(request: web.Request) -> web.Response:
        raise ConnectionResetError("upstream database went away")

    async def on_error(request: web.Request, exc: BaseException) -> None:
        errors_seen.append(exc)

    app, helpers = helped_app()
    helpers.signals.on_request_error.append(on_error)
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    resp = await client.get("/")
    assert resp.status == 500
    assert [type(e) for e in errors_seen] == [ConnectionResetError]
