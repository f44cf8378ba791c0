"""The built documentation in a real Chromium (Debian's): the front page and the uploads guide.

Like the demo's browser tests these never skip: a browser that cannot start is a failure
(``make test`` installs Chromium through ``.ci/sysdeps``). Screenshots go to the test's
temporary directory; ``AH_DOCS_SCREENSHOTS=<dir>`` keeps them there too.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser

from tests.support.apps import Serve
from tests.support.docs_build import build_docs

pytestmark = pytest.mark.browser


@pytest.fixture
async def docs_url(serve: Serve) -> str:
    """The built documentation, served on 127.0.0.1 as a static site."""
    app = web.Application()
    app.router.add_static("/", build_docs(), show_index=False)
    return str(await serve(app))


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize(
    ("page", "headings"),
    [
        pytest.param(
            "index.html",
            ["aiohttp-helpers", "Using it", "Reference"],
            id="front-page",
        ),
        pytest.param(
            "uploads.html",
            ["Uploads", "Errors", "Reading forms and parts"],
            id="uploads-guide",
        ),
    ],
)
async def test_page_renders_with_its_headings(
    browser: Browser, docs_url: str, tmp_path: Path, page: str, headings: list[str]
) -> None:
    tab = await browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    response = await tab.goto(f"{docs_url}/{page}")
    assert response is not None
    assert response.status == 200
    shown = await tab.locator("h1, h2, p.caption, .caption-text").all_inner_texts()
    # Captions are shown in capitals (CSS): compare without case.
    shown = [text.replace("¶", "").strip().casefold() for text in shown]
    for heading in headings:
        assert heading.casefold() in shown, shown
    # furo's stylesheet is applied: the sidebar is laid out beside the content.
    assert await tab.locator(".sidebar-drawer").is_visible()
    shot = tmp_path / page.replace(".html", ".png")
    await tab.screenshot(path=str(shot), full_page=False)
    data = shot.read_bytes()
    assert _png_size(data) == (1200, 900)
    assert len(data) > 20_000, "a screenshot this small is an empty page"
    assert errors == []
    _keep(shot)


def _keep(shot: Path) -> None:
    """Copy a screenshot to ``AH_DOCS_SCREENSHOTS`` when it is set."""
    keep = os.environ.get("AH_DOCS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
