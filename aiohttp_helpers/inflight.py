"""Requests in flight: stopping waits for them, bounded by ``drain_timeout``, then ends them.

aiohttp stops reading request bodies the moment its runner starts cleaning up
(``Server.pre_shutdown()`` makes every connection drop the bytes that arrive after it), so an
upload still arriving then can only wait out its ``idle_timeout``. The package therefore
waits for the requests in flight *before* the runner cleans up, while the listener still
serves, and ends those still running at the bound in a way a client can retry at once:

- the body is still arriving and no answer has started: 503 with ``Retry-After`` and
  ``Connection: close`` (the handler is cancelled, its temporary files removed);
- otherwise the connection is closed (the handler is cancelled).

WebSocket upgrades and registered streams are not waited for: they are closed by their
registries once the app stops. While the app is not READY every answer carries
``Connection: close``, so that keep-alive clients move to a server that is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .errors import ServiceUnavailable
from .keys import IN_FLIGHT_KEY
from .middleware import error_response

if TYPE_CHECKING:
    from .lifecycle import Lifecycle

__all__ = [
    "InFlight",
    "InFlightRequest",
    "make_in_flight_middleware",
    "mark_started",
    "unavailable_response",
]

log = logging.getLogger("aiohttp_helpers.lifecycle")

#: Seconds a client is told to wait before it retries a request the server cut short.
RETRY_AFTER = 1


def unavailable_response(request: web.BaseRequest, exc: ServiceUnavailable) -> web.Response:
    """``exc`` as a 503 problem document with ``Retry-After`` and ``Connection: close``."""
    response = error_response(request, exc)
    response.headers["Retry-After"] = str(exc.retry_after)
    response.force_close()
    return response


class InFlightRequest:
    """One request the app is handling: what stopping knows about it."""

    __slots__ = ("aborted", "body_pending", "long_lived", "request", "started", "task")

    def __init__(self, request: web.Request, task: asyncio.Task[object] | None) -> None:
        self.request = request
        self.task = task
        #: The answer's headers went out (``on_response_prepare``): no other answer can.
        self.started = False
        #: A WebSocket or a registered stream: closed by its registry, not waited for.
        self.long_lived = False
        #: Stopping cancelled the handler at the bound.
        self.aborted = False
        #: The body was still arriving when the handler was cancelled.
        self.body_pending = False

    @property
    def waited(self) -> bool:
        """Whether stopping waits for this request."""
        if self.long_lived:
            return False
        return self.request.headers.get("Upgrade", "").lower() != "websocket"


class InFlight:
    """The requests one application (and its sub-apps) is handling now."""

    def __init__(self) -> None:
        self._entries: set[InFlightRequest] = set()
        #: Requests ended while their body was still arriving (answered 503).
        self.cut: list[InFlightRequest] = []

    def __len__(self) -> int:
        """How many requests stopping would wait for."""
        return sum(1 for entry in self._entries if entry.waited)

    def __iter__(self) -> Iterator[InFlightRequest]:
        return iter([entry for entry in self._entries if entry.waited])

    def add(self, entry: InFlightRequest) -> None:
        self._entries.add(entry)

    def discard(self, entry: InFlightRequest) -> None:
        self._entries.discard(entry)

    async def wait(
        self,
        timeout: float,  # noqa: ASYNC109 (at the bound the requests are ended, not us)
        hurry: asyncio.Event | None = None,
    ) -> bool:
        """Wait until no request is in flight, ``timeout`` seconds at the most.

        Requests that arrive meanwhile are waited for too. Returns True when none is left;
        False at the bound, or as soon as ``hurry`` is set.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        hurried: asyncio.Task[bool] | None = None
        try:
            while True:
                tasks = {entry.task for entry in self if entry.task is not None}
                if not tasks:
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0 or (hurry is not None and hurry.is_set()):
                    return False
                waiting: set[asyncio.Future[Any]] = set(tasks)
                if hurry is not None:
                    if hurried is None:
                        hurried = loop.create_task(hurry.wait())
                    waiting.add(hurried)
                await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if hurried is not None:
                hurried.cancel()
                await asyncio.wait([hurried])

    async def abort(self, grace: float = 1.0, *, why: str = "drain_timeout reached") -> int:
        """End every request still in flight; wait ``grace`` seconds for their answers.

        Returns:
            how many requests were ended.
        """
        entries = [entry for entry in self if entry.task is not None and not entry.task.done()]
        for entry in entries:
            entry.aborted = True
            entry.body_pending = not entry.request.content.is_eof()
            if entry.body_pending:
                self.cut.append(entry)
            assert entry.task is not None
            entry.task.cancel()
        if entries:
            tasks = [entry.task for entry in entries if entry.task is not None]
            log.warning(
                "%s: ended %d request(s) still in flight "
                "(503 + Retry-After where the body was still arriving, else connection closed)",
                why,
                len(entries),
            )
            await asyncio.wait(tasks, timeout=grace)
        return len(entries)


def make_in_flight_middleware(lifecycle: Lifecycle) -> Middleware:
    """The middleware ``setup()`` installs after the error middleware: tracks requests."""

    @web.middleware
    async def aiohttp_helpers_in_flight(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if IN_FLIGHT_KEY in request:
            # A sub-app went through setup() too: the outermost one tracks the request.
            return await handler(request)
        tracker = lifecycle.in_flight
        task = asyncio.current_task()
        entry = InFlightRequest(request, task)
        request[IN_FLIGHT_KEY] = entry
        tracker.add(entry)
        try:
            try:
                response = await handler(request)
            except asyncio.CancelledError:
                if not entry.aborted or entry.started or not entry.body_pending:
                    raise
                if task is not None and task.uncancel() > 0:
                    raise  # cancelled by someone else as well: let that through
                exc = ServiceUnavailable(
                    "the server is stopping and the request body had not fully arrived: "
                    "send it again",
                    retry_after=RETRY_AFTER,
                )
                log.debug("%s %s cut short at drain_timeout", request.method, request.path)
                return unavailable_response(request, exc)
            except ServiceUnavailable as exc:
                # Refused while stopping (a stream, say): retry elsewhere or a little later.
                return unavailable_response(request, exc)
            except web.HTTPException as exc:
                if not lifecycle.is_ready and not exc.prepared:
                    exc.force_close()
                raise
            if not lifecycle.is_ready and not response.prepared:
                response.force_close()
            return response
        finally:
            tracker.discard(entry)

    return aiohttp_helpers_in_flight


async def mark_started(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` receiver: the request's answer has started."""
    entry = request.get(IN_FLIGHT_KEY)
    if entry is not None:
        entry.started = True
