"""Draining: readiness falls while requests are still served, then the requests in flight end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .._words import counted
from ..inflight import InFlight
from ..serving import AppState
from .hooks import check_seconds
from .state import broadcast

if TYPE_CHECKING:
    from .core import Lifecycle

__all__ = ["drain", "end_stalled_uploads", "finish_requests"]

log = logging.getLogger("aiohttp_helpers.lifecycle")


async def drain(lifecycle: Lifecycle, delay: float | None) -> None:
    """What :meth:`Lifecycle.drain` does (it documents the behaviour)."""
    if delay is not None:
        check_seconds("delay", delay)
    root = lifecycle._root
    if root is None:
        raise RuntimeError("cannot drain an application that has not started")
    if root._state is AppState.READY:
        wait = root.drain_delay if delay is None else delay
        try:
            await broadcast(root, AppState.DRAINING)
            log.info("draining for %g s: readiness answers 503, requests are served", wait)
            if wait > 0 and not root._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await root._hurry.wait()
        finally:
            root._drained.set()
    elif root._state is AppState.DRAINING:
        await root._drained.wait()


async def finish_requests(
    lifecycle: Lifecycle,
    timeout: float | None,  # noqa: ASYNC109 (at the bound the requests end, not us)
) -> int:
    """What :meth:`Lifecycle.finish_requests` does (it documents the behaviour)."""
    if timeout is not None:
        check_seconds("timeout", timeout)
    root = lifecycle._root or lifecycle
    wait = root.drain_timeout if timeout is None else timeout
    in_flight = root._in_flight
    count = len(in_flight)
    if count:
        log.info("waiting %g s at the most for %s in flight", wait, counted(count, "request"))
    if await in_flight.wait(wait, root._hurry):
        return 0
    return await in_flight.abort()


async def end_stalled_uploads(root: Lifecycle) -> None:
    """End the uploads whose body is still arriving once the runner stopped reading."""
    # Here aiohttp's runner has already called pre_shutdown(): its connections drop every
    # body byte that arrives, so an upload still arriving could only wait out its
    # idle_timeout (408). End those now (503 + Retry-After), let the others finish.
    in_flight = root._in_flight
    stalled = InFlight()
    for entry in in_flight:
        if not entry.request.content.is_eof():
            stalled.add(entry)
    if len(stalled):
        await stalled.abort(why="the server stopped reading request bodies")
    for entry in [*in_flight.cut, *stalled.cut]:
        if not entry.request.content.is_eof():
            # No byte can arrive any more: end the body, or aiohttp's lingering read
            # of it (after the 503) holds the shutdown for its whole lingering_time.
            entry.request.content.feed_eof()
    in_flight.cut.clear()
