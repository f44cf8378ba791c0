"""Settings live in one place: ``Helpers.limits`` / ``websocket_settings`` read the app's keys."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.keys import UPLOAD_LIMITS_KEY, WEBSOCKETS_KEY, WS_SETTINGS_KEY


def test_defaults_when_unset() -> None:
    app = web.Application()
    helpers = ah.setup(app)
    assert UPLOAD_LIMITS_KEY not in app
    assert WS_SETTINGS_KEY not in app
    assert helpers.limits == ah.UploadLimits()
    assert helpers.websocket_settings == ah.WebSocketSettings()


def test_setup_and_configure_change_the_one_copy() -> None:
    app = web.Application()
    first = ah.UploadLimits(max_files=3)
    helpers = ah.setup(app, limits=first, websockets=ah.WebSocketSettings(max_connections=5))
    assert helpers.limits is first is app[UPLOAD_LIMITS_KEY]
    limits = ah.UploadLimits(max_files=7)
    settings = ah.WebSocketSettings(max_connections=9)
    ah.configure(app, limits=limits, websockets=settings)
    assert helpers.limits is limits is app[UPLOAD_LIMITS_KEY]
    assert helpers.websocket_settings is settings is app[WS_SETTINGS_KEY]
    assert app[WEBSOCKETS_KEY].settings is settings  # the registry follows the app's


def test_the_key_set_directly_is_what_helpers_reads() -> None:
    app = web.Application()
    helpers = ah.setup(app)
    limits = ah.UploadLimits(max_fields=2)
    app[UPLOAD_LIMITS_KEY] = limits
    assert helpers.limits is limits


def test_the_properties_are_read_only() -> None:
    helpers = ah.setup(web.Application())
    with pytest.raises(AttributeError):
        helpers.limits = ah.UploadLimits()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        helpers.websocket_settings = ah.WebSocketSettings()  # type: ignore[misc]
    assert "limits" not in {field.name for field in dataclasses.fields(helpers)}


async def test_a_sub_apps_helpers_and_its_requests_agree(aiohttp_client: AiohttpClient) -> None:
    app = web.Application()
    ah.setup(app, limits=ah.UploadLimits(max_files=1))
    sub = web.Application()
    sub_helpers = ah.setup(sub)
    sub_limits = ah.UploadLimits(max_files=4)
    ah.configure(sub, limits=sub_limits)
    seen: list[ah.UploadLimits] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.config_dict[UPLOAD_LIMITS_KEY])
        return web.Response(text="ok")

    sub.router.add_get("/", handler)
    app.add_subapp("/sub", sub)
    client = await aiohttp_client(app)
    async with client.get("/sub/") as response:
        assert response.status == 200
    assert seen == [sub_limits]
    assert sub_helpers.limits is sub_limits


async def test_a_sub_app_without_its_own_reads_its_parents_like_its_requests(
    aiohttp_client: AiohttpClient,
) -> None:
    app = web.Application()
    parent_limits = ah.UploadLimits(max_files=2)
    parent_ws = ah.WebSocketSettings(max_connections=3)
    ah.setup(app, limits=parent_limits, websockets=parent_ws)
    middle = web.Application()  # no setup(): its own limits still count for the leaf
    middle_limits = ah.UploadLimits(max_files=5)
    ah.configure(middle, limits=middle_limits)
    leaf = web.Application()
    leaf_helpers = ah.setup(leaf)
    seen: list[tuple[ah.UploadLimits, ah.WebSocketSettings]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.config_dict[UPLOAD_LIMITS_KEY], request.config_dict[WS_SETTINGS_KEY]))
        return web.Response(text="ok")

    leaf.router.add_get("/", handler)
    middle.add_subapp("/leaf", leaf)
    app.add_subapp("/middle", middle)
    # Before the tree starts, a sub-app does not know its parents.
    assert leaf_helpers.limits == ah.UploadLimits()
    client = await aiohttp_client(app)
    async with client.get("/middle/leaf/") as response:
        assert response.status == 200
    assert seen == [(middle_limits, parent_ws)]
    assert (leaf_helpers.limits, leaf_helpers.websocket_settings) == seen[0]


def test_the_drain_settings_are_the_lifecycles() -> None:
    helpers = ah.setup(web.Application(), drain_delay=2, drain_timeout=7)
    assert (helpers.drain_delay, helpers.drain_timeout) == (2.0, 7.0)
    helpers.lifecycle.drain_delay = 3.0  # what stopping reads is what Helpers shows
    assert helpers.drain_delay == 3.0
    with pytest.raises(AttributeError):
        helpers.drain_timeout = 1.0  # type: ignore[misc]
