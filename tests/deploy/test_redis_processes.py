"""Two server processes (``tests/support/redis_app.py`` under ``web.run_app``) sharing one Redis.

Clients connect to each process; broadcasts and group messages must reach all of them once,
before and after Redis restarts, and shutting a process down must leave no subscription.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from yarl import URL

from tests.support.net import until
from tests.support.paths import SUPPORT
from tests.support.redis_clients import Clients, silent
from tests.support.redis_server import RedisServer
from tests.support.scripts import Script

pytestmark = pytest.mark.redis

APP = SUPPORT / "redis_app.py"


class AppProcess(Script):
    """``redis_app.py`` running as a process: a ``Script`` with the app's own endpoints."""

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(f"{self.url}/stats") as response:
            data: dict[str, Any] = await response.json()
            return data

    async def broadcast(
        self, session: aiohttp.ClientSession, text: str, group: str | None = None
    ) -> None:
        params = {"group": group} if group else {}
        async with session.post(f"{self.url}/broadcast", data=text, params=params) as response:
            assert await response.text() == "sent"

    async def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit code and stderr (within 10 s)."""
        assert self.proc.stderr is not None
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            stderr = await self.proc.stderr.read()
            return await self.proc.wait(), stderr.decode()


@pytest.fixture
async def launch() -> AsyncIterator[Callable[..., Any]]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(redis_url: str, channel: str, name: str) -> AppProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(APP),
            "--redis", redis_url,
            "--channel", channel,
            "--name", name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            line = await proc.stdout.readline()
        return AppProcess(proc, json.loads(line)["port"])

    try:
        yield start
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _stats_until(
    session: aiohttp.ClientSession,
    apps: tuple[AppProcess, ...],
    predicate: Callable[[dict[str, Any]], bool],
    within: float = 10.0,
) -> None:
    async def check() -> bool:
        return all([predicate(await app.stats(session)) for app in apps])

    await until(check, within)


async def test_two_processes_share_broadcasts_and_groups_across_a_redis_restart(
    own_redis: RedisServer, launch: Callable[..., Any]
) -> None:
    channel = f"test:{uuid.uuid4().hex}"
    a: AppProcess
    b: AppProcess
    a, b = await asyncio.gather(
        launch(own_redis.url, channel, "a"), launch(own_redis.url, channel, "b")
    )
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        clients = Clients(stack, session)
        base_a, base_b = URL(a.url), URL(b.url)
        a_red, a_all = await clients.connect(base_a, "red"), await clients.connect(base_a)
        b_red, b_all = await clients.connect(base_b, "red"), await clients.connect(base_b)
        everyone = (a_red, a_all, b_red, b_all)
        reds = (a_red, b_red)
        await _stats_until(session, (a, b), lambda s: s["connected"] and s["sockets"] == 2)

        async def round_trip(tag: str) -> None:
            await a.broadcast(session, f"{tag}: all from a")
            for ws in everyone:
                assert await ws.receive_str(timeout=5) == f"{tag}: all from a"
            await b.broadcast(session, f"{tag}: reds from b", group="red")
            await b_red.send_str(f"say:{tag}: reds from a b client")
            for ws in reds:
                assert await ws.receive_str(timeout=5) == f"{tag}: reds from b"
                assert await ws.receive_str(timeout=5) == f"{tag}: reds from a b client"
            await a_all.send_str(f"bytes:{tag}")
            for ws in everyone:
                assert await ws.receive_bytes(timeout=5) == tag.encode()
            # Nothing else: no second copy anywhere, no group message outside the group.
            assert all([await silent(ws) for ws in everyone])

        await round_trip("before")

        own_redis.restart()
        await _stats_until(session, (a, b), lambda s: s["outages"] == 1 and s["connected"])
        await round_trip("after restart")

        # During an outage each process still reaches its own sockets; what it publishes
        # meanwhile is dropped for the others (and counted), not replayed later.
        own_redis.stop()
        await _stats_until(session, (a, b), lambda s: not s["connected"])
        await a.broadcast(session, "during the outage")
        for ws in (a_red, a_all):
            assert await ws.receive_str(timeout=5) == "during the outage"
        own_redis.start()
        await _stats_until(session, (a, b), lambda s: s["outages"] == 2 and s["connected"])
        await round_trip("after the outage")
        stats_a, stats_b = await a.stats(session), await b.stats(session)
        assert (stats_a["dropped"], stats_b["dropped"]) == (1, 0)
        assert stats_a["pid"] != stats_b["pid"]

        client = aioredis.Redis.from_url(own_redis.url)
        stack.push_async_callback(client.aclose)
        [(_, subscribers)] = await client.pubsub_numsub(channel)
        assert subscribers == 2
        # SIGTERM: every client is told the server is going away, and the process leaves
        # Redis tidy.
        (code_a, stderr_a), *closes = await asyncio.gather(
            a.stop(), a_red.receive(timeout=10), a_all.receive(timeout=10)
        )
        assert [(msg.type, msg.data) for msg in closes] == [(aiohttp.WSMsgType.CLOSE, 1001)] * 2
        [(_, subscribers)] = await client.pubsub_numsub(channel)
        assert subscribers == 1
        code_b, stderr_b = await b.stop()
        [(_, subscribers)] = await client.pubsub_numsub(channel)
        assert subscribers == 0
    assert (code_a, code_b) == (0, 0)
    for stderr in (stderr_a, stderr_b):
        assert "Traceback" not in stderr, stderr
        assert "lost the subscription to Redis" in stderr
