"""Types recognised from leading bytes, and type patterns, through ``allowed_types``."""

from __future__ import annotations

import pytest
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from aiohttp_helpers.uploads.sniff import SNIFF_BYTES, sniff, type_allowed
from tests.support.uploads import form_app

SAMPLES = {
    "image/png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
    "image/jpeg": b"\xff\xd8\xff\xe0\0\x10JFIF",
    "image/gif": b"GIF89a\x01\0\x01\0",
    "image/webp": b"RIFF\x24\0\0\0WEBPVP8 ",
    "audio/wav": b"RIFF\x24\0\0\0WAVEfmt ",
    "image/avif": b"\0\0\0\x1cftypavif\0\0",
    "video/mp4": b"\0\0\0\x18ftypisom\0\0",
    "video/quicktime": b"\0\0\0\x14ftypqt  \0\0",
    "application/pdf": b"%PDF-1.7\n",
    "application/zip": b"PK\x03\x04\x14\0",
    "application/gzip": b"\x1f\x8b\x08\0",
    "audio/mpeg": b"\xff\xfb\x90\x64\0",
    "audio/ogg": b"OggS\0\x02",
    "video/webm": b"\x1aE\xdf\xa3\x9fB",
    "font/woff2": b"wOF2\0\x01\0\0",
}


@pytest.mark.parametrize(
    ("media_type", "head"), [pytest.param(t, h, id=t) for t, h in SAMPLES.items()]
)
def test_sniff(media_type: str, head: bytes) -> None:
    assert sniff(head[:SNIFF_BYTES]) == media_type


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"plain text", id="text"),
        pytest.param(b"RIFF\0\0\0\0JUNK", id="unknown-riff"),
        pytest.param(b"\xff\x00", id="not-mpeg-sync"),
    ],
)
def test_unrecognised(head: bytes) -> None:
    assert sniff(head) is None


@pytest.mark.parametrize(
    ("media_type", "patterns", "allowed"),
    [
        pytest.param("image/png", ["image/png"], True, id="exact"),
        pytest.param("image/png", ["image/*"], True, id="wildcard"),
        pytest.param("image/png", ["*/*"], True, id="anything"),
        pytest.param("imagex/png", ["image/*"], False, id="prefix-is-not-a-type"),
        pytest.param("text/plain", ["image/png", "image/*"], False, id="refused"),
    ],
)
def test_type_allowed(media_type: str, patterns: list[str], allowed: bool) -> None:
    assert type_allowed(media_type, patterns) is allowed


@pytest.mark.parametrize(
    ("media_type", "head"), [pytest.param(t, h, id=t) for t, h in SAMPLES.items()]
)
async def test_sniffed_upload(aiohttp_client: AiohttpClient, media_type: str, head: bytes) -> None:
    limits = ah.UploadLimits(
        allowed_types={"f": [media_type.split("/")[0] + "/*", "font/*"]},
        sniff_types=frozenset({"f"}),
    )
    client = await aiohttp_client(form_app(limits))
    body = multipart_body(
        FormPart(name="f", data=head + b"\0" * 20, filename="x", content_type=media_type)
    )
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
