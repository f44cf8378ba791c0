"""``save()``: one meaning for files and parts, and no existing file is ever lost."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.uploads import listing, upload_app

SMALL = b"small upload"
BIG = os.urandom(200_000)  # spooled to disk with the limits below


def _app(tmp_path: Path, save: Callable[[Any, str], Any], kind: str) -> web.Application:
    """``POST /`` saves every file of the form (or every part) with ``save``."""
    dest = tmp_path / "dest"

    async def handler(request: web.Request) -> web.Response:
        outcomes: list[Any] = []
        target = request.query.get("to", str(dest))  # as given: a trailing slash counts

        async def one(upload: Any) -> None:
            try:
                where = await save(upload, target)
            except OSError as exc:
                outcomes.append([type(exc).__name__, exc.errno, exc.filename])
            else:
                assert isinstance(where, Path)
                outcomes.append(str(where.relative_to(tmp_path)))

        if kind == "form":
            async with await ah.read_form(request) as form:
                for upload in form.files.values():
                    await one(upload)
        else:
            async for part in ah.iter_parts(request):
                await one(part)
        return web.json_response(outcomes)

    app = web.Application()
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    ah.setup(app, limits=ah.UploadLimits(spool_max_size=64 * 1024, tmp_dir=spool))
    app.router.add_post("/", handler)
    return app


KINDS = [pytest.param("form", id="uploaded-file"), pytest.param("parts", id="body-part")]
SIZES = [pytest.param(SMALL, id="in-memory"), pytest.param(BIG, id="spooled")]


def each_kind_and_size(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``test`` for each kind of upload and each size."""
    each: Callable[..., Any] = pytest.mark.parametrize("kind", KINDS)(
        pytest.mark.parametrize("data", SIZES)(test)
    )
    return each


async def _client(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    kind: str,
    existing: dict[str, bytes] | None = None,
    **save_options: Any,
) -> tuple[Any, Path]:
    """A client of ``_app`` saving with ``save_options`` into a new ``tmp_path / "dest"``,
    which holds ``existing`` files first; the client and the directory."""
    dest = tmp_path / "dest"
    dest.mkdir()
    for name, content in (existing or {}).items():
        (dest / name).write_bytes(content)
    client = await aiohttp_client(_app(tmp_path, lambda u, p: u.save(p, **save_options), kind))
    return client, dest


async def _post(client: Any, *files: tuple[str, bytes], to: Path | str | None = None) -> Any:
    body = multipart_body(
        *(FormPart(name=f"f{i}", data=data, filename=name) for i, (name, data) in enumerate(files))
    )
    params = {"to": str(to)} if to is not None else {}
    resp = await client.post("/", data=body.data, headers=body.headers, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


@each_kind_and_size
async def test_a_directory_means_directory_slash_safe_name(
    aiohttp_client: AiohttpClient, tmp_path: Path, kind: str, data: bytes
) -> None:
    client, _ = await _client(aiohttp_client, tmp_path, kind)
    assert await _post(client, ("../../report.pdf", data)) == ["dest/report.pdf"]
    assert (tmp_path / "dest" / "report.pdf").read_bytes() == data
    # A path that names a file (in an existing directory) is that file.
    assert await _post(client, ("x", data), to=tmp_path / "dest" / "exact.bin") == [
        "dest/exact.bin"
    ]
    assert (tmp_path / "dest" / "exact.bin").read_bytes() == data
    assert listing(tmp_path / "spool") == []


@each_kind_and_size
async def test_an_existing_file_is_never_replaced(
    aiohttp_client: AiohttpClient, tmp_path: Path, kind: str, data: bytes
) -> None:
    existing = {"report.pdf": b"someone else's report"}
    client, dest = await _client(aiohttp_client, tmp_path, kind, existing)
    got = await _post(client, ("../report.pdf", data), ("report.pdf", data))
    assert got == [["FileExistsError", errno.EEXIST, str(dest / "report.pdf")]] * 2
    got = await _post(client, ("x", data), to=dest / "report.pdf")
    assert got == [["FileExistsError", errno.EEXIST, str(dest / "report.pdf")]]
    assert (dest / "report.pdf").read_bytes() == b"someone else's report"
    # No temporary file is left beside it, nor in the spool.
    assert listing(dest) == ["report.pdf"]
    assert listing(tmp_path / "spool") == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_symlink_is_not_followed_or_replaced(
    aiohttp_client: AiohttpClient, tmp_path: Path, kind: str
) -> None:
    client, dest = await _client(aiohttp_client, tmp_path, kind)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (dest / "a.txt").symlink_to(victim)
    (dest / "dangling.txt").symlink_to(tmp_path / "nowhere")
    got = await _post(client, ("a.txt", BIG), ("dangling.txt", SMALL))
    assert [g[0] for g in got] == ["FileExistsError", "FileExistsError"]
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "nowhere").exists()


@each_kind_and_size
async def test_overwrite_replaces(
    aiohttp_client: AiohttpClient, tmp_path: Path, kind: str, data: bytes
) -> None:
    existing = {"report.pdf": b"old"}
    client, dest = await _client(aiohttp_client, tmp_path, kind, existing, overwrite=True)
    assert await _post(client, ("report.pdf", data)) == ["dest/report.pdf"]
    assert (dest / "report.pdf").read_bytes() == data
    assert listing(dest) == ["report.pdf"]


@each_kind_and_size
async def test_unique_picks_a_free_name(
    aiohttp_client: AiohttpClient, tmp_path: Path, kind: str, data: bytes
) -> None:
    existing = {"report.pdf": b"old", "archive.tar.gz": b"old"}
    client, dest = await _client(aiohttp_client, tmp_path, kind, existing, unique=True)
    got = await _post(
        client,
        ("report.pdf", data),
        ("report.pdf", data + b"2"),
        ("archive.tar.gz", data),
        ("v1.2 notes.txt", data),
        ("v1.2 notes.txt", data),
    )
    assert got == [
        "dest/report (1).pdf",
        "dest/report (2).pdf",
        "dest/archive (1).tar.gz",
        "dest/v1.2 notes.txt",
        "dest/v1.2 notes (1).txt",
    ]
    assert (dest / "report.pdf").read_bytes() == b"old"
    assert (dest / "report (2).pdf").read_bytes() == data + b"2"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_missing_directory_is_an_error(
    aiohttp_client: AiohttpClient, tmp_path: Path, kind: str
) -> None:
    client = await aiohttp_client(_app(tmp_path, lambda u, p: u.save(p), kind))
    missing = tmp_path / "srv" / "uploads"
    got = await _post(client, ("a.bin", BIG), ("b.bin", SMALL), to=missing)
    assert got == [["FileNotFoundError", errno.ENOENT, str(tmp_path / "srv")]] * 2
    assert not (tmp_path / "srv").exists()
    # A trailing slash says "a directory": never a file of that name.
    (tmp_path / "srv").mkdir()
    got = await _post(client, ("a.bin", SMALL), to=f"{missing}/")
    assert got == [["FileNotFoundError", errno.ENOENT, str(missing)]]
    assert listing(tmp_path / "srv") == []
    (tmp_path / "file").write_bytes(b"x")
    got = await _post(client, ("a.bin", SMALL), to=tmp_path / "file" / "a.bin")
    assert got == [["NotADirectoryError", errno.ENOTDIR, str(tmp_path / "file")]]
    assert listing(tmp_path / "spool") == []


@pytest.mark.parametrize("kind", KINDS)
async def test_overwrite_and_unique_together_are_refused(
    aiohttp_client: AiohttpClient, tmp_path: Path, kind: str
) -> None:
    (tmp_path / "dest").mkdir()
    errors: list[str] = []

    async def save(upload: Any, path: str) -> Path:
        with pytest.raises(ValueError, match="contradict each other") as info:
            await upload.save(path, overwrite=True, unique=True)
        errors.append(str(info.value))
        result: Path = await upload.save(path)
        return result

    client = await aiohttp_client(_app(tmp_path, save, kind))
    assert await _post(client, ("a.bin", SMALL)) == ["dest/a.bin"]
    assert len(errors) == 1


@pytest.mark.parametrize("unique", [pytest.param(False, id="exclusive"), True])
async def test_concurrent_saves_of_one_name(
    aiohttp_client: AiohttpClient, tmp_path: Path, unique: bool
) -> None:
    """Many requests saving the same name at once: one wins, or each gets its own name."""
    client, _ = await _client(aiohttp_client, tmp_path, "form", unique=unique)
    payloads = [os.urandom(100_000) + bytes([i]) for i in range(12)]
    results = await asyncio.gather(*(_post(client, ("same.bin", d)) for d in payloads))
    names = [r[0] for r in results if isinstance(r[0], str)]
    refused = [r[0] for r in results if not isinstance(r[0], str)]
    if unique:
        assert len(set(names)) == 12
        stored = {(tmp_path / n).read_bytes() for n in names}
        assert stored == set(payloads)
    else:
        assert names == ["dest/same.bin"]
        assert len(refused) == 11
        assert (tmp_path / "dest" / "same.bin").read_bytes() in payloads
    assert len(listing(tmp_path / "dest")) == len(names)
    assert listing(tmp_path / "spool") == []


@pytest.mark.parametrize("kind", KINDS)
async def test_without_hard_links(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a filesystem without hard links (FAT, some network mounts) the rule still holds."""

    def no_links(src: Any, dst: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    existing = {"taken.bin": b"keep me"}
    client, dest = await _client(aiohttp_client, tmp_path, kind, existing, unique=True)
    got = await _post(client, ("taken.bin", BIG), ("new.bin", SMALL))
    assert got == ["dest/taken (1).bin", "dest/new.bin"]
    assert (dest / "taken.bin").read_bytes() == b"keep me"
    assert (dest / "taken (1).bin").read_bytes() == BIG
    assert sorted(listing(dest)) == ["new.bin", "taken (1).bin", "taken.bin"]


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a second filesystem")
async def test_across_filesystems(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    """The spool on another filesystem than the destination: copied, same rules."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same filesystem here")
        dest = tmp_path / "dest"
        dest.mkdir()
        (dest / "taken.bin").write_bytes(b"keep me")

        async def handler(request: web.Request) -> web.Response:
            async with await ah.read_form(request) as form:
                upload = form.files["f0"]
                with pytest.raises(FileExistsError):
                    await upload.save(dest / "taken.bin")
                where = await upload.save(dest / "taken.bin", unique=True)
                assert not upload.saved  # copied: the spooled file is still the form's
            return web.json_response(where.name)

        client = await aiohttp_client(
            upload_app(handler, ah.UploadLimits(spool_max_size=1024, tmp_dir=other))
        )
        assert await _post(client, ("x", BIG)) == "taken (1).bin"
        assert (dest / "taken (1).bin").read_bytes() == BIG
        assert (dest / "taken.bin").read_bytes() == b"keep me"
        assert sorted(listing(dest)) == ["taken (1).bin", "taken.bin"]
        assert os.listdir(other) == []


async def test_unique_names_stay_within_255_bytes(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    long = "é" * 125 + ".pdf"  # 254 bytes
    client, dest = await _client(aiohttp_client, tmp_path, "form", {long: b"old"}, unique=True)
    [got] = await _post(client, (long, SMALL))
    name = Path(got).name
    assert name.endswith(" (1).pdf")
    assert len(name.encode()) <= 255
    assert (dest / name).read_bytes() == SMALL
