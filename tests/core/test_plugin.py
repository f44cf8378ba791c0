"""``setup()``, ``configure()`` and ``get_helpers()`` on real applications."""

from __future__ import annotations

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.keys import UPLOAD_LIMITS_KEY


def test_setup_returns_handle_reachable_through_get_helpers(
    app: web.Application, helpers: ah.Helpers
) -> None:
    assert ah.get_helpers(app) is helpers
    assert helpers.app is app
    assert helpers.limits == ah.UploadLimits()
    assert helpers.state is ah.AppState.STARTING
    assert len(app.middlewares) == 1  # one middleware: errors, signals, requests in flight


def test_setup_twice_is_refused(app: web.Application) -> None:
    with pytest.raises(RuntimeError, match=r"already ran on this application.*configure"):
        ah.setup(app)
    assert len(app.middlewares) == 1  # one middleware: errors, signals, requests in flight


def test_setup_on_frozen_app_is_refused() -> None:
    app = web.Application()
    app.freeze()
    with pytest.raises(RuntimeError, match="before the application is frozen"):
        ah.setup(app)


def test_setup_on_subapp_after_add_subapp_is_refused() -> None:
    parent, sub = web.Application(), web.Application()
    parent.add_subapp("/sub", sub)
    with pytest.raises(RuntimeError, match=r"add_subapp\(\) freezes a sub-app"):
        ah.setup(sub)
    with pytest.raises(RuntimeError, match="before the application is frozen"):
        ah.configure(sub, limits=ah.UploadLimits())


def test_get_helpers_without_setup() -> None:
    with pytest.raises(RuntimeError, match=r"setup\(app\) was not called"):
        ah.get_helpers(web.Application())


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        pytest.param({"limits": object()}, TypeError, "UploadLimits", id="limits-type"),
        pytest.param({"websockets": 3}, TypeError, "WebSocketSettings", id="ws-type"),
        pytest.param({"health": "health"}, ValueError, "path", id="health-relative"),
        pytest.param({"health": "/health/"}, ValueError, "path", id="health-trailing-slash"),
        pytest.param({"drain_delay": -1}, ValueError, "negative", id="drain-negative"),
        pytest.param({"drain_delay": "1"}, TypeError, "seconds", id="drain-type"),
    ],
)
def test_setup_validates_arguments(
    kwargs: dict[str, object], exc: type[Exception], match: str
) -> None:
    app = web.Application()
    with pytest.raises(exc, match=match):
        ah.setup(app, **kwargs)  # type: ignore[arg-type]
    assert ah.keys.HELPERS_KEY not in app


def test_setup_needs_an_application() -> None:
    with pytest.raises(TypeError, match="Application"):
        ah.setup(object())  # type: ignore[arg-type]


def test_configure_validates() -> None:
    app = web.Application()
    with pytest.raises(TypeError, match="UploadLimits"):
        ah.configure(app, limits="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="WebSocketSettings"):
        ah.configure(app, websockets="x")  # type: ignore[arg-type]


def test_configure_updates_the_handle(app: web.Application, helpers: ah.Helpers) -> None:
    limits = ah.UploadLimits(max_files=3)
    ws = ah.WebSocketSettings(heartbeat=None)
    ah.configure(app, limits=limits, websockets=ws)
    assert helpers.limits is limits
    assert helpers.websocket_settings is ws


async def test_subapp_inherits_and_overrides_limits(aiohttp_client: AiohttpClient) -> None:
    async def show(request: web.Request) -> web.Response:
        limits = request.config_dict[UPLOAD_LIMITS_KEY]
        return web.json_response({"max_files": limits.max_files})

    parent = web.Application()
    ah.setup(parent, limits=ah.UploadLimits(max_files=5))
    parent.router.add_get("/", show)
    inherits = web.Application()
    inherits.router.add_get("/", show)
    overrides = web.Application()
    ah.configure(overrides, limits=ah.UploadLimits(max_files=2))
    overrides.router.add_get("/", show)
    parent.add_subapp("/inherits", inherits)
    parent.add_subapp("/overrides", overrides)

    client = await aiohttp_client(parent)
    for path, expected in (("/", 5), ("/inherits/", 5), ("/overrides/", 2)):
        resp = await client.get(path)
        assert resp.status == 200
        assert await resp.json() == {"max_files": expected}, path


async def test_setup_on_parent_and_subapp_runs_middleware_once(
    aiohttp_client: AiohttpClient,
) -> None:
    seen: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def too_large(request: web.Request) -> web.Response:
        raise ah.BodyTooLarge(10)

    parent = web.Application()
    parent_helpers = ah.setup(parent)
    sub = web.Application()
    sub_helpers = ah.setup(sub)
    sub.router.add_get("/ok", ok)
    sub.router.add_get("/big", too_large)

    async def record(name: str, request: web.Request) -> None:
        seen.append(f"{name}:{request.path}")

    async def parent_start(request: web.Request) -> None:
        await record("parent", request)

    async def sub_start(request: web.Request) -> None:
        await record("sub", request)

    parent_helpers.signals.on_request_start.append(parent_start)
    sub_helpers.signals.on_request_start.append(sub_start)
    parent.add_subapp("/sub", sub)

    client = await aiohttp_client(parent)
    resp = await client.get("/sub/ok")
    assert resp.status == 200
    resp = await client.get("/sub/big")
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"
    assert seen == ["parent:/sub/ok", "parent:/sub/big"]
    assert parent_helpers.signals.frozen
    assert sub_helpers.signals.frozen
