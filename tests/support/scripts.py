"""Run an example as a real process on 127.0.0.1, the way a user runs it, for smoke tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .net import free_port, wait_ok
from .paths import ROOT

__all__ = ["Script", "run_help", "run_script"]


def run_help(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python *args --help`` from the repository root, to its end (whatever its exit
    status), with no wrapping inside the help lines."""
    return subprocess.run(
        [sys.executable, *args, "--help"],
        cwd=ROOT,
        env=dict(os.environ, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Script:
    """An example running as a process: its process, port and base URL."""

    proc: asyncio.subprocess.Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def first_line(self) -> str:
        """The first line the script printed (its banner)."""
        assert self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), 20)).decode()

    async def output(self) -> str:
        """Everything the script printed until it exits."""
        assert self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.read(), 20)).decode()

    async def serving(self, path: str = "/") -> None:
        """Wait until ``path`` answers 200 (10 s at the most)."""
        await wait_ok(self.url + path, 10.0, what=f"{self.url}{path} answering 200")

    async def exit_code(self) -> int:
        """Wait (20 s at the most) for the process to end."""
        return await asyncio.wait_for(self.proc.wait(), 20)


@contextlib.asynccontextmanager
async def run_script(script: str, *args: str) -> AsyncIterator[Script]:
    """Run ``python <script> --port N *args`` from the repository root; killed on exit."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / script),
        "--port",
        str(port),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        yield Script(proc, port)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
