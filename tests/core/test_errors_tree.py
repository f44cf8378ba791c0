"""The error tree drawn in ``errors.py``'s docstring names every exception class, truly."""

from __future__ import annotations

import re

from aiohttp import web

import aiohttp_helpers as ah
from aiohttp_helpers import errors
from aiohttp_helpers.resumable import errors as resumable_errors

_ROW = re.compile(r"[├└]── (\w+)(?:\s+(\d{3}))?")


def _drawn() -> dict[str, int | None]:
    doc = errors.__doc__ or ""
    return {m[1]: int(m[2]) if m[2] else None for m in _ROW.finditer(doc)}


def _public_errors() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for module in (errors, resumable_errors, ah):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj not in found:
                found.append(obj)
    return found


def test_every_public_exception_is_drawn_with_its_status() -> None:
    drawn = _drawn()
    classes = _public_errors()
    assert {c.__name__ for c in classes} >= {"HelpersError", "HookError", "WSClose"}
    for cls in classes:
        assert cls.__name__ in drawn, f"{cls.__name__} is missing from the tree"
        if issubclass(cls, errors.HelpersError):
            assert drawn[cls.__name__] == cls.status, cls.__name__


def test_the_drawn_parents_are_the_real_ones() -> None:
    doc = errors.__doc__ or ""
    parents: list[tuple[int, str]] = [(-1, "Exception")]  # (depth, name) of the rows above
    by_name: dict[str, type[BaseException]] = {c.__name__: c for c in _public_errors()}
    # The built-in and aiohttp classes the tree hangs from, as the regex reads them.
    by_name |= {
        "Exception": Exception,
        "RuntimeError": RuntimeError,
        "ValueError": ValueError,
        "ExceptionGroup": ExceptionGroup,
        "aiohttp": web.HTTPException,
    }
    checked = 0
    for line in doc.splitlines():
        match = _ROW.search(line)
        if match is None:
            continue
        depth = match.start() // 4
        name = match[1]
        while parents[-1][0] >= depth:
            parents.pop()
        assert by_name[parents[-1][1]] in by_name[name].__mro__[1:], name
        checked += 1
        parents.append((depth, name))
    assert checked == len(_ROW.findall(doc))
