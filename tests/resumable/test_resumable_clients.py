"""Resumable uploads with tuspy (the tus Python client): cut connections, restarts, two servers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from tests.support.apps import Serve
from tests.support.resumable_app import create_app, held_patch, let_held_patch_win
from tests.support.resumable_proxy import CuttingProxy
from tests.support.tus import TUS, done_uploads, resumable_gunicorn, resumable_server, tuspy_upload

MiB = 2**20


def _write(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "sha1-checksum"])
async def test_tuspy_cut_connection_then_resume(
    serve: Serve, tmp_path: Path, checksum: bool
) -> None:
    size = 4 * MiB
    source = tmp_path / "big.bin"
    digest = _write(source, size)
    base = await serve(create_app(tmp_path / "partial", tmp_path / "saved"))
    assert base.port is not None
    storage = tmp_path / "urls.json"
    # The third 1 MiB chunk is cut halfway by the proxy: tuspy fails.
    async with CuttingProxy(base.port, cut_after=int(2.5 * MiB)) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}/files"
        with pytest.raises((TusUploadFailed, TusCommunicationError)):
            await asyncio.to_thread(
                tuspy_upload, endpoint, source, storage, chunk=MiB, checksum=checksum
            )
        assert proxy.cut
        # A new uploader finds the URL it stored and asks the server where to resume.
        url, started = await asyncio.to_thread(
            tuspy_upload, endpoint, source, storage, chunk=MiB, checksum=checksum
        )
    if checksum:
        # A chunk its checksum cannot vouch for is discarded whole.
        assert started == 2 * MiB
    else:
        # The bytes of the cut chunk that arrived were kept: more than two whole chunks.
        assert 2 * MiB < started < int(2.5 * MiB)
    [saved] = await done_uploads(str(base))
    assert saved["sha256"] == digest
    assert saved["size"] == size
    assert saved["filename"] == "big.bin"
    assert url.rsplit("/", 1)[1] + ".json" in os.listdir(tmp_path / "partial")


async def test_tuspy_resumes_after_server_killed_mid_patch(tmp_path: Path) -> None:
    size = 6 * MiB
    source = tmp_path / "video.bin"
    digest = _write(source, size)
    partial, saved = tmp_path / "partial", tmp_path / "saved"
    storage = tmp_path / "urls.json"
    async with resumable_server(partial, saved) as (base, proc):
        url, _ = await asyncio.to_thread(
            tuspy_upload, base + "/files", source, storage, chunk=MiB, stop_at=2 * MiB
        )
        path = "/files/" + url.rsplit("/", 1)[1]
        # A PATCH in flight when the server is killed (SIGKILL: no cleanup at all).
        reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
        writer.write(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 2097152\r\n"
                f"Content-Length: {MiB}\r\n\r\n"
            ).encode()
            + source.read_bytes()[2 * MiB : 2 * MiB + MiB // 2]
        )
        await writer.drain()
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        del reader
    # Another server process on the same directory, on another port.
    async with resumable_server(partial, saved) as (base, _proc):
        new_url = base + path
        _, started = await asyncio.to_thread(
            tuspy_upload, base + "/files", source, storage, chunk=MiB, url=new_url
        )
        assert 2 * MiB <= started <= 2 * MiB + MiB // 2
        [done] = await done_uploads(base)
    assert done["sha256"] == digest
    assert (saved / digest).read_bytes() == source.read_bytes()


async def test_two_server_processes_one_upload(tmp_path: Path) -> None:
    partial, saved = tmp_path / "partial", tmp_path / "saved"
    async with (
        resumable_server(partial, saved) as (first, _p1),
        resumable_server(partial, saved) as (second, _p2),
        aiohttp.ClientSession() as session,
    ):
        async with session.post(first + "/files", headers={**TUS, "Upload-Length": "20"}) as r:
            path = r.headers["Location"]
        release = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield b"A" * 5
            await release.wait()
            yield b"A" * 5

        headers = {**TUS, "Content-Type": "application/offset+octet-stream"}
        winner = asyncio.ensure_future(
            session.patch(first + path, headers={**headers, "Upload-Offset": "0"}, data=slow())
        )
        part = partial / (path.rsplit("/", 1)[1] + ".part")
        for _ in range(200):
            if part.stat().st_size == 5:
                break
            await asyncio.sleep(0.02)
        # The other process sees the lock: 423, and nothing it sent is written.
        async with session.patch(
            second + path, headers={**headers, "Upload-Offset": "0"}, data=b"B" * 10
        ) as r:
            assert r.status == 423
        async with session.delete(second + path, headers=TUS) as r:
            assert r.status == 423
        release.set()
        async with await winner as r:
            assert r.status == 204
            assert r.headers["Upload-Offset"] == "10"
        # The second process continues where the first stopped.
        async with session.head(second + path, headers=TUS) as r:
            assert r.headers["Upload-Offset"] == "10"
        async with session.patch(
            second + path, headers={**headers, "Upload-Offset": "10"}, data=b"C" * 10
        ) as r:
            assert r.status == 204
        [done] = await done_uploads(second)
        assert done["sha256"] == hashlib.sha256(b"A" * 10 + b"C" * 10).hexdigest()
        assert await done_uploads(first) == []


async def test_full_disk_is_507_and_the_chunk_is_discarded(tmp_path: Path) -> None:
    partial, saved = tmp_path / "partial", tmp_path / "saved"
    async with (
        resumable_server(partial, saved, fsize=MiB) as (base, proc),
        aiohttp.ClientSession() as session,
    ):
        async with session.post(
            base + "/files", headers={**TUS, "Upload-Length": str(3 * MiB)}
        ) as r:
            path = r.headers["Location"]
        headers = {**TUS, "Content-Type": "application/offset+octet-stream"}
        async with session.patch(
            base + path, headers={**headers, "Upload-Offset": "0"}, data=io.BytesIO(b"x" * 2 * MiB)
        ) as r:
            assert r.status == 507
            assert (await r.json())["title"] == "Insufficient Storage"
        async with session.head(base + path, headers=TUS) as r:
            assert r.headers["Upload-Offset"] == "0"
        part = partial / (path.rsplit("/", 1)[1] + ".part")
        assert part.stat().st_size == 0
        async with session.patch(
            base + path, headers={**headers, "Upload-Offset": "0"}, data=b"y" * 1000
        ) as r:
            assert r.status == 204
        assert proc.returncode is None


async def test_gunicorn_two_workers_share_uploads(tmp_path: Path) -> None:
    partial, saved = tmp_path / "partial", tmp_path / "saved"
    data = os.urandom(200 * 10_000)
    headers = {**TUS, "Content-Type": "application/offset+octet-stream"}
    async with resumable_gunicorn(partial, saved) as base:
        # A new connection per request, so that both workers take part.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(
                base + "/files", headers={**TUS, "Upload-Length": str(len(data))}
            ) as r:
                url = base + r.headers["Location"]
            workers: set[str] = set()
            offset = 0
            while offset < len(data):
                async with session.patch(
                    url,
                    headers={**headers, "Upload-Offset": str(offset)},
                    data=data[offset : offset + 10_000],
                ) as r:
                    assert r.status == 204, await r.text()
                    workers.add(r.headers["X-Worker"])
                    offset = int(r.headers["Upload-Offset"])
            assert len(workers) == 2, "every PATCH went to one worker"
            # Whichever worker completed it saved it.
            assert (saved / hashlib.sha256(data).hexdigest()).read_bytes() == data
            # A PATCH held open in one worker: the other requests, in either worker, get 423.
            async with session.post(base + "/files", headers={**TUS, "Upload-Length": "20"}) as r:
                url = base + r.headers["Location"]
            part = partial / (url.rsplit("/", 1)[1] + ".part")
            winner, release = await held_patch(session, url, part)
            for _ in range(6):
                async with session.patch(
                    url, headers={**headers, "Upload-Offset": "0"}, data=b"B" * 10
                ) as r:
                    assert r.status == 423
            await let_held_patch_win(winner, release, part)
