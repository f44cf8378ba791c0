"""``async with`` through ``aclose()``: left normally, on an error, and when cancelled."""

from __future__ import annotations

import asyncio

import pytest

from aiohttp_helpers._closing import AsyncClosing


class Closer(AsyncClosing):
    def __init__(self) -> None:
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_async_with_gives_itself_and_closes_once() -> None:
    closer = Closer()
    async with closer as entered:
        assert entered is closer
        assert closer.closed == 0
    assert closer.closed == 1


async def test_an_error_inside_still_closes_and_propagates() -> None:
    closer = Closer()
    with pytest.raises(LookupError, match="inside"):
        async with closer:
            raise LookupError("inside")
    assert closer.closed == 1


async def test_cancellation_inside_still_closes() -> None:
    closer = Closer()
    entered = asyncio.Event()

    async def body() -> None:
        async with closer:
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closer.closed == 1


async def test_the_base_has_no_aclose_of_its_own() -> None:
    with pytest.raises(NotImplementedError):
        await AsyncClosing().aclose()
