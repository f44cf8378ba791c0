"""Every transfer encoding, content encoding and charset, decoded while the part streams."""

from __future__ import annotations

import base64
import gzip
import os
import zlib

import brotli
import pytest
import zstandard
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from aiohttp_helpers.uploads import decoding
from tests.support.uploads import form_app, in_process_request, parts_app

DATA = os.urandom(3000) + b"=\r\n=3D line\n" * 50 + bytes(range(256)) * 4


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def _zstd_frames(data: bytes) -> bytes:
    half = len(data) // 2
    c = zstandard.ZstdCompressor()
    return c.compress(data[:half]) + c.compress(data[half:])


ENCODED = {
    "base64": ({"transfer_encoding": "base64"}, None),
    "BASE64": ({"transfer_encoding": "BASE64"}, None),
    "quoted-printable": ({"transfer_encoding": "quoted-printable"}, None),
    "7bit": ({"transfer_encoding": "7bit"}, None),
    "8bit": ({"transfer_encoding": "8bit"}, None),
    "binary": ({"transfer_encoding": "binary"}, None),
    "identity": ({"content_encoding": "identity"}, None),
    "gzip": ({"content_encoding": "gzip"}, None),
    "x-gzip": ({"content_encoding": "x-gzip"}, None),
    "deflate": ({"content_encoding": "deflate"}, None),
    "deflate-raw": ({}, ("deflate", _raw_deflate(DATA))),
    "gzip-members": ({}, ("gzip", gzip.compress(DATA[:100]) + gzip.compress(DATA[100:]))),
    "gzip-padded": ({}, ("gzip", gzip.compress(DATA) + b"\0" * 10)),
    "br": ({"content_encoding": "br"}, None),
    "zstd": ({"content_encoding": "zstd"}, None),
    "zstd-frames": ({}, ("zstd", _zstd_frames(DATA))),
    "gzip-then-br": ({"content_encoding": "gzip, br"}, None),
    "base64-of-gzip": ({"content_encoding": "gzip", "transfer_encoding": "base64"}, None),
    "qp-of-zstd": ({"content_encoding": "zstd", "transfer_encoding": "quoted-printable"}, None),
}


def _part(key: str) -> FormPart:
    options, raw = ENCODED[key]
    if raw is None:
        return FormPart(name="f", data=DATA, filename="f.bin", **options)  # type: ignore[arg-type]
    coding, data = raw
    return FormPart(name="f", data=data, filename="f.bin", headers=[("Content-Encoding", coding)])


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in ENCODED])
@pytest.mark.parametrize(
    "route", [pytest.param("/form", id="read_form"), pytest.param("/parts", id="iter_parts")]
)
async def test_encodings_over_http(aiohttp_client: AiohttpClient, key: str, route: str) -> None:
    app = form_app() if route == "/form" else parts_app()
    client = await aiohttp_client(app)
    body = multipart_body(_part(key), ("after", "ok"))
    resp = await client.post(route, data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    if route == "/form":
        [upload] = doc["files"]
        assert base64.b64decode(upload["data"]) == DATA
        assert doc["fields"] == [["after", "ok"]]
    else:
        assert base64.b64decode(doc[0]["data"]) == DATA
        assert base64.b64decode(doc[1]["data"]) == b"ok"


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in ENCODED])
@pytest.mark.parametrize(
    "size", [pytest.param(1, id="1"), pytest.param(7, id="7"), pytest.param(None, id="whole")]
)
async def test_encodings_split_in_small_chunks(key: str, size: int | None) -> None:
    body = multipart_body(_part(key), ("after", "ok"))
    request = in_process_request(body.chunks(size or len(body.data)), body.headers)
    form = await ah.read_form(request, limits=ah.UploadLimits(chunk_size=1024))
    assert await form.files["f"].read() == DATA
    assert form["after"] == "ok"


BROKEN = {
    "bad-base64": ("Content-Transfer-Encoding", "base64", b"!!!!not base64!!!!"),
    "base64-leftover": ("Content-Transfer-Encoding", "base64", b"QUJD" + b"QQ"),
    "bad-gzip": ("Content-Encoding", "gzip", b"this is not gzip at all"),
    "truncated-gzip": ("Content-Encoding", "gzip", gzip.compress(DATA)[:-20]),
    "empty-gzip": ("Content-Encoding", "gzip", b""),
    "gzip-trailing-garbage": ("Content-Encoding", "gzip", gzip.compress(b"x") + b"garbage"),
    "deflate-trailing-garbage": ("Content-Encoding", "deflate", zlib.compress(b"x") + b"zz"),
    "one-byte-deflate": ("Content-Encoding", "deflate", b"x"),
    "bad-br": ("Content-Encoding", "br", b"\xff\xff\xff\xff not brotli"),
    "truncated-br": ("Content-Encoding", "br", brotli.compress(DATA)[:-10]),
    "br-trailing-data": ("Content-Encoding", "br", brotli.compress(b"x") + b"more"),
    "bad-zstd": ("Content-Encoding", "zstd", b"not a zstd frame"),
    "truncated-zstd": ("Content-Encoding", "zstd", zstandard.ZstdCompressor().compress(DATA)[:-9]),
    "empty-zstd": ("Content-Encoding", "zstd", b""),
}


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in BROKEN])
@pytest.mark.parametrize(
    "route", [pytest.param("/form", id="read_form"), pytest.param("/parts", id="iter_parts")]
)
async def test_broken_encoded_data_is_400(
    aiohttp_client: AiohttpClient, key: str, route: str
) -> None:
    header, coding, data = BROKEN[key]
    app = form_app() if route == "/form" else parts_app()
    client = await aiohttp_client(app)
    body = multipart_body(FormPart(name="f", data=data, filename="f", headers=[(header, coding)]))
    resp = await client.post(route, data=body.data, headers=body.headers)
    assert resp.status == 400, await resp.text()
    doc = await resp.json(content_type=None)
    assert doc["type"].endswith("malformed-multipart")
    assert doc["detail"] == f"field 'f' has bad {coding} data"
    assert doc["field"] == "f"


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in BROKEN])
async def test_broken_encoded_data_in_small_chunks(key: str) -> None:
    header, coding, data = BROKEN[key]
    body = multipart_body(FormPart(name="f", data=data, filename="f", headers=[(header, coding)]))
    request = in_process_request(body.chunks(3), body.headers)
    with pytest.raises(ah.MalformedMultipart, match=f"field 'f' has bad {coding} data"):
        await ah.read_form(request)


async def test_quoted_printable_soft_break_at_the_end() -> None:
    part = FormPart(
        name="f",
        data=b"abc=3D=\r\ndef=",
        headers=[("Content-Transfer-Encoding", "quoted-printable")],
    )
    body = multipart_body(part)
    for size in (1, 2, len(body.data)):
        form = await ah.read_form(in_process_request(body.chunks(size), body.headers))
        assert form["f"] == "abc=def"


UNKNOWN = {
    "transfer": ("Content-Transfer-Encoding", "x-uuencode"),
    "content": ("Content-Encoding", "lzma"),
    "too-many": ("Content-Encoding", "gzip, gzip, gzip, gzip, gzip"),
}


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in UNKNOWN])
async def test_unknown_encodings_are_415(aiohttp_client: AiohttpClient, key: str) -> None:
    header, coding = UNKNOWN[key]
    client = await aiohttp_client(form_app())
    body = multipart_body(FormPart(name="f", data=b"x", filename="f", headers=[(header, coding)]))
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 415
    doc = await resp.json(content_type=None)
    assert doc["type"].endswith("unsupported-encoding")
    assert doc["detail"] == f"{header} {coding!r} of field 'f' is not supported"


@pytest.mark.parametrize(
    "module", [pytest.param("brotli", id="br"), pytest.param("zstandard", id="zstd")]
)
async def test_missing_optional_decoder_is_415(
    aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    # As if the optional extra were not installed.
    monkeypatch.setattr(decoding, module, None)
    coding = "br" if module == "brotli" else "zstd"
    client = await aiohttp_client(form_app())
    body = multipart_body(FormPart(name="f", data=b"x", filename="f", content_encoding=coding))
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 415
    assert (await resp.json(content_type=None))["detail"] == (
        f"Content-Encoding {coding!r} of field 'f' is not supported"
    )


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        pytest.param(
            [
                FormPart(
                    name="t",
                    data="été".encode("latin-1"),
                    content_type="text/plain; charset=iso-8859-1",
                )
            ],
            [["t", "été"]],
            id="part-charset",
        ),
        pytest.param(
            [
                ("_charset_", "windows-1252"),
                FormPart(name="t", data="€uro".encode("cp1252")),
                FormPart(name="u", data="ü".encode(), content_type="text/plain; charset=utf-8"),
            ],
            [["_charset_", "windows-1252"], ["t", "€uro"], ["u", "ü"]],
            id="charset-field",
        ),
        pytest.param([("t", "ünïcödé ✓")], [["t", "ünïcödé ✓"]], id="utf-8-default"),
        pytest.param(
            [FormPart(name="t", data=b"x", content_type='text/plain; charset="UTF-8"')],
            [["t", "x"]],
            id="quoted-charset",
        ),
    ],
)
@pytest.mark.parametrize(
    "route", [pytest.param("/form", id="read_form"), pytest.param("/text", id="iter_parts")]
)
async def test_charsets(
    aiohttp_client: AiohttpClient, parts: list[FormPart], expected: list[list[str]], route: str
) -> None:
    from aiohttp import web

    async def text(request: web.Request) -> web.Response:
        out = []
        async for part in ah.iter_parts(request):
            out.append([part.name, await part.text()])
        return web.json_response({"fields": out})

    app = form_app()
    app.router.add_post("/text", text)
    client = await aiohttp_client(app)
    body = multipart_body(*parts)
    resp = await client.post(route, data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["fields"] == expected


async def test_bad_text_after_a_plain_field(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(form_app())
    body = multipart_body(("a", "1"), FormPart(name="t", data=b"ok \xff"))
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 400
    assert (await resp.json(content_type=None))["detail"] == "field 't' is not valid utf-8 text"


@pytest.mark.parametrize(
    ("part", "status", "detail"),
    [
        pytest.param(
            FormPart(name="t", data=b"\xff\xfe bad"),
            400,
            "field 't' is not valid utf-8 text",
            id="bad-utf-8",
        ),
        pytest.param(
            FormPart(name="t", data=b"\xa5", content_type="text/plain; charset=iso-8859-3"),
            400,
            "field 't' is not valid iso-8859-3 text",
            id="bad-iso-8859-3",
        ),
        pytest.param(
            FormPart(name="t", data=b"x", content_type="text/plain; charset=klingon"),
            415,
            "charset 'klingon' of field 't' is not supported",
            id="unknown-charset",
        ),
        pytest.param(
            FormPart(name="t", data=b"x", content_type="text/plain; charset=base64"),
            415,
            "charset 'base64' of field 't' is not supported",
            id="not-a-text-codec",
        ),
        pytest.param(
            FormPart(name="_charset_", data=b"nope"),
            415,
            "charset 'nope' of field '_charset_' is not supported",
            id="bad-charset-field",
        ),
    ],
)
async def test_bad_text(
    aiohttp_client: AiohttpClient, part: FormPart, status: int, detail: str
) -> None:
    client = await aiohttp_client(form_app())
    body = multipart_body(part)
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == status
    assert (await resp.json(content_type=None))["detail"] == detail


async def test_brotli_data_after_its_end() -> None:
    compressed = brotli.compress(b"x")
    body = multipart_body(
        FormPart(
            name="f",
            data=compressed + b"more",
            filename="f",
            content_encoding=None,
            headers=[("Content-Encoding", "br")],
        )
    )
    end = body.data.index(compressed) + len(compressed)
    request = in_process_request([body.data[:end], body.data[end:]], body.headers)
    with pytest.raises(ah.MalformedMultipart, match="field 'f' has bad br data"):
        await ah.read_form(request)
