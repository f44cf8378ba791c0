"""The lifecycle package: one concept per module, the same names as the old module."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import aiohttp_helpers as ah
import aiohttp_helpers.lifecycle as lifecycle_package
from aiohttp_helpers.lifecycle import Lifecycle

PACKAGE = Path(lifecycle_package.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[path.stem for path in MODULES])
def test_each_module_is_small_and_says_what_it_is(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= 350
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    assert docstring
    assert docstring.splitlines()[0].endswith(".")
    assert any(
        isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets)
        for node in tree.body
    )


def test_the_old_names_are_still_there() -> None:
    for name in [
        "AppState",
        "HookError",
        "HookOrderError",
        "HookTimeout",
        "Lifecycle",
        "TeardownError",
    ]:
        assert getattr(lifecycle_package, name) is getattr(ah, name)
    assert sorted(lifecycle_package.__all__) == lifecycle_package.__all__


def test_the_lifecycle_never_imports_the_features_it_stops() -> None:
    for path in MODULES:
        imported = {
            node.module or ""
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom)
        }
        parts = {part for module in imported for part in module.split(".")}
        assert not {"websocket", "streams", "plugin"} & parts
        assert "HELPERS_KEY" not in path.read_text()


@pytest.mark.parametrize("name", ["on_startup", "on_shutdown", "on_cleanup", "context"])
def test_each_decorator_reads_as_a_documented_method(name: str) -> None:
    method = getattr(Lifecycle, name)
    assert inspect.isfunction(method)
    assert method.__name__ == name
    assert method.__qualname__ == f"Lifecycle.{name}"
    assert method.__doc__
    assert method.__doc__.startswith("Register ")
    assert list(inspect.signature(method).parameters) == [
        "self",
        "func",
        "name",
        "after",
        "timeout",
    ]
