"""Resumable uploads through raw aiohttp-client requests: both protocols, every answer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from tests.support.net import until
from tests.support.resumable_app import (
    DONE_KEY,
    UPLOADS_KEY,
    create_app,
    held_patch,
    let_held_patch_win,
)

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
PARTIAL = {"Content-Type": "application/partial-upload"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


@pytest.fixture
def make(aiohttp_client: AiohttpClient, tmp_path: Path) -> MakeClient:
    async def build(limits: ah.UploadLimits | None = None, **options: Any) -> Client:
        app = create_app(tmp_path / "partial", tmp_path / "saved", limits=limits, **options)
        return await aiohttp_client(app)

    return build


@pytest.fixture
async def client(make: MakeClient) -> Client:
    return await make()


async def create(client: Client, length: int | None, **extra: str) -> str:
    headers = {**TUS, **extra}
    if length is not None:
        headers["Upload-Length"] = str(length)
    async with client.post("/files", headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        location = resp.headers["Location"]
        assert location.startswith("/files/")
        return location


async def patch(client: Client, url: str, offset: int, data: bytes, **extra: str) -> Any:
    headers = {**STREAM, "Upload-Offset": str(offset), **extra}
    async with client.patch(url, data=data, headers=headers) as resp:
        await resp.read()
        return resp


def done(client: Client) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = client.app[DONE_KEY]
    return result


def uploads_of(client: Client) -> ah.ResumableUploads:
    result: ah.ResumableUploads = client.app[UPLOADS_KEY]
    return result


async def problem(resp: Any) -> dict[str, Any]:
    assert resp.content_type == "application/problem+json"
    doc: dict[str, Any] = json.loads(await resp.read())
    return doc


# -- tus 1.0 --------------------------------------------------------------------------


async def test_options_lists_versions_extensions_and_limits(make: MakeClient) -> None:
    client = await make(ah.UploadLimits(max_file_size=12345))
    async with client.options("/files") as resp:
        assert resp.status == 204
        assert resp.headers["Tus-Version"] == "1.0.0"
        assert resp.headers["Tus-Max-Size"] == "12345"
        extensions = resp.headers["Tus-Extension"].split(",")
        assert {"creation", "creation-with-upload", "termination", "expiration", "checksum"} <= set(
            extensions
        )
        assert "sha1" in resp.headers["Tus-Checksum-Algorithm"].split(",")
        assert resp.headers["Upload-Limit"].startswith("max-size=12345")


async def test_tus_upload_in_chunks_is_handed_over(client: Client, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    url = await create(client, len(data), **{"Upload-Metadata": meta(filename="../x/ré.bin")})
    async with client.head(url, headers=TUS) as resp:
        assert resp.status == 200
        assert resp.headers["Upload-Offset"] == "0"
        assert resp.headers["Upload-Length"] == str(len(data))
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Tus-Resumable"] == "1.0.0"
        assert "Upload-Expires" in resp.headers
    offset = 0
    for size in (1, 70_000, 100_000, 129_999):
        resp = await patch(client, url, offset, data[offset : offset + size])
        assert resp.status == 204
        offset += size
        assert resp.headers["Upload-Offset"] == str(offset)
    assert offset == len(data)
    [saved] = done(client)
    assert saved["sha256"] == hashlib.sha256(data).hexdigest()
    assert saved["filename"] == "ré.bin"
    assert saved["raw_filename"] == "../x/ré.bin"
    assert read(saved["path"]) == data
    # Nothing left in the partial directory but the completion record.
    left = sorted(p.name for p in (tmp_path / "partial").iterdir() if p.is_file())
    assert left == [url.rsplit("/", 1)[1] + ".json"]
    async with client.head(url, headers=TUS) as resp:
        assert resp.headers["Upload-Offset"] == str(len(data))
    # The last PATCH again (its answer was lost, say): acknowledged, nothing changes.
    resp = await patch(client, url, len(data), b"")
    assert resp.status == 204
    assert len(done(client)) == 1


async def test_unsaved_upload_is_removed_after_the_request(
    aiohttp_client: AiohttpClient, tmp_path: Path, app: web.Application, helpers: ah.Helpers
) -> None:
    ah.add_resumable_uploads(app, "/up", directory=tmp_path)
    seen: list[Path] = []

    async def look(request: web.Request, uploaded: ah.UploadedFile) -> None:
        assert uploaded.path is not None
        assert uploaded.path.exists()
        seen.append(uploaded.path)

    helpers.signals.on_upload.append(look)
    client = await aiohttp_client(app)
    async with client.post("/up", headers={**STREAM, "Upload-Length": "5"}, data=b"hello") as resp:
        assert resp.status == 201
        assert resp.headers["Upload-Offset"] == "5"
    [path] = seen
    assert not path.exists()


async def test_creation_with_upload_and_deferred_length(client: Client) -> None:
    async with client.post(
        "/files", headers={**STREAM, "Upload-Defer-Length": "1"}, data=b"abc"
    ) as resp:
        assert resp.status == 201
        assert resp.headers["Upload-Offset"] == "3"
        url = resp.headers["Location"]
    async with client.head(url, headers=TUS) as resp:
        assert resp.headers["Upload-Defer-Length"] == "1"
        assert "Upload-Length" not in resp.headers
    resp = await patch(client, url, 3, b"def", **{"Upload-Length": "6"})
    assert resp.status == 204
    [saved] = done(client)
    assert saved["size"] == 6
    assert saved["sha256"] == hashlib.sha256(b"abcdef").hexdigest()


async def test_checksum_accepted(client: Client) -> None:
    url = await create(client, 4)
    digest = base64.b64encode(hashlib.sha1(b"data").digest()).decode()
    resp = await patch(client, url, 0, b"data", **{"Upload-Checksum": f"sha1 {digest}"})
    assert resp.status == 204
    assert done(client)[0]["size"] == 4


async def test_termination(client: Client, tmp_path: Path) -> None:
    url = await create(client, 10)
    await patch(client, url, 0, b"12345")
    async with client.delete(url, headers=TUS) as resp:
        assert resp.status == 204
    assert [p for p in (tmp_path / "partial").iterdir() if p.is_file()] == []
    async with client.head(url, headers=TUS) as resp:
        assert resp.status == 404
    async with client.delete(url, headers=TUS) as resp:
        assert resp.status == 404


async def test_method_override(client: Client) -> None:
    url = await create(client, 3)
    headers = {**STREAM, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"}
    async with client.post(url, headers=headers, data=b"xyz") as resp:
        assert resp.status == 204
    assert done(client)[0]["size"] == 3


# -- the IETF draft -------------------------------------------------------------------


def draft(version: int, **extra: str) -> dict[str, str]:
    return {"Upload-Draft-Interop-Version": str(version), **extra}


@pytest.mark.parametrize("version", [5, 6], ids=["interop-5", "interop-6"])
async def test_draft_upload(client: Client, version: int) -> None:
    data = os.urandom(50_000)
    headers = draft(version, **{"Upload-Complete": "?0", "Upload-Length": str(len(data))})
    async with client.post("/files", headers=headers, data=data[:1000]) as resp:
        assert resp.status == 201
        assert resp.headers["Upload-Offset"] == "1000"
        assert resp.headers["Upload-Complete"] == "?0"
        assert resp.headers["Upload-Draft-Interop-Version"] == str(version)
        assert "Tus-Resumable" not in resp.headers
        url = resp.headers["Location"]
    async with client.head(url, headers=draft(version)) as resp:
        assert resp.status == 204
        assert resp.headers["Upload-Offset"] == "1000"
        assert resp.headers["Upload-Complete"] == "?0"
    kind = {"Content-Type": "application/partial-upload"} if version == 6 else {}
    headers = draft(version, **{"Upload-Offset": "1000", "Upload-Complete": "?1"}, **kind)
    async with client.patch(url, headers=headers, data=data[1000:]) as resp:
        assert resp.status == 204, await resp.text()
        assert resp.headers["Upload-Complete"] == "?1"
    assert done(client)[0]["sha256"] == hashlib.sha256(data).hexdigest()
    async with client.head(url, headers=draft(version)) as resp:
        assert resp.headers["Upload-Complete"] == "?1"
        assert resp.headers["Upload-Offset"] == str(len(data))


async def test_draft_whole_upload_in_one_request_takes_its_type(client: Client) -> None:
    headers = draft(6, **{"Upload-Complete": "?1", "Content-Type": "image/png"})
    async with client.post("/files", headers=headers, data=PNG) as resp:
        assert resp.status == 201
        assert resp.headers["Upload-Complete"] == "?1"
    [saved] = done(client)
    assert saved["content_type"] == "image/png"
    assert saved["size"] == len(PNG)


async def test_draft_interop_3_upload_incomplete(client: Client) -> None:
    async with client.post(
        "/files", headers=draft(3, **{"Upload-Incomplete": "?1"}), data=b"abc"
    ) as resp:
        assert resp.status == 201
        assert resp.headers["Upload-Incomplete"] == "?1"
        url = resp.headers["Location"]
    headers = draft(3, **{"Upload-Offset": "3", "Upload-Incomplete": "?0"})
    async with client.patch(url, headers=headers, data=b"def") as resp:
        assert resp.status == 204
        assert resp.headers["Upload-Incomplete"] == "?0"
    assert done(client)[0]["size"] == 6


# -- every error answer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "match"),
    [
        ({"Upload-Length": "1"}, 412, "neither Tus-Resumable"),
        ({"Tus-Resumable": "0.2.2", "Upload-Length": "1"}, 412, "is not served"),
        ({"Upload-Draft-Interop-Version": "99", "Upload-Complete": "?1"}, 412, "not served"),
        (TUS, 400, "Upload-Length: missing"),
        ({**TUS, "Upload-Length": "-1"}, 400, "not a non-negative integer"),
        ({**TUS, "Upload-Length": "1e3"}, 400, "not a non-negative integer"),
        ({**TUS, "Upload-Defer-Length": "2"}, 400, "must be 1"),
        ({**TUS, "Upload-Length": "2000"}, 413, "larger than 1000 bytes"),
        ({**TUS, "Upload-Length": "1", "Upload-Metadata": "filename %%%"}, 400, "not base64"),
        (
            {
                **TUS,
                "Upload-Length": "1",
                "Upload-Metadata": "a " + base64.b64encode(b"\xff").decode(),
            },
            400,
            "UTF-8",
        ),
        ({**TUS, "Upload-Length": "1", "Upload-Metadata": "a,a"}, 400, "given twice"),
        ({**TUS, "Upload-Length": "1", "Upload-Metadata": "a b c"}, 400, "comma-separated"),
        (
            {**TUS, "Upload-Length": "1", "Upload-Metadata": ",".join(f"k{i}" for i in range(40))},
            400,
            "more than 32 keys",
        ),
        ({**TUS, "Upload-Length": "1", "Upload-Metadata": "k" * 5000}, 400, "longer than 4096"),
        (
            {**TUS, "Upload-Length": "1", "Upload-Metadata": meta(filetype="text/html")},
            415,
            "not allowed",
        ),
        (
            {**TUS, "Upload-Length": "1", "Upload-Metadata": meta(filetype="nonsense")},
            400,
            "not a media type",
        ),
        ({"Upload-Draft-Interop-Version": "6"}, 400, "Upload-Complete: missing"),
        ({"Upload-Draft-Interop-Version": "6", "Upload-Complete": "yes"}, 400, "not \\?0 or \\?1"),
    ],
    ids=[
        "no-protocol",
        "tus-version",
        "interop-version",
        "no-length",
        "negative-length",
        "float-length",
        "defer-not-1",
        "length-over-max",
        "metadata-not-base64",
        "metadata-not-utf8",
        "metadata-key-twice",
        "metadata-three-fields",
        "metadata-too-many-keys",
        "metadata-too-long",
        "type-not-allowed",
        "type-not-a-type",
        "draft-no-complete",
        "draft-bad-boolean",
    ],
)
async def test_creation_refused(
    make: MakeClient, tmp_path: Path, headers: dict[str, str], status: int, match: str
) -> None:
    limits = ah.UploadLimits(max_file_size=1000, allowed_types={"file": ["image/*", "text/plain"]})
    client = await make(limits)
    async with client.post("/files", headers=headers) as resp:
        assert resp.status == status
        doc = await problem(resp)
        assert doc["status"] == status
        assert __import__("re").search(match, doc["detail"]), doc
        if status == 412:
            assert resp.headers["Tus-Version"] == "1.0.0"
    assert [p for p in (tmp_path / "partial").iterdir() if p.is_file()] == []


async def test_creation_body_needs_the_offset_stream_type(client: Client) -> None:
    async with client.post(
        "/files", headers={**TUS, "Upload-Length": "3", "Content-Type": "text/plain"}, data=b"abc"
    ) as resp:
        assert resp.status == 415


@pytest.mark.parametrize(
    "upload_id",
    ["0" * 31, "../../etc/passwd", "G" * 32, "0" * 32],
    ids=["short", "dots", "hex", "absent"],
)
async def test_unknown_upload_is_404(client: Client, upload_id: str) -> None:
    async with client.head(f"/files/{upload_id}", headers=TUS) as resp:
        assert resp.status == 404
    resp = await patch(client, f"/files/{upload_id}", 0, b"x")
    assert resp.status == 404


async def test_patch_refusals(client: Client, tmp_path: Path) -> None:
    url = await create(client, 10)
    await patch(client, url, 0, b"1234")
    # 409: wrong offset, with the right one in a header and in the problem document.
    resp = await patch(client, url, 2, b"xx")
    assert resp.status == 409
    assert resp.headers["Upload-Offset"] == "4"
    async with client.patch(url, headers={**STREAM, "Upload-Offset": "9"}, data=b"x") as resp409:
        doc = await problem(resp409)
        assert doc["expected-offset"] == 4
        assert doc["provided-offset"] == 9
        assert doc["type"].endswith("#mismatching-upload-offset")
    # 415: not the offset stream.
    async with client.patch(
        url, headers={**TUS, "Upload-Offset": "4", "Content-Type": "text/plain"}, data=b"x"
    ) as resp:
        assert resp.status == 415
    # 400: no offset; an offset that does not parse.
    async with client.patch(url, headers=STREAM, data=b"x") as resp:
        assert resp.status == 400
    resp = await patch(client, url, 0, b"", **{"Upload-Offset": "0x4"})
    assert resp.status == 400
    # 460: checksum mismatch; the chunk is discarded.
    bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    resp = await patch(client, url, 4, b"5678", **{"Upload-Checksum": f"sha1 {bad}"})
    assert resp.status == 460
    # 400: unknown algorithm, digest of the wrong size.
    resp = await patch(client, url, 4, b"5678", **{"Upload-Checksum": "crc32 AAAA"})
    assert resp.status == 400
    resp = await patch(client, url, 4, b"5678", **{"Upload-Checksum": "sha1 AAAA"})
    assert resp.status == 400
    # 400: past the declared length; nothing of it is stored.
    resp = await patch(client, url, 4, b"567890abcdef")
    assert resp.status == 400
    assert (await problem_of(client, url, 4, b"567890abcdef"))["type"].endswith(
        "#inconsistent-upload-length"
    )
    # 400: a different Upload-Length than the one declared.
    resp = await patch(client, url, 4, b"56", **{"Upload-Length": "11"})
    assert resp.status == 400
    async with client.head(url, headers=TUS) as resp:
        assert resp.headers["Upload-Offset"] == "4"
    part = tmp_path / "partial" / (url.rsplit("/", 1)[1] + ".part")
    assert part.read_bytes() == b"1234"
    resp = await patch(client, url, 4, b"567890")
    assert resp.status == 204
    assert read(done(client)[0]["path"]) == b"1234567890"
    # 400: more bytes for a complete upload; 409 at another offset.
    resp = await patch(client, url, 10, b"more")
    assert resp.status == 400
    resp = await patch(client, url, 3, b"more")
    assert resp.status == 409


async def problem_of(client: Client, url: str, offset: int, data: bytes) -> dict[str, Any]:
    async with client.patch(
        url, headers={**STREAM, "Upload-Offset": str(offset)}, data=data
    ) as resp:
        return await problem(resp)


async def test_chunked_body_past_the_length_is_refused(client: Client, tmp_path: Path) -> None:
    url = await create(client, 8)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"abc"

    async with client.patch(url, headers={**STREAM, "Upload-Offset": "0"}, data=body()) as resp:
        assert resp.status == 400
    part = tmp_path / "partial" / (url.rsplit("/", 1)[1] + ".part")
    assert part.read_bytes() == b""


async def test_deferred_length_capped_by_max_file_size(make: MakeClient, tmp_path: Path) -> None:
    client = await make(ah.UploadLimits(max_file_size=100))
    url = await create(client, None, **{"Upload-Defer-Length": "1"})
    resp = await patch(client, url, 0, b"x" * 60)
    assert resp.status == 204

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 10

    async with client.patch(url, headers={**STREAM, "Upload-Offset": "60"}, data=body()) as r:
        assert r.status == 413
    resp = await patch(client, url, 60, b"", **{"Upload-Length": "101"})
    assert resp.status == 413
    resp = await patch(client, url, 60, b"", **{"Upload-Length": "59"})
    assert resp.status == 400


async def test_sniffed_type_refused_and_upload_removed(make: MakeClient, tmp_path: Path) -> None:
    limits = ah.UploadLimits(allowed_types={"file": ["image/png"]}, sniff_types=frozenset({"file"}))
    client = await make(limits)
    url = await create(client, 100, **{"Upload-Metadata": meta(filetype="image/png")})
    resp = await patch(client, url, 0, b"GIF89a" + b"\0" * 4)
    assert resp.status == 204  # fewer than 16 bytes: not judged yet
    resp = await patch(client, url, 10, b"\0" * 20)
    assert resp.status == 415
    async with client.head(url, headers=TUS) as resp:
        assert resp.status == 404
    assert [p for p in (tmp_path / "partial").iterdir() if p.is_file()] == []
    url = await create(client, len(PNG), **{"Upload-Metadata": meta(filetype="image/png")})
    resp = await patch(client, url, 0, PNG)
    assert resp.status == 204


async def test_idle_timeout_keeps_what_arrived(make: MakeClient) -> None:
    client = await make(ah.UploadLimits(idle_timeout=0.3, min_rate=None))
    url = await create(client, 100)

    async def body() -> AsyncIterator[bytes]:
        yield b"a" * 10
        await asyncio.sleep(5)
        yield b"b" * 90

    async with client.patch(url, headers={**STREAM, "Upload-Offset": "0"}, data=body()) as resp:
        assert resp.status == 408
        assert "no request body bytes" in (await problem(resp))["detail"]
    async with client.head(url, headers=TUS) as resp:
        assert resp.headers["Upload-Offset"] == "10"


async def test_min_rate(make: MakeClient) -> None:
    client = await make(ah.UploadLimits(idle_timeout=0.4, min_rate=1000))
    url = await create(client, 1000)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"z"
            await asyncio.sleep(0.1)

    async with client.patch(url, headers={**STREAM, "Upload-Offset": "0"}, data=body()) as resp:
        assert resp.status == 408
        doc = await problem(resp)
        assert doc["type"].endswith(":upload-too-slow")
        assert "slower than 1000 bytes per second" in doc["detail"]


async def test_concurrent_patches_one_wins(client: Client, tmp_path: Path) -> None:
    url = await create(client, 20)
    part = tmp_path / "partial" / (url.rsplit("/", 1)[1] + ".part")
    first, release = await held_patch(client, url, part)
    resp = await patch(client, url, 0, b"B" * 10)
    assert resp.status == 423
    assert resp.headers["Retry-After"] == "1"
    async with client.delete(url, headers=TUS) as deleted:
        assert deleted.status == 423
    await let_held_patch_win(first, release, part)


async def test_per_client_cap(make: MakeClient) -> None:
    client = await make(max_uploads_per_client=2)
    first = await create(client, 5)
    await create(client, 5)
    async with client.post("/files", headers={**TUS, "Upload-Length": "5"}) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"]
    # A finished (or terminated) upload frees its place.
    await patch(client, first, 0, b"12345")
    await create(client, 5)


async def test_expired_upload_is_gone_then_swept(make: MakeClient, tmp_path: Path) -> None:
    client = await make(expires=0.5, sweep_interval=60)
    url = await create(client, 5)
    await asyncio.sleep(0.7)
    async with client.head(url, headers=TUS) as resp:
        assert resp.status == 410
    resp = await patch(client, url, 0, b"1")
    assert resp.status == 410
    url = await create(client, 5)
    await asyncio.sleep(0.7)
    assert await uploads_of(client).sweep() == 1
    assert [p for p in (tmp_path / "partial").iterdir() if p.is_file()] == []


async def test_startup_sweep_removes_expired(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    client = await aiohttp_client(create_app(partial, tmp_path / "saved"))
    url = await create(client, 5)
    await patch(client, url, 0, b"12")
    await client.close()
    upload_id = url.rsplit("/", 1)[1]
    state = json.loads((partial / f"{upload_id}.json").read_text())
    state["updated"] = time.time() - 25 * 3600
    (partial / f"{upload_id}.json").write_text(json.dumps(state))
    client = await aiohttp_client(create_app(partial, tmp_path / "saved"))
    assert [p for p in partial.iterdir() if p.is_file()] == []
    await client.close()


async def test_draft_refusals(client: Client) -> None:
    headers = draft(6, **{"Upload-Complete": "?0", "Upload-Length": "10"})
    async with client.post("/files", headers=headers) as resp:
        url = resp.headers["Location"]
    # interop 6: PATCH bodies are application/partial-upload.
    async with client.patch(
        url, headers=draft(6, **{"Upload-Offset": "0", "Upload-Complete": "?0"}), data=b"x"
    ) as resp:
        assert resp.status == 415
        assert resp.headers["Upload-Draft-Interop-Version"] == "6"
    kind = {"Content-Type": "application/partial-upload"}
    # Upload-Complete: ?1 before the declared length: inconsistent, discarded.
    async with client.patch(
        url, headers=draft(6, **{"Upload-Offset": "0", "Upload-Complete": "?1"}, **kind), data=b"x"
    ) as resp:
        assert resp.status == 400
        assert (await problem(resp))["type"].endswith("#inconsistent-upload-length")
    async with client.patch(
        url, headers=draft(6, **{"Upload-Offset": "5", "Upload-Complete": "?0"}, **kind), data=b"x"
    ) as resp:
        assert resp.status == 409
        assert resp.headers["Upload-Offset"] == "0"
    async with client.head(url, headers=draft(6)) as resp:
        assert resp.headers["Upload-Offset"] == "0"


async def test_connection_cut_mid_patch_keeps_the_bytes(client: Client) -> None:
    url = await create(client, 1_000_000)
    assert client.port is not None
    _reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    head = (
        f"PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
        "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        "Content-Length: 1000000\r\n\r\n"
    ).encode()
    writer.write(head + b"q" * 300_000)
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await writer.wait_closed()
    for _ in range(100):
        async with client.head(url, headers=TUS) as resp:
            if resp.status == 200 and resp.headers["Upload-Offset"] == "300000":
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"offset stayed at {resp.headers.get('Upload-Offset')}")
    resp = await patch(client, url, 300_000, b"r" * 700_000)
    assert resp.status == 204
    [saved] = done(client)
    assert saved["sha256"] == hashlib.sha256(b"q" * 300_000 + b"r" * 700_000).hexdigest()


async def test_text_answer_when_asked(client: Client) -> None:
    async with client.head("/files/" + "0" * 32, headers={**TUS, "Accept": "text/plain"}) as r:
        assert r.status == 404
    async with client.patch(
        "/files/" + "0" * 32, headers={**STREAM, "Upload-Offset": "0", "Accept": "text/plain"}
    ) as r:
        assert r.status == 404
        assert (await r.text()).startswith("404 Upload not found")


# -- wiring ---------------------------------------------------------------------------


def test_needs_setup(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"needs aiohttp_helpers.setup\(app\) first"):
        ah.add_resumable_uploads(web.Application(), "/files", directory=tmp_path)


def test_refuses_frozen_app(tmp_path: Path) -> None:
    parent, sub = web.Application(), web.Application()
    ah.setup(sub)
    parent.add_subapp("/sub", sub)
    with pytest.raises(RuntimeError, match="before the application is frozen"):
        ah.add_resumable_uploads(sub, "/files", directory=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"path": "files"}, ValueError, "plain path"),
        ({"path": "/files/"}, ValueError, "plain path"),
        ({"expires": 0}, ValueError, "expires must be positive"),
        ({"max_uploads_per_client": 0}, ValueError, "max_uploads_per_client"),
        ({"limits": {}}, TypeError, "UploadLimits"),
        ({"field": "../x"}, ValueError, "plain name"),
    ],
    ids=["relative", "trailing-slash", "expires", "cap", "limits", "field"],
)
def test_bad_arguments(
    tmp_path: Path, kwargs: dict[str, Any], error: type, match: str, app: web.Application
) -> None:
    args: dict[str, Any] = {"path": "/files", "directory": tmp_path, **kwargs}
    path = args.pop("path")
    with pytest.raises(error, match=match):
        ah.add_resumable_uploads(app, path, **args)


async def test_sub_app_location_has_the_prefix(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    parent, sub = web.Application(), web.Application()
    ah.setup(parent)
    ah.setup(sub)
    ah.add_resumable_uploads(sub, "/files", directory=tmp_path)
    parent.add_subapp("/api", sub)
    client = await aiohttp_client(parent)
    async with client.post("/api/files", headers={**TUS, "Upload-Length": "1"}) as resp:
        assert resp.status == 201
        assert resp.headers["Location"].startswith("/api/files/")


# -- more paths -----------------------------------------------------------------------


async def test_large_patch_in_one_request(client: Client) -> None:
    data = os.urandom(11 * 2**20 + 7)
    url = await create(client, len(data))
    async with client.patch(
        url, headers={**STREAM, "Upload-Offset": "0"}, data=io.BytesIO(data)
    ) as resp:
        assert resp.status == 204
    [saved] = done(client)
    assert saved["sha256"] == hashlib.sha256(data).hexdigest()
    assert read(saved["path"]) == data


async def test_digest_without_a_running_hash(client: Client) -> None:
    # Another process wrote the first part: this one computes the digest from the file.
    url = await create(client, 6)
    await patch(client, url, 0, b"abc")
    uploads_of(client)._running.clear()
    await patch(client, url, 3, b"def")
    assert done(client)[0]["sha256"] == hashlib.sha256(b"abcdef").hexdigest()


async def test_public_operations(client: Client, tmp_path: Path) -> None:
    uploads = uploads_of(client)
    assert "ResumableUploads '/files'" in repr(uploads)
    assert uploads.directory == tmp_path / "partial"
    url = await create(client, 5, **{"Upload-Metadata": meta(filename="a.txt")})
    upload_id = url.rsplit("/", 1)[1]
    state = await uploads.get(upload_id)
    assert state is not None
    assert state.metadata == {"filename": "a.txt"}
    assert state.length == 5
    assert await uploads.get("nope") is None
    assert await uploads.remove("nope") is False
    assert await uploads.remove(upload_id) is True
    assert await uploads.remove(upload_id) is False
    assert await uploads.get(upload_id) is None


async def test_sweep_skips_locked_and_removes_leftovers(make: MakeClient, tmp_path: Path) -> None:
    client = await make(expires=1.0)
    partial = tmp_path / "partial"
    url = await create(client, 20)
    part = partial / (url.rsplit("/", 1)[1] + ".part")
    writing, release = await held_patch(client, url, part)
    # Leftovers: an unreadable state, a hand-over file of a process that died.
    junk = partial / ("a" * 32 + ".json")
    junk.write_text("{not json")
    orphan = partial / ("b" * 32 + ".done")
    orphan.write_bytes(b"x")
    half = partial / (".c" + "c" * 31 + ".k2j3.tmp")
    half.write_bytes(b"{")
    stateless = partial / ("d" * 32 + ".part")
    stateless.write_bytes(b"x")
    unrelated = partial / "notes.txt"
    unrelated.write_bytes(b"x")
    old = time.time() - 10
    for path in (junk, orphan, half, stateless, unrelated):
        os.utime(path, (old, old))
    uploads = uploads_of(client)
    # Expired by the clock, but locked: kept.
    assert uploads.store.sweep(1.0, now=time.time() + 5) == 1
    assert part.exists()
    assert not junk.exists()
    assert not orphan.exists()
    assert not half.exists()
    assert not stateless.exists()
    assert unrelated.exists()
    release.set()
    async with await writing as resp:
        assert resp.status == 204


async def test_periodic_sweep(make: MakeClient, tmp_path: Path) -> None:
    client = await make(expires=0.2, sweep_interval=0.1)
    url = await create(client, 5)
    state = tmp_path / "partial" / (url.rsplit("/", 1)[1] + ".json")
    await until(lambda: not state.exists(), 5.0, what="the expired upload swept")
    assert not state.exists()


async def test_override_delete_and_unknown(client: Client) -> None:
    url = await create(client, 5)
    async with client.post(url, headers={**TUS, "X-HTTP-Method-Override": "GET"}) as resp:
        assert resp.status == 405
    async with client.post(url, headers={**TUS, "X-HTTP-Method-Override": "DELETE"}) as resp:
        assert resp.status == 204
    async with client.head(url, headers=TUS) as resp:
        assert resp.status == 404


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({"Upload-Checksum": "sha1 !!!!"}, "not base64"),
        ({"Upload-Complete": "?1"}, None),
    ],
    ids=["checksum-not-base64", "tus-ignores-draft-headers"],
)
async def test_patch_header_checks(
    client: Client, headers: dict[str, str], match: str | None
) -> None:
    url = await create(client, 3)
    async with client.patch(
        url, headers={**STREAM, "Upload-Offset": "0", **headers}, data=b"abc"
    ) as resp:
        if match is None:
            assert resp.status == 204
        else:
            assert resp.status == 400
            assert match in (await problem(resp))["detail"]


async def test_offset_given_twice(client: Client) -> None:
    url = await create(client, 3)
    async with client.patch(
        url,
        headers=[*STREAM.items(), ("Upload-Offset", "0"), ("Upload-Offset", "0")],
        data=b"abc",
    ) as resp:
        assert resp.status == 400
        assert "more than once" in (await problem(resp))["detail"]


async def test_any_file_field_types(make: MakeClient) -> None:
    client = await make(ah.UploadLimits(allowed_types={"*": ["image/*"]}))
    async with client.post(
        "/files",
        headers={**TUS, "Upload-Length": "3", "Upload-Metadata": meta(filetype="text/plain")},
    ) as resp:
        assert resp.status == 415
        assert (await problem(resp))["allowed"] == ["image/*"]
    await create(client, 3, **{"Upload-Metadata": meta(filetype="image/png")})


def test_more_bad_arguments(tmp_path: Path, app: web.Application) -> None:
    with pytest.raises(TypeError, match=r"needs a web\.Application"):
        ah.add_resumable_uploads(object(), "/f", directory=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expires must be a number"):
        ah.add_resumable_uploads(app, "/f", directory=tmp_path, expires="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sweep_interval must be positive"):
        ah.add_resumable_uploads(app, "/f", directory=tmp_path, sweep_interval=0)


async def test_empty_upload_is_complete_at_creation(client: Client) -> None:
    url = await create(client, 0, **{"Upload-Metadata": meta(filename="empty.txt")})
    [saved] = done(client)
    assert saved["size"] == 0
    assert saved["sha256"] == hashlib.sha256(b"").hexdigest()
    async with client.head(url, headers=TUS) as resp:
        assert resp.headers["Upload-Offset"] == "0"
        assert resp.headers["Upload-Length"] == "0"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (draft(6, **{"Upload-Complete": "?1"}), 413),
        (draft(6, **{"Upload-Complete": "?1", "Upload-Length": "10"}), 400),
        ({**STREAM, "Upload-Length": "10"}, 400),
    ],
    ids=["draft-over-max", "draft-over-length", "tus-over-length"],
)
async def test_creation_body_too_long_leaves_nothing(
    make: MakeClient, tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    client = await make(ah.UploadLimits(max_file_size=100))
    async with client.post("/files", headers=headers, data=b"x" * 200) as resp:
        assert resp.status == status
        assert "Location" not in resp.headers
    assert [p for p in (tmp_path / "partial").iterdir() if p.is_file()] == []


async def test_malformed_chunked_framing(client: Client, tmp_path: Path) -> None:
    url = await create(client, 100)
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        (
            f"PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nnot a chunk\r\n"
        ).encode()
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    # A 400, or the connection closed; never a 500, and the upload stays consistent.
    assert not answer.startswith(b"HTTP/1.1 5"), answer
    async with client.head(url, headers=TUS) as resp:
        offset = int(resp.headers["Upload-Offset"])
    assert offset in (0, 5)
    part = tmp_path / "partial" / (url.rsplit("/", 1)[1] + ".part")
    assert part.read_bytes() == b"hello"[:offset]


async def test_draft_104_gives_the_location_before_the_body(client: Client) -> None:
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /files HTTP/1.1\r\nHost: x\r\nUpload-Draft-Interop-Version: 6\r\n"
        b"Upload-Complete: ?1\r\nContent-Length: 200000\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = interim.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 104 Upload Resumption Supported"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["Upload-Draft-Interop-Version"] == "6"
    location = headers["Location"]
    # The connection breaks halfway through the body: the client knows where to resume.
    writer.write(b"z" * 100_000)
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
    for _ in range(100):
        async with client.head(location, headers=draft(6)) as resp:
            if resp.headers.get("Upload-Offset") == "100000":
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the bytes before the cut were not kept")
    headers6 = draft(6, **{"Upload-Offset": "100000", "Upload-Complete": "?1"}, **PARTIAL)
    async with client.patch(location, headers=headers6, data=b"z" * 100_000) as resp:
        assert resp.status == 204
    assert done(client)[0]["sha256"] == hashlib.sha256(b"z" * 200_000).hexdigest()


async def test_no_104_when_turned_off_or_for_tus(make: MakeClient) -> None:
    for client, headers in (
        (await make(interim_responses=False), b"Upload-Draft-Interop-Version: 6\r\n"
         b"Upload-Complete: ?0\r\n"),
        (await make(), b"Tus-Resumable: 1.0.0\r\nUpload-Length: 3\r\n"),
    ):  # fmt: skip
        assert client.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b"POST /files HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 201"), status
        writer.close()
        await writer.wait_closed()
