"""The built API reference documents every public name, and the build has no warning."""

from __future__ import annotations

import re

import pytest

import aiohttp_helpers
from tests.support.docs_build import build_docs

PUBLIC_MODULES = {
    "aiohttp_helpers.testing",
    "aiohttp_helpers.websocket.testing",
    "aiohttp_helpers.keys",
    "aiohttp_helpers.gunicorn",
    "aiohttp_helpers.prometheus",
    "aiohttp_helpers.opentelemetry",
}


@pytest.fixture(scope="module")
def api_ids() -> set[str]:
    html = (build_docs() / "api.html").read_text(encoding="utf-8")
    return set(re.findall(r'id="([\w.-]+)"', html))


@pytest.mark.parametrize("name", aiohttp_helpers.__all__, ids=aiohttp_helpers.__all__)
def test_every_public_name_is_in_the_reference(name: str, api_ids: set[str]) -> None:
    assert f"aiohttp_helpers.{name}" in api_ids


@pytest.mark.parametrize("module", sorted(PUBLIC_MODULES), ids=sorted(PUBLIC_MODULES))
def test_public_modules_are_in_the_reference(module: str, api_ids: set[str]) -> None:
    imported = __import__(module, fromlist=["__all__"])
    assert f"module-{module}" in api_ids
    missing = [name for name in imported.__all__ if f"{module}.{name}" not in api_ids]
    assert missing == []


@pytest.mark.parametrize("module", ["aiohttp_helpers.websocket", "aiohttp_helpers.serving"])
def test_submodule_names_are_in_the_reference(module: str, api_ids: set[str]) -> None:
    """Each name is documented in the package (re-exported) or under its submodule."""
    imported = __import__(module, fromlist=["__all__"])
    missing = [
        name
        for name in imported.__all__
        if not {f"aiohttp_helpers.{name}", f"{module}.{name}", f"{module}.testing.{name}"} & api_ids
    ]
    assert missing == []


def test_behaviour_tables_are_rendered() -> None:
    html = (build_docs() / "behaviour.html").read_text(encoding="utf-8")
    for expected in ("file-too-large", "TRY_AGAIN_LATER", "max_body_size", "broadcast_backlog"):
        assert expected in html
