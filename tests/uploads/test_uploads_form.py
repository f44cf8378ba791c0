"""``read_form()`` over real HTTP: fields, files, spooling, saving, signals and limit lookup."""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import io
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.uploads import describe_form, form_app, listing, post_file, upload_app


async def test_fields_and_files_from_aiohttp_client(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(form_app())
    data = aiohttp.FormData()
    data.add_field("title", "Hello")
    data.add_field("tag", "a")
    data.add_field("tag", "b")
    data.add_field("doc", b"%PDF-1.4 body", filename="report.pdf", content_type="application/pdf")
    resp = await client.post("/form", data=data)
    assert resp.status == 200
    doc = await resp.json()
    assert doc["fields"] == [["title", "Hello"], ["tag", "a"], ["tag", "b"]]
    [upload] = doc["files"]
    assert upload["name"] == "doc"
    assert upload["filename"] == "report.pdf"
    assert upload["content_type"] == "application/pdf"
    assert base64.b64decode(upload["data"]) == b"%PDF-1.4 body"
    assert upload["sha256"] == hashlib.sha256(b"%PDF-1.4 body").hexdigest()
    assert upload["size"] == len(b"%PDF-1.4 body")


async def test_form_mapping_api(aiohttp_client: AiohttpClient) -> None:
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        seen["title"] = form["title"]
        seen["tags"] = form.getall("tag")
        seen["missing"] = form.getall("nope", [])
        seen["get"] = form.get("nope", "default")
        seen["len"] = len(form)
        seen["keys"] = list(form)
        seen["contains"] = "title" in form
        seen["repr"] = repr(form)
        with pytest.raises(KeyError, match=r"'doc' is a file field: use form\.files"):
            form["doc"]
        with pytest.raises(KeyError, match="nope"):
            form["nope"]
        with pytest.raises(KeyError, match="nope"):
            form.getall("nope")
        return web.Response(text="ok")

    client = await aiohttp_client(upload_app(handler))
    body = multipart_body(
        ("title", "T"),
        ("tag", "x"),
        ("tag", "y"),
        FormPart(name="doc", data=b"d", filename="d.txt"),
    )
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 200
    assert seen == {
        "title": "T",
        "tags": ["x", "y"],
        "missing": [],
        "get": "default",
        "len": 2,
        "keys": ["title", "tag"],
        "contains": True,
        "repr": "<Form fields=['title', 'tag', 'tag'] files=['doc']>",
    }


async def _post_and_see(
    aiohttp_client: AiohttpClient,
    spool: Path,
    size: int,
    filename: str,
    see: Callable[[ah.UploadedFile, dict[str, Any]], Awaitable[None]],
) -> tuple[bytes, dict[str, Any]]:
    """POST ``size`` random bytes as file ``f`` (spooled to ``spool`` over 1 KiB) to a
    handler that lets ``see`` note what the upload shows: the bytes and the notes."""
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        await see(form.files["f"], seen)
        return web.Response(text="ok")

    limits = ah.UploadLimits(spool_max_size=1024, tmp_dir=spool)
    client = await aiohttp_client(upload_app(handler, limits))
    payload = os.urandom(size)
    resp = await post_file(client, payload, filename)
    assert resp.status == 200
    return payload, seen


@pytest.mark.parametrize(
    ("size", "in_memory"),
    [
        pytest.param(1023, True, id="under"),
        pytest.param(1024, True, id="at"),
        pytest.param(1025, False, id="over"),
    ],
)
async def test_spool_max_size(
    aiohttp_client: AiohttpClient, tmp_path: Path, size: int, in_memory: bool
) -> None:

    async def see(upload: ah.UploadedFile, seen: dict[str, Any]) -> None:
        seen["in_memory"] = upload.in_memory
        seen["listing"] = listing(tmp_path)
        seen["path"] = upload.path
        seen["data"] = await upload.read()
        with upload.open() as fh:
            seen["opened"] = fh.read()

    payload, seen = await _post_and_see(aiohttp_client, tmp_path, size, "x.bin", see)
    assert seen["in_memory"] is in_memory
    assert seen["data"] == payload
    assert seen["opened"] == payload
    if in_memory:
        assert seen["listing"] == []
        assert seen["path"] is None
    else:
        assert len(seen["listing"]) == 1
        assert seen["path"] == tmp_path / seen["listing"][0]
    # The request is over: nothing is left behind.
    assert listing(tmp_path) == []


@pytest.mark.parametrize("size", [pytest.param(10, id="memory"), pytest.param(5000, id="disk")])
async def test_save_moves_the_file_into_place(
    aiohttp_client: AiohttpClient, tmp_path: Path, size: int
) -> None:
    spool = tmp_path / "spool"
    dest = tmp_path / "dest"
    spool.mkdir()
    dest.mkdir()

    async def see(upload: ah.UploadedFile, seen: dict[str, Any]) -> None:
        where = await upload.save(dest)
        seen["where"] = where
        seen["saved"] = upload.saved
        seen["path"] = upload.path
        seen["again"] = await upload.read()
        # A second save copies the kept file; it does not move it away.
        seen["copy"] = await upload.save(dest / "copy.bin")

    payload, seen = await _post_and_see(aiohttp_client, spool, size, "../../etc/passwd", see)
    assert seen["where"] == dest / "passwd"
    assert (dest / "passwd").read_bytes() == payload
    assert (dest / "copy.bin").read_bytes() == payload
    assert seen["again"] == payload
    assert seen["saved"] is (size > 1024)
    assert listing(spool) == []
    assert listing(dest) == ["copy.bin", "passwd"]
    umask = os.umask(0)
    os.umask(umask)
    for name in ("passwd", "copy.bin"):
        assert stat.S_IMODE((dest / name).stat().st_mode) == 0o666 & ~umask


def _other_filesystem_dir(tmp_path: Path) -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than tmp_path's")
    spool = shm / f"ah-test-{os.getpid()}-{id(tmp_path)}"
    spool.mkdir()
    return spool


async def test_save_across_filesystems_copies(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    spool = _other_filesystem_dir(tmp_path)
    try:

        async def handler(request: web.Request) -> web.Response:
            form = await ah.read_form(request)
            upload = form.files["f"]
            assert not upload.in_memory
            await upload.save(tmp_path / "kept.bin")
            assert not upload.saved  # copied: the spooled file is still the package's
            return web.Response(text="ok")

        client = await aiohttp_client(
            upload_app(handler, ah.UploadLimits(spool_max_size=0, tmp_dir=spool))
        )
        payload = os.urandom(300_000)
        resp = await post_file(client, payload, "k.bin")
        assert resp.status == 200
        assert (tmp_path / "kept.bin").read_bytes() == payload
        assert listing(spool) == []
    finally:
        spool.rmdir()


async def test_on_upload_signal(aiohttp_client: AiohttpClient) -> None:
    got: list[tuple[str, str, int]] = []

    async def on_upload(request: web.Request, upload: ah.UploadedFile) -> None:
        got.append((request.path, upload.filename, upload.size))

    app = form_app()
    ah.get_helpers(app).signals.on_upload.append(on_upload)
    client = await aiohttp_client(app)
    body = multipart_body(
        FormPart(name="a", data=b"1", filename="one.txt"),
        ("x", "y"),
        FormPart(name="b", data=b"22", filename="two.txt"),
    )
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 200
    assert got == [("/form", "one.txt", 1), ("/form", "two.txt", 2)]


async def test_without_setup_files_go_when_the_form_goes(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        seen["during"] = listing(tmp_path)
        seen["form"] = await describe_form(form)
        return web.Response(text="ok")

    async def closing(request: web.Request) -> web.Response:
        async with await ah.read_form(request) as form:
            seen["before_close"] = listing(tmp_path)
            upload = form.files["f"]
        seen["after_close"] = listing(tmp_path)
        with pytest.raises(RuntimeError, match="the upload 'f' was closed"):
            await upload.read()
        return web.Response(text="ok")

    limits = ah.UploadLimits(spool_max_size=0, tmp_dir=tmp_path)
    app = web.Application()
    app.router.add_post("/", ah.upload_limits(limits)(handler))
    app.router.add_post("/close", ah.upload_limits(limits)(closing))
    client = await aiohttp_client(app)
    resp = await post_file(client, b"abc", "f.txt")
    assert resp.status == 200
    assert len(seen["during"]) == 1
    assert listing(tmp_path) == []
    resp = await post_file(client, b"abc", "f.txt", "/close")
    assert resp.status == 200
    assert len(seen["before_close"]) == 1
    assert seen["after_close"] == []


async def test_without_setup_errors_are_exceptions(aiohttp_client: AiohttpClient) -> None:
    caught: list[BaseException] = []

    async def handler(request: web.Request) -> web.Response:
        try:
            await ah.read_form(request)
        except ah.HelpersError as exc:
            caught.append(exc)
            return web.Response(status=exc.status, text=exc.detail)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handler)
    client = await aiohttp_client(app)
    resp = await client.post("/", data=b"{}", headers={"Content-Type": "application/json"})
    assert resp.status == 415
    assert isinstance(caught[0], ah.NotMultipart)


async def test_route_and_subapp_limits(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        return web.Response(text=form["x"])

    @ah.upload_limits(max_field_size=5)
    async def small(request: web.Request) -> web.Response:
        return await handler(request)

    @ah.upload_limits(ah.UploadLimits(max_field_size=100))
    async def large(request: web.Request) -> web.Response:
        return await handler(request)

    class View(web.View):
        @ah.upload_limits(max_field_size=3)
        async def post(self) -> web.Response:
            return await handler(self.request)

    root = web.Application()
    ah.setup(root, limits=ah.UploadLimits(max_field_size=10))
    root.router.add_post("/plain", handler)
    root.router.add_post("/small", small)
    root.router.add_post("/large", large)
    root.router.add_view("/view", View)
    sub = web.Application()
    ah.configure(sub, limits=ah.UploadLimits(max_field_size=20))
    sub.router.add_post("/plain", handler)
    sub.router.add_post("/small", small)
    root.add_subapp("/sub", sub)
    client = await aiohttp_client(root)

    async def status(path: str, size: int) -> int:
        body = multipart_body(("x", "v" * size))
        resp = await client.post(path, data=body.data, headers=body.headers)
        return resp.status

    # Each route's max_field_size: a field of that size passes, one byte more is refused.
    limits = {
        "/plain": 10,
        "/small": 5,
        "/large": 100,
        "/view": 3,
        "/sub/plain": 20,
        "/sub/small": 5,
    }
    for path, limit in limits.items():
        assert await status(path, limit) == 200, path
        assert await status(path, limit + 1) == 413, path


async def test_explicit_limits_win(aiohttp_client: AiohttpClient) -> None:
    @ah.upload_limits(max_field_size=100)
    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request, limits=ah.UploadLimits(max_field_size=2))
        return web.Response(text=form["x"])

    client = await aiohttp_client(upload_app(handler))
    body = multipart_body(("x", "abc"))
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 413
    assert (await resp.json(content_type=None))["limit"] == 2


def test_upload_limits_decorator_validates_early() -> None:
    with pytest.raises(ValueError, match="max_files must be positive"):
        ah.upload_limits(max_files=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_bogus'"):
        ah.upload_limits(max_bogus=1)
    with pytest.raises(TypeError, match="needs an UploadLimits or the limits to change"):
        ah.upload_limits()
    with pytest.raises(TypeError, match="limits must be an UploadLimits"):
        ah.upload_limits(object())  # type: ignore[arg-type]
    combined = ah.upload_limits(ah.UploadLimits(max_files=3), max_fields=4)

    def not_async(request: web.Request) -> web.Response:
        raise AssertionError

    with pytest.raises(TypeError, match="decorates an async handler"):
        combined(not_async)  # type: ignore[type-var]


async def test_upload_limits_needs_a_request() -> None:
    @ah.upload_limits(max_files=3)
    async def handler(value: object) -> web.Response:
        raise AssertionError

    with pytest.raises(TypeError, match="take the request"):
        await handler(object())


async def test_read_form_refuses_bad_limits(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        with pytest.raises(TypeError, match="limits must be an UploadLimits"):
            await ah.read_form(request, limits={"max_files": 1})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="limits must be an UploadLimits"):
            ah.iter_parts(request, limits={"max_files": 1})  # type: ignore[arg-type]
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handler)
    client = await aiohttp_client(app)
    assert (await client.post("/", data=b"x")).status == 200


async def test_urlencoded_forms(aiohttp_client: AiohttpClient) -> None:
    limits = ah.UploadLimits(max_fields=3, max_field_size=8, max_body_size=100)
    client = await aiohttp_client(form_app(limits))

    async def post(data: bytes, ctype: str = "application/x-www-form-urlencoded") -> Any:
        return await client.post("/form", data=data, headers={"Content-Type": ctype})

    resp = await post(b"a=1&b=%C3%A9t%C3%A9&a=")
    assert resp.status == 200
    assert (await resp.json())["fields"] == [["a", "1"], ["b", "été"], ["a", ""]]
    assert (await post(b"a=1&b=2&c=3&d=4")).status == 413
    assert (await post(b"a=12345678")).status == 200
    assert (await post(b"a=123456789")).status == 413
    assert (await post(b"a=" + b"1" * 99)).status == 413
    resp = await post(b"a=%E9t%E9", "application/x-www-form-urlencoded; charset=iso-8859-1")
    assert (await resp.json())["fields"] == [["a", "été"]]
    assert (await post(b"a=%E9")).status == 400
    assert (await post(b"a=1", "application/x-www-form-urlencoded; charset=nope")).status == 415
    assert (await post(b"a=1", 'application/x-www-form-urlencoded; charset="x')).status == 400


async def test_urlencoded_chunked_over_limit(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(form_app(ah.UploadLimits(max_body_size=50)))

    async def gen() -> Any:
        for _ in range(10):
            yield b"a=" + b"x" * 8 + b"&"

    resp = await client.post(
        "/form", data=gen(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status == 413


async def test_empty_file_input_is_no_file(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(
        form_app(
            ah.UploadLimits(
                max_files=1, allowed_types={"*": ["image/png"]}, sniff_types=frozenset({"*"})
            )
        )
    )
    body = multipart_body(
        ("title", "t"),
        FormPart(name="pic", data=b"", filename="", content_type="application/octet-stream"),
        FormPart(name="other", data=b"", filename="", content_type="application/octet-stream"),
    )
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 200
    assert await resp.json() == {"fields": [["title", "t"]], "files": []}
    # The same parts with bytes in them are files, counted and checked.
    png = b"\x89PNG\r\n\x1a\n" + bytes(8)
    body = multipart_body(FormPart(name="pic", data=png, filename="", content_type="image/png"))
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 200
    assert (await resp.json())["files"][0]["filename"] == "upload"
    body = multipart_body(
        FormPart(name="pic", data=png, filename="", content_type="image/png"),
        FormPart(name="other", data=png, filename="", content_type="image/png"),
    )
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 413
    assert (await resp.json(content_type=None))["type"].endswith("too-many-files")
    body = multipart_body(FormPart(name="pic", data=b"x", filename="", content_type="text/html"))
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 415


async def test_uploaded_file_details(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        big, small = form.files["big"], form.files["small"]
        seen["big"] = (big.in_memory, big.sha256, repr(big))
        seen["small"] = repr(small)
        with pytest.raises(FileNotFoundError):
            await small.save(tmp_path / "missing-dir" / "x")
        return web.Response(text="ok")

    app = web.Application()
    ah.setup(app)  # the default spool_max_size keeps 1 MiB in memory
    app.router.add_post("/", handler)
    client = await aiohttp_client(app)
    payload = os.urandom(300_000)
    body = multipart_body(
        FormPart(name="big", data=payload, filename="big.bin", content_type="application/x-big"),
        FormPart(name="small", data=b"s", filename="s.txt"),
    )
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 200
    assert seen["big"] == (
        True,
        hashlib.sha256(payload).hexdigest(),
        "<UploadedFile 'big' filename='big.bin' content_type='application/x-big' "
        "size=300000 in memory>",
    )
    assert seen["small"].startswith("<UploadedFile 'small' filename='s.txt'")
    assert listing(tmp_path) == []


def test_uploaded_file_needs_data_or_a_path() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
    common: dict[str, Any] = {
        "name": "f",
        "filename": "f",
        "raw_filename": "f",
        "content_type": "text/plain",
        "headers": headers,
        "size": 1,
        "sha256": "",
    }
    with pytest.raises(TypeError, match="either data or a path"):
        ah.UploadedFile(**common)
    with pytest.raises(TypeError, match="either data or a path"):
        ah.UploadedFile(**common, data=b"x", path="/tmp/x")


async def test_saving_to_a_full_disk_is_507(
    aiohttp_client: AiohttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    dest = tmp_path / "dest"
    dest.mkdir()

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(dest)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        monkeypatch.setattr(os, "write", write)
        try:
            await form.files["f"].save(dest / "f.bin")
        finally:
            monkeypatch.undo()
        raise AssertionError

    client = await aiohttp_client(upload_app(handler))
    resp = await post_file(client, b"abc", "f.bin")
    assert resp.status == 507
    assert listing(dest) == []


async def test_slow_disk_and_cancellation(
    aiohttp_client: AiohttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read cancelled while a write is in flight removes the file once the write is done."""
    real_write, real_pwritev = os.write, os.pwritev
    writing = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            loop.call_soon_threadsafe(writing.set)
            time.sleep(0.3)

    def slow_write(fd: int, data: Any) -> int:
        slow(fd)
        return real_write(fd, data)

    def slow_pwritev(fd: int, buffers: Any, offset: int) -> int:
        slow(fd)
        return real_pwritev(fd, buffers, offset)

    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        task = asyncio.ensure_future(ah.read_form(request))
        await writing.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        seen["right_after"] = listing(tmp_path)
        for _ in range(250):
            if not listing(tmp_path):
                break
            await asyncio.sleep(0.02)
        seen["later"] = listing(tmp_path)
        return web.Response(text="ok")

    monkeypatch.setattr(os, "write", slow_write)
    monkeypatch.setattr(os, "pwritev", slow_pwritev)
    client = await aiohttp_client(
        upload_app(handler, ah.UploadLimits(spool_max_size=0, tmp_dir=tmp_path))
    )
    body = multipart_body(FormPart(name="f", data=os.urandom(3 << 20), filename="f"))
    resp = await client.post("/", data=io.BytesIO(body.data), headers=body.headers)
    assert resp.status == 200
    assert len(seen["right_after"]) == 1  # the write is still running
    assert seen["later"] == []
