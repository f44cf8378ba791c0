"""``Expect: 100-continue``: upload routes answer 413/415 first when the headers already decide."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.apps import Serve

CURL = shutil.which("curl")
TIMEOUT = 10.0


@ah.upload_limits(max_files=5)
async def upload(request: web.Request) -> web.Response:
    form = await ah.read_form(request)
    return web.json_response({"files": len(form.files), "fields": len(form.fields)})


@ah.upload_limits(max_body_size=100)
async def small(request: web.Request) -> web.Response:
    count = 0
    async for part in ah.iter_parts(request):
        await part.release()
        count += 1
    return web.json_response({"parts": count})


@ah.upload_limits(max_urlencoded_size=50)
async def small_form(request: web.Request) -> web.Response:
    form = await ah.read_form(request)
    return web.json_response({"fields": len(form.fields)})


async def plain(request: web.Request) -> web.Response:
    return web.json_response({"bytes": len(await request.read())})


class UploadView(web.View):
    @ah.upload_limits(max_body_size=200)
    async def post(self) -> web.Response:
        form = await ah.read_form(self.request)
        return web.json_response({"files": len(form.files)})

    async def put(self) -> web.Response:
        return web.json_response({"bytes": len(await self.request.read())})


custom_calls: list[str] = []


async def custom_expect(request: web.Request) -> None:
    custom_calls.append(request.path)
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


def expect_app() -> web.Application:
    app = web.Application(client_max_size=10 * 2**20)
    ah.setup(app, limits=ah.UploadLimits(max_body_size=1000))
    app.router.add_post("/upload", upload)
    app.router.add_post("/small", small)
    app.router.add_post("/plain", plain)
    app.router.add_post("/small-form", small_form)
    app.router.add_view("/view", UploadView)
    app.router.add_route("POST", "/custom", upload, expect_handler=custom_expect)
    sub = web.Application()
    ah.configure(sub, limits=ah.UploadLimits(max_body_size=150))
    sub.router.add_post("/upload", upload)
    app.add_subapp("/sub", sub)
    return app


async def exchange(
    url: URL,
    path: str,
    length: int,
    content_type: str = "multipart/form-data; boundary=b",
    *,
    expect: str = "100-continue",
    accept: str | None = None,
    body: bytes | None = None,
) -> tuple[bytes, dict[str, str], bytes]:
    """Send a request head with Expect, read what the server sends first.

    Returns the first status line, its headers and its body. When that is ``100 Continue``
    and ``body`` is given, sends the body and returns the final answer's body instead.
    """
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\nExpect: {expect}\r\n"
        )
        if accept is not None:
            head += f"Accept: {accept}\r\n"
        writer.write(head.encode() + b"\r\n")
        await writer.drain()
        block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status, *lines = block.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        if status.startswith("HTTP/1.1 100"):
            if body is None:
                return status.encode(), headers, b""
            writer.write(body)
            await writer.drain()
            block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            final, *lines = block.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
            data = await asyncio.wait_for(
                reader.readexactly(int(headers["content-length"])), TIMEOUT
            )
            return b"100 then " + final.encode(), headers, data
        data = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), TIMEOUT)
        if headers.get("connection") == "close":
            # The server closes without waiting for the body it never asked for.
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        return status.encode(), headers, data
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("path", "length", "content_type", "status", "problem", "limit"),
    [
        pytest.param("/upload", 5000, None, 413, "body-too-large", 1000, id="app-limit"),
        pytest.param("/small", 101, None, 413, "body-too-large", 100, id="route-override"),
        pytest.param("/sub/upload", 151, None, 413, "body-too-large", 150, id="sub-app-configure"),
        pytest.param("/view", 201, None, 413, "body-too-large", 200, id="view-method"),
        pytest.param("/custom", 5000, None, 413, "body-too-large", 1000, id="custom-expect"),
        pytest.param("/upload", 10, "application/json", 415, "not-multipart", None, id="json"),
        pytest.param("/upload", 10, "text/plain", 415, "not-multipart", None, id="text"),
        pytest.param("/small", 10, "", 415, "not-multipart", None, id="no-type"),
        # read_form() holds an urlencoded body whole: max_urlencoded_size bounds it too.
        pytest.param(
            "/small-form",
            51,
            "application/x-www-form-urlencoded",
            413,
            "body-too-large",
            50,
            id="urlencoded-limit",
        ),
        pytest.param(
            "/upload",
            10,
            "application/x-www-form-urlencodedX",
            415,
            "not-multipart",
            None,
            id="urlencoded-lookalike",
        ),
    ],
)
async def test_final_answer_instead_of_100_continue(
    serve: Serve,
    path: str,
    length: int,
    content_type: str | None,
    status: int,
    problem: str,
    limit: int | None,
) -> None:
    url = await serve(expect_app())
    custom_calls.clear()
    args: dict[str, Any] = {} if content_type is None else {"content_type": content_type}
    first, headers, data = await exchange(url, path, length, **args)
    assert first.startswith(f"HTTP/1.1 {status} ".encode())
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    doc = json.loads(data)
    assert doc["type"] == f"urn:aiohttp-helpers:problem:{problem}"
    assert doc["status"] == status
    assert doc["instance"] == path
    assert doc.get("limit") == limit
    assert custom_calls == []


@pytest.mark.parametrize(
    ("path", "form"),
    [
        pytest.param("/upload", True, id="upload-under-limit"),
        pytest.param("/custom", True, id="custom-expect-handler-kept"),
        pytest.param("/sub/upload", False, id="sub-app-under-limit"),
        pytest.param("/plain", False, id="not-an-upload-route"),
    ],
)
async def test_acceptable_requests_get_100_continue(serve: Serve, path: str, form: bool) -> None:
    url = await serve(expect_app())
    custom_calls.clear()
    if form:
        body = multipart_body(FormPart(name="f", data=b"x" * 300, filename="a.txt"), boundary="b")
        payload, ctype = body.data, body.content_type
    elif path == "/plain":
        payload, ctype = b"{}" * 2500, "application/json"
    else:
        body = multipart_body(FormPart(name="a", data=b"v"), boundary="b")
        payload, ctype = body.data, body.content_type
    first, _, data = await exchange(url, path, len(payload), ctype, body=payload)
    assert first == b"100 then HTTP/1.1 200 OK", data
    expected = {"/plain": {"bytes": 5000}, "/sub/upload": {"files": 0, "fields": 1}}
    assert json.loads(data) == expected.get(path, {"files": 1, "fields": 0})
    assert custom_calls == (["/custom"] if path == "/custom" else [])


async def test_view_methods_without_limits_are_left_alone(serve: Serve) -> None:
    url = await serve(expect_app())
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(
            f"PUT /view HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/json\r\n"
            "Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
    finally:
        writer.close()


async def test_text_answer_when_asked(serve: Serve) -> None:
    url = await serve(expect_app())
    first, headers, data = await exchange(url, "/upload", 5000, accept="text/plain")
    assert first.startswith(b"HTTP/1.1 413 ")
    assert headers["content-type"].startswith("text/plain")
    assert data == b"413 Request body too large: request body is larger than 1000 bytes\n"


async def test_other_expectations_keep_aiohttps_answer(serve: Serve) -> None:
    url = await serve(expect_app())
    first, _, data = await exchange(url, "/upload", 10, expect="something-else")
    assert first.startswith(b"HTTP/1.1 417 ")
    assert b"Unknown Expect: something-else" in data


async def test_app_without_upload_routes_starts(serve: Serve, app: web.Application) -> None:
    app.router.add_post("/plain", plain)
    url = await serve(app)
    first, _, _ = await exchange(url, "/plain", 5000, "application/json")
    assert first == b"HTTP/1.1 100 Continue"


@pytest.mark.skipif(CURL is None, reason="curl is not installed (make sysdeps)")
@pytest.mark.parametrize(
    ("path", "status", "uploaded"),
    [
        pytest.param("/upload", 413, 0, id="refused-before-the-body"),
        pytest.param("/plain", 200, None, id="plain-route-gets-the-body"),
    ],
)
async def test_curl(
    serve: Serve, tmp_path: Path, path: str, status: int, uploaded: int | None
) -> None:
    """curl sends ``Expect: 100-continue`` for a large body and waits for the answer."""
    assert CURL is not None
    big = tmp_path / "big.iso"
    big.write_bytes(b"\0" * (2 * 2**20))
    url = await serve(expect_app())
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "-sS",
        "-v",
        "-o",
        str(tmp_path / "out"),
        "-w",
        "%{http_code} %{size_upload}",
        "--max-time",
        "30",
        # Without an answer curl would wait this long and then send the body anyway.
        "--expect100-timeout",
        "25",
        "-F",
        f"file=@{big}",
        str(url / path[1:]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    got_status, size_upload = out.decode().split()
    trace = err.decode("latin-1")
    assert "> Expect: 100-continue" in trace
    assert int(got_status) == status
    if uploaded == 0:
        assert "< HTTP/1.1 100 Continue" not in trace
        assert int(float(size_upload)) == 0
        doc = json.loads((tmp_path / "out").read_bytes())
        assert doc["type"] == "urn:aiohttp-helpers:problem:body-too-large"
    else:
        assert "< HTTP/1.1 100 Continue" in trace
        assert int(float(size_upload)) > 2 * 2**20


@pytest.mark.parametrize(
    ("content_type", "length", "status"),
    [
        pytest.param("application/x-www-form-urlencoded", 50, 200, id="urlencoded-at-limit"),
        pytest.param("multipart/form-data; boundary=b", 51, 100, id="multipart-not-bound-by-it"),
    ],
)
async def test_the_urlencoded_limit_binds_urlencoded_bodies_only(
    serve: Serve, content_type: str, length: int, status: int
) -> None:
    url = await serve(expect_app())
    body = b"a=" + b"x" * (length - 2)
    first, _, data = await exchange(url, "/small-form", length, content_type, body=body)
    if status == 200:
        assert first == b"100 then HTTP/1.1 200 OK"
        assert json.loads(data) == {"fields": 1}
    else:
        assert first.startswith(b"100 then HTTP/1.1 400 ")  # not a multipart body after all


async def test_read_form_refuses_a_lookalike_of_urlencoded(serve: Serve) -> None:
    url = await serve(expect_app())
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url / "upload",
            data=b"a=1",
            headers={"Content-Type": "application/x-www-form-urlencodedX"},
        ) as resp,
    ):
        assert resp.status == 415
        assert (await resp.json())["type"] == "urn:aiohttp-helpers:problem:not-multipart"
