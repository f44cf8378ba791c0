"""The WebSocket feature finds its collaborators through typed keys and a narrow state view."""

from __future__ import annotations

import ast
import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.keys import SIGNALS_KEY, WEBSOCKETS_KEY
from aiohttp_helpers.serving import AppState
from aiohttp_helpers.signals import RequestSignals
from aiohttp_helpers.testing import assert_closed_with


async def test_the_handler_uses_the_registry_and_signals_under_their_keys(
    aiohttp_client: AiohttpClient,
) -> None:
    """No setup() and no Helpers handle: the two keys are all the handler reads."""
    registry = ah.WebSocketRegistry()
    signals = RequestSignals(None, strict=True)
    events: list[object] = []
    done = asyncio.Event()

    async def opened(request: web.Request, ws: web.WebSocketResponse) -> None:
        events.append(("open", ws in registry))

    async def closed(request: web.Request, ws: web.WebSocketResponse, code: int, why: str) -> None:
        events.append(("close", code, why))
        done.set()

    signals.on_ws_open.append(opened)
    signals.on_ws_close.append(closed)
    signals.freeze()

    @ah.websocket_handler
    async def bye(request: web.Request, ws: ah.ServerWebSocket) -> None:
        raise ah.WSClose(4000, "bye")

    parent = web.Application()
    parent[WEBSOCKETS_KEY] = registry
    parent[SIGNALS_KEY] = signals
    child = web.Application()
    child.router.add_get("/", bye)
    parent.add_subapp("/sub", child)
    client = await aiohttp_client(parent)
    async with client.ws_connect("/sub/") as ws:
        await assert_closed_with(ws, 4000, "bye")
    async with asyncio.timeout(5):
        await done.wait()
    assert events == [("open", True), ("close", 4000, "bye")]
    assert len(registry) == 0


@dataclass
class Serving:
    """The narrow view of the lifecycle a registry is handed (``ServingState``)."""

    state: AppState = AppState.READY
    restarting: bool = False


def test_the_registry_refuses_as_the_serving_state_says() -> None:
    serving = Serving()
    registry = ah.WebSocketRegistry(lifecycle=serving)
    assert registry.refusal() is None
    serving.state = AppState.DRAINING
    assert registry.refusal() == (1001, "server shutting down")
    serving.restarting = True
    assert registry.refusal() == (1012, "server restarting")


MODULES = sorted((Path(ah.__file__).parent / "websocket").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_the_websocket_modules_never_reach_for_the_plugin_or_the_lifecycle(path: Path) -> None:
    imported = {
        node.module or ""
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom)
    }
    parts = {part for module in imported for part in module.split(".")}
    assert not {"plugin", "lifecycle", "streams", "uploads", "resumable"} & parts
    assert "HELPERS_KEY" not in path.read_text(encoding="utf-8")


def test_each_module_is_under_the_size_limit() -> None:
    for path in MODULES:
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 450, path.name
