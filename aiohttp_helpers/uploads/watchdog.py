"""The watchdog of a slow request body: one timer for ``idle_timeout`` and ``min_rate``."""

from __future__ import annotations

import asyncio

from aiohttp.streams import StreamReader

from ..errors import UploadIdleTimeout, UploadTooSlow

__all__ = ["Watchdog"]


class Watchdog:
    """Fails the stream when one read waits ``timeout`` seconds, or the body comes too slowly.

    One timer, re-armed lazily: every deadline it computes is no earlier than the one
    before, so a timer that fires early only re-arms itself.

    The rate counts the time spent waiting for body bytes, not the time the handler spent
    on them: a handler that saves a file slowly does not make its client "too slow".
    """

    __slots__ = (
        "_content",
        "_handle",
        "_loop",
        "_min_rate",
        "_timeout",
        "received",
        "since",
        "waited",
    )

    def __init__(self, content: StreamReader, timeout: float, min_rate: float | None) -> None:
        self._content = content
        self._timeout = timeout
        self._min_rate = min_rate
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self.since: float | None = None
        #: Seconds spent waiting in reads that have ended, and the bytes they brought.
        self.waited = 0.0
        self.received = 0

    def start(self) -> None:
        self.since = now = self._loop.time()
        if self._handle is None:
            self._handle = self._loop.call_at(self._deadline(now)[0], self._check)

    def stop(self, received: int) -> None:
        since = self.since
        if since is not None:
            self.waited += self._loop.time() - since
            self.since = None
        self.received += received

    def _deadline(self, since: float) -> tuple[float, bool]:
        """When the current wait fails, and whether it fails for the rate (not idleness)."""
        idle = since + self._timeout
        rate = self._min_rate
        if rate is None:
            return idle, False
        # Fails once the time waited reaches both idle_timeout and received / min_rate.
        slow = since - self.waited + max(self._timeout, self.received / rate)
        return (slow, True) if slow < idle else (idle, False)

    def _check(self) -> None:
        self._handle = None
        since = self.since
        if since is None:
            return
        deadline, slow = self._deadline(since)
        if self._loop.time() + 0.001 >= deadline:
            if slow:
                assert self._min_rate is not None
                self._content.set_exception(UploadTooSlow(self._min_rate))
            else:
                self._content.set_exception(UploadIdleTimeout(self._timeout))
        else:
            self._handle = self._loop.call_at(deadline, self._check)

    def close(self) -> None:
        self.since = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
