"""Smoke test of the uploads example: the form, the streaming endpoint, the download, the script."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from examples import uploads
from tests.support.scripts import run_script

PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)


async def test_form_stream_and_download(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    client = await aiohttp_client(uploads.create_app(tmp_path))
    page = await client.get("/")
    assert page.status == 200
    assert 'enctype="multipart/form-data"' in await page.text()

    body = multipart_body(
        ("title", "holiday"),
        FormPart(name="photos", data=PNG, filename="../beach.png", content_type="image/png"),
    )
    resp = await client.post("/upload", data=body.data, headers=body.headers)
    assert resp.status == 200
    doc = await resp.json()
    assert doc["title"] == "holiday"
    assert [s["name"] for s in doc["saved"]] == ["beach.png"]
    assert (tmp_path / "beach.png").read_bytes() == PNG

    # Not an image: refused, by its declared type and by its content.
    for content_type, data in (("text/html", b"<html>"), ("image/png", b"<html>" + bytes(20))):
        body = multipart_body(
            FormPart(name="photos", data=data, filename="x.png", content_type=content_type)
        )
        resp = await client.post("/upload", data=body.data, headers=body.headers)
        assert resp.status == 415

    body = multipart_body(FormPart(name="blob", data=b"b" * 100_000, filename="blob.bin"))
    resp = await client.post("/api/blobs", data=body.data, headers=body.headers)
    assert resp.status == 201
    assert await resp.json() == [{"name": "blob.bin", "size": 100_000}]

    resp = await client.get("/files")
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) > 100_000
    got = {part.filename: await part.read() async for part in ah.iter_parts(resp)}
    assert got == {"beach.png": PNG, "blob.bin": b"b" * 100_000}


async def test_runs_as_a_script(tmp_path: Path) -> None:
    async with run_script("examples/uploads.py", "--dir", str(tmp_path)) as script:
        assert f"{script.url}/" in await script.first_line()
        await script.serving("/")
        body = multipart_body(
            ("title", "t"),
            FormPart(name="photos", data=PNG, filename="p.png", content_type="image/png"),
        )
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{script.url}/upload", data=body.data, headers=body.headers) as resp,
        ):
            assert resp.status == 200
        assert (tmp_path / "p.png").read_bytes() == PNG
        script.proc.terminate()
        assert await script.exit_code() == 0
