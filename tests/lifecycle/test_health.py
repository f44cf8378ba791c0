"""``/live`` and ``/ready`` over real HTTP, with aiohttp's client and with curl as a probe."""

from __future__ import annotations

import asyncio
import shutil

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

import aiohttp_helpers as ah
from tests.support.apps import Serve, helped_app


async def fetch(url: URL, method: str = "GET") -> tuple[int, str, str | None]:
    async with aiohttp.ClientSession() as session, session.request(method, url) as resp:
        return resp.status, await resp.text(), resp.headers.get("Cache-Control")


@pytest.mark.parametrize("prefix", [pytest.param(p, id=p) for p in ("/health", "/_status/probe")])
async def test_ready_and_live_while_ready(serve: Serve, prefix: str) -> None:
    app = web.Application()
    ah.setup(app, health=prefix)
    url = await serve(app)
    assert await fetch(url.with_path(f"{prefix}/ready")) == (200, "ready\n", "no-store")
    assert await fetch(url.with_path(f"{prefix}/live")) == (200, "ready\n", "no-store")
    assert (await fetch(url.with_path(f"{prefix}/ready"), "HEAD"))[0] == 200


async def test_draining_is_not_ready_but_alive(serve: Serve) -> None:
    app, helpers = helped_app(health="/health")
    url = await serve(app)
    draining = asyncio.create_task(helpers.lifecycle.drain(delay=5))
    await asyncio.sleep(0)
    assert await fetch(url / "health/ready") == (503, "draining\n", "no-store")
    assert await fetch(url / "health/live") == (200, "draining\n", "no-store")
    draining.cancel()
    await asyncio.wait([draining])


async def test_no_health_routes_unless_asked(serve: Serve, app: web.Application) -> None:
    url = await serve(app)
    assert (await fetch(url / "health/ready"))[0] == 404


async def test_sub_app_readiness_follows_the_whole_app(serve: Serve) -> None:
    parent, sub = web.Application(), web.Application()
    parent_helpers = ah.setup(parent)
    ah.setup(sub, health="/health")
    parent.add_subapp("/api", sub)
    url = await serve(parent)
    assert (await fetch(url / "api/health/ready"))[:2] == (200, "ready\n")
    draining = asyncio.create_task(parent_helpers.lifecycle.drain(delay=5))
    await asyncio.sleep(0)
    assert (await fetch(url / "api/health/ready"))[:2] == (503, "draining\n")
    draining.cancel()
    await asyncio.wait([draining])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_probe_fails_once_draining(serve: Serve) -> None:
    app, helpers = helped_app(health="/health")
    url = await serve(app)

    async def probe() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--fail-with-body", "--max-time", "5", str(url / "health/ready"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    assert await probe() == (0, "ready\n")
    draining = asyncio.create_task(helpers.lifecycle.drain(delay=5))
    await asyncio.sleep(0)
    assert await probe() == (22, "draining\n")  # curl's exit status for an HTTP error
    draining.cancel()
    await asyncio.wait([draining])
