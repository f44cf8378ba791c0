"""Smoke test of the demo app: imported, served on 127.0.0.1, and run as ``make demo`` runs it."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import aiohttp
from pytest_aiohttp import AiohttpClient

from examples import demo

ROOT = Path(__file__).resolve().parent.parent


async def test_demo_serves_its_index(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(demo.create_app())
    resp = await client.get("/")
    assert resp.status == 200
    assert "aiohttp-helpers demo" in await resp.text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_demo_runs_as_a_script_and_prints_its_url() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "demo.py"),
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert f"http://127.0.0.1:{port}/" in line.decode()
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/") as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the demo never answered")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
