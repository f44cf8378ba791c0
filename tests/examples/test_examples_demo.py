"""Smoke test of the demo app: imported, served on 127.0.0.1, and run as ``make demo`` runs it."""

from __future__ import annotations

from pytest_aiohttp import AiohttpClient

from examples import demo
from tests.support.scripts import run_script


async def test_demo_serves_its_index(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(demo.create_app())
    resp = await client.get("/")
    assert resp.status == 200
    assert "aiohttp-helpers demo" in await resp.text()


async def test_demo_runs_as_a_script_and_prints_its_url() -> None:
    async with run_script("examples/demo.py") as script:
        assert f"{script.url}/" in await script.first_line()
        await script.serving("/")
        script.proc.terminate()
        assert await script.exit_code() == 0
