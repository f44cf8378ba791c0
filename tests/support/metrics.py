"""Prometheus scrapes for the tests (parse, look up samples) and the demo app they measure."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.prometheus import setup_metrics
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.apps import Serve

__all__ = [
    "Demo",
    "Samples",
    "boom",
    "crashing_echo",
    "names",
    "parse",
    "post",
    "scrape",
    "serve_demo",
    "value",
]

Samples = list[Sample]
T = TypeVar("T")


def parse(text: str) -> Samples:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


async def scrape(session: aiohttp.ClientSession, base: URL, path: str = "/metrics") -> Samples:
    async with session.get(base / path.lstrip("/")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        return parse(await resp.text())


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one sample ``name`` whose labels include ``labels``, or None."""
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
    return found[0] if found else None


def names(samples: Samples) -> set[str]:
    return {s.name for s in samples}


async def boom(request: web.Request) -> web.Response:
    """A handler that fails: a 500."""
    raise RuntimeError("boom")


@ah.websocket_handler
async def crashing_echo(request: web.Request, ws: ah.ServerWebSocket) -> None:
    """Echo every message; ``crash`` raises (a 1011), ``bye`` ends the handler (a 1000)."""
    async for message in ws.messages():
        if message == "crash":
            raise RuntimeError("crash")
        if message == "bye":
            return
        if isinstance(message, str):
            await ws.send_str(message)
        else:
            await ws.send_bytes(message)


class Demo:
    """An app with one route of each kind, and the events its tests wait on."""

    def __init__(self, tmp: Path, **ws: Any) -> None:
        self.release = asyncio.Event()
        self.holding = asyncio.Event()
        self.registry = CollectorRegistry()
        limits = ah.UploadLimits(
            max_file_size=100_000,
            spool_max_size=1024,
            tmp_dir=tmp,
            allowed_types={"avatar": ("image/png",)},
        )
        app = self.app = web.Application()
        self.helpers = ah.setup(
            app, limits=limits, websockets=ah.WebSocketSettings(**ws), health="/health"
        )

        @self.helpers.lifecycle.on_startup(name="warm")
        async def warm(app: web.Application) -> None:
            await asyncio.sleep(0.01)

        async def item(request: web.Request) -> web.Response:
            return web.Response(text=request.match_info["id"])

        async def hold(request: web.Request) -> web.Response:
            self.holding.set()
            await self.release.wait()
            return web.Response(text="held")

        async def upload(request: web.Request) -> web.Response:
            async with await ah.read_form(request) as form:
                if "hold" in form:
                    self.holding.set()
                    await self.release.wait()
                return web.json_response({"files": len(form.files)})

        app.router.add_get("/items/{id}", item)
        app.router.add_get("/boom", boom)
        app.router.add_get("/hold", hold)
        app.router.add_post("/upload", upload)
        app.router.add_get("/ws", crashing_echo)
        self.metrics = setup_metrics(app, registry=self.registry)

    async def start_held(self, request: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """``request`` (to ``/hold``, or an upload with a ``hold`` field) as a task, once the
        app holds it."""
        held = asyncio.create_task(request)
        await asyncio.wait_for(self.holding.wait(), 5)
        return held

    async def scrape_while_held(
        self, session: aiohttp.ClientSession, base: URL, request: Coroutine[Any, Any, T]
    ) -> tuple[Samples, asyncio.Task[T]]:
        """A scrape taken while the app holds ``request``; then the request is let go. The
        scrape, and the request's task."""
        held = await self.start_held(request)
        samples = await scrape(session, base)
        self.release.set()
        return samples, held


async def post(session: aiohttp.ClientSession, url: URL, *parts: FormPart | tuple[str, str]) -> int:
    body = multipart_body(*parts)
    async with session.post(url, data=body.data, headers={"Content-Type": body.content_type}) as r:
        await r.read()
        return r.status


async def serve_demo(serve: Serve, tmp: Path, **ws: Any) -> tuple[Demo, URL]:
    """A :class:`Demo` (``ws``: its WebSocket settings), served; and its base URL."""
    demo = Demo(tmp, **ws)
    return demo, await serve(demo.app)
