"""The registry of an application's open WebSockets: groups, broadcast, caps, shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Coroutine, Iterator
from typing import Any

from aiohttp import WSCloseCode, web

from .._compat import writable_ws, writer_paused
from .._words import counted
from ..broadcast import BroadcastBackend, InMemoryBroadcast
from ..config import WebSocketSettings
from ..serving import REFUSING_STATES, ServingState
from .close import (
    RESTART,
    SHUTDOWN,
    TOO_MANY,
    TOO_MANY_FROM_CLIENT,
    TOO_SLOW,
    CloseFrame,
    close_websocket,
)
from .frames import Prebuilt

__all__ = ["WebSocketRegistry"]

log = logging.getLogger("aiohttp_helpers.websocket")

WebSocket = web.WebSocketResponse[Any]


class WebSocketRegistry:
    """The open WebSockets of one application (``helpers.websockets``).

    Holds weak references only: a socket that is gone is no longer counted. Sockets
    served by :func:`~aiohttp_helpers.websocket_handler` register and unregister
    themselves; others can be added with :meth:`add` and removed with :meth:`discard`.

    ``len(registry)`` counts open sockets and iterating yields them. :meth:`broadcast`
    writes one prebuilt frame to every socket, or to one group's, without waiting for
    any: a socket that falls behind (see :meth:`deliver`) is closed with 1008 and never
    holds up the others. :meth:`close_all` closes concurrently within a
    deadline, and :meth:`shutdown` does so with 1001 (1012 when the app is restarting)
    and refuses new sockets from then on.

    ``settings`` are the app's :class:`~aiohttp_helpers.WebSocketSettings` (timeouts,
    caps, broadcast backlog, broadcast backend); ``lifecycle``, when set, is the app's
    :class:`~aiohttp_helpers.serving.ServingState` (its state, whether it restarts: the
    registry needs no more of the lifecycle) and decides refusals: no new socket while
    the app drains or stops, and 1012 rather than 1001 when it is restarting.

    Counters, for metrics (read them at any time): :attr:`broadcasts`,
    :attr:`deliveries` and :attr:`slow_closes`.
    """

    def __init__(
        self, settings: WebSocketSettings | None = None, *, lifecycle: ServingState | None = None
    ) -> None:
        self.settings = settings or WebSocketSettings()
        self.lifecycle: ServingState | None = lifecycle
        # weak reference -> client address; the callback forgets collected sockets.
        self._sockets: dict[weakref.ref[WebSocket], str] = {}
        self._per_client: dict[str, int] = {}
        self._groups: dict[str, weakref.WeakSet[WebSocket]] = {}
        self._memberships: weakref.WeakKeyDictionary[WebSocket, set[str]] = (
            weakref.WeakKeyDictionary()
        )
        self._shutting_down = False
        self._backend: BroadcastBackend | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Sockets over their high-water mark -> since when; sockets being closed as slow.
        self._behind: weakref.WeakKeyDictionary[WebSocket, float] = weakref.WeakKeyDictionary()
        self._slow: weakref.WeakSet[WebSocket] = weakref.WeakSet()
        #: Calls of :meth:`deliver` (each broadcast, once per process that has it).
        self.broadcasts = 0
        #: Frames handed to sockets by :meth:`deliver`.
        self.deliveries = 0
        #: Sockets closed (1008) for falling behind on broadcasts.
        self.slow_closes = 0

    # -- membership ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._sockets)

    def __iter__(self) -> Iterator[WebSocket]:
        for ref in list(self._sockets):
            ws = ref()
            if ws is not None:
                yield ws

    def __contains__(self, ws: object) -> bool:
        try:
            return weakref.ref(ws) in self._sockets
        except TypeError:
            return False

    def add(self, ws: WebSocket, *, client: str = "") -> None:
        """Count ``ws`` as open (under ``client``'s address, for the per-client cap)."""
        if ws in self:
            return
        self._sockets[weakref.ref(ws, self._collected)] = client
        self._per_client[client] = self._per_client.get(client, 0) + 1

    def discard(self, ws: WebSocket) -> None:
        """Forget ``ws`` and its groups (nothing happens if it is not registered)."""
        client = self._sockets.pop(weakref.ref(ws), None)
        if client is not None:
            self._uncount(client)
        self._behind.pop(ws, None)
        for name in self._memberships.pop(ws, ()):
            members = self._groups.get(name)
            if members is not None:
                members.discard(ws)
                if not members:
                    del self._groups[name]

    def _collected(self, ref: weakref.ref[WebSocket]) -> None:
        client = self._sockets.pop(ref, None)
        if client is not None:
            self._uncount(client)

    def _uncount(self, client: str) -> None:
        left = self._per_client[client] - 1
        if left:
            self._per_client[client] = left
        else:
            del self._per_client[client]

    def count(self, client: str) -> int:
        """How many open sockets ``client`` (an address) holds."""
        return self._per_client.get(client, 0)

    # -- groups -------------------------------------------------------------------

    def join(self, ws: WebSocket, group: str) -> None:
        """Add ``ws`` to ``group``: :meth:`broadcast` can then address the group.

        Raises:
            ValueError: ``ws`` is not registered (it is closed, or was never added).
        """
        if not isinstance(group, str):
            raise TypeError(f"a group name is a str, got {type(group).__name__}")
        if ws not in self:
            raise ValueError("this WebSocket is not registered (closed, or never added)")
        self._groups.setdefault(group, weakref.WeakSet()).add(ws)
        self._memberships.setdefault(ws, set()).add(group)

    def leave(self, ws: WebSocket, group: str) -> None:
        """Take ``ws`` out of ``group`` (nothing happens if it is not a member)."""
        groups = self._memberships.get(ws)
        if groups is None or group not in groups:
            return
        groups.discard(group)
        members = self._groups[group]
        members.discard(ws)
        if not members:
            del self._groups[group]

    def members(self, group: str) -> list[WebSocket]:
        """The sockets in ``group``."""
        return list(self._groups.get(group, ()))

    def groups(self, ws: WebSocket | None = None) -> frozenset[str]:
        """The groups ``ws`` belongs to, or every non-empty group."""
        if ws is None:
            return frozenset(name for name, members in self._groups.items() if members)
        return frozenset(self._memberships.get(ws, ()))

    # -- admission ----------------------------------------------------------------

    @property
    def shutdown_frame(self) -> CloseFrame:
        """1012 SERVICE_RESTART when the app is restarting, else 1001 GOING_AWAY."""
        lifecycle = self.lifecycle
        if lifecycle is not None and lifecycle.restarting:
            return RESTART
        return SHUTDOWN

    def refusal(self) -> CloseFrame | None:
        """The close frame new sockets get now, or ``None`` while they are welcome."""
        lifecycle = self.lifecycle
        if self._shutting_down or (lifecycle is not None and lifecycle.state in REFUSING_STATES):
            return self.shutdown_frame
        return None

    def admit(
        self, ws: WebSocket, *, client: str = "", settings: WebSocketSettings | None = None
    ) -> CloseFrame | None:
        """Register ``ws`` unless the app is stopping or a connection cap is reached.

        Returns:
            ``None`` when ``ws`` was registered; otherwise the frame to close it with
            (1001 or 1012 while stopping, 1013 over a cap).
        """
        refusal = self.refusal()
        if refusal is not None:
            return refusal
        settings = settings or self.settings
        cap = settings.max_connections
        if cap is not None and len(self._sockets) >= cap:
            return TOO_MANY
        per_client = settings.max_connections_per_client
        if per_client is not None and self._per_client.get(client, 0) >= per_client:
            return TOO_MANY_FROM_CLIENT
        self.add(ws, client=client)
        return None

    # -- broadcast ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the broadcast backend (``settings.broadcast``, or in memory)."""
        if self._backend is not None:
            return
        backend = self.settings.broadcast or InMemoryBroadcast()
        await backend.start(self.deliver)
        self._backend = backend

    async def stop(self) -> None:
        """Stop the broadcast backend and the closes of slow sockets still running."""
        backend, self._backend = self._backend, None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if backend is not None:
            await backend.stop()

    async def broadcast(self, data: str | bytes, group: str | None = None) -> None:
        """Send ``data`` to every open socket, or to ``group``'s, in every process.

        Text goes out as a text message, bytes as a binary one. Returns once the frame
        is written to every socket that keeps up; it never waits for a slow one (see
        :meth:`deliver`).
        """
        _check_data(data)
        if group is not None and not isinstance(group, str):
            raise TypeError(f"a group name is a str, got {type(group).__name__}")
        if self._backend is None:
            await self.start()
        backend = self._backend
        assert backend is not None
        await backend.publish(group, data)

    async def deliver(self, group: str | None, data: str | bytes) -> int:
        """Send ``data`` to this process's sockets (the backends' callback).

        The frame is built once per message (once more per compression window in use
        by sockets that negotiated ``server_no_context_takeover``) and written straight
        to each socket's transport: no task, no timer, no wait. A socket over its
        transport's high-water mark still gets the frame while its write buffer stays
        within ``settings.broadcast_backlog`` bytes past that mark; one that would go
        past it, or that stays over the mark for longer than ``settings.send_timeout``,
        is closed with 1008 in the background, and the others never wait for it.

        Returns:
            how many sockets were handed the message.
        """
        if group is None:
            targets: list[WebSocket | None] = [ref() for ref in list(self._sockets)]
        else:
            members = self._groups.get(group)
            if not members:
                return 0
            targets = list(members)
        frames = Prebuilt(data)
        plain = frames.plain
        behind = self._behind
        any_behind = bool(behind)
        delivered = 0
        # The fast path: a few attribute reads and one write per socket, nothing else.
        # aiohttp writes each of its own frames with no await between header and payload
        # (compressed ones too, once compressed), so a frame written here never lands
        # inside one of the handler's. Nothing here waits on the protocol's drain, so a
        # connection whose drain was poisoned by a cancelled send (aiohttp<3.15) is not
        # touched: it stays over its mark and is closed (aborted) as slow.
        for ws in targets:
            if ws is None:  # pragma: no cover (a collected socket leaves the dict at once)
                continue
            writer = writable_ws(ws)
            if writer is None:
                continue
            transport = writer.transport
            frame = frames.for_writer(writer) if writer.compress else plain
            try:
                if not writer_paused(writer):
                    transport.write(frame)
                    delivered += 1
                    if any_behind:
                        behind.pop(ws, None)
                elif self._behind_but_taking(ws, transport, len(frame)):
                    transport.write(frame)
                    delivered += 1
            except (OSError, RuntimeError):
                # The connection broke under us (aiohttp's own send raises the same): the
                # socket's reader sees it and ends; the others go on.
                continue
        self.broadcasts += 1
        self.deliveries += delivered
        return delivered

    def _behind_but_taking(self, ws: WebSocket, transport: asyncio.Transport, size: int) -> bool:
        """Whether ``ws``, over its high-water mark, may take ``size`` more bytes now.

        When it may not, it is closed with 1008 (once) and never waited for.
        """
        if ws in self._slow:
            return False
        now = time.monotonic()
        since = self._behind.setdefault(ws, now)
        _, high = transport.get_write_buffer_limits()
        settings = self.settings
        if (
            transport.get_write_buffer_size() + size <= high + settings.broadcast_backlog
            and now - since <= settings.send_timeout
        ):
            return True
        self._behind.pop(ws, None)
        self._slow.add(ws)
        self.slow_closes += 1
        log.warning(
            "a WebSocket fell behind on broadcasts (over %s past its write buffer's "
            "high-water mark, or over it for %gs): closing it with 1008",
            counted(settings.broadcast_backlog, "byte"),
            settings.send_timeout,
        )
        self._spawn(close_websocket(ws, *TOO_SLOW, timeout=settings.close_timeout))
        return False

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- closing ------------------------------------------------------------------

    async def close_all(
        self,
        code: int = WSCloseCode.GOING_AWAY,
        reason: str = "",
        timeout: float | None = None,  # noqa: ASYNC109 (a per-socket deadline, not ours)
    ) -> int:
        """Close every open socket concurrently, each within ``timeout`` seconds.

        ``timeout`` defaults to ``settings.close_timeout``; past it a socket's
        connection is dropped. One socket failing to close does not stop the others.

        Returns:
            how many sockets this call closed.

        Raises:
            ValueError: ``code`` may not be sent.
        """
        frame = CloseFrame.checked(code, reason)  # refused before any socket is touched
        code, reason = frame.code, frame.reason
        deadline = self.settings.close_timeout if timeout is None else timeout
        targets = [ws for ws in self if not ws.closed]
        if not targets:
            return 0
        results = await asyncio.gather(
            *(close_websocket(ws, code, reason, timeout=deadline) for ws in targets),
            return_exceptions=True,
        )
        closed = 0
        for result in results:
            if isinstance(result, BaseException):
                log.error("closing a WebSocket failed", exc_info=result)
            elif result:
                closed += 1
        return closed

    async def shutdown(self) -> int:
        """Refuse new sockets, then close every open one with 1001 (1012 when restarting).

        The closes run concurrently within ``settings.close_timeout``. Meant for the
        app's shutdown; ``setup()`` wires it there.

        Returns:
            how many sockets were closed.
        """
        self._shutting_down = True
        frame = self.shutdown_frame
        log.debug("closing %s with %d", counted(len(self), "WebSocket"), frame.code)
        return await self.close_all(frame.code, frame.reason, self.settings.close_timeout)


def _check_data(data: object) -> None:
    if not isinstance(data, str | bytes | bytearray | memoryview):
        raise TypeError(f"a broadcast is str or bytes, got {type(data).__name__}")
