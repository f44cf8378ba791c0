"""Origins checked before the upgrade: ``allowed_origins``, 403 problem+json, and the log line."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.origins import parse_host, parse_origin
from tests.support.apps import Serve, helped_app
from tests.support.net import until
from tests.support.peers import ws_url

PROBLEM_TYPE = "urn:aiohttp-helpers:problem:origin-not-allowed"


def origin_app(
    settings: ah.WebSocketSettings | None = None, **route: Any
) -> tuple[web.Application, list[str]]:
    """An app whose ``/`` socket says "hi" and closes; records every socket opened."""
    app, helpers = helped_app(websockets=settings)
    opened: list[str] = []

    async def on_open(request: web.Request, ws: web.WebSocketResponse) -> None:
        opened.append(request.headers.get("Origin", ""))

    helpers.signals.on_ws_open.append(on_open)

    async def hello(request: web.Request, ws: ah.ServerWebSocket) -> None:
        await ws.send_str("hi")

    app.router.add_get("/", ah.websocket_handler(heartbeat=None, **route)(hello))
    return app, opened


async def raw_upgrade(base: URL, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Send an upgrade request with exactly ``headers`` (Host included); status and body."""
    assert base.host is not None
    assert base.port is not None
    reader, writer = await asyncio.open_connection(base.host, base.port)
    try:
        key = base64.b64encode(os.urandom(16))
        lines = [b"GET / HTTP/1.1"]
        lines += [name + b": " + value for name, value in headers]
        lines += [
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Key: " + key,
            b"Sec-WebSocket-Version: 13",
        ]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            body = b""
            if status != 101:
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
        return status, body
    finally:
        writer.close()


def host_of(base: URL) -> bytes:
    return f"{base.host}:{base.port}".encode()


# -- the same-origin rule, with the Host and Origin a browser (or an attacker) sends ------

SAME_ORIGIN_CASES = [
    # (Host, Origin, upgraded?)
    pytest.param(b"app.example", None, True, id="no-origin"),
    pytest.param(b"app.example", b"http://app.example", True, id="same-default-port-http"),
    pytest.param(b"app.example", b"https://app.example", True, id="same-default-port-https"),
    pytest.param(b"app.example", b"http://app.example:80", True, id="explicit-default-port"),
    pytest.param(b"app.example:443", b"https://app.example", True, id="host-with-443"),
    pytest.param(b"app.example:8080", b"http://app.example:8080", True, id="same-port"),
    pytest.param(b"App.EXAMPLE:8080", b"HTTP://app.Example:8080", True, id="case"),
    pytest.param(b"app.example.:8080", b"http://app.example:8080", True, id="trailing-dot-host"),
    pytest.param(b"app.example:8080", b"http://app.example.:8080", True, id="trailing-dot-origin"),
    pytest.param(b"[::1]:8080", b"http://[0:0::1]:8080", True, id="ipv6"),
    pytest.param(b"[::1]", b"https://[::1]", True, id="ipv6-default-port"),
    pytest.param(b"127.0.0.1:8080", b"http://127.0.0.1:8080", True, id="ipv4"),
    pytest.param(b"app.example", b"https://evil.example", False, id="other-host"),
    pytest.param(b"app.example", b"https://app.example.evil.example", False, id="suffix"),
    pytest.param(b"app.example", b"https://evilapp.example", False, id="prefix"),
    pytest.param(b"app.example:8080", b"http://app.example:8081", False, id="other-port"),
    pytest.param(b"app.example:8080", b"http://app.example", False, id="port-left-out"),
    pytest.param(b"app.example", b"http://app.example:443", False, id="http-on-443"),
    pytest.param(b"app.example:80", b"https://app.example", False, id="https-vs-80"),
    pytest.param(b"app.example", b"null", False, id="null"),
    pytest.param(b"app.example", b"NULL", False, id="null-upper-case"),
    pytest.param(b"app.example", b"", False, id="empty"),
    pytest.param(b"app.example", b"app.example", False, id="no-scheme"),
    pytest.param(b"app.example", b"http://app.example/", False, id="path"),
    pytest.param(b"app.example", b"http://app.example?x", False, id="query"),
    pytest.param(b"app.example", b"http://app.example#x", False, id="fragment"),
    pytest.param(b"app.example", b"http://evil@app.example", False, id="userinfo"),
    pytest.param(b"app.example", b"http://app.example:", False, id="empty-port"),
    pytest.param(b"app.example", b"http://app.example:99999", False, id="port-out-of-range"),
    pytest.param(b"app.example", b"http://app.example:0", False, id="port-zero"),
    pytest.param(b"app.example", b"http://app.example:+80", False, id="signed-port"),
    pytest.param(b"app.example", b"http://app example", False, id="space"),
    pytest.param(b"app.example", b"http://app.example\\", False, id="backslash"),
    pytest.param(b"app.example", b"http://%61pp.example", False, id="percent-encoded"),
    pytest.param(b"app.example", b"javascript:alert(1)", False, id="javascript"),
    pytest.param(b"app.example", "http://äpp.example".encode(), False, id="non-ascii"),
    pytest.param(b"app.example", b"http://" + b"a" * 600, False, id="very-long"),
    pytest.param(b"[::1]:8080", b"http://[::1%25eth0]:8080", False, id="ipv6-zone"),
    pytest.param(b"[::1]:8080", b"http://[::1:8080", False, id="ipv6-unclosed"),
    pytest.param(b"[::1]:8080", b"http://[::2]:8080", False, id="ipv6-other"),
    pytest.param(b"app example", b"http://app.example", False, id="host-garbage"),
    pytest.param("äpp.example".encode(), b"http://app.example", False, id="host-non-ascii"),
    pytest.param(b"[::1]:8080", b"http://[::g]:8080", False, id="ipv6-not-an-address"),
]


@pytest.mark.parametrize(("host", "origin", "upgraded"), SAME_ORIGIN_CASES)
async def test_same_origin_rule(
    serve: Serve, host: bytes, origin: bytes | None, upgraded: bool
) -> None:
    app, opened = origin_app()
    base = await serve(app)
    headers = [(b"Host", host)]
    if origin is not None:
        headers.append((b"Origin", origin))
    status, body = await raw_upgrade(base, headers)
    if upgraded:
        assert status == 101
        await until(lambda: len(opened) == 1)
    else:
        assert status == 403
        doc = json.loads(body)
        assert doc["type"] == PROBLEM_TYPE
        assert doc["status"] == 403
        assert opened == []
    assert len(ah.get_helpers(app).websockets) == 0 or upgraded


async def test_several_origin_headers_are_refused(serve: Serve) -> None:
    app, opened = origin_app()
    base = await serve(app)
    same = b"http://" + host_of(base)
    for headers in (
        [(b"Origin", same), (b"Origin", same)],
        [(b"Origin", same), (b"Origin", b"https://evil.example")],
        [(b"Origin", b"https://evil.example"), (b"Origin", same)],
    ):
        status, body = await raw_upgrade(base, [(b"Host", host_of(base)), *headers])
        assert status == 403
        assert json.loads(body)["type"] == PROBLEM_TYPE
    # One of them alone is fine.
    status, _ = await raw_upgrade(base, [(b"Host", host_of(base)), (b"Origin", same)])
    assert status == 101
    await until(lambda: opened == [same.decode()])


# -- aiohttp's client --------------------------------------------------------------------


async def test_aiohttp_client_from_a_foreign_origin_gets_403_before_the_upgrade(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    app, opened = origin_app()
    helpers = ah.get_helpers(app)
    ends: list[int] = []

    async def on_end(request: web.Request, response: web.StreamResponse, seconds: float) -> None:
        ends.append(response.status)

    helpers.signals.on_request_end.append(on_end)
    base = await serve(app)
    url = ws_url(base)
    caplog.set_level(logging.INFO, logger="aiohttp_helpers.websocket")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url, origin="https://evil.example")
        assert info.value.status == 403
        # The same request as a plain GET shows the answer's body.
        async with session.get(
            base,
            headers={
                "Origin": "https://evil.example",
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                "Sec-WebSocket-Version": "13",
            },
        ) as resp:
            assert resp.status == 403
            assert resp.content_type == "application/problem+json"
            assert resp.headers["Cache-Control"] == "no-store"
            doc = await resp.json(content_type=None)
        assert doc == {
            "type": PROBLEM_TYPE,
            "title": "Origin not allowed",
            "status": 403,
            "detail": "the Origin of this request may not open a WebSocket here",
            "instance": "/",
        }
        # The page's own origin, and a client that sends none, are upgraded.
        async with session.ws_connect(url, origin=f"http://{base.host}:{base.port}") as ws:
            assert await ws.receive_str() == "hi"
        async with session.ws_connect(url) as ws:
            assert await ws.receive_str() == "hi"
    await until(lambda: len(opened) == 2)
    assert opened == [f"http://{base.host}:{base.port}", ""]
    # The log says why, and the request signal saw the 403.
    refusals = [r for r in caplog.records if "refused with 403" in r.getMessage()]
    assert len(refusals) == 2
    message = refusals[0].getMessage()
    assert "neither the Host nor in allowed_origins" in message
    assert "'https://evil.example'" in message
    assert refusals[0].levelno == logging.INFO
    assert 403 in ends


async def test_refusal_as_text_when_the_client_prefers_it(serve: Serve) -> None:
    app, _ = origin_app()
    base = await serve(app)
    status, body = await raw_upgrade(
        base,
        [(b"Host", host_of(base)), (b"Origin", b"null"), (b"Accept", b"text/plain")],
    )
    assert status == 403
    assert body.decode().startswith("403 Origin not allowed: ")


@pytest.mark.parametrize(
    ("allowed", "origin", "upgraded"),
    [
        pytest.param(("https://app.example",), "https://app.example", True, id="listed"),
        pytest.param(("https://app.example",), "HTTPS://App.Example:443", True, id="normalised"),
        pytest.param(("https://app.example.",), "https://app.example", True, id="trailing-dot"),
        pytest.param(("https://app.example",), "http://app.example", False, id="other-scheme"),
        pytest.param(("https://app.example",), "https://app.example:8443", False, id="other-port"),
        pytest.param(("https://app.example",), "https://sub.app.example", False, id="subdomain"),
        pytest.param(("https://app.example",), "null", False, id="null"),
        pytest.param(("http://[::1]:3000",), "http://[0::1]:3000", True, id="ipv6"),
        pytest.param(("*",), "https://evil.example", True, id="star"),
        pytest.param(("*",), "null", True, id="star-null"),
        pytest.param((), "https://evil.example", False, id="empty-tuple"),
    ],
)
async def test_allowed_origins_add_to_the_same_origin(
    serve: Serve, allowed: tuple[str, ...], origin: str, upgraded: bool
) -> None:
    app, opened = origin_app(ah.WebSocketSettings(allowed_origins=allowed))
    base = await serve(app)
    url = ws_url(base)
    async with aiohttp.ClientSession() as session:
        if upgraded:
            async with session.ws_connect(url, origin=origin) as ws:
                assert await ws.receive_str() == "hi"
            await until(lambda: opened == [origin])
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(url, origin=origin)
            assert info.value.status == 403
            assert opened == []
        # The same origin stays allowed whatever the list says.
        async with session.ws_connect(url, origin=f"http://{base.host}:{base.port}") as ws:
            assert await ws.receive_str() == "hi"


async def test_decorator_option_overrides_the_app_setting(serve: Serve) -> None:
    app, _ = origin_app(
        ah.WebSocketSettings(allowed_origins=("https://app.example",)),
        allowed_origins=("https://partner.example",),
    )

    @ah.websocket_handler(heartbeat=None)
    async def default(request: web.Request, ws: ah.ServerWebSocket) -> None:
        await ws.send_str("default")

    app.router.add_get("/default", default)
    base = await serve(app)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url(base), origin="https://partner.example") as ws:
            assert await ws.receive_str() == "hi"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(ws_url(base), origin="https://app.example")
        async with session.ws_connect(ws_url(base, "/default"), origin="https://app.example") as ws:
            assert await ws.receive_str() == "default"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(ws_url(base, "/default"), origin="https://partner.example")


async def test_refused_without_setup_too(aiohttp_client: AiohttpClient) -> None:
    app = web.Application()

    @ah.websocket_handler(heartbeat=None)
    async def hello(request: web.Request, ws: ah.ServerWebSocket) -> None:
        await ws.send_str("hi")

    app.router.add_get("/", hello)
    client = await aiohttp_client(app)
    headers = CIMultiDict(
        {
            "Origin": "https://evil.example",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        }
    )
    resp = await client.get("/", headers=headers)
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    doc = await resp.json(content_type=None)
    assert doc["type"] == PROBLEM_TYPE
    assert doc["instance"] == "/"
    async with client.ws_connect("/") as ws:
        assert await ws.receive_str() == "hi"


async def test_a_sub_app_inherits_the_setting(serve: Serve) -> None:
    parent, _ = origin_app(ah.WebSocketSettings(allowed_origins=("https://app.example",)))
    sub = web.Application()

    @ah.websocket_handler(heartbeat=None)
    async def hello(request: web.Request, ws: ah.ServerWebSocket) -> None:
        await ws.send_str("sub")

    sub.router.add_get("/", hello)
    parent.add_subapp("/sub", sub)
    base = await serve(parent)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url(base, "/sub/"), origin="https://app.example") as ws:
            assert await ws.receive_str() == "sub"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(ws_url(base, "/sub/"), origin="https://evil.example")
        assert info.value.status == 403


# -- the setting itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param(None, None, id="none"),
        pytest.param((), (), id="empty"),
        pytest.param(["https://a.example"], ("https://a.example",), id="list"),
        pytest.param(("HTTPS://A.Example:443",), ("https://a.example",), id="default-port"),
        pytest.param(("http://a.example:8080",), ("http://a.example:8080",), id="port"),
        pytest.param(("http://[0:0::1]:80",), ("http://[::1]",), id="ipv6"),
        pytest.param(("https://a.example", "https://a.example."), ("https://a.example",), id="dup"),
        pytest.param(("*",), ("*",), id="star"),
        pytest.param(("app://bundle",), ("app://bundle",), id="other-scheme"),
    ],
)
def test_allowed_origins_are_normalised(given: Any, stored: tuple[str, ...] | None) -> None:
    assert ah.WebSocketSettings(allowed_origins=given).allowed_origins == stored


@pytest.mark.parametrize(
    ("given", "error", "match"),
    [
        pytest.param("https://a.example", TypeError, "tuple of origins", id="string"),
        pytest.param(42, TypeError, "tuple of origins", id="int"),
        pytest.param((b"https://a.example",), TypeError, "must be strings", id="bytes-entry"),
        pytest.param(("null",), ValueError, "sandboxed frame", id="null"),
        pytest.param(("*", "https://a.example"), ValueError, "give it alone", id="star-and-more"),
        pytest.param(("https://a.example/",), ValueError, "is not an origin", id="path"),
        pytest.param(("a.example",), ValueError, "is not an origin", id="no-scheme"),
        pytest.param(("https://user@a.example",), ValueError, "is not an origin", id="userinfo"),
        pytest.param(("https://ä.example",), ValueError, "xn--", id="non-ascii"),
        pytest.param(("https://a.example:70000",), ValueError, "is not an origin", id="port"),
    ],
)
def test_allowed_origins_are_validated(given: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ah.WebSocketSettings(allowed_origins=given)
    with pytest.raises(error, match=match):
        ah.websocket_handler(allowed_origins=given)


def test_parsers() -> None:
    assert str(parse_origin("WSS://[::FFFF:1.2.3.4]:443")) == "wss://[::ffff:102:304]"
    assert parse_origin("http://a.example:8080") == ("http", "a.example", 8080)
    assert parse_origin("foo://a.example") == ("foo", "a.example", None)
    assert parse_origin("http://a..example") is None
    assert parse_origin("http://.a.example") is None
    assert parse_host("A.Example.:81") == ("a.example", 81)
    assert parse_host("[::1]x") is None
