"""``ws_connect``: the client follows each close code's rule (with injected, instant delays)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.websocket import Retry
from tests.support.apps import Serve
from tests.support.net import free_port

ABORT = -1  # scripted "close": drop the connection without a close frame


def scripted_app(script: list[int], *, hold: bool = False) -> tuple[web.Application, list[int]]:
    """Each connection is closed with the next code of ``script`` (then 1000 forever)."""
    served: list[int] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        code = script.pop(0) if script else 1000
        served.append(code)
        await ws.send_str(f"connection {len(served)}")
        if hold:
            # Stay open until the client closes.
            async for _ in ws:
                pass
            return ws
        if code == ABORT:
            assert request.transport is not None
            request.transport.abort()
        else:
            await ah.close_websocket(ws, code, f"scripted {code}")
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    return app, served


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(sleeps: list[float], clock: Clock | None = None, **kwargs: Any) -> ah.ReconnectPolicy:
    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        await asyncio.sleep(0)

    return ah.ReconnectPolicy(random=lambda: 0.5, sleep=sleep, clock=clock or Clock(), **kwargs)


async def run(
    url: str | URL | list[str | URL], pol: ah.ReconnectPolicy, **kwargs: Any
) -> tuple[ah.WSReconnector, list[str]]:
    """Iterate ``ws_connect`` to its end, reading every socket to its close."""
    greetings: list[str] = []
    async with aiohttp.ClientSession() as session:
        conn = ah.ws_connect(session, url, policy=pol, **kwargs)
        async with asyncio.timeout(10):
            async for ws in conn:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        greetings.append(msg.data)
    return conn, greetings


@pytest.mark.parametrize("code", [1000, 1002, 1003, 1007, 1008, 1009, 1010], ids=str)
async def test_row_stop_codes_end_the_iteration(serve: Serve, code: int) -> None:
    app, _ = scripted_app([code])
    sleeps: list[float] = []
    conn, greetings = await run(str(await serve(app)), policy(sleeps))
    assert greetings == ["connection 1"]
    assert (conn.close_code, conn.close_reason) == (code, f"scripted {code}")
    assert conn.connections == 1
    assert conn.stopped
    assert sleeps == []


@pytest.mark.parametrize("code", [1001, ABORT, 1011, 1014], ids=["1001", "1006", "1011", "1014"])
async def test_row_backoff_with_full_jitter(serve: Serve, code: int) -> None:
    app, _ = scripted_app([code, code, code, code, 1000])
    sleeps: list[float] = []
    conn, greetings = await run(
        str(await serve(app)), policy(sleeps, initial_delay=1.0, max_delay=5.0)
    )
    assert len(greetings) == 5
    # random() is 0.5: half of 1, 2, 4, then the cap of 5.
    assert sleeps == [0.5, 1.0, 2.0, 2.5]
    assert conn.close_code == 1000
    assert conn.failures == 4


async def test_row_1006_is_recorded_when_the_server_drops(serve: Serve) -> None:
    app, _ = scripted_app([ABORT])
    sleeps: list[float] = []
    conn, _ = await run(str(await serve(app)), policy(sleeps, max_attempts=1))
    assert conn.close_code == 1006
    assert conn.close_reason == ""
    assert sleeps == []


async def test_row_service_restart_waits_5_to_30_seconds(serve: Serve) -> None:
    app, _ = scripted_app([1012, 1012, 1000])
    sleeps: list[float] = []
    values = iter([0.0, 1.0])
    pol = policy(sleeps)
    pol = ah.ReconnectPolicy(random=lambda: next(values), sleep=pol.sleep, clock=pol.clock)
    conn, greetings = await run(str(await serve(app)), pol)
    assert sleeps == [5.0, 30.0]
    assert len(greetings) == 3
    # A restart is not a failure: no backoff builds up.
    assert conn.failures == 0


async def test_row_try_again_later_stops_with_one_address(serve: Serve) -> None:
    app, _ = scripted_app([1013])
    sleeps: list[float] = []
    conn, greetings = await run(str(await serve(app)), policy(sleeps))
    assert greetings == ["connection 1"]
    assert conn.close_code == 1013
    assert conn.stopped
    assert sleeps == []


async def test_row_try_again_later_moves_to_another_address(serve: Serve) -> None:
    busy, _ = scripted_app([1013, 1013])
    calm, calm_served = scripted_app([1001, 1000])
    busy_url, calm_url = await serve(busy), await serve(calm)
    sleeps: list[float] = []
    conn, greetings = await run([busy_url, calm_url], policy(sleeps))
    # busy said 1013 -> calm; calm said 1001 -> calm again (busy is overloaded) -> 1000.
    assert greetings == ["connection 1", "connection 1", "connection 2"]
    assert calm_served == [1001, 1000]
    assert conn.url == calm_url
    assert conn.close_code == 1000
    assert sleeps == [0.5, 0.5]


async def test_row_try_again_later_from_every_address_stops(serve: Serve) -> None:
    first, _ = scripted_app([1013])
    second, _ = scripted_app([1013])
    sleeps: list[float] = []
    conn, greetings = await run([await serve(first), await serve(second)], policy(sleeps))
    assert len(greetings) == 2
    assert conn.close_code == 1013
    assert conn.stopped


@pytest.mark.parametrize("code", [3000, 4000, 4999], ids=str)
async def test_row_application_codes_stop_by_default(serve: Serve, code: int) -> None:
    app, _ = scripted_app([code])
    conn, greetings = await run(str(await serve(app)), policy([]))
    assert len(greetings) == 1
    assert conn.close_code == code


async def test_row_application_codes_follow_the_policy(serve: Serve) -> None:
    app, _ = scripted_app([4001, 4002, 4003])
    sleeps: list[float] = []
    pol = policy(
        sleeps,
        application_codes={4001: Retry.BACKOFF, 4002: Retry.RESTART_DELAY},
        application_default=Retry.STOP,
    )
    conn, greetings = await run(str(await serve(app)), pol)
    assert len(greetings) == 3
    assert sleeps == [0.5, 17.5]
    assert conn.close_code == 4003


async def test_stable_connection_resets_the_backoff(serve: Serve) -> None:
    clock = Clock()
    script = [1011, 1011, 1011, 1011, 1000]
    app, _ = scripted_app(script)
    sleeps: list[float] = []
    pol = policy(sleeps, clock, stable_after=60.0)
    async with aiohttp.ClientSession() as session:
        conn = ah.ws_connect(session, await serve(app), policy=pol)
        count = 0
        async for ws in conn:
            count += 1
            if count == 3:
                clock.now += 61  # the third connection lasted over a minute
            async for _ in ws:
                pass
    assert sleeps == [0.5, 1.0, 0.5, 1.0]


async def test_connection_refused_backs_off_then_gives_up() -> None:
    port = free_port()
    sleeps: list[float] = []
    conn, greetings = await run(f"http://127.0.0.1:{port}/", policy(sleeps, max_attempts=4))
    assert greetings == []
    assert sleeps == [0.5, 1.0, 2.0]
    assert conn.close_code == 1006
    assert isinstance(conn.error, aiohttp.ClientConnectionError)
    assert conn.failures == 4


async def test_failed_connections_rotate_through_the_addresses(serve: Serve) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    app, _ = scripted_app([1000])
    sleeps: list[float] = []
    conn, greetings = await run([dead, await serve(app)], policy(sleeps))
    assert greetings == ["connection 1"]
    assert sleeps == [0.5]
    assert conn.error is None


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        pytest.param(404, False, id="404-stops"),
        pytest.param(403, False, id="403-stops"),
        pytest.param(503, True, id="503-retries"),
        pytest.param(429, True, id="429-retries"),
    ],
)
async def test_handshake_refused(serve: Serve, status: int, retried: bool) -> None:
    calls: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(status)
        if len(calls) == 1:
            return web.Response(status=status)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    sleeps: list[float] = []
    conn, _ = await run(str(await serve(app)), policy(sleeps))
    if retried:
        assert len(calls) == 2
        assert conn.close_code == 1000
        assert sleeps == [0.5]
    else:
        assert len(calls) == 1
        assert isinstance(conn.error, aiohttp.WSServerHandshakeError)
        assert conn.error.status == status
        assert conn.close_code is None


async def test_leaving_a_socket_open_ends_the_iteration(serve: Serve) -> None:
    app, _ = scripted_app([1001], hold=True)
    async with aiohttp.ClientSession() as session:
        conn = ah.ws_connect(session, await serve(app), policy=policy([]))
        async for ws in conn:
            assert await ws.receive_str() == "connection 1"
            # The loop body is done while the server still holds the socket open.
        assert conn.stopped
        assert ws.closed
        assert conn.close_code == 1000
        assert [ws async for ws in conn] == []


async def test_closing_from_the_client_stops(serve: Serve) -> None:
    app, _ = scripted_app([1001], hold=True)
    async with aiohttp.ClientSession() as session:
        conn = ah.ws_connect(session, await serve(app), policy=policy([]))
        async for ws in conn:
            await ws.close(code=4000, message=b"leaving")
    assert conn.close_code == 4000
    assert conn.connections == 1


async def test_aclose_and_context_manager(serve: Serve) -> None:
    app, _ = scripted_app([], hold=True)
    async with aiohttp.ClientSession() as session:
        async with ah.ws_connect(session, await serve(app), policy=policy([])) as conn:
            ws = await conn.__anext__()
            assert await ws.receive_str() == "connection 1"
        assert ws.closed
        assert conn.stopped
        with pytest.raises(StopAsyncIteration):
            await conn.__anext__()
        await conn.aclose()


async def test_the_close_reason_is_kept_although_async_for_hides_it(serve: Serve) -> None:
    app, _ = scripted_app([4321])
    conn, _ = await run(str(await serve(app)), policy([]))
    assert (conn.close_code, conn.close_reason) == (4321, "scripted 4321")


async def test_against_the_handler_wrapper_shutdown(serve: Serve) -> None:
    """The wrapper's 1012 on a restart makes the client wait, then come back."""
    server = web.Application()
    helpers = ah.setup(server)
    hits: list[int] = []

    @ah.websocket_handler
    async def feed(request: web.Request, ws: ah.ServerWebSocket) -> None:
        hits.append(1)
        await ws.send_str("tick")
        if len(hits) == 2:
            raise ah.WSClose(1000, "that is all")
        async for _ in ws.messages():
            pass

    server.router.add_get("/", feed)
    url = await serve(server)
    sleeps: list[float] = []
    async with aiohttp.ClientSession() as session:
        conn = ah.ws_connect(session, url, policy=policy(sleeps))
        async for ws in conn:
            assert await ws.receive_str() == "tick"
            if len(hits) == 1:
                helpers.lifecycle.restarting = True
                await helpers.websockets.close_all(*helpers.websockets.shutdown_frame)
                helpers.lifecycle.restarting = False
            async for _ in ws:
                pass
    assert sleeps == [17.5]
    assert (conn.close_code, conn.close_reason) == (1000, "that is all")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        pytest.param(
            {"initial_delay": 0}, ValueError, "initial_delay must be positive", id="initial"
        ),
        pytest.param({"max_delay": -1}, ValueError, "max_delay must be positive", id="max"),
        pytest.param({"initial_delay": 2, "max_delay": 1}, ValueError, "not be below", id="order"),
        pytest.param({"multiplier": 0.5}, ValueError, "at least 1", id="multiplier"),
        pytest.param({"stable_after": "1"}, TypeError, "must be a number", id="stable-type"),
        pytest.param({"restart_delay": (30, 5)}, ValueError, "low <= high", id="restart-order"),
        pytest.param({"restart_delay": (-1, 5)}, ValueError, "non-negative", id="restart-neg"),
        pytest.param(
            {"max_attempts": 0}, ValueError, "max_attempts must be positive", id="attempts"
        ),
        pytest.param(
            {"max_attempts": 1.5}, TypeError, "max_attempts must be an int", id="attempts-type"
        ),
        pytest.param(
            {"application_codes": {1000: Retry.STOP}}, ValueError, "3000-4999", id="app-range"
        ),
        pytest.param(
            {"application_codes": {4000: Retry.APPLICATION}},
            ValueError,
            "other than",
            id="app-advice",
        ),
        pytest.param({"application_default": "stop"}, ValueError, "other than", id="app-default"),
    ],
)
def test_policy_validates(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        ah.ReconnectPolicy(**kwargs)


def test_policy_arithmetic() -> None:
    pol = ah.ReconnectPolicy(random=lambda: 1.0, initial_delay=0.5, max_delay=8, multiplier=3)
    assert [pol.backoff(n) for n in range(5)] == [0.5, 1.5, 4.5, 8, 8]
    assert pol.backoff(10_000) == 8
    assert pol.restart_wait() == 30.0
    assert pol.advice(9999) is Retry.STOP
    assert pol.application_codes == {}


def test_ws_connect_needs_a_url() -> None:
    with pytest.raises(ValueError, match="at least one URL"):
        ah.ws_connect(None, [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("misbehaviour", "code"),
    [
        pytest.param("reserved-opcode", 1002, id="bad-frame-1002"),
        pytest.param("empty-close", 1005, id="empty-close-1005"),
        pytest.param("close-5000", 5000, id="invalid-code-5000"),
    ],
)
async def test_a_misbehaving_server_is_not_retried(
    serve: Serve, misbehaviour: str, code: int
) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("connection 1")
        if misbehaviour == "reserved-opcode":
            await ws.send_frame(b"", 0x3)  # type: ignore[arg-type]
        elif misbehaviour == "empty-close":
            await ws.send_frame(b"", aiohttp.WSMsgType.CLOSE)
        else:
            await ws.close(code=code)  # plain aiohttp sends any code it is given
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    sleeps: list[float] = []
    conn, greetings = await run(str(await serve(app)), policy(sleeps))
    assert greetings == ["connection 1"]
    assert conn.close_code == code
    assert sleeps == []


async def test_client_heartbeat_missed_backs_off(serve: Serve) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await ws.send_str("connection")
        await asyncio.sleep(0.5)  # never answers the client's pings
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    sleeps: list[float] = []
    conn, greetings = await run(
        str(await serve(app)), policy(sleeps, max_attempts=2), heartbeat=0.1
    )
    assert greetings == ["connection", "connection"]
    assert conn.close_code == 1006
    assert sleeps == [0.5]
