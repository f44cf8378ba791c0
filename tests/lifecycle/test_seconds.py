"""Every number of seconds the lifecycle takes is checked the one way: NaN is refused too."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from aiohttp import web

import aiohttp_helpers as ah

NAN = math.nan


async def _hook(app: web.Application) -> None:
    return None


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(
            lambda: ah.setup(web.Application(), drain_delay=NAN),
            ValueError,
            "drain_delay must not be negative",
            id="drain_delay-nan",
        ),
        pytest.param(
            lambda: ah.setup(web.Application(), drain_timeout=NAN),
            ValueError,
            "drain_timeout must not be negative",
            id="drain_timeout-nan",
        ),
        pytest.param(
            lambda: ah.setup(web.Application(), drain_timeout="30"),  # type: ignore[arg-type]
            TypeError,
            "^drain_timeout must be a number of seconds$",
            id="drain_timeout-str",
        ),
        pytest.param(
            lambda: ah.setup(web.Application()).lifecycle.on_startup(timeout=NAN)(_hook),
            ValueError,
            "timeout must be positive, got nan",
            id="hook-timeout-nan",
        ),
        pytest.param(
            lambda: ah.setup(web.Application()).lifecycle.on_startup(timeout=0)(_hook),
            ValueError,
            "timeout must be positive, got 0",
            id="hook-timeout-zero",
        ),
        pytest.param(
            lambda: ah.setup(web.Application()).lifecycle.on_startup(timeout=True)(_hook),
            TypeError,
            "timeout must be a number of seconds, got True",
            id="hook-timeout-bool",
        ),
    ],
)
def test_seconds_are_checked(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("method", ["drain", "finish_requests"])
async def test_drain_and_finish_refuse_nan(method: str) -> None:
    lifecycle = ah.setup(web.Application()).lifecycle
    with pytest.raises(ValueError, match="must not be negative, got nan"):
        await getattr(lifecycle, method)(NAN)
