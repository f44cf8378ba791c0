"""Broadcast backends: how WebSocket broadcasts reach sockets in other processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["BroadcastBackend", "Deliver", "InMemoryBroadcast"]

#: Called by a backend with ``(group, data)`` for every message to deliver to this
#: process's sockets (``group`` ``None``: every socket); returns how many got it.
Deliver = Callable[[str | None, str | bytes], Awaitable[int]]


class BroadcastBackend(Protocol):
    """Carries broadcast and group messages between processes.

    The contract is publish once, deliver locally: :meth:`publish` hands a message to
    the backend exactly once, and the backend calls ``deliver`` exactly once per
    process that started it (this one included). A backend that delivers to the
    publishing process at once (so that its sockets do not wait for a round trip, and
    still get the message while the other processes are out of reach) must not deliver
    it there again when its transport hands it back. A backend never sends to sockets
    itself, so per-socket timeouts and slow-client handling stay in the registry.

    Implementations: :class:`InMemoryBroadcast` (the default, one process) and
    :class:`~aiohttp_helpers.RedisBroadcast` (Redis pub/sub, several processes or hosts).
    """

    async def start(self, deliver: Deliver) -> None:
        """Begin receiving; ``deliver`` hands each message to this process's sockets."""

    async def publish(self, group: str | None, data: str | bytes) -> None:
        """Send ``data`` to every process (this one included, through ``deliver``)."""

    async def stop(self) -> None:
        """Stop receiving and release connections; ``publish`` is refused afterwards."""


class InMemoryBroadcast:
    """The default backend: one process, so publishing is delivering."""

    __slots__ = ("_deliver",)

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    @property
    def started(self) -> bool:
        return self._deliver is not None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, group: str | None, data: str | bytes) -> None:
        deliver = self._deliver
        if deliver is None:
            raise RuntimeError("the broadcast backend is not started")
        await deliver(group, data)

    async def stop(self) -> None:
        self._deliver = None
