"""``ws_connect``: a client that reconnects, or stops, as each close code says."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

from aiohttp import (
    ClientError,
    ClientSession,
    ClientWebSocketResponse,
    WebSocketError,
    WSCloseCode,
    WSMessage,
    WSMsgType,
    WSServerHandshakeError,
)
from yarl import URL

from .._closing import AsyncClosing
from .._compat import retype_client_ws
from .._validate import non_negative, positive
from .close import CloseFrame, CloseRecord
from .codes import Retry, close_code_info

__all__ = ["ClientWebSocket", "ReconnectPolicy", "WSReconnector", "ws_connect"]

log = logging.getLogger("aiohttp_helpers.websocket.client")

#: HTTP answers to the upgrade request that are worth retrying.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def _positive(name: str, value: object) -> None:
    positive(name, value, got=False)


def _non_negative(name: str, value: object) -> None:
    non_negative(name, value, rule="must be non-negative", got=False)


def _advice(name: str, value: object) -> Retry:
    if not isinstance(value, Retry) or value is Retry.APPLICATION:
        raise ValueError(f"{name} must be a Retry other than APPLICATION, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconnectPolicy:
    """When :func:`ws_connect` reconnects, and after how long.

    After a close code that calls for a backoff (1001, 1006, 1011, 1014, or a failed
    connection attempt) the wait is ``random() * min(max_delay, initial_delay *
    multiplier ** n)`` for the ``n``-th consecutive failure ("full jitter"); a
    connection that stayed open ``stable_after`` seconds resets ``n``. After 1012 the
    wait is uniform in ``restart_delay``. After 1013 only another of the URLs given is
    tried. Codes 3000-4999 follow ``application_codes`` (code -> :class:`Retry`),
    else ``application_default``. ``max_attempts`` caps consecutive failures (``None``:
    no cap). ``random``, ``sleep`` and ``clock`` are injectable so tests run fast.
    """

    initial_delay: float = 1.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    stable_after: float = 60.0
    restart_delay: tuple[float, float] = (5.0, 30.0)
    max_attempts: int | None = None
    application_codes: Mapping[int, Retry] = field(default_factory=dict)
    application_default: Retry = Retry.STOP
    random: Callable[[], float] = field(default=random.random, compare=False)
    sleep: Callable[[float], Awaitable[Any]] = field(default=asyncio.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def __post_init__(self) -> None:
        _positive("initial_delay", self.initial_delay)
        _positive("max_delay", self.max_delay)
        _non_negative("stable_after", self.stable_after)
        _positive("multiplier", self.multiplier)
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must not be below initial_delay")
        low, high = self.restart_delay
        _non_negative("restart_delay", low)
        _non_negative("restart_delay", high)
        if high < low:
            raise ValueError("restart_delay must be (low, high) with low <= high")
        positive(
            "max_attempts",
            self.max_attempts,
            optional=True,
            got=False,
            integer=True,
            noun="an int or None",
            show="none",
        )
        codes: dict[int, Retry] = {}
        given: list[tuple[object, object]] = list(self.application_codes.items())
        for code, advice in given:
            if isinstance(code, bool) or not isinstance(code, int) or not 3000 <= code <= 4999:
                raise ValueError(f"application_codes keys are 3000-4999, got {code!r}")
            codes[code] = _advice(f"application_codes[{code}]", advice)
        _advice("application_default", self.application_default)
        object.__setattr__(self, "application_codes", MappingProxyType(codes))
        object.__setattr__(self, "restart_delay", (float(low), float(high)))

    def advice(self, code: int) -> Retry:
        """What to do after a connection closed with ``code``."""
        try:
            advice = close_code_info(code).retry
        except ValueError:
            return Retry.STOP
        if advice is Retry.APPLICATION:
            return self.application_codes.get(code, self.application_default)
        return advice

    def backoff(self, failures: int) -> float:
        """The wait before the attempt that follows ``failures`` consecutive failures."""
        cap = min(self.max_delay, self.initial_delay * self.multiplier ** min(failures, 64))
        return self.random() * cap

    def restart_wait(self) -> float:
        """The wait after 1012 SERVICE_RESTART."""
        low, high = self.restart_delay
        return low + self.random() * (high - low)


class ClientWebSocket(ClientWebSocketResponse):
    """The ``ClientWebSocketResponse`` that :func:`ws_connect` yields: it records its close.

    aiohttp<3.15: ``async for msg in ws`` swallows the close frame and its reason, and
    ``close_code`` is the peer's answer even when this side closed first. This class
    fills :attr:`close_record` (a :class:`~aiohttp_helpers.websocket.CloseRecord`, as
    the server's :class:`~aiohttp_helpers.ServerWebSocket` does) as frames go past
    ``receive()`` and ``close()``; everything else is aiohttp's. Pass it as a
    ``ClientSession``'s ``ws_response_class`` to have it on every ``ws_connect()``.
    """

    close_record: CloseRecord

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_record = CloseRecord()

    @classmethod
    def adopt(cls, ws: ClientWebSocketResponse) -> ClientWebSocket:
        """``ws`` as a :class:`ClientWebSocket`: the same object, its class changed in place
        to a recording subclass of its own class (untouched when it already is one)."""
        if isinstance(ws, ClientWebSocket):
            return ws
        recording = retype_client_ws(ws, _recording_class(type(ws)))
        recording.close_record = CloseRecord()
        return recording

    async def receive(self, timeout: float | None = None) -> WSMessage:  # noqa: ASYNC109
        """aiohttp's ``receive()``, recording the close frame on the way past."""
        msg: WSMessage = await super().receive(timeout)
        record = self.close_record
        if msg.type is WSMsgType.CLOSE:
            record.on_received(CloseFrame.from_message(msg))
        elif (
            msg.type is WSMsgType.ERROR
            and isinstance(msg.data, WebSocketError)
            and record.first is None
        ):
            # aiohttp answered a bad frame from the server with this code.
            record.on_sent(CloseFrame(msg.data.code, str(msg.data)))
        return msg

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        """aiohttp's ``close()``, recording the frame when this side closes first."""
        # aiohttp sets close_code before it closes in answer to the server (its close
        # frame, the end of the stream, a bad frame): only a close with none is ours.
        if self.close_record.first is None and not self.closed and self.close_code is None:
            self.close_record.on_sent(CloseFrame(code, message.decode("utf-8", "replace")))
        return await super().close(code=code, message=message)


_RECORDING: dict[type[ClientWebSocketResponse], type[ClientWebSocket]] = {
    ClientWebSocketResponse: ClientWebSocket
}


def _recording_class(base: type[ClientWebSocketResponse]) -> type[ClientWebSocket]:
    """:class:`ClientWebSocket` over a session's own ``ws_response_class``."""
    cls = _RECORDING.get(base)
    if cls is None:
        cls = _RECORDING[base] = type(f"Recording{base.__name__}", (ClientWebSocket, base), {})
    return cls


def ws_connect(
    session: ClientSession,
    url: str | URL | Sequence[str | URL],
    *,
    policy: ReconnectPolicy | None = None,
    **kwargs: Any,
) -> WSReconnector:
    """Connected sockets, one after another, as the close codes allow.

    Each is a :class:`ClientWebSocket`: aiohttp's ``ClientWebSocketResponse`` (or the
    session's own ``ws_response_class``) that records its close. ``url`` is one URL or
    several (the others are used when one fails or answers 1013). ``kwargs`` go to
    ``session.ws_connect()``. Use it as::

        async for ws in ah.ws_connect(session, url):
            async for msg in ws:
                ...

    The iteration ends when a close code says retrying will not help, when
    ``policy.max_attempts`` consecutive attempts failed, or when the loop body leaves a
    socket open (the caller is done: it is closed with 1000). The last code, reason and
    connection error stay readable on the returned :class:`WSReconnector`.
    """
    return WSReconnector(session, url, policy=policy, **kwargs)


class WSReconnector(AsyncClosing):
    """The async iterator :func:`ws_connect` returns; also an async context manager."""

    def __init__(
        self,
        session: ClientSession,
        url: str | URL | Sequence[str | URL],
        *,
        policy: ReconnectPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        urls = [url] if isinstance(url, str | URL) else list(url)
        if not urls:
            raise ValueError("ws_connect() needs at least one URL")
        self.urls: tuple[URL, ...] = tuple(URL(u) for u in urls)
        self.policy = policy or ReconnectPolicy()
        self._session = session
        self._kwargs = kwargs
        self._index = 0
        self._overloaded: set[int] = set()
        self._ws: ClientWebSocket | None = None
        self._connected_at = 0.0
        #: Consecutive failed attempts (reset by a stable connection).
        self.failures = 0
        #: How many connections were made.
        self.connections = 0
        #: Code and reason the last connection closed with (``None`` before one closed).
        self.close_code: int | None = None
        self.close_reason = ""
        #: The last connection attempt's error, if it failed.
        self.error: BaseException | None = None
        self.stopped = False

    @property
    def url(self) -> URL:
        """The URL the next (or current) connection goes to."""
        return self.urls[self._index]

    def __aiter__(self) -> WSReconnector:
        return self

    async def aclose(self) -> None:
        """Stop: close the current socket (1000) if it is open; no more connections."""
        self.stopped = True
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            await ws.close()
            self._note_close(ws)

    async def __anext__(self) -> ClientWebSocket:
        if self.stopped:
            raise StopAsyncIteration
        previous, self._ws = self._ws, None
        delay = 0.0
        if previous is not None:
            delay = await self._after(previous)
        while True:
            if delay > 0:
                await self.policy.sleep(delay)
            try:
                ws: ClientWebSocketResponse = await self._session.ws_connect(
                    self.url, **self._kwargs
                )
            except WSServerHandshakeError as exc:
                if exc.status not in _RETRY_STATUSES:
                    self.error = exc
                    self.close_code, self.close_reason = None, ""
                    self._stop(f"the server answered the upgrade with {exc.status}")
                delay = self._failed(exc)
            except (ClientError, OSError, TimeoutError) as exc:
                delay = self._failed(exc)
            else:
                break
        self.error = None
        self.connections += 1
        self._connected_at = self.policy.clock()
        try:
            recording = ClientWebSocket.adopt(ws)
        except BaseException:
            # Never leave an open connection that nothing holds.
            await ws.close()
            raise
        self._ws = recording
        return recording

    def _failed(self, exc: BaseException) -> float:
        """Count a failed attempt; the wait before the next one (or stop)."""
        log.debug("connecting to %s failed: %r", self.url, exc)
        self.error = exc
        self.close_code, self.close_reason = WSCloseCode.ABNORMAL_CLOSURE, ""
        self.failures += 1
        if self.policy.max_attempts is not None and self.failures >= self.policy.max_attempts:
            self._stop(f"{self.failures} attempts in a row failed")
        self._rotate()
        return self.policy.backoff(self.failures - 1)

    def _stop(self, why: str) -> NoReturn:
        log.debug("not reconnecting: %s", why)
        self.stopped = True
        raise StopAsyncIteration

    def _rotate(self) -> bool:
        """Move to the next URL not known to be overloaded; ``False`` if there is none."""
        n = len(self.urls)
        for step in range(1, n + 1):
            index = (self._index + step) % n
            if index not in self._overloaded:
                self._index = index
                return True
        return False

    def _note_close(self, ws: ClientWebSocket) -> bool:
        """Record how ``ws`` ended; whether this client did not end it."""
        record = ws.close_record
        first = record.first
        if first is None:
            # No close frame either way: the connection dropped, or a heartbeat failed.
            self.close_code, self.close_reason = WSCloseCode.ABNORMAL_CLOSURE, ""
            return True
        self.close_code, self.close_reason = first
        return record.peer_first

    async def _after(self, ws: ClientWebSocket) -> float:
        """Decide, after ``ws``, whether to reconnect and after how long."""
        policy = self.policy
        if not ws.closed:
            # The loop body moved on with the socket open: the caller is done with it.
            await ws.close()
            self._note_close(ws)
            self._stop("the socket was left open: the caller is done")
        server_first = self._note_close(ws)
        code = self.close_code
        assert code is not None
        if not server_first:
            # This side closed first (the caller, or aiohttp after a bad frame).
            self._stop(f"this client closed the connection with {code}")
        if policy.clock() - self._connected_at >= policy.stable_after:
            self.failures = 0
            self._overloaded.clear()
        advice = policy.advice(code)
        log.debug("connection closed with %d %r: %s", code, self.close_reason, advice.value)
        if advice is Retry.STOP:
            self._stop(f"close code {code} says retrying will not help")
        if advice is Retry.RESTART_DELAY:
            return policy.restart_wait()
        if advice is Retry.OTHER_ADDRESS:
            self._overloaded.add(self._index)
            if not self._rotate():
                self._stop(f"close code {code}: no other address to try")
            return policy.backoff(0)
        self.failures += 1
        if policy.max_attempts is not None and self.failures >= policy.max_attempts:
            self._stop(f"{self.failures} connections in a row failed")
        return policy.backoff(self.failures - 1)
