"""``websocket_handler``'s signature shows its real defaults (issue 17), and they still inherit."""

from __future__ import annotations

import dataclasses
import inspect
import pydoc

from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.keys import WS_SETTINGS_KEY


def test_signature_shows_the_settings_defaults() -> None:
    parameters = inspect.signature(ah.websocket_handler).parameters
    defaults = ah.WebSocketSettings()
    options = [p for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in options] == [
        "heartbeat",
        "max_msg_size",
        "receive_timeout",
        "protocols",
        "compress",
        "messages",
        "close_timeout",
        "max_connections",
        "max_connections_per_client",
        "allowed_origins",
        "strict_frames",
    ]
    for option in options:
        default = getattr(defaults, option.name)
        assert repr(option.default) == repr(default), option.name
        assert str(option).endswith(f" = {default!r}"), option
    shown = str(inspect.signature(ah.websocket_handler))
    assert "object at" not in shown
    assert "heartbeat: 'float | None' = 30.0" in shown
    assert "max_msg_size: 'int' = 4194304" in shown
    assert "messages: 'MessageKind' = 'any'" in shown


def test_help_shows_no_sentinel() -> None:
    text = pydoc.plain(pydoc.render_doc(ah.websocket_handler))
    assert "object at" not in text
    assert "strict_frames: 'bool' = True" in text
    assert "An option left out takes the app's setting" in text


def test_every_option_is_a_setting() -> None:
    names = {f.name for f in dataclasses.fields(ah.WebSocketSettings)}
    parameters = inspect.signature(ah.websocket_handler).parameters
    assert {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY} <= names


async def test_an_option_left_out_still_takes_the_apps_setting(
    aiohttp_client: AiohttpClient,
) -> None:
    seen: list[tuple[float | None, str]] = []

    @ah.websocket_handler(messages="text")
    async def show(request: web.Request, ws: ah.ServerWebSocket) -> None:
        seen.append((ws._heartbeat, ws.message_kind))

    app = web.Application()
    app[WS_SETTINGS_KEY] = ah.WebSocketSettings(heartbeat=7.0, messages="json")
    app.router.add_get("/", show)
    client = await aiohttp_client(app)
    async with client.ws_connect("/") as ws:
        await ws.receive()
    # heartbeat left out: the app's 7.0, not the shown default 30.0; messages given: "text".
    assert seen == [(7.0, "text")]
