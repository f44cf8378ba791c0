"""Smoke test of the lifecycle example: in a test client, then as a script stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
from pytest_aiohttp import AiohttpClient

from examples import lifecycle as example

ROOT = Path(__file__).resolve().parent.parent


async def test_serves_and_counts(aiohttp_client: AiohttpClient) -> None:
    app = example.create_app(drain_delay=0)
    client = await aiohttp_client(app)
    assert await (await client.get("/")).text() == "hello\n"
    assert (await client.get("/missing")).status == 404
    assert (await client.get("/health/ready")).status == 200
    stats = await (await client.get("/stats")).json()
    assert stats == {"state": "ready", "statuses": {"200": 2, "404": 1}}
    await client.close()
    assert not app[example.DATABASE].open


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_runs_as_a_script_and_drains_on_sigterm() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "lifecycle.py"),
        "--port",
        str(port),
        "--drain",
        "0.5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"{base}/health/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            for _ in range(200):
                async with session.get(f"{base}/health/ready") as resp:
                    if resp.status == 503:
                        break
            async with session.get(f"{base}/") as resp:
                assert resp.status == 200  # still serving while draining
        assert proc.stdout is not None
        output = (await asyncio.wait_for(proc.stdout.read(), 10)).decode()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert time.monotonic() - signalled >= 0.45
        assert "SIGTERM received: draining for 0.5 s, then stopping" in output
        assert "served: {200: " in output  # the probes and the page, then 503s while draining
        assert "503: " in output
        assert output.index("shutdown hook 'report'") < output.index("cleanup hook 'database'")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
