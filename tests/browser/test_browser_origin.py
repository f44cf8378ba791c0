"""Cross-Site WebSocket Hijacking, tried from a real Chromium (Debian's) driven by Playwright.

Two loopback ports are two origins: a page served on one opens a WebSocket to an app on
the other, as a hostile page would, and the browser sends the page's origin. These tests
never skip: a browser that cannot start is a failure.
"""

from __future__ import annotations

import html
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser
from yarl import URL

import aiohttp_helpers as ah
from tests.support.apps import Serve

pytestmark = pytest.mark.browser

#: The page: opens a socket to the URL in its query string and records what happens.
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>origin test</title>
<script>
window.result = {events: [], messages: [], close: null};
const ws = new WebSocket(new URLSearchParams(location.search).get("ws"));
ws.onopen = () => window.result.events.push("open");
ws.onerror = () => window.result.events.push("error");
ws.onmessage = (e) => { window.result.messages.push(e.data); ws.send("cookie please"); };
ws.onclose = (e) => {
  window.result.close = {code: e.code, reason: e.reason, wasClean: e.wasClean};
};
</script>
<p>{origin}</p>
"""


def page_app() -> web.Application:
    """Serves :data:`PAGE` at ``/page``: the site a visitor happens to open."""

    async def page(request: web.Request) -> web.Response:
        shown = html.escape(f"{request.scheme}://{request.host}")
        return web.Response(text=PAGE.replace("{origin}", shown), content_type="text/html")

    app = web.Application()
    app.router.add_get("/page", page)
    return app


def socket_app(
    settings: ah.WebSocketSettings | None = None,
) -> tuple[web.Application, dict[str, Any]]:
    """The app under attack: ``/ws`` greets and echoes; also serves the page itself."""
    app = page_app()
    helpers = ah.setup(app, websockets=settings)
    seen: dict[str, Any] = {"opened": [], "statuses": [], "received": []}

    async def on_open(request: web.Request, ws: web.WebSocketResponse) -> None:
        seen["opened"].append(request.headers.get("Origin"))

    async def on_end(request: web.Request, response: web.StreamResponse, seconds: float) -> None:
        if request.path == "/ws":
            seen["statuses"].append(response.status)

    helpers.signals.on_ws_open.append(on_open)
    helpers.signals.on_request_end.append(on_end)

    @ah.websocket_handler(heartbeat=None, messages="text")
    async def greet(request: web.Request, ws: ah.ServerWebSocket) -> None:
        await ws.send_str("secret for the visitor")
        async for text in ws.messages():
            seen["received"].append(text)
            raise ah.WSClose(1000, "bye")

    app.router.add_get("/ws", greet)
    return app, seen


async def visit(browser: Browser, page_url: URL, ws_url: URL) -> dict[str, Any]:
    """Open the page in a fresh context and wait until its socket has closed."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(str(page_url.with_path("/page").with_query(ws=str(ws_url))))
        await page.wait_for_function("window.result.close !== null", timeout=10_000, polling=50)
        result: dict[str, Any] = await page.evaluate("window.result")
        return result
    finally:
        await context.close()


def ws_of(base: URL) -> URL:
    return base.with_scheme("ws").with_path("/ws")


async def test_page_on_another_port_is_refused(browser: Browser, serve: Serve) -> None:
    page_base = await serve(page_app())
    app, seen = socket_app()
    app_base = await serve(app)
    assert page_base.port != app_base.port
    result = await visit(browser, page_base, ws_of(app_base))
    # The browser learns nothing: no open, no message, only a failed handshake.
    assert result["events"] == ["error"]
    assert result["messages"] == []
    assert result["close"]["code"] == 1006
    assert result["close"]["wasClean"] is False
    # The server refused it with 403 before the upgrade: the handler never ran.
    assert seen["statuses"] == [403]
    assert seen["opened"] == []
    assert seen["received"] == []


async def test_localhost_and_127_0_0_1_are_two_origins(browser: Browser, serve: Serve) -> None:
    app, seen = socket_app()
    base = await serve(app)
    page_base = base.with_host("localhost")
    result = await visit(browser, page_base, ws_of(base))
    assert result["events"] == ["error"]
    assert seen["statuses"] == [403]
    assert seen["opened"] == []


async def test_same_origin_page_is_upgraded(browser: Browser, serve: Serve) -> None:
    app, seen = socket_app()
    base = await serve(app)
    result = await visit(browser, base, ws_of(base))
    assert result["events"] == ["open"]
    assert result["messages"] == ["secret for the visitor"]
    assert result["close"] == {"code": 1000, "reason": "bye", "wasClean": True}
    assert seen["opened"] == [f"http://{base.host}:{base.port}"]
    assert seen["received"] == ["cookie please"]


async def test_page_on_an_allowed_origin_is_upgraded(browser: Browser, serve: Serve) -> None:
    page_base = await serve(page_app())
    page_origin = f"http://{page_base.host}:{page_base.port}"
    app, seen = socket_app(ah.WebSocketSettings(allowed_origins=(page_origin,)))
    app_base = await serve(app)
    result = await visit(browser, page_base, ws_of(app_base))
    assert result["events"] == ["open"]
    assert result["messages"] == ["secret for the visitor"]
    assert result["close"] == {"code": 1000, "reason": "bye", "wasClean": True}
    assert seen["opened"] == [page_origin]
    # Another port is still another origin, and still refused.
    other_base = await serve(page_app())
    result = await visit(browser, other_base, ws_of(app_base))
    assert result["events"] == ["error"]
    assert seen["opened"] == [page_origin]
    assert seen["statuses"][-1] == 403
