"""Requests in flight: counted, waited for by ``finish_requests()``, ended at the bound.

Real round trips on 127.0.0.1 with aiohttp's client; the multi-process versions (run_app and
gunicorn with SIGTERM/SIGHUP) are in test_lifecycle_drain.py and test_gunicorn_reload.py.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from tests.support.apps import slow_app
from tests.support.net import until


def make_app(**options: float) -> tuple[web.Application, ah.Helpers, asyncio.Event]:
    async def refuse(request: web.Request) -> web.Response:
        raise ah.ServiceUnavailable("come back in a while", retry_after=7)

    return slow_app({"/refuse": refuse}, **options)


async def test_requests_in_flight_are_counted_but_websockets_are_not(
    aiohttp_client: AiohttpClient,
) -> None:
    app, helpers, release = make_app()
    client = await aiohttp_client(app)
    in_flight = helpers.lifecycle.in_flight
    ws = await client.ws_connect("/ws")
    slow = asyncio.create_task(client.get("/slow"))
    await until(lambda: len(in_flight) == 1)
    assert [entry.request.path for entry in in_flight] == ["/slow"]
    assert await helpers.lifecycle.finish_requests(timeout=0.05) == 1  # ended at the bound
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await slow
    assert len(in_flight) == 0
    await ws.close()
    release.set()


async def test_finish_requests_waits_for_a_request_that_completes(
    aiohttp_client: AiohttpClient,
) -> None:
    app, helpers, release = make_app()
    client = await aiohttp_client(app)
    slow = asyncio.create_task(client.get("/slow"))
    await until(lambda: len(helpers.lifecycle.in_flight) == 1)
    asyncio.get_running_loop().call_later(0.1, release.set)
    assert await helpers.lifecycle.finish_requests(timeout=10) == 0
    resp = await slow
    assert (resp.status, await resp.text()) == (200, "done")


async def test_a_second_signal_cuts_the_wait_short(aiohttp_client: AiohttpClient) -> None:
    app, helpers, _ = make_app(drain_timeout=30)
    client = await aiohttp_client(app)
    slow = asyncio.create_task(client.get("/slow"))
    await until(lambda: len(helpers.lifecycle.in_flight) == 1)
    waiting = asyncio.create_task(helpers.lifecycle.finish_requests())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    helpers.lifecycle._hurry.set()  # what a second SIGTERM does
    assert await asyncio.wait_for(waiting, 5) == 1
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await slow


async def test_answers_close_the_connection_once_the_app_is_not_ready(
    aiohttp_client: AiohttpClient,
) -> None:
    app, helpers, _ = make_app()
    client = await aiohttp_client(app)
    async with client.get("/") as resp:
        assert "close" not in resp.headers.get("Connection", "").lower()
    await helpers.lifecycle.drain(0)
    async with client.get("/") as resp:
        assert resp.status == 200
        assert resp.headers["Connection"] == "close"
    async with client.get("/missing") as resp:  # an HTTPException too
        assert resp.status == 404
        assert resp.headers["Connection"] == "close"


async def test_service_unavailable_is_503_with_retry_after(aiohttp_client: AiohttpClient) -> None:
    app, _, _ = make_app()
    client = await aiohttp_client(app)
    async with client.get("/refuse", headers={"Accept": "text/plain"}) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "7"
        assert resp.headers["Connection"] == "close"
        assert await resp.text() == "503 Service Unavailable: come back in a while\n"


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        pytest.param(-1, ValueError, "must not be negative", id="negative"),
        pytest.param("30", TypeError, "number of seconds", id="string"),
        pytest.param(True, TypeError, "number of seconds", id="bool"),
    ],
)
def test_drain_timeout_is_checked(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ah.setup(web.Application(), drain_timeout=value)  # type: ignore[arg-type]


def test_drain_timeout_reaches_the_lifecycle() -> None:
    helpers = ah.setup(web.Application(), drain_timeout=4)
    assert helpers.drain_timeout == helpers.lifecycle.drain_timeout == 4.0


async def test_finish_requests_checks_its_timeout() -> None:
    helpers = ah.setup(web.Application())
    with pytest.raises(ValueError, match="must not be negative"):
        await helpers.lifecycle.finish_requests(timeout=-1)
