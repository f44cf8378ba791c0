"""``MultipartResponse``: multipart answers read back with ``iter_parts()`` on the client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import aiohttp_helpers as ah

from .conftest import Serve


async def _read_back(resp: aiohttp.ClientResponse) -> list[tuple[str, bytes, str | None]]:
    return [
        (part.content_type, await part.read(), part.headers.get("X-Index"))
        async for part in ah.iter_parts(resp)
    ]


async def test_appended_parts_get_a_content_length(serve: Serve) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse("mixed", boundary="sep")
        response.append(b"\x00\x01binary", {"Content-Type": "application/octet-stream"})
        response.append("text", {"Content-Type": "text/plain; charset=utf-8", "X-Index": "2"})
        response.append_json({"ok": True})
        assert response.boundary == "sep"
        assert len(response.writer) == 3
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    url = await serve(app)
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.headers["Content-Type"] == "multipart/mixed; boundary=sep"
        length = int(resp.headers["Content-Length"])
        assert "Transfer-Encoding" not in resp.headers
        raw = await resp.read()
        assert len(raw) == length
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert await _read_back(resp) == [
            ("application/octet-stream", b"\x00\x01binary", None),
            ("text/plain", b"text", "2"),
            ("application/json", b'{"ok": true}', None),
        ]


async def test_parts_of_unknown_size_are_chunked(serve: Serve) -> None:
    async def produce() -> AsyncIterator[bytes]:
        yield b"first "
        yield b"second"

    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse()
        response.append(produce(), {"Content-Type": "text/plain"})
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    url = await serve(app)
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert "Content-Length" not in resp.headers
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await _read_back(resp) == [("text/plain", b"first second", None)]


async def test_streamed_parts(serve: Serve) -> None:
    errors: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse("x-mixed-replace", boundary="frame")
        with pytest.raises(RuntimeError, match=r"call prepare\(\) before send_part\(\)"):
            await response.send_part(b"too early")
        await response.prepare(request)
        with pytest.raises(RuntimeError, match=r"the response has started: use send_part\(\)"):
            response.append(b"late")
        with pytest.raises(RuntimeError, match="the response has started"):
            response.append_json({})
        for i in range(3):
            await response.send_part(
                f"frame {i}", {"Content-Type": "text/plain", "X-Index": str(i)}
            )
            await asyncio.sleep(0.01)
        assert response.parts_sent == 3
        with pytest.raises(ValueError, match="ends with its boundary"):
            await response.write_eof(b"stray")
        await response.write_eof()
        await response.write_eof()  # a second call does nothing
        try:
            await response.send_part(b"after the end")
        except RuntimeError as exc:
            errors.append(str(exc))
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    url = await serve(app)
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await _read_back(resp) == [
            ("text/plain", f"frame {i}".encode(), str(i)) for i in range(3)
        ]
    assert errors == ["the response has ended"]


async def test_appended_then_streamed(serve: Serve) -> None:
    problems: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse(headers={"X-Custom": "1"})
        response.append("first", {"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        assert await response.prepare(request) is not None  # idempotent
        await response.send_part("second", {"Content-Type": "text/plain"})
        await response.write_eof()
        return response

    async def declared(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse()
        response.append("only", {"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            await response.send_part("more")
        except RuntimeError as exc:
            problems.append(str(exc))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    app.router.add_get("/declared", declared)
    url = await serve(app)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.headers["X-Custom"] == "1"
            assert [d for _, d, _ in await _read_back(resp)] == [b"first", b"second"]
        async with session.get(url / "declared") as resp:
            assert [d for _, d, _ in await _read_back(resp)] == [b"only"]
    assert problems == [
        "this response declared a Content-Length when it was prepared: call "
        "enable_chunked_encoding() before prepare() to send parts one by one"
    ]


async def test_form_data_response_parses_as_a_form(serve: Serve) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse("form-data", status=201)
        response.append("v1", {"Content-Disposition": 'form-data; name="a"'})
        response.append(b"file", {"Content-Disposition": 'form-data; name="f"; filename="f.txt"'})
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    url = await serve(app)
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 201
        got: list[Any] = []
        async for part in ah.iter_parts(resp):
            got.append([part.name, part.filename, (await part.read()).decode()])
    assert json.dumps(got) == json.dumps([["a", None, "v1"], ["f", "f.txt", "file"]])
