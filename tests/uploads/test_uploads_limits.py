"""Every upload limit just under, at and over, through real HTTP with aiohttp's client."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import brotli
import pytest
import zstandard
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, MultipartBody, multipart_body
from tests.support.apps import Serve
from tests.support.uploads import form_app, listing, parts_app, post_file, upload_app

HEADER = 'Content-Disposition: form-data; name="x"'


@dataclass(frozen=True)
class Case:
    """A limit, a body that uses ``n`` of it, and the error past it."""

    limits: dict[str, Any]
    build: Callable[[int], MultipartBody]
    at: int
    error: str
    field: str | None = None


def _fields(n: int) -> MultipartBody:
    return multipart_body(*[(f"f{i}", "v") for i in range(n)])


def _files(n: int) -> MultipartBody:
    return multipart_body(*[FormPart(name=f"f{i}", data=b"d", filename="a.txt") for i in range(n)])


def _header_lines(n: int) -> MultipartBody:
    extra = [(f"X-H{i}", "1") for i in range(n - 1)]
    return multipart_body(FormPart(name="x", data=b"v", headers=extra))


def _header_bytes(n: int) -> MultipartBody:
    # One header line of exactly n bytes.
    return multipart_body(FormPart(raw_headers=(HEADER + " " * (n - len(HEADER))).encode()))


def _nested(depth: int) -> MultipartBody:
    part = FormPart(data=b"leaf", filename="leaf.txt")
    for _ in range(depth - 1):
        part = FormPart(parts=[part])
    return multipart_body(FormPart(name="x", parts=part.parts) if depth > 1 else ("x", "leaf"))


def _name_bytes(n: int) -> MultipartBody:
    # The one-line header of a plain field, n bytes long through its name.
    return multipart_body(("n" * (n - len(HEADER) + 1), "v"))


def _lf_header_bytes(n: int) -> MultipartBody:
    return multipart_body(
        FormPart(raw_headers=(HEADER + " " * (n - len(HEADER))).encode()), newline=b"\n"
    )


CASES = {
    "file": Case(
        {"max_file_size": 100},
        lambda n: multipart_body(FormPart(name="doc", data=b"x" * n, filename="d.bin")),
        100,
        "file-too-large",
        "doc",
    ),
    "field": Case(
        {"max_field_size": 50},
        lambda n: multipart_body(("title", "é" * (n // 2) + "x" * (n % 2))),
        50,
        "field-too-large",
        "title",
    ),
    "files": Case({"max_files": 3}, _files, 3, "too-many-files", "f3"),
    "fields": Case({"max_fields": 4}, _fields, 4, "too-many-fields", "f4"),
    "parts": Case({"max_parts": 5}, _fields, 5, "too-many-parts"),
    "header-lines": Case({"max_part_headers": 4}, _header_lines, 4, "headers-too-large"),
    "header-bytes": Case({"max_header_size": 60}, _header_bytes, 60, "headers-too-large"),
    "name-bytes": Case({"max_header_size": 60}, _name_bytes, 60, "headers-too-large"),
    "lf-header-bytes": Case({"max_header_size": 60}, _lf_header_bytes, 60, "headers-too-large"),
    "preamble": Case(
        {"max_preamble_size": 20},
        lambda n: multipart_body(("x", "v"), preamble=b"p" * n),
        20,
        "preamble-too-large",
    ),
    "epilogue": Case(
        {"max_preamble_size": 20},
        lambda n: multipart_body(("x", "v"), epilogue=b"e" * n),
        20,
        "preamble-too-large",
    ),
    "depth": Case({"max_depth": 3}, _nested, 3, "nesting-too-deep", "x"),
    "decoded": Case(
        {"max_decoded_size": 1000, "max_body_size": 1000},
        lambda n: multipart_body(
            FormPart(name="z", data=b"\0" * (n - 300), filename="z.bin", content_encoding="gzip"),
            FormPart(name="y", data=b"y" * 300, filename="y.bin"),
        ),
        1000,
        "decoded-too-large",
        "y",
    ),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=k) for k, c in CASES.items()])
@pytest.mark.parametrize(
    "route", [pytest.param("/form", id="read_form"), pytest.param("/parts", id="iter_parts")]
)
async def test_limit(aiohttp_client: AiohttpClient, case: Case, route: str) -> None:
    limits = ah.UploadLimits(**case.limits)
    app = form_app(limits) if route == "/form" else parts_app(limits)
    client = await aiohttp_client(app)
    for n in (case.at - 1, case.at):
        body = case.build(n)
        resp = await client.post(route, data=body.data, headers=body.headers)
        assert resp.status == 200, (n, await resp.text())
    body = case.build(case.at + 1)
    resp = await client.post(route, data=body.data, headers=body.headers)
    assert resp.status == 413, await resp.text()
    doc = await resp.json(content_type=None)
    assert doc["type"] == f"urn:aiohttp-helpers:problem:{case.error}"
    assert doc.get("field") == case.field
    assert doc["limit"] == next(iter(case.limits.values()))
    assert resp.headers["Connection"] == "close"


def _body_of(n: int) -> MultipartBody:
    base = multipart_body(("x", ""), boundary="b")
    return multipart_body(("x", "v" * (n - len(base.data))), boundary="b")


@pytest.mark.parametrize(
    "chunked", [pytest.param(False, id="content-length"), pytest.param(True, id="chunked")]
)
async def test_body_size(aiohttp_client: AiohttpClient, chunked: bool) -> None:
    client = await aiohttp_client(form_app(ah.UploadLimits(max_body_size=300)))

    async def post(n: int) -> int:
        body = _body_of(n)
        assert len(body.data) == n
        data: Any = body.stream(64) if chunked else body.data
        resp = await client.post("/form", data=data, headers=body.headers)
        if resp.status == 413:
            doc = await resp.json(content_type=None)
            assert doc["type"].endswith("body-too-large")
            assert doc["limit"] == 300
        return resp.status

    assert await post(299) == 200
    assert await post(300) == 200
    assert await post(301) == 413


async def test_body_size_is_checked_while_streaming(serve: Serve) -> None:
    """A chunked body over the limit is answered before the client has sent all of it."""
    got: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        try:
            await ah.read_form(request)
        finally:
            got.append(request.content.total_bytes)
        raise AssertionError

    app = upload_app(handler, ah.UploadLimits(max_body_size=100_000))
    url = await serve(app)
    body = multipart_body(FormPart(name="f", data=b"x" * 10_000_000, filename="big"))
    sent = 0

    async def slow() -> AsyncIterator[bytes]:
        nonlocal sent
        for chunk in body.chunks(16384):
            sent += len(chunk)
            yield chunk
            await asyncio.sleep(0)

    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(url, data=slow(), headers=body.headers) as resp:
                assert resp.status == 413
        except aiohttp.ClientError:
            pass  # the server may close the connection before the client reads the answer
    assert got
    assert got[0] < 1_000_000
    assert sent < 10_000_000


async def test_content_length_over_limit_is_refused_before_reading(
    aiohttp_client: AiohttpClient,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        ah.iter_parts(request)
        raise AssertionError

    client = await aiohttp_client(upload_app(handler, ah.UploadLimits(max_body_size=10)))
    body = multipart_body(("x", "v"))
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 413
    assert (await resp.json(content_type=None))["type"].endswith("body-too-large")


@pytest.mark.parametrize(
    ("declared", "status"),
    [
        pytest.param("image/png", 200, id="exact"),
        pytest.param("image/webp", 200, id="wildcard"),
        pytest.param("text/html", 415, id="refused"),
    ],
)
async def test_allowed_types(aiohttp_client: AiohttpClient, declared: str, status: int) -> None:
    limits = ah.UploadLimits(allowed_types={"avatar": ["image/png"], "*": ["image/*"]})
    client = await aiohttp_client(form_app(limits))
    field = "avatar" if declared == "image/png" else "other"
    body = multipart_body(FormPart(name=field, data=b"x", filename="a", content_type=declared))
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == status
    if status == 415:
        doc = await resp.json(content_type=None)
        assert doc["type"].endswith("type-not-allowed")
        assert doc["field"] == "other"
        assert doc["allowed"] == ["image/*"]
    # A named text field is checked against its own entry (text/plain by default).
    body = multipart_body(("avatar", "not a picture"))
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 415


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 30
ZIP = b"PK\x03\x04" + b"\0" * 30
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    ("data", "declared", "status"),
    [
        pytest.param(PNG, "image/png", 200, id="png"),
        pytest.param(b"<html>" + b" " * 40, "image/png", 415, id="html-as-png"),
        pytest.param(b"GIF89a" + b"\0" * 30, "image/png", 415, id="gif-as-png"),
        pytest.param(ZIP, DOCX, 200, id="docx-is-zip"),
        pytest.param(b"\x89PN", "image/png", 415, id="too-short"),
        pytest.param(b"", "image/png", 415, id="empty"),
    ],
)
@pytest.mark.parametrize("split", [pytest.param(None, id="whole"), pytest.param(3, id="split")])
async def test_sniffed_types(
    aiohttp_client: AiohttpClient, data: bytes, declared: str, status: int, split: int | None
) -> None:
    limits = ah.UploadLimits(
        allowed_types={"pic": ["image/png", DOCX]}, sniff_types=frozenset({"pic"})
    )
    client = await aiohttp_client(form_app(limits))
    # base64 makes the bytes arrive through the decoder, in small pieces when split.
    encoding = "base64" if split else None
    body = multipart_body(
        FormPart(
            name="pic", data=data, filename="p", content_type=declared, transfer_encoding=encoding
        )
    )
    payload: Any = body.stream(split) if split else body.data
    resp = await client.post("/form", data=payload, headers=body.headers)
    assert resp.status == status, await resp.text()
    if status == 200:
        [upload] = (await resp.json())["files"]
        assert upload["size"] == len(data)
    else:
        detail = (await resp.json(content_type=None))["detail"]
        assert "is not allowed in field 'pic'" in detail


async def test_sniffing_every_file_field(aiohttp_client: AiohttpClient) -> None:
    limits = ah.UploadLimits(allowed_types={"*": ["image/*"]}, sniff_types=frozenset({"*"}))
    client = await aiohttp_client(parts_app(limits))
    body = multipart_body(
        ("note", "text fields are not sniffed"),
        FormPart(name="a", data=PNG, filename="a.png", content_type="image/png"),
        FormPart(name="b", data=b"MZ" + b"\0" * 20, filename="b.png", content_type="image/png"),
    )
    resp = await client.post("/parts", data=body.data, headers=body.headers)
    assert resp.status == 415
    assert (await resp.json(content_type=None))["field"] == "b"


@pytest.mark.parametrize(
    "route", [pytest.param("/form", id="read_form"), pytest.param("/parts", id="iter_parts")]
)
async def test_idle_timeout(serve: Serve, tmp_path: Path, route: str) -> None:
    limits = ah.UploadLimits(idle_timeout=0.3, tmp_dir=tmp_path, spool_max_size=0)
    app = form_app(limits) if route == "/form" else parts_app(limits)
    url = await serve(app)
    body = multipart_body(FormPart(name="f", data=b"x" * 5000, filename="f.bin"), ("after", "1"))
    chunks = body.chunks(len(body.data) - 100)

    async def stalled() -> AsyncIterator[bytes]:
        yield chunks[0]
        await asyncio.sleep(0.6)
        yield chunks[1]

    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(url / route[1:], data=stalled(), headers=body.headers) as resp:
                status = resp.status
                doc = await resp.json(content_type=None)
        except aiohttp.ClientError:
            pytest.fail("the server should answer 408 before closing")
    assert status == 408
    assert doc["type"].endswith("upload-idle-timeout")
    assert doc["detail"] == "no request body bytes arrived for 0.3 seconds"
    assert listing(tmp_path) == []


async def test_idle_timeout_is_not_hit_by_a_steady_client(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(form_app(ah.UploadLimits(idle_timeout=0.2)))
    body = multipart_body(FormPart(name="f", data=b"x" * 4000, filename="f.bin"))
    # 0.5 s in all, but never 0.2 s without a byte.
    resp = await client.post("/form", data=body.stream(400, delay=0.05), headers=body.headers)
    assert resp.status == 200
    assert (await resp.json())["files"][0]["size"] == 4000


def _bomb(coding: str) -> bytes:
    zeros = b"\0" * (64 << 20)
    if coding == "gzip":
        return gzip.compress(zeros, compresslevel=9)
    if coding == "deflate":
        return zlib.compress(zeros, 9)
    if coding == "br":
        return bytes(brotli.compress(zeros, quality=5))
    return zstandard.ZstdCompressor(level=3).compress(zeros)


@pytest.mark.parametrize(
    "coding", [pytest.param(c, id=c) for c in ("gzip", "deflate", "br", "zstd")]
)
async def test_compression_bomb_is_stopped_early(
    aiohttp_client: AiohttpClient, coding: str
) -> None:
    seen: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        async for part in ah.iter_parts(request):
            async for chunk in part:
                seen.append(len(chunk))
        raise AssertionError

    app = web.Application()
    limits = ah.UploadLimits(max_file_size=1 << 20, chunk_size=64 * 1024)
    ah.setup(app, limits=limits)
    app.router.add_post("/", handler)
    client = await aiohttp_client(app)
    bomb = _bomb(coding)
    assert len(bomb) < 100_000
    body = multipart_body(
        FormPart(name="bomb", data=bomb, filename="b", headers=[("Content-Encoding", coding)])
    )
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 413
    assert (await resp.json(content_type=None))["type"].endswith("file-too-large")
    # Decoded in bounded steps and stopped at the limit, not after 64 MiB.
    assert max(seen) <= 64 * 1024
    assert sum(seen) <= 1 << 20


async def test_no_idle_timeout(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(form_app(ah.UploadLimits(idle_timeout=None)))
    body = multipart_body(("x", "v"))
    resp = await client.post("/form", data=body.stream(10, delay=0.01), headers=body.headers)
    assert resp.status == 200


async def test_idle_timeout_counts_only_waiting_for_the_client(
    aiohttp_client: AiohttpClient,
) -> None:
    """A handler that takes its time between reads is not the client being idle."""

    async def handler(request: web.Request) -> web.Response:
        total = 0
        async for part in ah.iter_parts(request):
            async for chunk in part:
                total += len(chunk)
                await asyncio.sleep(0.15)
        return web.json_response(total)

    client = await aiohttp_client(
        upload_app(handler, ah.UploadLimits(idle_timeout=0.1, chunk_size=1024))
    )
    resp = await post_file(client, b"x" * 3000, "f")
    assert resp.status == 200
    assert await resp.json() == 3000


@pytest.mark.parametrize(
    ("limits", "second", "error"),
    [
        pytest.param({"max_field_size": 5}, ("b", "123456"), "field-too-large", id="field"),
        pytest.param({"max_fields": 1}, ("b", "1"), "too-many-fields", id="fields"),
        pytest.param({"max_parts": 1}, ("b", "1"), "too-many-parts", id="parts"),
        pytest.param(
            {"max_decoded_size": 5, "max_body_size": 5000},
            ("b", "123456"),
            "decoded-too-large",
            id="decoded",
        ),
    ],
)
async def test_limits_on_later_plain_fields(
    aiohttp_client: AiohttpClient, limits: dict[str, Any], second: tuple[str, str], error: str
) -> None:
    """The fast path for plain text fields enforces the same limits as the general one."""
    client = await aiohttp_client(form_app(ah.UploadLimits(**limits)))
    body = multipart_body(("a", ""), second)
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 413
    assert (await resp.json(content_type=None))["type"].endswith(error)


async def test_latin_1_field_name(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(form_app())
    body = multipart_body(("a", "1"), boundary="b")
    raw = (
        body.data + b'--b\r\nContent-Disposition: form-data; name="\xe9t\xe9"\r\n\r\nv\r\n--b--\r\n'
    )
    raw = raw.replace(b"--b--\r\n--b", b"--b", 1)
    resp = await client.post("/form", data=raw, headers=body.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["fields"] == [["a", "1"], ["été", "v"]]


def test_sniff_types_are_validated() -> None:
    with pytest.raises(TypeError, match="sniff_types must be a set of field names, not a string"):
        ah.UploadLimits(allowed_types={"a": ["image/*"]}, sniff_types="a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sniff_types names fields without allowed_types: b"):
        ah.UploadLimits(allowed_types={"a": ["image/*"]}, sniff_types=frozenset({"a", "b"}))
    with pytest.raises(ValueError, match=r"without allowed_types: \*"):
        ah.UploadLimits(sniff_types=frozenset({"*"}))
    limits = ah.UploadLimits(allowed_types={"*": ["image/*"]}, sniff_types={"a", "b"})  # type: ignore[arg-type]
    assert limits.sniff_types == frozenset({"a", "b"})
