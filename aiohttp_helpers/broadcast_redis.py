"""``RedisBroadcast``: WebSocket broadcasts and groups across processes over Redis pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import struct
import time
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit, urlunsplit

from ._validate import positive
from ._words import counted
from .broadcast import Deliver

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["RedisBroadcast"]

log = logging.getLogger("aiohttp_helpers.broadcast.redis")

_EXTRA_HINT = "install the extra: pip install 'aiohttp-helpers[redis]'"
_SCHEMES = frozenset({"redis", "rediss", "unix"})

# One message on the channel: magic, flags, the publishing process's id, the length of
# the group name, then the group name (UTF-8) and the data (UTF-8 text or raw bytes).
_HEADER = struct.Struct(">4sB16sI")
_MAGIC = b"AHB1"
_BINARY = 0x01
_GROUP = 0x02


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What a lost or unreachable Redis raises; an ImportError says how to get ``redis``."""
    try:
        from redis.exceptions import RedisError
    except ImportError as exc:
        raise ImportError(f"RedisBroadcast needs the redis package: {_EXTRA_HINT}") from exc
    return (TimeoutError, OSError, RedisError)


def _redact(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _seconds(name: str, value: object) -> float:
    positive(name, value, noun="a number of seconds")
    return float(cast(float, value))


def encode_message(origin: bytes, group: str | None, data: str | bytes) -> bytes:
    """One broadcast as it travels on the channel."""
    flags = 0
    if isinstance(data, str):
        body = data.encode("utf-8")
    else:
        body = bytes(data)
        flags |= _BINARY
    name = b""
    if group is not None:
        name = group.encode("utf-8", "surrogatepass")
        flags |= _GROUP
    return _HEADER.pack(_MAGIC, flags, origin, len(name)) + name + body


def decode_message(raw: bytes) -> tuple[bytes, str | None, str | bytes]:
    """``(origin, group, data)`` of a message from the channel.

    Raises:
        ValueError: ``raw`` is not a message in this format.
    """
    if len(raw) < _HEADER.size:
        raise ValueError("shorter than a message header")
    magic, flags, origin, size = _HEADER.unpack_from(raw)
    if magic != _MAGIC or flags & ~(_BINARY | _GROUP):
        raise ValueError("not an aiohttp-helpers broadcast")
    start = _HEADER.size
    if start + size > len(raw) or (size and not flags & _GROUP):
        raise ValueError("group name out of bounds")
    group = raw[start : start + size].decode("utf-8", "surrogatepass") if flags & _GROUP else None
    body = raw[start + size :]
    data: str | bytes = body if flags & _BINARY else body.decode("utf-8")
    return origin, group, data


class RedisBroadcast:
    """Carries broadcasts between processes and hosts over one Redis pub/sub channel.

    Select it with ``ah.WebSocketSettings(broadcast=ah.RedisBroadcast(url))``, in every
    process that serves the application. A broadcast is delivered at once to the sockets
    of the process that made it, and published once on ``channel``; every other
    subscribed process delivers it to its own sockets (a socket's groups are those it
    joined in its own process). The publishing process skips its own message when Redis
    hands it back, so its sockets never get it twice.

    Delivery is Redis pub/sub's: at most once, nothing is stored. While a process has
    no working subscription (Redis down, restarting or unreachable), its broadcasts still
    reach its own sockets but are **not** sent to the other processes: they are dropped
    and counted in :attr:`dropped`, never replayed; likewise messages published by others
    while it is disconnected never reach it. The connection loss is logged once, with
    a warning, and the subscription is retried with exponential backoff (``reconnect_delay``
    is the first and the longest wait, each jittered to between half and all of it);
    recovery is logged with the count of broadcasts dropped meanwhile.

    An idle subscription is checked with a PING every ``ping_interval`` seconds: one left
    unanswered for another ``ping_interval`` counts as a lost connection, so a frozen
    server or a dead network path is noticed, not only a closed socket. ``timeout``
    bounds connecting and each command, a publish included.

    The redis client is created when the application starts (in each worker process,
    after a fork), so one instance may be configured before a process manager forks.
    An instance serves one application at a time. Requires the ``redis`` package:
    ``pip install 'aiohttp-helpers[redis]'``.

    Counters, for metrics: :attr:`published`, :attr:`dropped`, :attr:`received`
    (messages from other processes delivered here), :attr:`malformed` (messages on the
    channel that are not in this package's format, ignored) and :attr:`outages`.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        channel: str = "aiohttp-helpers:broadcast",
        timeout: float = 5.0,
        ping_interval: float = 5.0,
        reconnect_delay: tuple[float, float] = (0.1, 10.0),
    ) -> None:
        given: object = url
        if not isinstance(given, str):
            raise TypeError(f"url must be a str such as 'redis://host:6379/0', got {url!r}")
        try:
            scheme = urlsplit(url).scheme
            urlsplit(url).port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError as exc:
            raise ValueError(f"not a valid Redis URL: {_redact(url)!r} ({exc})") from None
        if scheme not in _SCHEMES:
            raise ValueError(
                f"a Redis URL starts with redis://, rediss:// or unix://, got {_redact(url)!r}"
            )
        name: object = channel
        if not isinstance(name, str) or not name:
            raise ValueError(f"channel must be a non-empty str, got {channel!r}")
        first, longest = reconnect_delay
        self._errors = _redis_errors()
        self.url = url
        self.channel = channel
        self.timeout = _seconds("timeout", timeout)
        self.ping_interval = _seconds("ping_interval", ping_interval)
        self.reconnect_delay = (
            _seconds("reconnect_delay", first),
            _seconds("reconnect_delay", longest),
        )
        if longest < first:
            raise ValueError("reconnect_delay is (first, longest) with first <= longest")
        self._where = _redact(url)
        #: Broadcasts handed to Redis.
        self.published = 0
        #: Broadcasts not sent to other processes because Redis was unreachable.
        self.dropped = 0
        #: Messages from other processes delivered to this process's sockets.
        self.received = 0
        #: Messages on the channel that are not in this package's format (ignored).
        self.malformed = 0
        #: How many times the subscription was lost.
        self.outages = 0
        self._deliver: Deliver | None = None
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._origin = b""
        self._connected = False
        self._stopping = False
        self._settled = asyncio.Event()
        self._lost_at = 0.0
        self._dropped_at_loss = 0
        self._warned_drop = False

    def __repr__(self) -> str:
        state = "connected" if self._connected else "started" if self.started else "stopped"
        return f"<RedisBroadcast {self._where} channel={self.channel!r} {state}>"

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran and :meth:`stop` has not."""
        return self._deliver is not None

    @property
    def connected(self) -> bool:
        """Whether the subscription is up: broadcasts reach the other processes."""
        return self._connected

    # -- the BroadcastBackend protocol ----------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Connect and subscribe, then keep the subscription up until :meth:`stop`.

        Returns once the first attempt succeeded or failed; after a failure (logged) the
        subscription is retried in the background and broadcasts stay local meanwhile.

        Raises:
            RuntimeError: this instance already serves an application.
        """
        if self.started:
            raise RuntimeError(
                "this RedisBroadcast already serves an application: give each "
                "application its own WebSocketSettings(broadcast=RedisBroadcast(...))"
            )
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries inside redis-py: a failure reaches the loop below, which logs it and
        # backs off; the socket timeouts bound connecting and every command. RESP2: with
        # RESP3, redis-py (8.x) enables maintenance notifications and its pool then skips
        # the check for a pooled connection the server closed, so the first publish after
        # a Redis restart would fail.
        self._client = Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            protocol=2,
        )
        # A new id per start: forked workers that share this instance are still distinct.
        self._origin = os.urandom(16)
        self._deliver = deliver
        self._stopping = False
        self._settled = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            await self._settled.wait()
        except asyncio.CancelledError:
            await self.stop()  # the start-up was called off: leave nothing running
            raise

    async def publish(self, group: str | None, data: str | bytes) -> None:
        """Deliver ``data`` to this process's sockets and publish it to the others.

        Raises:
            RuntimeError: the backend is not started.
            UnicodeEncodeError: ``data`` is text that cannot be encoded as UTF-8.
        """
        deliver = self._deliver
        if deliver is None:
            raise RuntimeError("the broadcast backend is not started")
        payload = encode_message(self._origin, group, data)
        # The local delivery writes to the transports without waiting for any, so it
        # comes first and needs no task of its own; then the round trip to Redis.
        await deliver(group, data)
        await self._publish(payload)

    async def stop(self) -> None:
        """Unsubscribe, close the connections and stop retrying; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        pubsub = self._pubsub
        if self._connected and pubsub is not None:
            # A clean UNSUBSCRIBE: the reader sees the confirmation and ends by itself.
            # If that cannot be sent, the connection is going anyway: closing it ends the
            # subscription on the server just as well.
            with contextlib.suppress(*self._errors):
                async with asyncio.timeout(self.timeout):
                    await pubsub.unsubscribe(self.channel)
            await asyncio.wait([task], timeout=self.timeout)
        self._connected = False
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
        client, self._client = self._client, None
        assert client is not None
        await client.aclose()
        self._deliver = None

    # -- publishing -------------------------------------------------------------------------

    async def _publish(self, payload: bytes) -> None:
        client = self._client
        if not self._connected or client is None:
            self._drop("no Redis subscription")
            return
        try:
            await client.publish(self.channel, payload)
        except self._errors as exc:
            self._drop(f"{type(exc).__name__}: {exc}")
        else:
            self.published += 1

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if not self._warned_drop:
            self._warned_drop = True
            log.warning(
                "a broadcast could not be sent through Redis at %s (%s): it reached this "
                "process's sockets only; until Redis is back, broadcasts are dropped for "
                "the other processes",
                self._where,
                why,
            )

    # -- the subscription -------------------------------------------------------------------

    async def _run(self) -> None:
        """Keep a subscription up: after a loss, retry with backoff until stopped."""
        failures = 0
        while True:
            began = time.monotonic()
            error = await self._subscription()
            if error is None or self._stopping:
                return
            # After a connection that held a good while, the backoff starts afresh.
            failures = 0 if time.monotonic() - began >= self.reconnect_delay[1] else failures
            self._lost(error, failures)
            await asyncio.sleep(self._backoff(failures))
            failures += 1

    async def _subscription(self) -> BaseException | None:
        """One connection's life: ``None`` once unsubscribed, else the error that ended it."""
        client = self._client
        assert client is not None
        pubsub = client.pubsub()
        self._pubsub = pubsub
        try:
            await pubsub.subscribe(self.channel)
            await self._listen(pubsub)
        except Exception as exc:  # whatever it was, the subscription must come back
            return exc
        finally:
            self._pubsub = None
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        return None

    async def _listen(self, pubsub: PubSub) -> None:
        """Read the subscription until it is unsubscribed; raise when it is lost."""
        unanswered = False
        while pubsub.subscribed:
            message = await pubsub.get_message(timeout=self.ping_interval)
            if message is not None:
                unanswered = False
                kind = message["type"]
                if kind == "message":
                    await self._received(message["data"])
                elif kind == "subscribe":
                    self._up()
            elif unanswered:
                raise TimeoutError(f"Redis did not answer a PING within {self.ping_interval:g} s")
            else:
                await pubsub.ping()
                unanswered = True

    def _up(self) -> None:
        self._connected = True
        if self._lost_at:
            log.info(
                "subscribed to Redis at %s again after %.1f s; %s not sent to the other "
                "processes meanwhile",
                self._where,
                time.monotonic() - self._lost_at,
                _were(self.dropped - self._dropped_at_loss, "broadcast"),
            )
        self._lost_at = 0.0
        self._warned_drop = False
        self._settled.set()

    def _lost(self, exc: BaseException, failures: int) -> None:
        was_connected = self._connected
        self._connected = False
        if not self._lost_at:
            self._lost_at = time.monotonic()
            self._dropped_at_loss = self.dropped
            self.outages += 1
            what = "lost the subscription to" if was_connected else "cannot subscribe to"
            log.warning(
                "%s Redis at %s (%s: %s): retrying with backoff; meanwhile broadcasts "
                "reach this process's sockets only",
                what,
                self._where,
                type(exc).__name__,
                exc,
            )
        else:
            log.debug("Redis at %s still unreachable (attempt %d): %r", self._where, failures, exc)
        self._settled.set()

    def _backoff(self, failures: int) -> float:
        first, longest = self.reconnect_delay
        cap = min(longest, first * 2.0 ** min(failures, 32))
        return cap / 2 + random.random() * cap / 2

    async def _received(self, raw: bytes) -> None:
        try:
            origin, group, data = decode_message(raw)
        except ValueError as exc:
            self.malformed += 1
            if self.malformed == 1:
                log.warning(
                    "ignoring a message on Redis channel %r that is not a broadcast of this "
                    "package (%s): is another program publishing there?",
                    self.channel,
                    exc,
                )
            return
        if origin == self._origin:
            return  # ours: its local delivery happened when it was published
        deliver = self._deliver
        assert deliver is not None  # stop() clears it once this reader has ended
        self.received += 1
        try:
            await deliver(group, data)
        except Exception:
            log.exception("delivering a broadcast from Redis failed")


def _were(count: int, noun: str) -> str:
    """``count`` ``noun`` with its verb: 1 broadcast was, 2 broadcasts were."""
    return f"{counted(count, noun)} {'was' if count == 1 else 'were'}"
