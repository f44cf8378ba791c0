"""Uploads sent by ``curl -F`` from a separate process: limits, types, filenames, chunking."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from pathlib import Path

import pytest

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.apps import Serve
from tests.support.curl import CURL, curl
from tests.support.uploads import form_app, listing

pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed (make sysdeps)")


@pytest.mark.parametrize(
    ("size", "status"),
    [
        pytest.param(99_999, 200, id="under"),
        pytest.param(100_000, 200, id="at"),
        pytest.param(100_001, 413, id="over"),
    ],
)
async def test_file_size(serve: Serve, tmp_path: Path, size: int, status: int) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    limits = ah.UploadLimits(max_file_size=100_000, spool_max_size=1000, tmp_dir=spool)
    url = await serve(form_app(limits))
    payload = os.urandom(size)
    src = tmp_path / "upload.bin"
    src.write_bytes(payload)
    got, doc = await curl("-F", f"f=@{src}", "-F", "title=hello", str(url / "form"))
    assert got == status
    if status == 200:
        assert doc["fields"] == [["title", "hello"]]
        [upload] = doc["files"]
        assert upload["filename"] == "upload.bin"
        assert upload["sha256"] == hashlib.sha256(payload).hexdigest()
        assert base64.b64decode(upload["data"]) == payload
    else:
        assert doc["type"].endswith("file-too-large")
        assert doc["field"] == "f"
        assert doc["limit"] == 100_000
    assert listing(spool) == []


async def test_type_and_filename_options(serve: Serve, tmp_path: Path) -> None:
    url = await serve(form_app())
    src = tmp_path / "pic.bin"
    src.write_bytes(b"\x89PNG\r\n\x1a\n")
    got, doc = await curl(
        "-F", f'f=@{src};type=image/png;filename="my \\"best\\" pic.png"', str(url / "form")
    )
    assert got == 200
    [upload] = doc["files"]
    assert upload["content_type"] == "image/png"
    assert upload["raw_filename"] == 'my "best" pic.png'
    assert upload["filename"] == "my best pic.png"


async def test_filename_star_sent_by_curl(serve: Serve, tmp_path: Path) -> None:
    url = await serve(form_app())
    body = multipart_body(
        FormPart(name="f", data=b"x", filename="../€ rates.txt", filename_style="extended")
    )
    src = tmp_path / "body"
    src.write_bytes(body.data)
    got, doc = await curl(
        "--data-binary", f"@{src}", "-H", f"Content-Type: {body.content_type}", str(url / "form")
    )
    assert got == 200
    [upload] = doc["files"]
    assert upload["raw_filename"] == "../€ rates.txt"
    assert upload["filename"] == "€ rates.txt"


async def test_chunked_upload(serve: Serve, tmp_path: Path) -> None:
    url = await serve(form_app(ah.UploadLimits(max_body_size=50_000)))
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 10_000)
    big = tmp_path / "big.bin"
    big.write_bytes(b"b" * 60_000)
    chunked = ["-H", "Transfer-Encoding: chunked"]
    got, doc = await curl(*chunked, "-F", f"f=@{small}", str(url / "form"))
    assert got == 200
    assert doc["files"][0]["size"] == 10_000
    got, doc = await curl(*chunked, "-F", f"f=@{big}", str(url / "form"))
    assert got == 413
    assert doc["type"].endswith("body-too-large")


async def test_text_answer_for_curl(serve: Serve) -> None:
    url = await serve(form_app(ah.UploadLimits(max_fields=1)))
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "-sS",
        "-H",
        "Accept: text/plain",
        "-F",
        "a=1",
        "-F",
        "b=2",
        str(url / "form"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert out.decode() == ("413 Too many fields: more than 1 text field in the form\n")
