"""Spooling files to disk: many batches in flight, written at their offsets, hashed in order."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from aiohttp_helpers.uploads.spool import WRITE_BATCH, Spool
from tests.support.net import until
from tests.support.uploads import listing, open_files, upload_app

# Several batches, and an odd tail, so that batches overlap in flight.
SIZE = 5 * WRITE_BATCH + 12_345


@pytest.mark.parametrize(
    "piece", [pytest.param(4093, id="small-pieces"), pytest.param(1 << 20, id="large-pieces")]
)
async def test_read_form_spools_many_batches_whole_and_hashed(
    aiohttp_client: AiohttpClient, tmp_path: Path, piece: int
) -> None:
    spool_dir, dest = tmp_path / "spool", tmp_path / "dest"
    spool_dir.mkdir()
    dest.mkdir()
    payload = os.urandom(SIZE)
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        upload = form.files["f"]
        seen["in_memory"] = upload.in_memory
        seen["sha256"] = upload.sha256
        seen["size"] = upload.size
        seen["saved"] = await upload.save(dest / "f.bin")
        return web.Response(text="ok")

    client = await aiohttp_client(
        upload_app(handler, ah.UploadLimits(spool_max_size=1000, tmp_dir=spool_dir))
    )
    body = multipart_body(FormPart(name="f", data=payload, filename="f.bin"))
    resp = await client.post("/", data=body.stream(piece), headers=body.headers)
    assert resp.status == 200
    assert seen["in_memory"] is False
    assert seen["size"] == SIZE
    assert seen["sha256"] == hashlib.sha256(payload).hexdigest()
    assert (dest / "f.bin").read_bytes() == payload
    assert listing(spool_dir) == []
    assert open_files(tmp_path) == []


async def test_part_save_streams_many_batches_whole(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    payloads = [os.urandom(SIZE), os.urandom(WRITE_BATCH - 1), b""]

    async def handler(request: web.Request) -> web.Response:
        async for part in ah.iter_parts(request):
            await part.save(tmp_path / f"{part.name}.bin")
        return web.Response(text="ok")

    client = await aiohttp_client(upload_app(handler))
    body = multipart_body(
        *[FormPart(name=f"p{i}", data=data, filename="x") for i, data in enumerate(payloads)]
    )
    resp = await client.post("/", data=body.stream(7919), headers=body.headers)
    assert resp.status == 200
    for i, data in enumerate(payloads):
        assert (tmp_path / f"p{i}.bin").read_bytes() == data
    assert sorted(listing(tmp_path)) == ["p0.bin", "p1.bin", "p2.bin"]
    assert open_files(tmp_path) == []


@pytest.mark.parametrize(
    "sha256", [pytest.param(True, id="sha256"), pytest.param(False, id="no-hash")]
)
async def test_spool_of_more_pieces_than_one_writev_takes(tmp_path: Path, sha256: bool) -> None:
    # 700-byte pieces: about 3,000 to a batch, more than IOV_MAX (1,024) buffers.
    payload = os.urandom(2 * WRITE_BATCH + 333)
    spool = Spool(0, os.fspath(tmp_path), sha256=sha256)
    for start in range(0, len(payload), 700):
        await spool.write(payload[start : start + 700])
    data, path, digest = await spool.finish()
    assert data is None
    assert path is not None
    assert await asyncio.to_thread(Path(path).read_bytes) == payload
    assert digest == (hashlib.sha256(payload).hexdigest() if sha256 else "")
    assert open_files(tmp_path) == []
    os.unlink(path)


async def test_spool_discarded_with_batches_in_flight_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(0, os.fspath(tmp_path))
    block = os.urandom(WRITE_BATCH)
    for _ in range(3):
        await spool.write(block)
    spool.discard()
    await until(lambda: not listing(tmp_path) and not open_files(tmp_path), 4.0)
    assert listing(tmp_path) == []
    assert open_files(tmp_path) == []
