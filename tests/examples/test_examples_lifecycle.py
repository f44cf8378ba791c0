"""Smoke test of the lifecycle example: in a test client, then as a script stopped with SIGTERM."""

from __future__ import annotations

import signal
import time

import aiohttp
from pytest_aiohttp import AiohttpClient

from examples import lifecycle as example
from tests.support.scripts import run_script


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


async def test_runs_as_a_script_and_drains_on_sigterm() -> None:
    async with run_script("examples/lifecycle.py", "--drain", "0.5") as script:
        await script.serving("/health/ready")
        async with aiohttp.ClientSession() as session:
            script.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            for _ in range(200):
                async with session.get(f"{script.url}/health/ready") as resp:
                    if resp.status == 503:
                        break
            async with session.get(f"{script.url}/") as resp:
                assert resp.status == 200  # still serving while draining
        output = await script.output()
        assert await script.exit_code() == 0
        assert time.monotonic() - signalled >= 0.45
        assert "SIGTERM received: draining for 0.5 s, then stopping" in output
        assert "served: {200: " in output  # the probes and the page, then 503s while draining
        assert "503: " in output
        assert output.index("shutdown hook 'report'") < output.index("cleanup hook 'database'")
