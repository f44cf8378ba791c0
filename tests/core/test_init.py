"""The package's public surface: ``__all__`` is sorted and complete."""

from __future__ import annotations

import types

import aiohttp_helpers as ah


def test_all_is_sorted() -> None:
    assert list(ah.__all__) == sorted(ah.__all__)


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(ah).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(ah.__all__) - {"__version__"} == public


def test_every_name_in_all_resolves() -> None:
    for name in ah.__all__:
        assert getattr(ah, name) is not None, name


def test_version_is_a_string() -> None:
    assert isinstance(ah.__version__, str)
    assert ah.__version__.count(".") >= 2
