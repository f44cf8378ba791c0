"""Temporary files and descriptors never outlive the request: errors, disconnects, cancellation."""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient, AiohttpServer
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.apps import Serve
from tests.support.net import until
from tests.support.uploads import listing, open_fds, open_files, upload_app

BIG = FormPart(name="f", data=os.urandom(3 << 20), filename="big.bin")


def _app(tmp_path: Path, seen: list[BaseException]) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        try:
            await ah.read_form(request)
        except BaseException as exc:
            seen.append(exc)
            raise
        return web.Response(text="complete")

    app = upload_app(handler, ah.UploadLimits(spool_max_size=0, tmp_dir=tmp_path))
    return app


async def _start(
    kind: str, app: web.Application, serve: Serve, aiohttp_server: AiohttpServer
) -> URL:
    if kind == "run_app":
        return await serve(app)
    server: TestServer = await aiohttp_server(app)
    return server.make_url("/")


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("run_app", id="no-handler-cancellation"),
        pytest.param("test_server", id="handler-cancellation"),
    ],
)
async def test_client_disconnect_mid_file(
    kind: str,
    tmp_path: Path,
    serve: Serve,
    aiohttp_server: AiohttpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp_helpers")
    seen: list[BaseException] = []
    url = await _start(kind, _app(tmp_path, seen), serve, aiohttp_server)
    body = multipart_body(BIG)
    before = open_fds()
    _, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {body.content_type}\r\n"
        f"Content-Length: {len(body.data)}\r\n\r\n".encode()
    )
    writer.write(body.data[: 1 << 20])
    await writer.drain()
    # The upload is being spooled to disk when the client goes away.
    await until(lambda: len(listing(tmp_path)) == 1)
    writer.close()
    await writer.wait_closed()
    await until(lambda: bool(seen) and listing(tmp_path) == [])
    await until(lambda: open_fds() <= before)
    assert open_files(tmp_path) == []
    if kind == "run_app":
        assert isinstance(seen[0], ConnectionError)
        assert "client went away during POST /" in caplog.text
    else:
        assert isinstance(seen[0], asyncio.CancelledError | ConnectionError)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_cancelled_read_removes_its_files(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    async def handler(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(0.3):
                await ah.read_form(request)
        except TimeoutError:
            # A write that was in flight finishes first, then its file goes.
            await until(lambda: listing(tmp_path) == [], within=2)
            return web.json_response({"open": open_files(tmp_path)})
        raise AssertionError("the upload should not have finished")

    client = await aiohttp_client(
        upload_app(handler, ah.UploadLimits(spool_max_size=0, tmp_dir=tmp_path))
    )
    body = multipart_body(BIG)
    resp = await client.post("/", data=body.stream(256 * 1024, delay=0.05), headers=body.headers)
    assert resp.status == 200
    assert await resp.json() == {"open": []}


async def test_error_after_a_spooled_file(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    seen: list[BaseException] = []
    client = await aiohttp_client(_app(tmp_path, seen))
    body = multipart_body(BIG, ("note", "x" * (2 << 20)))
    resp = await client.post("/", data=io.BytesIO(body.data), headers=body.headers)
    assert resp.status == 413
    assert isinstance(seen[0], ah.FieldTooLarge)
    assert listing(tmp_path) == []
    assert open_files(tmp_path) == []


@pytest.mark.parametrize(
    "handler_kind",
    [pytest.param("read_form", id="read_form"), pytest.param("save", id="part-save")],
)
async def test_disk_full_is_507(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    handler_kind: str,
) -> None:
    real_write, real_pwritev = os.write, os.pwritev

    def full(fd: int) -> bool:
        # A full disk, for files under tmp_path only.
        return os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path))

    def write(fd: int, data: Any) -> int:
        if full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def pwritev(fd: int, buffers: Any, offset: int) -> int:
        if full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwritev(fd, buffers, offset)

    async def save(request: web.Request) -> web.Response:
        async for part in ah.iter_parts(request):
            await part.save(tmp_path / "dest.bin")
        raise AssertionError

    seen: list[BaseException] = []
    app = _app(tmp_path, seen)
    app.router.add_post("/save", save)
    client = await aiohttp_client(app)
    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "pwritev", pwritev)
    body = multipart_body(BIG)
    path = "/" if handler_kind == "read_form" else "/save"
    resp = await client.post(path, data=io.BytesIO(body.data), headers=body.headers)
    monkeypatch.undo()
    assert resp.status == 507
    doc = await resp.json(content_type=None)
    assert doc["detail"] == "no room left to store the upload"
    await until(lambda: listing(tmp_path) == [])
    assert open_files(tmp_path) == []


async def test_part_save_is_atomic(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        sizes = {}
        async for part in ah.iter_parts(request):
            assert part.filename is not None
            await part.save(tmp_path / part.filename)
            sizes[part.filename] = part.size
        return web.json_response(sizes)

    client = await aiohttp_client(upload_app(handler, ah.UploadLimits(max_file_size=1 << 20)))
    small = os.urandom(5000)
    body = multipart_body(
        FormPart(name="a", data=small, filename="small.bin"),
        FormPart(name="b", data=b"", filename="empty.bin"),
    )
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert await resp.json() == {"small.bin": 5000, "empty.bin": 0}
    assert (tmp_path / "small.bin").read_bytes() == small
    assert (tmp_path / "empty.bin").read_bytes() == b""
    # Over the limit half way: the destination never appears, nothing is left beside it.
    body = multipart_body(BIG)
    resp = await client.post("/", data=io.BytesIO(body.data), headers=body.headers)
    assert resp.status == 413
    assert listing(tmp_path) == ["empty.bin", "small.bin"]
    assert open_files(tmp_path) == []
