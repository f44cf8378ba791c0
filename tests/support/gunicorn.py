"""Real gunicorn masters for the tests: start one on a free port, read what its workers did."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .net import free_port, until
from .paths import ROOT

__all__ = ["NO_CONTROL_SOCKET", "Gunicorn", "close_code", "gunicorn_processes"]

#: gunicorn >= 25.1 opens a control socket at a fixed path unless told not to.
_VERSION = tuple(int(n) for n in importlib.metadata.version("gunicorn").split(".")[:2])
NO_CONTROL_SOCKET = ["--no-control-socket"] if _VERSION >= (25, 1) else []


async def close_code(ws: aiohttp.ClientWebSocketResponse, within: float) -> int:
    """Read ``ws`` (data messages only) up to the server's close frame: its code; 1006 when
    the connection ended without one."""
    async with asyncio.timeout(within):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return int(msg.data)
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return 1006
            assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg


@dataclass
class Gunicorn:
    proc: asyncio.subprocess.Process
    port: int
    events: Path
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def pids(self, event: str) -> list[int]:
        """The workers that recorded ``event`` (``startup`` or ``cleanup``), in order."""
        if not self.events.exists():
            return []
        lines = self.events.read_text(encoding="utf-8").splitlines()
        return [int(pid) for kind, pid in (line.split() for line in lines) if kind == event]

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    async def until(self, what: str, check: Callable[[], bool], within: float = 20.0) -> None:
        """:func:`~tests.support.net.until`, with the end of gunicorn's log when it fails."""
        try:
            await until(check, within, what=what, interval=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()}") from None

    async def exit_code(self, within: float = 20.0) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            raise AssertionError(f"gunicorn still runs\n{self.output()}") from None


@contextlib.asynccontextmanager
async def gunicorn_processes(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[Gunicorn]]]:
    """Yield ``start(*args, env=..., workers=N)``: a gunicorn master on a free port.

    ``args`` go between the bind/worker options and the app; the master's whole process
    group is killed at the end, whatever the test did.
    """
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str, env: dict[str, str], workers: int) -> Gunicorn:
        port = free_port()
        events, log = tmp_path / "events.txt", tmp_path / "gunicorn.log"
        env = {**env, "AH_TEST_EVENTS": str(events)}
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gunicorn",
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers),
                *NO_CONTROL_SOCKET,
                *args,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        procs.append(proc)
        server = Gunicorn(proc, port, events, log)
        await server.until("the workers start", lambda: len(server.pids("startup")) == workers)
        return server

    try:
        yield start
    finally:
        for proc in procs:
            # The whole group: the master and any worker it left behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            async with asyncio.timeout(10):
                await proc.wait()
