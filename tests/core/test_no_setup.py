"""Without ``setup()``: bad input still gets its 4xx problem document from aiohttp itself."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.net import until
from tests.support.uploads import listing

LIMITS = dict(max_body_size=4000, max_file_size=1000, max_fields=2, spool_max_size=100)


def bare_app(tmp_path: Path) -> web.Application:
    """An app that never called ``setup()``: no middleware, no signals."""
    limits = ah.UploadLimits(tmp_dir=tmp_path, **LIMITS)  # type: ignore[arg-type]

    async def form(request: web.Request) -> web.Response:
        got = await ah.read_form(request, limits)
        try:
            return web.json_response({"fields": len(got.fields), "files": len(got.files)})
        finally:
            await got.aclose()

    async def parts(request: web.Request) -> web.Response:
        count = 0
        async for part in ah.iter_parts(request, limits):
            await part.read()
            count += 1
        return web.json_response({"parts": count})

    @ah.upload_limits(max_body_size=50)
    async def route(request: web.Request) -> web.Response:
        async for part in ah.iter_parts(request):
            await part.release()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/form", form)
    app.router.add_post("/parts", parts)
    app.router.add_post("/route", route)
    return app


def _body(*parts: FormPart, boundary: str = "b") -> tuple[bytes, dict[str, str]]:
    body = multipart_body(*parts, boundary=boundary)
    return body.data, dict(body.headers)


CASES: dict[str, tuple[str, Any, int, str]] = {
    "not-multipart": (
        "/parts",
        (b"{}", {"Content-Type": "application/json"}),
        415,
        "not-multipart",
    ),
    "no-boundary": (
        "/parts",
        (b"x", {"Content-Type": "multipart/form-data"}),
        400,
        "malformed-multipart",
    ),
    "missing-final-boundary": (
        "/parts",
        (
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nv',
            {"Content-Type": "multipart/form-data; boundary=b"},
        ),
        400,
        "malformed-multipart",
    ),
    "file-too-large": (
        "/form",
        _body(FormPart(name="f", data=b"x" * 2000, filename="a.bin")),
        413,
        "file-too-large",
    ),
    "too-many-fields": (
        "/form",
        _body(*(FormPart(name=f"n{i}", data="v") for i in range(3))),
        413,
        "too-many-fields",
    ),
    "body-too-large": (
        "/form",
        _body(FormPart(name="f", data=b"x" * 5000, filename="a.bin")),
        413,
        "body-too-large",
    ),
    "route-limits": ("/route", _body(FormPart(name="f", data=b"x" * 100)), 413, "body-too-large"),
    "unknown-encoding": (
        "/parts",
        _body(
            FormPart(
                raw_headers=b'Content-Disposition: form-data; name="f"; filename="a"\r\n'
                b"Content-Transfer-Encoding: x-unknown",
                data=b"x",
            )
        ),
        415,
        "unsupported-encoding",
    ),
}


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in CASES])
async def test_bad_input_is_4xx_without_setup(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    key: str,
) -> None:
    path, (data, headers), status, problem = CASES[key]
    client = await aiohttp_client(bare_app(tmp_path))
    with caplog.at_level(logging.DEBUG):
        resp = await client.post(path, data=data, headers=headers)
        assert resp.status == status, await resp.text()
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.headers["Cache-Control"] == "no-store"
        doc = json.loads(await resp.read())
    assert doc["type"] == f"urn:aiohttp-helpers:problem:{problem}"
    assert doc["status"] == status
    assert doc["instance"] == path
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # Spooled files are gone once the request is over.
    await until(lambda: not listing(tmp_path), 1.0, what="the spool emptied")
    assert listing(tmp_path) == []


async def test_text_when_the_client_prefers_it(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await aiohttp_client(bare_app(tmp_path))
    resp = await client.post(
        "/parts", data=b"{}", headers={"Content-Type": "application/json", "Accept": "text/plain"}
    )
    assert resp.status == 415
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await resp.text() == (
        "415 Multipart body required: expected a multipart/* body, got Content-Type "
        "'application/json'\n"
    )


async def test_good_input_still_works_and_the_connection_is_reused(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await aiohttp_client(bare_app(tmp_path))
    bad = await client.post("/parts", data=b"{}", headers={"Content-Type": "application/json"})
    assert bad.status == 415
    data, headers = _body(FormPart(name="a", data="v"), FormPart(name="f", data=b"x" * 500))
    resp = await client.post("/form", data=data, headers=headers)
    assert resp.status == 200
    assert await resp.json() == {"fields": 2, "files": 0}


async def test_errors_are_http_exceptions_with_their_status() -> None:
    error = ah.FileTooLarge("f", 10)
    assert isinstance(error, web.HTTPException)
    assert isinstance(error, ah.HelpersError)
    assert (error.status, error.status_code) == (413, 413)
    assert str(error) == "file in field 'f' is larger than 10 bytes"
    not_multipart = ah.NotMultipart("text/plain; charset=utf-8")
    # The attribute keeps its meaning: what the client sent.
    assert not_multipart.content_type == "text/plain; charset=utf-8"
    assert (not_multipart.status, not_multipart.status_code) == (415, 415)
    with pytest.raises(ah.PayloadTooLarge, match="larger than 10 bytes"):
        raise error


async def test_an_http_exception_middleware_of_the_users_sees_the_status(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """A common error-page middleware (catching HTTPException) gets the right status."""
    seen: list[int] = []

    @web.middleware
    async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            seen.append(exc.status)
            raise

    app = bare_app(tmp_path)
    app.middlewares.append(error_pages)
    client = await aiohttp_client(app)
    resp = await client.post("/parts", data=b"{}", headers={"Content-Type": "application/json"})
    assert resp.status == 415
    assert (await resp.json(content_type=None))["status"] == 415
    assert seen == [415]
