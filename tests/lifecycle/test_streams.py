"""``helpers.streams``: long-lived HTTP responses, refused while draining, ended on stop.

Real round trips: an aiohttp server on 127.0.0.1, aiohttp's client reading the stream, and
aiohttp-sse's ``EventSourceResponse`` as the server-sent events users reach for.
"""

from __future__ import annotations

import asyncio
import functools

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp_sse import EventSourceResponse, sse_response
from pytest_aiohttp import AiohttpClient, AiohttpServer

import aiohttp_helpers as ah
from tests.support.apps import routed_app

#: A client of ``sse_app()``, its helpers and the names of the handlers that ended.
Sse = tuple["TestClient[web.Request, web.Application]", ah.Helpers, list[str]]


def sse_app() -> tuple[web.Application, ah.Helpers, list[str]]:
    ended: list[str] = []

    @ah.stream_handler(functools.partial(EventSourceResponse, ping_interval=60))
    async def ticks(request: web.Request, sse: EventSourceResponse) -> None:
        n = 0
        while sse.is_connected():
            await sse.send(f"tick {n}")
            n += 1
            await asyncio.sleep(0.02)
        ended.append("ticks")

    @ah.stream_handler
    async def feed(request: web.Request, stream: web.StreamResponse) -> None:
        await stream.write(b"first\n")
        try:
            await asyncio.Event().wait()  # a handler that never looks at closing
        finally:
            ended.append("feed")

    async def manual(request: web.Request) -> web.StreamResponse:
        # aiohttp-sse's own context manager, registered by hand.
        async with sse_response(request) as sse:
            helpers.streams.add(request, sse)
            await sse.send("hello")
            await sse.wait()
        ended.append("manual")
        return sse

    async def watched(request: web.Request) -> web.StreamResponse:
        stream = await ah.prepare_stream(request, web.StreamResponse())
        await stream.write(b"watching\n")
        await helpers.streams.wait_closing()
        await stream.write(b"bye\n")
        ended.append("watched")
        return stream

    routes = {"/ticks": ticks, "/feed": feed, "/manual": manual, "/watched": watched}
    app, helpers = routed_app(routes)
    return app, helpers, ended


@pytest.fixture
async def sse(aiohttp_client: AiohttpClient) -> Sse:
    app, helpers, ended = sse_app()
    return await aiohttp_client(app), helpers, ended


async def test_streams_are_tracked_and_end_cleanly_when_closed(sse: Sse) -> None:
    client, helpers, ended = sse
    ticks = await client.get("/ticks")
    feed = await client.get("/feed")
    manual = await client.get("/manual")
    watched = await client.get("/watched")
    assert await ticks.content.readline() == b"data: tick 0\r\n"
    assert await feed.content.readline() == b"first\n"
    assert await manual.content.readline() == b"data: hello\r\n"
    assert await watched.content.readline() == b"watching\n"
    assert len(helpers.streams) == 4
    assert all(isinstance(s, web.StreamResponse) for s in helpers.streams)
    assert [helpers.streams.closing] == [False]

    assert await helpers.streams.close_all(timeout=0.5) == 4
    assert helpers.streams.closing
    # Every stream ended with its final chunk: the client reads to the end, no error.
    assert (await ticks.read()).endswith(b"\r\n")  # whole events only
    assert await feed.read() == b""
    assert await manual.read() == b"\r\n"  # the end of the "hello" event
    assert await watched.read() == b"bye\n"
    assert sorted(ended) == ["feed", "manual", "ticks", "watched"]
    assert len(helpers.streams) == 0


async def test_a_handler_that_ignores_the_end_is_cancelled_after_the_grace(sse: Sse) -> None:
    client, helpers, ended = sse
    resp = await client.get("/feed")
    assert await resp.content.readline() == b"first\n"
    loop = asyncio.get_running_loop()
    began = loop.time()
    await helpers.streams.close_all(timeout=0.2)
    assert loop.time() - began >= 0.2
    assert ended == ["feed"]
    assert await resp.read() == b""


async def test_new_streams_are_refused_with_503_while_draining(sse: Sse) -> None:
    client, helpers, _ = sse
    await helpers.lifecycle.drain(0)
    assert not helpers.streams.accepting
    for path in ("/ticks", "/watched"):
        async with client.get(path) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            assert resp.headers["Connection"] == "close"
            problem = await resp.json(content_type="application/problem+json")
            assert problem["type"] == "urn:aiohttp-helpers:problem:service-unavailable"
    assert len(helpers.streams) == 0


async def test_stopping_the_server_ends_open_streams(aiohttp_server: AiohttpServer) -> None:
    app, helpers, ended = sse_app()
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        resp = await session.get(server.make_url("/ticks"))
        assert await resp.content.readline() == b"data: tick 0\r\n"
        await server.close()  # runner cleanup: on_shutdown ends the stream
        body = await resp.read()
        assert body.endswith(b"\r\n")
    assert ended == ["ticks"]
    assert helpers.state is ah.AppState.STOPPED


async def test_stream_registry_without_setup_is_a_clear_error(
    aiohttp_client: AiohttpClient,
) -> None:
    app = web.Application()

    @ah.stream_handler
    async def feed(request: web.Request, stream: web.StreamResponse) -> None:
        raise AssertionError("never runs")

    app.router.add_get("/", feed)
    client = await aiohttp_client(app)
    async with client.get("/") as resp:
        assert resp.status == 500


def test_stream_handler_takes_an_async_function() -> None:
    def not_async(request: web.Request, stream: web.StreamResponse) -> None:
        pass

    with pytest.raises(TypeError, match="takes an async function"):
        ah.stream_handler(web.StreamResponse)(not_async)  # type: ignore[arg-type]


async def test_a_prepared_stream_whose_handler_ignores_the_end_is_cut(
    aiohttp_client: AiohttpClient,
    app: web.Application,
    helpers: ah.Helpers,
) -> None:
    async def stuck(request: web.Request) -> web.StreamResponse:
        stream = await ah.prepare_stream(request, web.StreamResponse())
        await stream.write(b"first\n")
        await asyncio.Event().wait()
        raise AssertionError("never reached")

    app.router.add_get("/", stuck)
    client = await aiohttp_client(app)
    resp = await client.get("/")
    assert await resp.content.readline() == b"first\n"
    await helpers.streams.close_all(timeout=0.1)
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()  # no final chunk: the connection was closed


async def test_the_lifecycle_example_clock_ends_when_streams_close(
    aiohttp_client: AiohttpClient,
) -> None:
    from examples import lifecycle as example

    app = example.create_app(drain_delay=0)
    client = await aiohttp_client(app)
    resp = await client.get("/clock")
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert (await resp.content.readline()).startswith(b"data: ")
    await ah.get_helpers(app).streams.close_all()
    assert await resp.read() == b"\n"
