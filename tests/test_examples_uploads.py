"""Smoke test of the uploads example: the form, the streaming endpoint, the download, the script."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import aiohttp
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from examples import uploads

ROOT = Path(__file__).resolve().parent.parent
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_runs_as_a_script(tmp_path: Path) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "uploads.py"),
        "--port",
        str(port),
        "--dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert f"http://127.0.0.1:{port}/" in line.decode()
        body = multipart_body(
            ("title", "t"),
            FormPart(name="photos", data=PNG, filename="p.png", content_type="image/png"),
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.post(
                        f"http://127.0.0.1:{port}/upload", data=body.data, headers=body.headers
                    ) as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the example never answered")
        assert (tmp_path / "p.png").read_bytes() == PNG
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
