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
from tests.support.apps import Serve
from tests.support.uploads import get_app


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

    url = await serve(get_app(handler))
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

    url = await serve(get_app(handler))
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

    url = await serve(get_app(handler))
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

    url = await serve(get_app(handler, declared=declared))
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

    url = await serve(get_app(handler))
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 201
        got: list[Any] = []
        async for part in ah.iter_parts(resp):
            got.append([part.name, part.filename, (await part.read()).decode()])
    assert json.dumps(got) == json.dumps([["a", None, "v1"], ["f", "f.txt", "file"]])


@pytest.mark.parametrize(
    "boundary",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 71, id="too-long"),
        pytest.param("ends ", id="trailing-space"),
        pytest.param("a\r\nX-Injected: 1", id="crlf"),
        pytest.param('a"b', id="quote"),
        pytest.param("gr\u00fc\u00df", id="non-ascii"),
    ],
)
def test_a_bad_boundary_is_refused(boundary: str) -> None:
    with pytest.raises(ValueError, match="is not a MIME boundary"):
        ah.MultipartResponse(boundary=boundary)


def test_a_full_length_boundary_is_accepted() -> None:
    assert ah.MultipartResponse(boundary="'()+_,-./:=? " + "x" * 57).boundary.endswith("x")


async def _read_with_aiohttp(resp: aiohttp.ClientResponse) -> list[tuple[dict[str, str], bytes]]:
    """The parts as aiohttp's own MultipartReader sees them."""
    reader = aiohttp.MultipartReader.from_response(resp)
    got = []
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        got.append((dict(part.headers), await part.read()))
    return got


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"a\r\n--sep\r\nX-Injected: yes\r\n\r\nevil", id="inside"),
        pytest.param(b"--sep\r\nX-Injected: yes\r\n\r\nevil", id="at-the-start"),
        pytest.param("a\r\n--sep--", id="str-closing"),
    ],
)
async def test_known_bytes_with_the_delimiter_are_refused_before_sending(
    serve: Serve, data: bytes | str
) -> None:
    refused: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse(boundary="sep")
        response.append(b"fine", {"Content-Type": "text/plain"})
        response.append(data, {"Content-Type": "text/plain"})
        with pytest.raises(ValueError, match="contains the multipart delimiter") as info:
            await response.prepare(request)
        refused.append(str(info.value))
        assert not response.prepared
        return web.Response(text="refused")

    url = await serve(get_app(handler))
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert await resp.text() == "refused"
    assert len(refused) == 1


async def test_send_part_validates_before_writing(serve: Serve) -> None:
    refused: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse(boundary="sep")
        await response.prepare(request)
        await response.send_part(b"one", {"X-Index": "1"})
        bad: list[tuple[Any, dict[str, str]]] = [
            (b"two", {"X-Index": "2\r\nX-Injected: yes"}),
            (b"two", {"X-Index\r\nX-Injected": "2"}),
            (b"two", {"X-Index": "2\x00"}),
            (b"x\r\n--sep\r\nX-Injected: yes\r\n\r\nevil", {"X-Index": "2"}),
        ]
        for obj, headers in bad:
            with pytest.raises(ValueError, match=r"header line|multipart delimiter") as info:
                await response.send_part(obj, headers)
            refused.append(str(info.value))
        assert response.parts_sent == 1
        await response.send_part(b"three", {"X-Index": "3"})
        await response.write_eof()
        return response

    url = await serve(get_app(handler))
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            got = await _read_with_aiohttp(resp)
        assert [(h.get("X-Index"), d) for h, d in got] == [("1", b"one"), ("3", b"three")]
        assert all("X-Injected" not in h for h, _ in got)
        async with session.get(url) as resp:
            assert [d for _, d, _ in await _read_back(resp)] == [b"one", b"three"]
    assert len(refused) == 8
    assert sum("not a valid header line" in r for r in refused) == 6
    assert sum("contains the multipart delimiter" in r for r in refused) == 2


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"abc\r\n--sep\r\nX-Injected: yes\r\n\r\nevil"], id="one-chunk"),
        pytest.param([b"abc\r\n--s", b"ep\r\nX-Injected: yes\r\n\r\nevil"], id="split"),
        pytest.param(
            [b"abc\r", b"\n", b"-", b"-s", b"e", b"p\r\nX-Injected: 1\r\n\r\n"], id="bytes"
        ),
    ],
)
async def test_streamed_content_never_completes_the_delimiter(
    serve: Serve, chunks: list[bytes]
) -> None:
    errors: list[str] = []

    async def produce() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse(boundary="sep")
        await response.prepare(request)
        await response.send_part(b"first", {"X-Index": "1"})
        try:
            await response.send_part(produce(), {"X-Index": "2"})
        except ValueError as exc:
            errors.append(str(exc))
            raise
        return response

    url = await serve(get_app(handler))
    seen: list[tuple[dict[str, str], bytes]] = []
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        reader = aiohttp.MultipartReader.from_response(resp)

        async def read_all() -> None:
            while (part := await reader.next()) is not None:
                assert isinstance(part, aiohttp.BodyPartReader)
                seen.append((dict(part.headers), await part.read()))

        with pytest.raises(aiohttp.ClientPayloadError):
            await read_all()
    assert [h.get("X-Index") for h, _ in seen] == ["1"]
    assert errors == [
        "a part's content contains the multipart delimiter: the response was cut short before it"
    ]


async def test_random_boundary_and_look_alike_content(serve: Serve) -> None:
    async def produce() -> AsyncIterator[bytes]:
        yield b"\r\n--not-the-boundary\r\n"
        yield b"\r\n--"

    async def handler(request: web.Request) -> web.StreamResponse:
        response = ah.MultipartResponse()
        response.append(b"\r\n--sep\r\n", {"Content-Type": "text/plain"})
        response.append(produce(), {"Content-Type": "text/plain"})
        response.append(b"gz\r\n--" * 100, {"Content-Encoding": "gzip"})
        return response

    url = await serve(get_app(handler))
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        got = await _read_with_aiohttp(resp)
    assert [d for _, d in got][:2] == [b"\r\n--sep\r\n", b"\r\n--not-the-boundary\r\n\r\n--"]
    assert len(got) == 3
