"""Shared pieces of the upload tests: apps that report what they received, and leak checks."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestClient, make_mocked_request

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

__all__ = [
    "describe_form",
    "form_app",
    "get_app",
    "in_process_request",
    "listing",
    "open_fds",
    "open_files",
    "parts_app",
    "post_file",
    "upload_app",
]


def describe_file(upload: ah.UploadedFile, data: bytes) -> dict[str, Any]:
    return {
        "name": upload.name,
        "filename": upload.filename,
        "raw_filename": upload.raw_filename,
        "content_type": upload.content_type,
        "size": upload.size,
        "sha256": upload.sha256,
        "in_memory": upload.in_memory,
        "data": base64.b64encode(data).decode(),
    }


async def describe_form(form: ah.Form) -> dict[str, Any]:
    """What a form holds, in JSON terms (file bytes base64-encoded)."""
    return {
        "fields": [[k, v] for k, v in form.fields.items()],
        "files": [describe_file(f, await f.read()) for f in form.files.values()],
    }


def get_app(handler: Handler, **others: Handler) -> web.Application:
    """``handler`` at ``GET /``, and each of ``others`` at ``GET /<its name>`` (no setup)."""
    app = web.Application()
    app.router.add_get("/", handler)
    for name, other in others.items():
        app.router.add_get(f"/{name}", other)
    return app


def upload_app(
    handler: Handler,
    limits: ah.UploadLimits | None = None,
) -> web.Application:
    """``handler`` at ``POST /`` of an app with the helpers set up (with ``limits``)."""
    app = web.Application()
    ah.setup(app, limits=limits)
    app.router.add_post("/", handler)
    return app


async def post_file(
    client: TestClient[Any, Any], data: bytes, filename: str, path: str = "/"
) -> ClientResponse:
    """POST a form of one file, field ``f``, that holds ``data``, to ``path``: the answer."""
    body = multipart_body(FormPart(name="f", data=data, filename=filename))
    return await client.post(path, data=body.data, headers=body.headers)


def form_app(limits: ah.UploadLimits | None = None, *, with_setup: bool = True) -> web.Application:
    """``POST /form`` answers with what ``read_form()`` read."""

    async def handler(request: web.Request) -> web.Response:
        form = await ah.read_form(request)
        return web.json_response(await describe_form(form))

    app = web.Application()
    if with_setup:
        ah.setup(app, limits=limits)
    app.router.add_post("/form", handler)
    return app


def parts_app(limits: ah.UploadLimits | None = None) -> web.Application:
    """``POST /parts`` answers with each part ``iter_parts()`` yields, nested ones expanded."""

    async def walk(parts: ah.PartIterator) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async for part in parts:
            item: dict[str, Any] = {
                "name": part.name,
                "filename": part.filename,
                "raw_filename": part.raw_filename,
                "content_type": part.content_type,
                "is_file": part.is_file,
            }
            if part.is_multipart:
                item["parts"] = await walk(part.iter_parts())
            else:
                item["data"] = base64.b64encode(await part.read()).decode()
            out.append(item)
        return out

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(await walk(ah.iter_parts(request)))

    app = web.Application()
    ah.setup(app, limits=limits)
    app.router.add_post("/parts", handler)
    return app


def open_fds() -> set[str]:
    """This process's open file descriptors."""
    return set(os.listdir("/proc/self/fd"))


def open_files(under: Path) -> list[str]:
    """What this process's descriptors point at below ``under``."""
    found = []
    for fd in open_fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed since the listing
        if target.startswith(str(under)):
            found.append(target)
    return found


def in_process_request(
    chunks: list[bytes], headers: dict[str, str], *, eof: bool = True
) -> web.Request:
    """A request whose body is ``chunks``, fed to a real StreamReader one by one.

    Each ``chunks`` item reaches the reader as one ``readchunk()``, so the parser sees
    exactly these splits (the network would merge or split them as it likes). Without
    ``eof`` the body never ends and its connection is gone, as after a disconnect.
    """
    loop = asyncio.get_running_loop()
    reader = StreamReader(BaseProtocol(loop), 2**30, loop=loop)
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return make_mocked_request("POST", "/", headers=headers, payload=reader)


def listing(path: Path) -> list[str]:
    return sorted(os.listdir(path))
