"""``iter_parts()``: the part API, bounded chunks, nesting, and client responses."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.apps import Serve
from tests.support.uploads import get_app, in_process_request, upload_app


async def test_part_attributes(aiohttp_client: AiohttpClient) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        async for part in ah.iter_parts(request):
            seen.append(
                {
                    "repr": repr(part),
                    "name": part.name,
                    "filename": part.filename,
                    "raw_filename": part.raw_filename,
                    "content_type": part.content_type,
                    "x-extra": part.headers.get("X-Extra"),
                    "is_file": part.is_file,
                    "is_multipart": part.is_multipart,
                    "charset": part.get_charset(),
                    "eof_before": part.at_eof(),
                    "data": await part.read(),
                    "size": part.size,
                    "eof_after": part.at_eof(),
                }
            )
        return web.Response(text="ok")

    client = await aiohttp_client(upload_app(handler))
    body = multipart_body(
        ("plain", "text"),
        FormPart(
            name="doc",
            data=b"%PDF",
            filename="../a.pdf",
            headers=[("X-Extra", "yes")],
            content_type="Application/PDF; charset=latin-1",
        ),
        FormPart(name="bin", data=b"\0", filename="b"),
    )
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 200
    assert seen == [
        {
            "repr": "<BodyPart name='plain' filename=None content_type='text/plain'>",
            "name": "plain",
            "filename": None,
            "raw_filename": None,
            "content_type": "text/plain",
            "x-extra": None,
            "is_file": False,
            "is_multipart": False,
            "charset": "utf-8",
            "eof_before": False,
            "data": b"text",
            "size": 4,
            "eof_after": True,
        },
        {
            "repr": "<BodyPart name='doc' filename='a.pdf' content_type='application/pdf'>",
            "name": "doc",
            "filename": "a.pdf",
            "raw_filename": "../a.pdf",
            "content_type": "application/pdf",
            "x-extra": "yes",
            "is_file": True,
            "is_multipart": False,
            "charset": "latin-1",
            "eof_before": False,
            "data": b"%PDF",
            "size": 4,
            "eof_after": True,
        },
        {
            "repr": "<BodyPart name='bin' filename='b' content_type='application/octet-stream'>",
            "name": "bin",
            "filename": "b",
            "raw_filename": "b",
            "content_type": "application/octet-stream",
            "x-extra": None,
            "is_file": True,
            "is_multipart": False,
            "charset": "utf-8",
            "eof_before": False,
            "data": b"\0",
            "size": 1,
            "eof_after": True,
        },
    ]


async def test_chunks_are_bounded() -> None:
    payload = os.urandom(10_000)
    body = multipart_body(FormPart(name="f", data=payload, filename="f"))
    # One chunk holding the whole body: the part still streams in chunk_size pieces.
    request = in_process_request([body.data], body.headers)
    parts = ah.iter_parts(request, limits=ah.UploadLimits(chunk_size=1024))
    assert parts.limits.chunk_size == 1024
    async for part in parts:
        sizes = []
        got = b""
        first = await part.read_chunk(100)
        got += first
        sizes.append(len(first))
        with pytest.raises(ValueError, match="size must be positive"):
            await part.read_chunk(0)
        async for chunk in part:
            sizes.append(len(chunk))
            got += chunk
        assert got == payload
        assert sizes[0] == 100
        assert max(sizes) == 1024
        assert await part.read_chunk() == b""


async def test_skipping_and_releasing_parts() -> None:
    body = multipart_body(
        FormPart(name="a", data=b"a" * 5000, filename="a"),
        FormPart(name="b", data=b"b" * 5000, filename="b"),
        FormPart(name="c", data=b"c" * 5000, filename="c"),
        ("d", "last"),
    )
    request = in_process_request(body.chunks(700), body.headers)
    parts = ah.iter_parts(request, limits=ah.UploadLimits(chunk_size=1024))
    a = await parts.__anext__()
    assert await a.read_chunk(10) == b"a" * 10
    b = await parts.__anext__()  # skips the rest of a
    assert a.at_eof()
    assert await a.read() == b""
    await b.release()
    assert b.at_eof()
    c = await parts.__anext__()
    assert await a.read_chunk() == b""
    chunk = await c.read_chunk(5)
    assert chunk == b"ccccc"
    rest = await c.read()  # includes what read_chunk held back
    assert len(chunk) + len(rest) == 5000
    d = await parts.__anext__()
    assert await d.text() == "last"
    with pytest.raises(StopAsyncIteration):
        await parts.__anext__()


async def test_save_keeps_what_read_chunk_held_back(tmp_path: Any) -> None:
    payload = os.urandom(5000)
    body = multipart_body(FormPart(name="f", data=payload, filename="f"))
    request = in_process_request([body.data], body.headers)
    async for part in ah.iter_parts(request, limits=ah.UploadLimits(chunk_size=1024)):
        head = await part.read_chunk(10)
        assert await part.save(tmp_path / "rest.bin") == tmp_path / "rest.bin"
        assert part.size == 5000
        assert head + (tmp_path / "rest.bin").read_bytes() == payload


async def test_form_part() -> None:
    body = multipart_body(
        FormPart(
            name="q", data=b"a=1&b=%C3%A9&a=", content_type="application/x-www-form-urlencoded"
        ),
        FormPart(name="many", data=b"&".join(b"k=v" for _ in range(5))),
        FormPart(name="bad", data=b"a=%ff", content_type="text/plain; charset=utf-8"),
        FormPart(name="latin", data=b"a=%E9", content_type="text/plain; charset=iso-8859-1"),
    )
    request = in_process_request([body.data], body.headers)
    parts = ah.iter_parts(request, limits=ah.UploadLimits(max_fields=4))
    assert await (await parts.__anext__()).form() == [("a", "1"), ("b", "é"), ("a", "")]
    with pytest.raises(ah.TooManyFields, match="more than 4 text fields"):
        await (await parts.__anext__()).form()
    with pytest.raises(ah.MalformedMultipart, match="field 'bad' is not valid utf-8 text"):
        await (await parts.__anext__()).form()
    assert await (await parts.__anext__()).form() == [("a", "é")]


async def test_nested_parts(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        out: list[Any] = []
        async for part in ah.iter_parts(request):
            if part.is_multipart:
                inner = [(p.filename, await p.read()) async for p in part.iter_parts()]
                out.append([part.name, part.content_type, inner])
            else:
                with pytest.raises(TypeError, match="is not multipart"):
                    part.iter_parts()
                out.append([part.name, await part.text()])
        return web.json_response(
            [[x[0], x[1], [[f, d.decode()] for f, d in x[2]]] if len(x) == 3 else x for x in out]
        )

    client = await aiohttp_client(upload_app(handler))
    body = multipart_body(
        ("title", "two files"),
        FormPart(
            name="files",
            parts=[
                FormPart(data=b"one", filename="1.txt", content_type="text/plain"),
                FormPart(data=b"two", filename="2.txt", content_type="text/plain"),
            ],
        ),
        ("after", "yes"),
    )
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == [
        ["title", "two files"],
        ["files", "multipart/mixed", [["1.txt", "one"], ["2.txt", "two"]]],
        ["after", "yes"],
    ]


async def test_nested_files_in_read_form(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        return web.json_response(
            {
                "fields": [[k, v] for k, v in form.fields.items()],
                "files": [
                    [k, f.filename, (await f.read()).decode()] for k, f in form.files.items()
                ],
            }
        )

    client = await aiohttp_client(upload_app(handler))
    body = multipart_body(
        FormPart(
            name="files",
            parts=[
                FormPart(data=b"one", filename="1.txt"),
                FormPart(data=b"note"),
                FormPart(data=b"two", filename="2.txt"),
            ],
        ),
    )
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {
        "fields": [],
        "files": [
            ["files", "1.txt", "one"],
            ["files", "upload", "note"],
            ["files", "2.txt", "two"],
        ],
    }


async def test_iter_parts_over_a_client_response(serve: Serve) -> None:
    async def handler(request: web.Request) -> web.Response:
        with aiohttp.MultipartWriter("mixed") as mp:
            mp.append("hello", {"Content-Type": "text/plain"})
            mp.append_json({"a": 1})
            mp.append(b"\x00\x01" * 1000, {"Content-Type": "application/octet-stream"})
        return web.Response(body=mp)

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="not multipart")

    url = await serve(get_app(handler, plain=plain))
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            got = []
            async for part in ah.iter_parts(resp):
                got.append((part.content_type, part.is_file, await part.read()))
            assert resp.content.at_eof()
        assert got == [
            ("text/plain", True, b"hello"),
            ("application/json", True, b'{"a": 1}'),
            ("application/octet-stream", True, b"\x00\x01" * 1000),
        ]
        async with session.get(url / "plain") as resp:
            with pytest.raises(ah.NotMultipart, match="got Content-Type 'text/plain"):
                ah.iter_parts(resp)
