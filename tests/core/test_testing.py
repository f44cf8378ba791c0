"""``aiohttp_helpers.testing``: the bodies it builds, checked against aiohttp's own reader."""

from __future__ import annotations

import asyncio
import base64
import gzip
from typing import Any

import aiohttp
import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from pytest_aiohttp import AiohttpClient

from aiohttp_helpers.testing import FormPart, MultipartBody, multipart_body
from tests.support.uploads import parts_app

# -- multipart bodies --------------------------------------------------------------------


async def _aiohttp_parts(body: MultipartBody) -> list[tuple[str | None, str | None, bytes]]:
    """The body as aiohttp's own MultipartReader reads it: an independent parser."""
    loop = asyncio.get_running_loop()
    stream = StreamReader(BaseProtocol(loop), 2**20, loop=loop)
    stream.feed_data(body.data)
    stream.feed_eof()
    reader = aiohttp.MultipartReader(body.headers, stream)
    out = []
    async for part in reader:
        assert isinstance(part, aiohttp.BodyPartReader)
        out.append((part.name, part.filename, bytes(await part.read(decode=True))))
    return out


async def test_plain_body_matches_aiohttp_reader() -> None:
    body = multipart_body(
        ("title", "héllo"),
        FormPart(name="f", data=b"\x00\x01", filename="a.bin", content_type="application/x-a"),
        FormPart(name="s", data="text as str"),
        boundary="fixed",
    )
    assert body.boundary == "fixed"
    assert body.content_type == "multipart/form-data; boundary=fixed"
    assert body.headers == {"Content-Type": "multipart/form-data; boundary=fixed"}
    assert bytes(body) == body.data
    assert len(body) == len(body.data)
    assert body.data.startswith(b'--fixed\r\nContent-Disposition: form-data; name="title"\r\n\r\n')
    assert body.data.endswith(b"\r\n--fixed--\r\n")
    assert await _aiohttp_parts(body) == [
        ("title", None, "héllo".encode()),
        ("f", "a.bin", b"\x00\x01"),
        ("s", None, b"text as str"),
    ]
    assert [p.name for p in body.parts] == ["title", "f", "s"]


def test_random_boundaries_differ() -> None:
    assert multipart_body(("a", "b")).boundary != multipart_body(("a", "b")).boundary


def test_chunks() -> None:
    body = multipart_body(("a", "b" * 50))
    assert b"".join(body.chunks(7)) == body.data
    assert {len(c) for c in body.chunks(7)[:-1]} == {7}
    sizes = [len(c) for c in body.chunks([1, 2, 3])]
    assert sizes[:6] == [1, 2, 3, 1, 2, 3]
    assert b"".join(body.chunks([1, 2, 3])) == body.data
    with pytest.raises(ValueError, match="chunk sizes must be positive"):
        body.chunks(0)
    with pytest.raises(ValueError, match="chunk sizes must be positive"):
        body.chunks([])


async def test_stream() -> None:
    body = multipart_body(("a", "b" * 50))
    got = [chunk async for chunk in body.stream(10)]
    assert b"".join(got) == body.data
    assert len(got[0]) == 10
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert b"".join([c async for c in body.stream(40, delay=0.01)]) == body.data
    assert loop.time() - started >= 0.01


FILENAME = 'r"é\\s.txt'


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        pytest.param("browser", '; filename="r%22é\\s.txt"', id="browser"),
        pytest.param("escaped", '; filename="r\\"é\\\\s.txt"', id="escaped"),
        pytest.param("percent", '; filename="r%22%C3%A9%5Cs.txt"', id="percent"),
        pytest.param("extended", "; filename*=UTF-8''r%22%C3%A9%5Cs.txt", id="extended"),
        pytest.param(
            "both", "; filename=\"r%22_\\s.txt\"; filename*=UTF-8''r%22%C3%A9%5Cs.txt", id="both"
        ),
    ],
)
async def test_filename_styles(aiohttp_client: AiohttpClient, style: Any, expected: str) -> None:
    body = multipart_body(FormPart(name="f", data=b"x", filename=FILENAME, filename_style=style))
    assert f'Content-Disposition: form-data; name="f"{expected}\r\n'.encode() in body.data
    client = await aiohttp_client(parts_app())
    resp = await client.post("/parts", data=body.data, headers=body.headers)
    [part] = await resp.json()
    # Only the browsers' escapes are undone, and a plain filename wins over filename*.
    received = {"percent": 'r"%C3%A9%5Cs.txt', "both": 'r"_\\s.txt'}
    assert part["raw_filename"] == received.get(style, FILENAME)


@pytest.mark.parametrize(
    ("options", "header", "decoded"),
    [
        pytest.param(
            {"transfer_encoding": "base64"}, "Content-Transfer-Encoding: base64", True, id="base64"
        ),
        pytest.param(
            {"transfer_encoding": "quoted-printable"},
            "Content-Transfer-Encoding: quoted-printable",
            True,
            id="qp",
        ),
        pytest.param(
            {"transfer_encoding": "8bit"}, "Content-Transfer-Encoding: 8bit", True, id="8bit"
        ),
        pytest.param({"content_encoding": "gzip"}, "Content-Encoding: gzip", False, id="gzip"),
        pytest.param(
            {"content_encoding": "x-gzip"}, "Content-Encoding: x-gzip", False, id="x-gzip"
        ),
        pytest.param(
            {"content_encoding": "deflate"}, "Content-Encoding: deflate", False, id="deflate"
        ),
        pytest.param({"content_encoding": "br"}, "Content-Encoding: br", False, id="br"),
        pytest.param({"content_encoding": "zstd"}, "Content-Encoding: zstd", False, id="zstd"),
        pytest.param(
            {"content_encoding": "identity"}, "Content-Encoding: identity", True, id="identity"
        ),
    ],
)
async def test_encodings_are_applied(options: dict[str, str], header: str, decoded: bool) -> None:
    data = b"line one\r\nline = two\x00\xff" * 20
    body = multipart_body(FormPart(name="f", data=data, **options), boundary="b")  # type: ignore[arg-type]
    assert f"\r\n{header}\r\n".encode() in body.data
    if decoded:
        # aiohttp decodes transfer encodings (it leaves Content-Encoding of form data alone).
        [(_, _, got)] = await _aiohttp_parts(body)
        assert got == data


def test_encoding_chain_and_refusals() -> None:
    body = multipart_body(FormPart(name="f", data=b"abc", content_encoding="gzip, identity"))
    start = body.data.index(b"\r\n\r\n") + 4
    assert gzip.decompress(body.data[start : body.data.index(b"\r\n--", start)]) == b"abc"
    with pytest.raises(ValueError, match="cannot apply Content-Encoding 'lzma'"):
        multipart_body(FormPart(name="f", data=b"x", content_encoding="lzma"))
    with pytest.raises(ValueError, match="cannot apply Content-Transfer-Encoding 'uuencode'"):
        multipart_body(FormPart(name="f", data=b"x", transfer_encoding="uuencode"))


def test_base64_lines_are_crlf() -> None:
    body = multipart_body(FormPart(name="f", data=bytes(200), transfer_encoding="base64"))
    start = body.data.index(b"\r\n\r\n") + 4
    encoded = body.data[start : body.data.index(b"\r\n--", start)]
    assert b"\r\n" in encoded
    assert base64.b64decode(encoded) == bytes(200)


def test_broken_bodies() -> None:
    good = multipart_body(("a", "b"), boundary="b")
    assert multipart_body(("a", "b"), boundary="b", final_boundary=False).data == good.data[:-7]
    assert multipart_body(("a", "b"), boundary="b", truncate=10).data == good.data[:10]
    lf = multipart_body(("a", "b"), boundary="b", newline=b"\n").data
    assert b"\r" not in lf
    mismatch = multipart_body(("a", "b"), boundary="b", header_boundary="other")
    assert mismatch.content_type == "multipart/form-data; boundary=other"
    assert mismatch.data == good.data
    framed = multipart_body(("a", "b"), boundary="b", preamble=b"PRE", epilogue=b"EPI")
    assert framed.data == b"PRE\r\n" + good.data + b"EPI"
    raw = multipart_body(FormPart(raw_headers=b"Broken header", data=b"d"), boundary="b")
    assert raw.data == b"--b\r\nBroken header\r\n\r\nd\r\n--b--\r\n"
    headless = multipart_body(FormPart(data=b"d"), boundary="b")
    assert headless.data == b"--b\r\n\r\nd\r\n--b--\r\n"


def test_quoted_boundary_and_nesting() -> None:
    body = multipart_body(
        FormPart(
            name="n",
            parts=[FormPart(data=b"x", filename="x.txt")],
            subtype="related",
            boundary="inner",
        ),
        boundary="a:b",
        subtype="mixed",
    )
    assert body.content_type == 'multipart/mixed; boundary="a:b"'
    assert b"Content-Type: multipart/related; boundary=inner\r\n" in body.data
    assert (
        b'--inner\r\nContent-Disposition: file; filename="x.txt"\r\n\r\nx\r\n--inner--' in body.data
    )


async def test_quoted_boundary_parses(aiohttp_client: AiohttpClient) -> None:
    body = multipart_body(FormPart(name="x", data=b"v"), boundary="a:b c")
    assert body.content_type == 'multipart/form-data; boundary="a:b c"'
    client = await aiohttp_client(parts_app())
    resp = await client.post("/parts", data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())[0]["name"] == "x"
