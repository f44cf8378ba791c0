"""``RedisBroadcast``: two apps (two "processes") on one real redis-server, in this process.

Each app has its own backend, so its own subscription and identity, exactly as two worker
processes would; ``test_redis_processes.py`` runs them as real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpServer
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.broadcast_redis import decode_message, encode_message
from tests.support.apps import Serve
from tests.support.net import free_port, until
from tests.support.redis_app import backend_of, create_app
from tests.support.redis_clients import Clients, silent
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

Start = Callable[[web.Application], Awaitable[URL]]

LOGGER = "aiohttp_helpers.broadcast.redis"


@pytest.fixture
def channel() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def clients(session: aiohttp.ClientSession) -> AsyncIterator[Clients]:
    async with AsyncExitStack() as stack:
        yield Clients(stack, session)


async def _count_clients(client: aioredis.Redis, expected: int) -> bool:
    return len(await client.client_list()) == expected


async def numsub(client: aioredis.Redis, channel: str) -> int:
    [(_, count)] = await client.pubsub_numsub(channel)
    return int(count)


#: Apps "a" and "b", their URLs and their backends.
Two = tuple[
    tuple[web.Application, web.Application],
    tuple[URL, URL],
    tuple[ah.RedisBroadcast, ah.RedisBroadcast],
]


async def serve_two(start: Start, redis_url: str, channel: str, **options: Any) -> Two:
    """Apps "a" and "b" (two "processes"), each with its own backend on ``channel``, served."""
    app_a = create_app(redis_url, channel=channel, name="a", **options)
    app_b = create_app(redis_url, channel=channel, name="b", **options)
    urls = await start(app_a), await start(app_b)
    return (app_a, app_b), urls, (backend_of(app_a), backend_of(app_b))


@pytest.fixture
async def two_restartable(
    own_redis: RedisServer, serve: Serve, channel: str, caplog: pytest.LogCaptureFixture
) -> Two:
    """INFO logged, then ``serve_two`` on the test's own Redis server, reconnecting quickly."""
    caplog.set_level(logging.INFO, LOGGER)
    return await serve_two(serve, own_redis.url, channel, reconnect_delay=(0.05, 0.2))


# -- across processes ------------------------------------------------------------------------


@pytest.fixture(params=["run_app", "pytest_aiohttp"])
def start(request: pytest.FixtureRequest, serve: Serve, aiohttp_server: AiohttpServer) -> Start:
    """Serve an app like ``web.run_app`` does, or like pytest-aiohttp (handler cancellation)."""
    if request.param == "run_app":
        return serve

    async def start(app: web.Application) -> URL:
        server = await aiohttp_server(app, host="127.0.0.1")
        return server.make_url("/")

    return start


async def test_broadcast_and_groups_reach_every_process_once(
    start: Start, redis_server: RedisServer, channel: str, clients: Clients
) -> None:
    (app_a, app_b), (url_a, url_b), (a, b) = await serve_two(start, redis_server.url, channel)
    assert (a.connected, b.connected) == (True, True)
    a_red = await clients.connect(url_a, "red")
    a_all = await clients.connect(url_a)
    b_red = await clients.connect(url_b, "red")
    b_blue = await clients.connect(url_b, "blue")
    everyone = (a_red, a_all, b_red, b_blue)

    # To everyone, from A's registry: A's sockets directly, B's through Redis.
    await ah.get_helpers(app_a).websockets.broadcast("hello all")
    for ws in everyone:
        assert await ws.receive_str(timeout=5) == "hello all"
    # Binary, from a handler on B.
    await b_blue.send_str("bytes:\u00e9t\u00e9")
    for ws in everyone:
        assert await ws.receive_bytes(timeout=5) == "\u00e9t\u00e9".encode()
    # To a group, from a handler on A: members on both sides, nobody else.
    await a_red.send_str("say:reds only")
    assert await a_red.receive_str(timeout=5) == "reds only"
    assert await b_red.receive_str(timeout=5) == "reds only"
    await ah.get_helpers(app_b).websockets.broadcast("blues only", group="blue")
    assert await b_blue.receive_str(timeout=5) == "blues only"
    # The next message of every socket is this one: no second copy, no stray group message.
    await ah.get_helpers(app_b).websockets.broadcast("end")
    for ws in everyone:
        assert await ws.receive_str(timeout=5) == "end"
    assert all([await silent(ws) for ws in everyone])

    assert (a.published, a.received, a.dropped) == (2, 3, 0)
    assert (b.published, b.received, b.dropped) == (3, 2, 0)


async def test_each_process_decodes_a_message_once_whatever_its_sockets(
    serve: Serve,
    redis_server: RedisServer,
    channel: str,
    clients: Clients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiohttp_helpers import broadcast_redis

    decoded: list[bytes] = []
    real_decode = broadcast_redis.decode_message

    def counting_decode(raw: bytes) -> tuple[bytes, str | None, str | bytes]:
        decoded.append(raw)
        return real_decode(raw)

    monkeypatch.setattr(broadcast_redis, "decode_message", counting_decode)
    (app_a, app_b), (url_a, url_b), _ = await serve_two(serve, redis_server.url, channel)
    on_b = [await clients.connect(url_b) for _ in range(6)]
    registry_b = ah.get_helpers(app_b).websockets
    for n in range(3):
        await ah.get_helpers(app_a).websockets.broadcast(f"message {n}")
    for ws in on_b:
        for n in range(3):
            assert await ws.receive_str(timeout=5) == f"message {n}"
    # A hands its own messages back to itself through Redis too: 3 decodes there, 3 on B.
    await until(lambda: len(decoded) == 6)
    await asyncio.sleep(0.2)
    assert len(decoded) == 6
    assert backend_of(app_b).received == 3
    assert (registry_b.broadcasts, registry_b.deliveries) == (3, 18)
    assert url_a != url_b


async def test_shutdown_unsubscribes_and_closes_its_connections(
    redis_server: RedisServer, redis_client: aioredis.Redis, channel: str
) -> None:
    clients_before = len(await redis_client.client_list())
    app = create_app(redis_server.url, channel=channel)
    backend = backend_of(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert (backend.started, backend.connected) == (True, True)
        assert await numsub(redis_client, channel) == 1
        assert "connected" in repr(backend)
        await ah.get_helpers(app).websockets.broadcast("nobody listens")
        assert len(await redis_client.client_list()) > clients_before
    finally:
        await runner.cleanup()
    assert await numsub(redis_client, channel) == 0
    await until(lambda: _count_clients(redis_client, clients_before), 10.0)
    assert (backend.started, backend.connected) == (False, False)
    assert "stopped" in repr(backend)
    with pytest.raises(RuntimeError, match="not started"):
        await backend.publish(None, "too late")
    await backend.stop()  # a second stop does nothing


async def test_after_a_redis_restart_broadcasts_reach_everyone_again(
    own_redis: RedisServer,
    two_restartable: Two,
    clients: Clients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (app_a, app_b), (url_a, url_b), (a, b) = two_restartable
    a_red, b_red = await clients.connect(url_a, "red"), await clients.connect(url_b, "red")
    b_all = await clients.connect(url_b)
    # A publish before the restart leaves a pooled connection that the restart closes.
    await ah.get_helpers(app_a).websockets.broadcast("before")
    for ws in (a_red, b_red, b_all):
        assert await ws.receive_str(timeout=5) == "before"
    await asyncio.sleep(0.3)  # up longer than the longest backoff: the next loss starts afresh

    own_redis.restart()
    await until(lambda: a.outages == 1 and b.outages == 1)
    await until(lambda: a.connected and b.connected)

    # The first publish after the restart goes through: the stale connection is replaced.
    await a_red.send_str("say:after the restart")
    assert await a_red.receive_str(timeout=5) == "after the restart"
    assert await b_red.receive_str(timeout=5) == "after the restart"
    await ah.get_helpers(app_b).websockets.broadcast("all again")
    for ws in (a_red, b_red, b_all):
        assert await ws.receive_str(timeout=5) == "all again"
    assert await silent(b_all)
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert sum("lost the subscription to Redis" in m for m in messages) == 2
    assert sum("subscribed to Redis" in m and "again after" in m for m in messages) == 2


async def test_broadcasts_during_an_outage_stay_local_and_are_dropped_for_others(
    own_redis: RedisServer,
    two_restartable: Two,
    clients: Clients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (app_a, _), (url_a, url_b), (a, b) = two_restartable
    on_a, on_b = await clients.connect(url_a), await clients.connect(url_b)

    own_redis.stop()
    await until(lambda: not a.connected and not b.connected)
    registry_a = ah.get_helpers(app_a).websockets
    await registry_a.broadcast("during 1")
    await registry_a.broadcast("during 2")
    assert await on_a.receive_str(timeout=5) == "during 1"
    assert await on_a.receive_str(timeout=5) == "during 2"
    assert (a.dropped, a.published) == (2, 0)
    warnings = [r for r in caplog.records if "could not be sent through Redis" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per message
    assert warnings[0].levelno == logging.WARNING

    own_redis.start()
    await until(lambda: a.connected and b.connected)
    await registry_a.broadcast("after")
    # Dropped, not replayed: B's client's next message is the one sent after the outage.
    assert await on_b.receive_str(timeout=5) == "after"
    assert await on_a.receive_str(timeout=5) == "after"
    assert (a.dropped, a.published, b.received) == (2, 1, 1)
    assert any("2 broadcasts were not sent" in r.getMessage() for r in caplog.records)


async def test_a_frozen_redis_is_noticed_by_ping_and_publishes_are_bounded(
    own_redis: RedisServer,
    serve: Serve,
    channel: str,
    clients: Clients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app_a = create_app(
        own_redis.url, channel=channel, ping_interval=0.2, timeout=0.5, reconnect_delay=(0.05, 0.2)
    )
    app_b = create_app(own_redis.url, channel=channel, ping_interval=0.2, timeout=0.5)
    url_a, url_b = await serve(app_a), await serve(app_b)
    a, b = backend_of(app_a), backend_of(app_b)
    on_a, on_b = await clients.connect(url_a), await clients.connect(url_b)
    await asyncio.sleep(0.5)  # idle: pings are answered, nothing is lost
    assert (a.connected, a.outages) == (True, 0)

    own_redis.pause()
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await ah.get_helpers(app_a).websockets.broadcast("frozen")
        assert loop.time() - began < 2  # bounded by timeout, whatever Redis does
        assert await on_a.receive_str(timeout=5) == "frozen"
        await until(lambda: not a.connected, within=3)
        assert a.dropped == 1
        assert any("did not answer a PING" in r.getMessage() for r in caplog.records)
    finally:
        own_redis.resume()
    await until(lambda: a.connected and b.connected)
    await ah.get_helpers(app_a).websockets.broadcast("thawed")
    assert await on_b.receive_str(timeout=5) == "thawed"


async def test_starts_without_redis_and_subscribes_once_it_is_up(
    serve: Serve, channel: str, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    server = RedisServer()  # not started: nothing listens on its port yet
    try:
        app_a = create_app(server.url, channel=channel, timeout=1.0, reconnect_delay=(0.05, 0.1))
        loop = asyncio.get_running_loop()
        began = loop.time()
        url_a = await serve(app_a)
        assert loop.time() - began < 2
        a = backend_of(app_a)
        assert (a.connected, a.outages) == (False, 1)
        assert any("cannot subscribe to Redis" in r.getMessage() for r in caplog.records)
        on_a = await clients.connect(url_a)
        await ah.get_helpers(app_a).websockets.broadcast("local only")
        assert await on_a.receive_str(timeout=5) == "local only"
        assert a.dropped == 1
        await asyncio.sleep(0.3)  # a few attempts, each logged at debug only
        assert any("still unreachable" in r.getMessage() for r in caplog.records)

        server.start()
        app_b = create_app(server.url, channel=channel)
        url_b = await serve(app_b)
        await until(lambda: a.connected)
        on_b = await clients.connect(url_b)
        await ah.get_helpers(app_b).websockets.broadcast("from b")
        assert await on_a.receive_str(timeout=5) == "from b"
        assert await on_b.receive_str(timeout=5) == "from b"
    finally:
        server.close()


async def test_stop_while_disconnected_or_frozen_is_prompt(
    own_redis: RedisServer, channel: str
) -> None:
    async def delivered(group: str | None, data: str | bytes) -> int:
        return 0

    loop = asyncio.get_running_loop()
    # Frozen: the UNSUBSCRIBE goes out and no answer comes; stop() waits `timeout` at most.
    frozen = ah.RedisBroadcast(own_redis.url, channel=channel, timeout=0.3)
    await frozen.start(delivered)
    own_redis.pause()
    began = loop.time()
    await frozen.stop()
    assert loop.time() - began < 1.5
    own_redis.resume()
    # Down: the reader is waiting to retry; stop() cancels the wait.
    down = ah.RedisBroadcast(own_redis.url, channel=channel, reconnect_delay=(5.0, 5.0))
    await down.start(delivered)
    own_redis.stop()
    await until(lambda: not down.connected)
    began = loop.time()
    await down.stop()
    assert loop.time() - began < 1
    assert not down.started


async def test_a_cancelled_start_leaves_nothing_running(
    own_redis: RedisServer, channel: str
) -> None:
    async def delivered(group: str | None, data: str | bytes) -> int:
        return 0

    backend = ah.RedisBroadcast(own_redis.url, channel=channel, timeout=5.0)
    own_redis.pause()  # the connection is accepted, the handshake never answered
    try:
        starting = asyncio.create_task(backend.start(delivered))
        await asyncio.sleep(0.2)
        tasks_before = asyncio.all_tasks()
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
    finally:
        own_redis.resume()
    assert not backend.started
    assert "stopped" in repr(backend)
    assert len(tasks_before - asyncio.all_tasks()) == 2  # start() and its reader, both gone


async def test_foreign_messages_on_the_channel_are_counted_and_ignored(
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[tuple[str | None, str | bytes]] = []

    async def deliver(group: str | None, data: str | bytes) -> int:
        got.append((group, data))
        return 1

    backend = ah.RedisBroadcast(redis_server.url, channel=channel)
    await backend.start(deliver)
    try:
        bad_group = b"AHB1\x00" + b"\x00" * 16 + b"\x00\x00\x00\x05hello"
        for junk in (b"hello", bad_group, b"AHB2" + b"\x00" * 30):
            await redis_client.publish(channel, junk)
        valid = encode_message(b"\x01" * 16, "g", "still works")
        await redis_client.publish(channel, valid)
        await until(lambda: len(got) == 1)
    finally:
        await backend.stop()
    assert got == [("g", "still works")]
    assert (backend.malformed, backend.received) == (3, 1)
    warned = [r for r in caplog.records if "not a broadcast of this package" in r.getMessage()]
    assert len(warned) == 1


async def test_a_failing_delivery_is_logged_and_the_next_goes_on(
    redis_server: RedisServer, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str | bytes] = []

    async def flaky(group: str | None, data: str | bytes) -> int:
        calls.append(data)
        if data == "boom":
            raise RuntimeError("a broken deliver callback")
        return 1

    async def nobody(group: str | None, data: str | bytes) -> int:
        return 0

    receiver = ah.RedisBroadcast(redis_server.url, channel=channel)
    sender = ah.RedisBroadcast(redis_server.url, channel=channel)
    await receiver.start(flaky)
    await sender.start(nobody)
    try:
        await sender.publish(None, "boom")
        await sender.publish(None, b"next")
        await until(lambda: len(calls) == 2)
    finally:
        await sender.stop()
        await receiver.stop()
    assert calls == ["boom", b"next"]
    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert "delivering a broadcast from Redis failed" in record.getMessage()
    assert record.exc_info is not None


async def test_one_instance_serves_one_application(redis_server: RedisServer) -> None:
    async def deliver(group: str | None, data: str | bytes) -> int:
        return 0

    backend = ah.RedisBroadcast(redis_server.url, channel=f"test:{uuid.uuid4().hex}")
    with pytest.raises(RuntimeError, match="not started"):
        await backend.publish(None, "x")
    await backend.start(deliver)
    try:
        with pytest.raises(RuntimeError, match="already serves an application"):
            await backend.start(deliver)
        with pytest.raises(UnicodeEncodeError):
            await backend.publish(None, "\ud800")  # nothing sent anywhere
        assert backend.published == 0
    finally:
        await backend.stop()


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"url": b"redis://x"}, TypeError, "url must be a str", id="url-bytes"),
        pytest.param({"url": "http://x:1/0"}, ValueError, "starts with redis://", id="scheme"),
        pytest.param({"url": "redis://x:port/0"}, ValueError, "not a valid Redis URL", id="port"),
        pytest.param({"channel": ""}, ValueError, "channel must be a non-empty", id="channel"),
        pytest.param({"timeout": 0}, ValueError, "timeout must be positive", id="timeout-0"),
        pytest.param({"timeout": True}, TypeError, "timeout must be a number", id="timeout-bool"),
        pytest.param({"ping_interval": -1}, ValueError, "ping_interval must", id="ping"),
        pytest.param(
            {"reconnect_delay": (2.0, 1.0)}, ValueError, "first <= longest", id="delay-order"
        ),
        pytest.param(
            {"reconnect_delay": (0, 1.0)}, ValueError, "reconnect_delay must", id="delay-zero"
        ),
    ],
)
def test_bad_arguments_fail_at_once(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ah.RedisBroadcast(**kwargs)


def test_passwords_stay_out_of_repr_and_errors() -> None:
    backend = ah.RedisBroadcast("redis://user:s3cret@127.0.0.1:6390/2")
    assert "s3cret" not in repr(backend)
    assert "redis://user:***@127.0.0.1:6390/2" in repr(backend)
    assert "stopped" in repr(backend)
    with pytest.raises(ValueError, match=r"user:\*\*\*@\[::1\]") as info:
        ah.RedisBroadcast("http://user:s3cret@[::1]:6390/0")
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(ah.RedisBroadcast("redis://:s3cret@localhost/0"))


def test_without_the_redis_package_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis.exceptions", None)
    with pytest.raises(ImportError, match=r"pip install 'aiohttp-helpers\[redis\]'"):
        ah.RedisBroadcast("redis://127.0.0.1:6379/0")


def test_selected_through_websocket_settings() -> None:
    backend = ah.RedisBroadcast(f"redis://127.0.0.1:{free_port()}/0")
    settings = ah.WebSocketSettings(broadcast=backend)
    assert settings.broadcast is backend
    app = web.Application()
    assert ah.setup(app, websockets=settings).websocket_settings.broadcast is backend


# -- the wire format -------------------------------------------------------------------------


@given(
    origin=st.binary(min_size=16, max_size=16),
    group=st.none() | st.text(),
    data=st.text(alphabet=st.characters(exclude_categories=["Cs"])) | st.binary(),
)
def test_messages_round_trip(origin: bytes, group: str | None, data: str | bytes) -> None:
    assert decode_message(encode_message(origin, group, data)) == (origin, group, data)


@given(raw=st.binary(max_size=64))
def test_decoding_anything_else_raises_value_error_only(raw: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_message(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"AHB1", id="short"),
        pytest.param(b"AHB1\x04" + b"\x00" * 16 + b"\x00\x00\x00\x00", id="unknown-flag"),
        pytest.param(b"AHB1\x02" + b"\x00" * 16 + b"\x00\x00\x00\x09ab", id="group-past-end"),
        pytest.param(b"AHB1\x00" + b"\x00" * 16 + b"\x00\x00\x00\x01a", id="size-without-flag"),
        pytest.param(b"AHB1\x00" + b"\x00" * 16 + b"\x00\x00\x00\x00\xff", id="bad-utf8"),
    ],
)
def test_malformed_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r".+"):
        decode_message(raw)
