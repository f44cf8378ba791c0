"""``ReconnectPolicy`` checks its numbers with the package's shared validator."""

from __future__ import annotations

import pytest

import aiohttp_helpers as ah


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        pytest.param("initial_delay", float("nan"), "initial_delay must be positive", id="nan"),
        pytest.param("stable_after", -1.0, "stable_after must be non-negative", id="negative"),
        pytest.param("max_attempts", True, "max_attempts must be an int or None$", id="bool"),
    ],
)
def test_policy_numbers_are_checked_by_the_shared_validator(
    option: str, value: object, match: str
) -> None:
    exc = TypeError if isinstance(value, bool) else ValueError
    with pytest.raises(exc, match=match):
        ah.ReconnectPolicy(**{option: value})  # type: ignore[arg-type]
