"""Long-lived HTTP responses (server-sent events, feeds): refused while draining, ended on stop.

A streaming ``web.StreamResponse`` never finishes by itself, so stopping must not wait for
it: registered streams are left out of the in-flight wait and ended once the app stops
(after the drain), the way WebSockets are closed. Ending one goes in two steps:

1. it is told: ``stop_streaming()`` is called on responses that have it (aiohttp-sse's
   ``EventSourceResponse``: ``is_connected()`` turns False and ``wait()`` returns), and
   :attr:`StreamRegistry.closing` turns True for handlers that watch it;
2. a handler still running ``close_timeout`` seconds later is cancelled. Under
   :func:`stream_handler` the response then ends cleanly (the final chunk is sent); a
   stream registered with :meth:`StreamRegistry.prepare` alone has its connection closed.

While the app drains or stops a new stream is refused with 503 and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from aiohttp import web

from ._words import counted
from .errors import ServiceUnavailable
from .keys import STREAMS_KEY
from .serving import REFUSING_STATES, ServingState

if TYPE_CHECKING:
    from .inflight import InFlight

__all__ = ["StreamRegistry", "StreamServing", "prepare_stream", "stream_handler"]

log = logging.getLogger("aiohttp_helpers.streams")

R = TypeVar("R", bound=web.StreamResponse)
StreamHandler = Callable[[web.Request, R], Awaitable[None]]
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Stream:
    __slots__ = ("ended", "request", "response", "task")

    def __init__(
        self, request: web.Request, response: web.StreamResponse, task: asyncio.Task[Any] | None
    ) -> None:
        self.request = request
        self.response = response
        self.task = task
        #: The registry cancelled the handler: the decorator ends the response cleanly.
        self.ended = False


class StreamServing(ServingState, Protocol):
    """What the stream registry asks of the lifecycle: its state, and the requests in flight.

    A stream is left out of the in-flight wait when the app stops (it never ends by itself).
    """

    @property
    def in_flight(self) -> InFlight: ...


class StreamRegistry:
    """The open streams of one application (``helpers.streams``): ``len()``, iteration.

    Iterating gives the prepared responses, oldest first. ``lifecycle`` (what ``setup()``
    hands it) decides refusals: no new stream while the app drains or stops.
    """

    def __init__(
        self, *, lifecycle: StreamServing | None = None, close_timeout: float = 1.0
    ) -> None:
        self.lifecycle = lifecycle
        #: Seconds a stream has to end by itself once told, before its handler is cancelled.
        self.close_timeout = close_timeout
        self._streams: dict[web.StreamResponse, _Stream] = {}
        self._closing = asyncio.Event()

    def __len__(self) -> int:
        return len(self._streams)

    def __iter__(self) -> Iterator[web.StreamResponse]:
        return iter(list(self._streams))

    @property
    def closing(self) -> bool:
        """True once the app has started ending its streams: a handler should return."""
        return self._closing.is_set()

    async def wait_closing(self) -> None:
        """Return once the app starts ending its streams."""
        await self._closing.wait()

    @property
    def accepting(self) -> bool:
        """Whether a new stream is welcome now (the app is not draining or stopping)."""
        if self._closing.is_set():
            return False
        lifecycle = self.lifecycle
        return lifecycle is None or lifecycle.state not in REFUSING_STATES

    def check(self) -> None:
        """Raise :class:`ServiceUnavailable` (503, ``Retry-After``) unless :attr:`accepting`."""
        if not self.accepting:
            raise ServiceUnavailable(
                "the server is stopping and takes no new streams: connect again",
                retry_after=1,
            )

    async def prepare(self, request: web.Request, response: R) -> R:
        """Refuse while draining, else send ``response``'s headers and track it.

        The stream is tracked until the handler's task ends.

        Raises:
            ServiceUnavailable: the app is draining or stopping (answered 503 with
                ``Retry-After`` by the package's middleware).
        """
        self.check()
        await response.prepare(request)
        self.add(request, response)
        return response

    def add(self, request: web.Request, response: web.StreamResponse) -> None:
        """Track a prepared ``response`` until the current task (the handler's) ends."""
        task = asyncio.current_task()
        stream = _Stream(request, response, task)
        self._streams[response] = stream
        lifecycle = self.lifecycle
        entry = None if lifecycle is None else lifecycle.in_flight.current()
        if entry is not None:
            entry.long_lived = True
        if task is not None:
            task.add_done_callback(lambda _task: self.discard(response))

    def discard(self, response: web.StreamResponse) -> None:
        """Stop tracking ``response`` (the handler ended)."""
        self._streams.pop(response, None)

    def _ended_by_us(self, response: web.StreamResponse) -> bool:
        stream = self._streams.get(response)
        return stream is not None and stream.ended

    async def close_all(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 (then the handlers are cancelled)
    ) -> int:
        """Tell every stream to end; cancel the handlers still running after ``timeout``.

        Returns:
            how many streams were open.
        """
        grace = self.close_timeout if timeout is None else timeout
        self._closing.set()
        streams = list(self._streams.values())
        for stream in streams:
            stop = getattr(stream.response, "stop_streaming", None)
            if callable(stop):
                try:
                    stop()
                except Exception:  # a subclass's own stop; the cancel below still ends it
                    log.exception("stop_streaming() failed")
        tasks = {s.task: s for s in streams if s.task is not None and not s.task.done()}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                tasks[task].ended = True
                task.cancel()
            if pending:
                log.info("cancelled %s still running", counted(len(pending), "stream handler"))
                await asyncio.wait(pending, timeout=grace)
        return len(streams)

    async def shutdown(self) -> int:
        """Refuse new streams, then end every open one (``setup()`` wires it to stopping)."""
        if self._streams:
            log.debug("ending %s", counted(len(self._streams), "stream"))
        return await self.close_all()


def _registry(request: web.Request) -> StreamRegistry:
    registry = request.config_dict.get(STREAMS_KEY)
    if registry is None:
        raise RuntimeError("aiohttp_helpers.setup(app) was not called on this application")
    return registry


async def prepare_stream(request: web.Request, response: R) -> R:
    """Prepare ``response`` as a stream of the request's app (:meth:`StreamRegistry.prepare`)."""
    return await _registry(request).prepare(request, response)


def _wrap(factory: Callable[[], R], func: StreamHandler[R]) -> _Handler:
    if not inspect.iscoroutinefunction(func):
        raise TypeError(f"stream_handler takes an async function, got {func!r}")

    @functools.wraps(func)
    async def handler(request: web.Request) -> web.StreamResponse:
        registry = _registry(request)
        registry.check()
        response = factory()
        await registry.prepare(request, response)
        try:
            await func(request, response)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not registry._ended_by_us(response) or (task is not None and task.uncancel()):
                raise
        return response

    return handler


@overload
def stream_handler(factory: StreamHandler[web.StreamResponse], /) -> _Handler: ...
@overload
def stream_handler(factory: Callable[[], R] = ..., /) -> Callable[[StreamHandler[R]], _Handler]: ...
def stream_handler(factory: Any = web.StreamResponse, /) -> Any:
    """Make ``async def handler(request, stream)`` a route handler that streams.

    ``factory()`` builds the response (``web.StreamResponse`` by default; aiohttp-sse's
    ``EventSourceResponse``, or a ``functools.partial`` of it, for server-sent events).
    The wrapper refuses with 503 and ``Retry-After`` while the app drains or stops,
    prepares the response, tracks it, runs the handler and returns the response. When
    the app stops, the stream is ended (see the module's docstring) and its final chunk
    is sent::

        @ah.stream_handler(EventSourceResponse)
        async def events(request: web.Request, sse: EventSourceResponse) -> None:
            while sse.is_connected():
                await sse.send("tick")
                await asyncio.sleep(1)
    """
    if inspect.iscoroutinefunction(factory):
        return _wrap(web.StreamResponse, factory)
    return functools.partial(_wrap, factory)
