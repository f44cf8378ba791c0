"""The lifecycle of a real server process (``web.run_app``) stopped with SIGTERM.

The server is ``tests/support/lifecycle_app.py``: a parent app and a sub-app with package hooks and
plain aiohttp hooks, reporting each event as a JSON line with its wall-clock time.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
import pytest

from tests.support.paths import SUPPORT
from tests.support.processes import Server, wait_ready

STARTED = [
    "db-open",
    "cache-start",
    "sub-pool-open",
    "state:ready",
    "plain-ctx-open",
    "plain-startup",
]
STOPPED = [
    "state:draining",
    "state:stopping",
    "sub-flush",
    "flush",
    "plain-ctx-close",
    "sub-pool-close",
    "files-cleanup",
    "db-close",
    "state:stopped",
    "exited",
]


async def test_sigterm_drains_while_serving_then_stops_in_reverse(lifecycle_app: Any) -> None:
    server: Server = await lifecycle_app("--drain", "0.8")
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, server)
        signalled = time.time()
        server.proc.send_signal(signal.SIGTERM)
        not_ready_at = None
        answered_while_draining = 0
        while time.time() - signalled < 0.6:
            async with session.get(server.url("/health/ready")) as resp:
                if resp.status == 503:
                    assert await resp.text() == "draining\n"
                    not_ready_at = not_ready_at or time.time()
            async with session.get(server.url("/")) as resp:
                assert (resp.status, await resp.text()) == (200, "hello")
                answered_while_draining += 1
            await asyncio.sleep(0.05)
        code, stderr = await server.wait()
    assert code == 0, stderr
    assert server.names() == STARTED + STOPPED
    assert not_ready_at is not None
    assert not_ready_at < server.time_of("flush")  # readiness fell before any shutdown hook
    assert server.time_of("flush") - signalled >= 0.75  # drain_delay honoured
    assert answered_while_draining >= 5


async def test_failing_startup_hook_tears_down_and_exits_naming_it(lifecycle_app: Any) -> None:
    server: Server = await lifecycle_app("--fail", "cache")
    code, stderr = await server.wait()
    assert code == 1
    raised_at = SUPPORT / "lifecycle_app.py"
    line = (
        raised_at.read_text()
        .splitlines()
        .index('            raise RuntimeError("cache server unreachable")')
    )
    assert stderr.rstrip().endswith(
        "HookError: startup hook 'cache' failed: RuntimeError: cache server unreachable"
        f" (raised in cache at {raised_at}:{line + 1})"
    )
    assert server.names() == [
        "db-open",
        "cache-start",
        "state:stopping",
        "db-close",
        "state:stopped",
    ]


async def test_startup_timeout_exits_naming_the_hook(lifecycle_app: Any) -> None:
    server: Server = await lifecycle_app("--fail", "never")
    code, stderr = await server.wait()
    assert code == 1
    assert "HookTimeout: startup hook 'never' did not finish within 0.2 seconds" in stderr
    assert server.names()[-3:] == ["files-cleanup", "db-close", "state:stopped"]


async def test_failing_plain_startup_hook_still_exits_every_context(lifecycle_app: Any) -> None:
    # web.run_app would leave plain-ctx and every package hook open.
    server: Server = await lifecycle_app("--fail", "plain-startup")
    code, stderr = await server.wait()
    assert code == 1
    assert "RuntimeError: plain hook failed" in stderr
    assert server.names() == [
        *STARTED,
        "plain-ctx-close",
        "state:stopping",
        "sub-pool-close",
        "files-cleanup",
        "db-close",
        "state:stopped",
    ]


@pytest.mark.parametrize(
    ("fail", "message"),
    [
        pytest.param(
            "flush",
            "TeardownError: 1 lifecycle hook failed while stopping: 'flush'",
            id="shutdown-hook",
        ),
        pytest.param(
            "sub-pool-exit",
            "TeardownError: 1 lifecycle hook failed while stopping: 'sub-pool'",
            id="context-exit",
        ),
    ],
)
async def test_failing_teardown_hook_runs_the_others_and_exits_non_zero(
    lifecycle_app: Any, fail: str, message: str
) -> None:
    server: Server = await lifecycle_app("--fail", fail)
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, server)
    server.proc.send_signal(signal.SIGTERM)
    code, stderr = await server.wait()
    assert code == 1
    assert message in stderr
    assert server.names() == STARTED + STOPPED[:-1]  # everything ran; no clean exit
