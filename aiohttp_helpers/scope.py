"""Resources that live exactly as long as one request."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from .keys import REQUEST_SCOPE_KEY

__all__ = ["RequestScope", "request_scope"]

log = logging.getLogger("aiohttp_helpers")

Cleanup = Callable[[], Awaitable[None] | None]


class RequestScope:
    """Cleanups to run when a request ends, newest first, each run even if another fails."""

    __slots__ = ("_callbacks", "_closed")

    def __init__(self) -> None:
        self._callbacks: list[Cleanup] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """How many cleanups are waiting."""
        return len(self._callbacks)

    def push(self, callback: Cleanup) -> None:
        """Run ``callback`` (sync or async) when the request ends."""
        if self._closed:
            raise RuntimeError("the request has ended; its scope is closed")
        self._callbacks.append(callback)

    def discard(self, callback: Cleanup) -> None:
        """Forget ``callback`` if it is still waiting."""
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def close_empty(self) -> bool:
        """Close the scope if nothing waits in it; return whether it did (no await needed)."""
        if self._callbacks:
            return False
        self._closed = True
        return True

    async def aclose(self) -> None:
        """Run every cleanup, newest first; errors are logged, never raised."""
        self._closed = True
        while self._callbacks:
            callback = self._callbacks.pop()
            try:
                result = callback()
                if result is not None:
                    await result
            except Exception:
                log.exception("request cleanup %r failed", callback)


def request_scope(request: web.BaseRequest) -> RequestScope | None:
    """The scope the package's middleware opened for ``request``, if any."""
    return request.get(REQUEST_SCOPE_KEY)
