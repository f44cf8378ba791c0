"""Broadcast backends: how WebSocket broadcasts reach sockets in other processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["BroadcastBackend", "Deliver"]

#: Called by a backend with ``(group, data)`` for every message to deliver locally.
Deliver = Callable[[str | None, str | bytes], Awaitable[None]]


class BroadcastBackend(Protocol):
    """Carries broadcast and group messages between processes."""

    async def start(self, deliver: Deliver) -> None:
        """Begin receiving; ``deliver`` hands each message to this process's sockets."""

    async def publish(self, group: str | None, data: str | bytes) -> None:
        """Send ``data`` to every process (this one included, through ``deliver``)."""

    async def stop(self) -> None:
        """Stop receiving and release connections."""
