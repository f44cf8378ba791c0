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
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler

from ._words import counted
from .errors import ServiceUnavailable
from .problem import error_response
from .serving import AppState

if TYPE_CHECKING:
    from .lifecycle import Lifecycle

__all__ = [
    "InFlight",
    "InFlightRequest",
    "InFlightRunner",
    "make_in_flight",
    "make_prepare_receiver",
    "unavailable_response",
]

log = logging.getLogger("aiohttp_helpers.lifecycle")

#: Runs a request's handler, as a middleware would (without being one).
InFlightRunner = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

#: Seconds a client is told to wait before it retries a request the server cut short.
RETRY_AFTER = 1


def unavailable_response(request: web.BaseRequest, exc: ServiceUnavailable) -> web.Response:
    """``exc`` as a 503 problem document with ``Retry-After`` and ``Connection: close``."""
    response = error_response(request, exc)  # Retry-After and Connection: close included
    response.force_close()
    return response


class InFlightRequest:
    """One request the app is handling: what stopping knows about it."""

    __slots__ = ("aborted", "body_pending", "long_lived", "request", "started", "task")

    def __init__(self, request: web.Request, task: asyncio.Task[Any]) -> None:
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
        # By the task that runs the handler: found again from inside it (streams, the
        # on_response_prepare receiver) without a request key, which costs more per request.
        # What stopping knows of a request is made only when needed (``_entry``): most
        # requests never need more than their place in the dict.
        self._requests: dict[asyncio.Task[Any], web.Request] = {}
        self._marks: dict[asyncio.Task[Any], InFlightRequest] = {}
        #: Requests ended while their body was still arriving (answered 503).
        self.cut: list[InFlightRequest] = []

    def _entry(self, task: asyncio.Task[Any], request: web.Request) -> InFlightRequest:
        entry = self._marks.get(task)
        if entry is None:
            entry = self._marks[task] = InFlightRequest(request, task)
        return entry

    def __len__(self) -> int:
        """How many requests stopping would wait for."""
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator[InFlightRequest]:
        entries = [self._entry(task, request) for task, request in self._requests.items()]
        return iter([entry for entry in entries if entry.waited])

    def add(self, entry: InFlightRequest) -> None:
        self._requests[entry.task] = entry.request
        self._marks[entry.task] = entry

    def discard(self, entry: InFlightRequest) -> None:
        self._requests.pop(entry.task, None)
        self._marks.pop(entry.task, None)

    def current(self) -> InFlightRequest | None:
        """The request the current task is handling, if it is tracked."""
        task = asyncio.current_task()
        request = None if task is None else self._requests.get(task)
        return None if task is None or request is None else self._entry(task, request)

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
                tasks = {entry.task for entry in self}
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
        entries = [entry for entry in self if not entry.task.done()]
        for entry in entries:
            entry.aborted = True
            entry.body_pending = not entry.request.content.is_eof()
            if entry.body_pending:
                self.cut.append(entry)
            entry.task.cancel()
        if entries:
            tasks = [entry.task for entry in entries]
            log.warning(
                "%s: ended %s still in flight "
                "(503 + Retry-After where the body was still arriving, else connection closed)",
                why,
                counted(len(entries), "request"),
            )
            await asyncio.wait(tasks, timeout=grace)
        return len(entries)


def make_in_flight(lifecycle: Lifecycle) -> InFlightRunner:
    """What the package's middleware runs the handler through: tracks requests in flight.

    Not a middleware of its own: aiohttp wraps every middleware around the handler again
    on each request, which cost a hello-world request about as much as all of this.
    """
    ready = AppState.READY

    async def aiohttp_helpers_in_flight(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        tracker = (lifecycle._root or lifecycle)._in_flight
        requests = tracker._requests
        task = asyncio.current_task()
        if task is None or task in requests:
            # A sub-app went through setup() too: the outermost one tracks the request.
            return await handler(request)
        requests[task] = request
        try:
            try:
                response = await handler(request)
            except asyncio.CancelledError:
                entry = tracker._marks.get(task)
                if entry is None or not entry.aborted or entry.started or not entry.body_pending:
                    raise
                if task.uncancel() > 0:
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
                if lifecycle._state is not ready and not exc.prepared:
                    exc.force_close()
                raise
            if lifecycle._state is not ready and not response.prepared:
                response.force_close()
            return response
        finally:
            del requests[task]
            if tracker._marks:
                tracker._marks.pop(task, None)

    return aiohttp_helpers_in_flight


def make_prepare_receiver(
    lifecycle: Lifecycle,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """The ``on_response_prepare`` receiver: marks the request's answer as started.

    Only while the app is not READY, when answers may be cut: a request whose answer began
    before the drain and whose body still arrives at the bound (a streaming echo) is then
    taken for one not answered yet; its connection is closed either way.
    """
    ready = AppState.READY

    async def aiohttp_helpers_started(request: web.Request, response: web.StreamResponse) -> None:
        if lifecycle._state is ready:
            return
        entry = lifecycle.in_flight.current()
        if entry is not None:
            entry.started = True

    return aiohttp_helpers_started
