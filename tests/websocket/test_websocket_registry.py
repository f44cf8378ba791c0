"""``helpers.websockets``: weak references, groups, concurrent broadcast, close_all, shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import AsyncExitStack

import aiohttp
import pytest
from aiohttp import web

import aiohttp_helpers as ah
from aiohttp_helpers.broadcast import Deliver, InMemoryBroadcast
from aiohttp_helpers.websocket import CloseFrame, WebSocketRegistry
from tests.support.apps import Serve
from tests.support.net import until
from tests.support.peers import (
    RawPeer,
    delivering_after,
    one_registered,
    open_peer,
    recording_app,
    ws_url,
)


@ah.websocket_handler
async def chat(request: web.Request, ws: ah.ServerWebSocket) -> None:
    """Joins the group named in the query string; "say:x" broadcasts x to that group."""
    registry = ah.get_helpers(request.app).websockets
    group = request.query.get("group")
    if group:
        registry.join(ws, group)
    await ws.send_str("joined")
    async for data in ws.messages():
        command, _, text = str(data).partition(":")
        if command == "say":
            await registry.broadcast(text, group=group)
        elif command == "leave" and group:
            registry.leave(ws, group)
            registry.leave(ws, group)
            await ws.send_str("left")


@pytest.fixture
async def chat_app(serve: Serve) -> tuple[ah.Helpers, str, list[CloseFrame]]:
    app, closes = recording_app(chat, send_timeout=0.3, close_timeout=1.0)
    helpers = ah.get_helpers(app)
    return helpers, ws_url(await serve(app)), closes


async def _connect(
    stack: AsyncExitStack, session: aiohttp.ClientSession, url: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await stack.enter_async_context(session.ws_connect(url, max_msg_size=0))
    assert await ws.receive_str(timeout=5) == "joined"
    return ws


async def test_len_iteration_and_membership(
    chat_app: tuple[ah.Helpers, str, list[CloseFrame]],
) -> None:
    helpers, url, closes = chat_app
    registry = helpers.websockets
    assert len(registry) == 0
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        for _ in range(3):
            await _connect(stack, session, url)
        assert len(registry) == 3
        sockets = list(registry)
        assert len(sockets) == 3
        assert all(isinstance(ws, ah.ServerWebSocket) and ws in registry for ws in sockets)
        assert registry.count("127.0.0.1") == 3
        assert object() not in registry
        assert [] not in registry  # unhashable, not weak-referenceable: just not there
    await until(lambda: len(closes) == 3)
    assert len(registry) == 0
    assert registry.count("127.0.0.1") == 0


async def test_broadcast_to_everyone_and_to_a_group(
    chat_app: tuple[ah.Helpers, str, list[CloseFrame]],
) -> None:
    helpers, url, _ = chat_app
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        red1 = await _connect(stack, session, url + "?group=red")
        red2 = await _connect(stack, session, url + "?group=red")
        blue = await _connect(stack, session, url + "?group=blue")
        loner = await _connect(stack, session, url)
        assert helpers.websockets.groups() == {"red", "blue"}
        assert len(helpers.websockets.members("red")) == 2

        await red1.send_str("say:hello reds")
        assert await red1.receive_str(timeout=5) == "hello reds"
        assert await red2.receive_str(timeout=5) == "hello reds"

        await helpers.websockets.broadcast("to all")
        await helpers.websockets.broadcast(b"\x00binary")
        for ws in (red1, red2, blue, loner):
            assert await ws.receive_str(timeout=5) == "to all"
            assert await ws.receive_bytes(timeout=5) == b"\x00binary"

        await red2.send_str("leave:")
        assert await red2.receive_str(timeout=5) == "left"
        await red1.send_str("say:just me")
        assert await red1.receive_str(timeout=5) == "just me"
        # red2 left the group: the next thing it sees is a broadcast to all.
        await helpers.websockets.broadcast("last")
        assert await red2.receive_str(timeout=5) == "last"
        assert await blue.receive_str(timeout=5) == "last"
        [red1_server] = helpers.websockets.members("red")
        assert helpers.websockets.groups(red1_server) == {"red"}
        assert await helpers.websockets.deliver("nobody-here", "x") == 0
    await until(lambda: len(helpers.websockets) == 0)
    assert helpers.websockets.groups() == frozenset()


async def test_one_slow_client_never_stalls_the_others(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    app, closes = recording_app(chat, send_timeout=0.3, close_timeout=0.5)
    helpers = ah.get_helpers(app)
    base = await serve(app)
    url = ws_url(base)
    slow = await RawPeer.connect(base)  # upgrades, then never reads a byte
    try:
        async with AsyncExitStack() as stack:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            fast = [await _connect(stack, session, url) for _ in range(3)]
            await until(lambda: len(helpers.websockets) == 4)
            blob = b"\x01" * 4 * 2**20
            loop = asyncio.get_running_loop()
            for round_ in range(4):
                started = loop.time()
                await helpers.websockets.broadcast(blob)
                # Never waits for the slow client, whatever it does.
                assert loop.time() - started < 2, round_
                for ws in fast:
                    assert await ws.receive_bytes(timeout=5) == blob
            # The slow client was closed with 1008 and dropped when it did not take it.
            await until(lambda: len(helpers.websockets) == 3)
            assert await slow.at_eof()
            assert CloseFrame(1008, "too slow to receive messages") in closes
            assert await helpers.websockets.deliver(None, "still fine") == 3
            for ws in fast:
                assert await ws.receive_str(timeout=5) == "still fine"
    finally:
        slow.close()
    assert any("fell behind on broadcasts" in r.getMessage() for r in caplog.records)
    assert helpers.websockets.slow_closes == 1


async def test_close_all_closes_concurrently_and_survives_failures(
    chat_app: tuple[ah.Helpers, str, list[CloseFrame]], caplog: pytest.LogCaptureFixture
) -> None:
    helpers, url, closes = chat_app
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        clients = [await _connect(stack, session, url) for _ in range(5)]
        await until(lambda: len(helpers.websockets) == 5)
        # One socket whose close fails: its transport is gone from under aiohttp.
        broken = next(iter(helpers.websockets))
        writer, broken._writer = broken._writer, None
        with caplog.at_level(logging.ERROR, logger="aiohttp_helpers.websocket"):
            closed = await helpers.websockets.close_all(4100, "maintenance", timeout=2)
        assert closed == 4
        assert any("closing a WebSocket failed" in r.getMessage() for r in caplog.records)
        with pytest.raises(ValueError, match="may not be sent"):
            await helpers.websockets.close_all(1005)
        broken._writer = writer
        assert await helpers.websockets.close_all(4200, "the last one") == 1
        frames = [await ah.websocket.receive_close(ws) for ws in clients]
        assert sorted(frames) == [CloseFrame(4100, "maintenance")] * 4 + [
            CloseFrame(4200, "the last one")
        ]
    await until(lambda: len(closes) == 5)
    assert await helpers.websockets.close_all() == 0


async def test_shutdown_refuses_new_sockets(
    chat_app: tuple[ah.Helpers, str, list[CloseFrame]],
) -> None:
    helpers, url, _ = chat_app
    async with open_peer("websockets", url) as peer:
        assert await peer.receive() == "joined"
        assert await helpers.websockets.shutdown() == 1
        assert await peer.wait_closed() == CloseFrame(1001, "server shutting down")
    async with open_peer("aiohttp", url) as peer:
        assert await peer.wait_closed() == CloseFrame(1001, "server shutting down")


def test_registry_holds_weak_references() -> None:
    registry = WebSocketRegistry()
    ws = web.WebSocketResponse()
    registry.add(ws, client="10.0.0.1")
    registry.add(ws, client="10.0.0.1")
    registry.join(ws, "room")
    assert len(registry) == 1
    assert registry.count("10.0.0.1") == 1
    del ws
    gc.collect()
    assert len(registry) == 0
    assert list(registry) == []
    assert registry.count("10.0.0.1") == 0
    assert registry.members("room") == []
    assert registry.groups() == frozenset()


def test_join_checks_its_arguments() -> None:
    registry = WebSocketRegistry()
    ws = web.WebSocketResponse()
    with pytest.raises(ValueError, match="not registered"):
        registry.join(ws, "room")
    registry.add(ws)
    with pytest.raises(TypeError, match="a group name is a str"):
        registry.join(ws, 3)  # type: ignore[arg-type]
    registry.leave(ws, "never-joined")
    registry.discard(ws)
    registry.discard(ws)
    assert len(registry) == 0


async def test_broadcast_checks_its_arguments() -> None:
    registry = WebSocketRegistry()
    with pytest.raises(TypeError, match="a broadcast is str or bytes"):
        await registry.broadcast({"not": "serialised"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a group name is a str"):
        await registry.broadcast("x", group=1)  # type: ignore[arg-type]
    # Nobody connected: a broadcast starts the in-memory backend and reaches no one.
    await registry.broadcast("x")
    await registry.stop()


def test_caps_and_refusals_without_a_server() -> None:
    settings = ah.WebSocketSettings(max_connections=3, max_connections_per_client=2)
    registry = WebSocketRegistry(settings)
    sockets = [web.WebSocketResponse() for _ in range(4)]
    assert registry.admit(sockets[0], client="a") is None
    assert registry.admit(sockets[1], client="a") is None
    assert registry.admit(sockets[2], client="a") == CloseFrame(
        1013, "too many connections from your address: try again later"
    )
    assert registry.admit(sockets[2], client="b") is None
    assert registry.admit(sockets[3], client="c") == CloseFrame(
        1013, "too many connections: try again later"
    )
    looser = settings.replace(max_connections=None, max_connections_per_client=None)
    assert registry.admit(sockets[3], client="a", settings=looser) is None
    assert registry.refusal() is None


class RecordingBackend:
    """A backend that publishes through a queue, the way a pub/sub server would."""

    def __init__(self) -> None:
        self.published: list[tuple[str | None, str | bytes]] = []
        self.deliver: Deliver | None = None
        self.stopped = False

    async def start(self, deliver: Deliver) -> None:
        self.deliver = deliver

    async def publish(self, group: str | None, data: str | bytes) -> None:
        self.published.append((group, data))
        assert self.deliver is not None
        await self.deliver(group, data)

    async def stop(self) -> None:
        self.stopped = True


async def test_broadcast_goes_through_the_configured_backend(serve: Serve) -> None:
    backend = RecordingBackend()
    app, _ = recording_app(chat, broadcast=backend)
    helpers = ah.get_helpers(app)
    url = ws_url(await serve(app))
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "?group=g") as ws:
        assert await ws.receive_str(timeout=5) == "joined"
        await ws.send_str("say:via backend")
        assert await ws.receive_str(timeout=5) == "via backend"
    assert backend.published == [("g", "via backend")]
    await helpers.websockets.stop()
    assert backend.stopped
    await helpers.websockets.stop()


async def test_in_memory_backend_refuses_before_start() -> None:
    backend = InMemoryBroadcast()
    with pytest.raises(RuntimeError, match="not started"):
        await backend.publish(None, "x")
    delivered: list[tuple[str | None, str | bytes]] = []

    async def deliver(group: str | None, data: str | bytes) -> int:
        delivered.append((group, data))
        return 0

    await backend.start(deliver)
    await backend.publish("g", b"x")
    assert backend.started
    await backend.stop()
    assert delivered == [("g", b"x")]
    with pytest.raises(RuntimeError, match="not started"):
        await backend.publish(None, "after stop")


def test_group_bookkeeping() -> None:
    registry = WebSocketRegistry()
    one, two = web.WebSocketResponse(), web.WebSocketResponse()
    registry.add(one)
    registry.add(two)
    registry.join(one, "room")
    registry.join(two, "room")
    registry.join(two, "hall")
    registry.discard(one)
    assert registry.members("room") == [two]
    registry.leave(two, "hall")
    assert registry.groups() == {"room"}
    assert registry.groups(two) == {"room"}
    registry.leave(two, "room")
    assert registry.groups() == frozenset()
    # A socket discarded before it is collected is not counted twice.
    registry.discard(two)
    del two
    gc.collect()
    assert len(registry) == 0


async def test_deliver_skips_sockets_that_cannot_take_data() -> None:
    registry = WebSocketRegistry()
    unprepared = web.WebSocketResponse()
    registry.add(unprepared)
    assert await registry.deliver(None, "x") == 0
    await registry.start()
    await registry.start()
    await registry.broadcast("y")
    await registry.stop()


async def test_deliver_to_a_socket_whose_connection_is_closing(serve: Serve) -> None:
    delivered: list[int] = []

    app, _ = recording_app(delivering_after(lambda t: t.close(), "lost", delivered))
    async with open_peer("aiohttp", ws_url(await serve(app))) as peer:
        assert await peer.wait_closed() is None
    await until(lambda: bool(delivered))
    assert delivered == [0]


async def test_slow_closes_are_stopped_with_the_registry(serve: Serve) -> None:
    app, _ = recording_app(chat, send_timeout=0.2, close_timeout=30)
    helpers = ah.get_helpers(app)
    async with one_registered(serve, app):
        blob = b"\x01" * 2**25
        await helpers.websockets.broadcast(blob)
        await helpers.websockets.broadcast(blob)
        assert helpers.websockets.slow_closes == 1
        # The slow socket's close hangs on a full buffer: stop() ends it.
        await asyncio.wait_for(helpers.websockets.stop(), 5)


async def test_a_broadcast_never_waits_for_a_client_that_does_not_read(serve: Serve) -> None:
    app, closes = recording_app(chat, send_timeout=30, close_timeout=0.5)
    helpers = ah.get_helpers(app)
    async with one_registered(serve, app):
        # 32 MiB: far over what loopback buffers hold, and send_timeout is long.
        sending = asyncio.create_task(helpers.websockets.broadcast(b"\x01" * 2**25))
        await asyncio.sleep(0.2)
        assert sending.done()
        await sending
        # The next one finds it far behind: it is closed, not waited for.
        await helpers.websockets.broadcast("next")
        assert helpers.websockets.slow_closes == 1
        await until(lambda: CloseFrame(1008, "too slow to receive messages") in closes)
