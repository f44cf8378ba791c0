"""Loopback networking for the tests: one free port, one wait for a port, one poll loop."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable

import aiohttp

__all__ = ["free_port", "until", "until_blocking", "wait_ok"]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    within: float = 5.0,
    *,
    what: str = "condition",
    interval: float = 0.01,
) -> None:
    """Poll ``check`` (a plain or an async predicate) until it holds.

    Raises ``AssertionError`` naming ``what`` when it does not hold within ``within``
    seconds (server-side bookkeeping lags the client by a tick or two).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not true within {within:g} s")
        await asyncio.sleep(interval)


def until_blocking(
    check: Callable[[], bool], within: float = 5.0, *, what: str = "condition"
) -> None:
    """:func:`until` for threads without an event loop: blocks while it polls."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {within:g} s")
        time.sleep(0.01)


async def wait_ok(
    url: str | Callable[[], str | None], within: float = 10.0, *, what: str | None = None
) -> None:
    """Poll ``GET url`` until it answers 200 (a server process starting up).

    ``url`` may be a callable that returns ``None`` while the address is not known yet.
    """
    async with aiohttp.ClientSession() as session:

        async def answers() -> bool:
            target = url() if callable(url) else url
            if target is None:
                return False
            try:
                async with session.get(target) as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await until(answers, within, what=what or "a 200 answer", interval=0.05)
