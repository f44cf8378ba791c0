"""Test apps as real processes: ``tests/support/lifecycle_app.py`` under ``web.run_app``.

The app prints one JSON event per line on stdout; :class:`Server` collects them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .paths import SUPPORT

__all__ = ["LIFECYCLE_APP", "Server", "launching", "until_event", "wait_ready"]

#: The lifecycle test app, run by file path.
LIFECYCLE_APP = SUPPORT / "lifecycle_app.py"


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _reader: asyncio.Task[None] | None = None

    def names(self) -> list[str]:
        return [
            e["event"] if e["event"] != "state" else f"state:{e['state']}"
            for e in self.events
            if e["event"] != "port"
        ]

    def time_of(self, name: str) -> float:
        return float(next(e["t"] for e in self.events if e["event"] == name))

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == "port":
                self.port = event["port"]

    async def wait(self) -> tuple[int, str]:
        """The exit code and stderr, once the process has ended (within 10 s)."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(10):
            stderr = await self.proc.stderr.read()
            code = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return code, stderr.decode()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def launching() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Yield ``start(*args)``: the lifecycle app as a process; every one is killed at the end."""
    servers: list[Server] = []

    async def start(*args: str) -> Server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(LIFECYCLE_APP),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        server = Server(proc)
        server._reader = asyncio.create_task(server.read())
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            if server.proc.returncode is None:
                server.proc.kill()
                await server.wait()


async def wait_ready(session: aiohttp.ClientSession, server: Server) -> None:
    deadline = time.monotonic() + 10
    while True:
        if server.port:
            try:
                async with session.get(server.url("/health/ready")) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not become ready: {server.names()}")
        await asyncio.sleep(0.02)


async def until_event(server: Server, name: str, within: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            for event in server.events:
                if event["event"] == name:
                    return event
            await asyncio.sleep(0.02)
