"""Counted nouns in messages."""

from __future__ import annotations

import pytest

from aiohttp_helpers._words import counted


@pytest.mark.parametrize(
    ("count", "noun", "plural", "expected"),
    [
        pytest.param(0, "file", None, "0 files", id="zero"),
        pytest.param(1, "file", None, "1 file", id="one"),
        pytest.param(2, "hook", None, "2 hooks", id="two"),
        pytest.param(1, "body", "bodies", "1 body", id="one-irregular"),
        pytest.param(3, "body", "bodies", "3 bodies", id="irregular"),
    ],
)
def test_counted(count: int, noun: str, plural: str | None, expected: str) -> None:
    assert counted(count, noun, plural) == expected
