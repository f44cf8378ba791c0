"""The numeric option checks: their messages, and NaN refused where a bound applies."""

from __future__ import annotations

import math
from typing import Any

import pytest

import aiohttp_helpers as ah
from aiohttp_helpers._validate import non_negative, number, positive


@pytest.mark.parametrize(
    ("check", "exc", "message"),
    [
        pytest.param(
            lambda: positive("x", True), TypeError, "^x must be a number, got bool$", id="bool"
        ),
        pytest.param(lambda: positive("x", None), ValueError, "^x must be set$", id="unset"),
        pytest.param(
            lambda: positive("x", 0, got=False), ValueError, "^x must be positive$", id="no-got"
        ),
        pytest.param(
            lambda: non_negative("x", 1.5, integer=True, show="none"),
            TypeError,
            "^x must be an int$",
            id="int",
        ),
        pytest.param(
            lambda: number("x", "1", noun="a number of seconds", show="value"),
            TypeError,
            "^x must be a number of seconds, got '1'$",
            id="value-shown",
        ),
        pytest.param(
            lambda: non_negative("x", -1, rule="must be 0 or more"),
            ValueError,
            "^x must be 0 or more, got -1$",
            id="rule",
        ),
    ],
)
def test_messages(check: object, exc: type[Exception], message: str) -> None:
    assert callable(check)
    with pytest.raises(exc, match=message):
        check()


def test_accepted_values_pass() -> None:
    positive("x", None, optional=True)
    positive("x", 0.5)
    non_negative("x", 0)
    assert number("x", 3, integer=True) == 3


@pytest.mark.parametrize(
    "option", ["idle_timeout", "max_body_size", "spool_max_size"], ids=lambda o: o
)
def test_nan_is_refused_at_start_up(option: str) -> None:
    changes: dict[str, Any] = {option: math.nan}
    with pytest.raises((ValueError, TypeError), match=option):
        ah.UploadLimits(**changes)
    with pytest.raises(ValueError, match="send_timeout must be positive, got nan"):
        ah.WebSocketSettings(send_timeout=math.nan)
