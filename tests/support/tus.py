"""tus peers and servers: tuspy (the tus Python client), the resumable test app as a process.

``resumable_server`` runs ``tests/support/resumable_app.py`` on a free port;
``resumable_gunicorn`` runs ``tests.support.resumable_gunicorn:create_app()`` under two
gunicorn workers. Both yield the base URL and kill the process (group) at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage

from .gunicorn import NO_CONTROL_SOCKET
from .net import free_port, wait_ok
from .paths import ROOT, SUPPORT

__all__ = [
    "TUS",
    "Unclosable",
    "done_uploads",
    "resumable_gunicorn",
    "resumable_server",
    "tuspy_upload",
]

TUS = {"Tus-Resumable": "1.0.0"}


def tuspy_upload(
    endpoint: str,
    path: Path,
    storage: Path,
    *,
    chunk: int,
    stop_at: int | None = None,
    url: str | None = None,
    checksum: bool = True,
) -> tuple[str, int]:
    """Upload ``path`` with tuspy (blocking); return its URL and the offset it started from."""
    client = tus_client.TusClient(endpoint)
    store = FileStorage(str(storage))  # type: ignore[no-untyped-call]
    # Given a path, tuspy opens the file and leaves it open; given a stream, it closes it
    # after the fingerprint: hand it bytes in memory that outlive that.
    stream = Unclosable(path.read_bytes())
    try:
        uploader = client.uploader(
            file_stream=stream,
            url=url,
            chunk_size=chunk,
            metadata={"filename": path.name},
            store_url=url is None,
            url_storage=store if url is None else None,
            upload_checksum=checksum,
        )
        started = int(uploader.offset)
        uploader.upload(stop_at=stop_at)
        url_now: object = uploader.url
        assert isinstance(url_now, str)
        return url_now, started
    finally:
        store.close()  # type: ignore[no-untyped-call]


class Unclosable(io.BytesIO):
    """Bytes in memory that outlive the ``close()`` tuspy calls after the fingerprint."""

    def close(self) -> None:
        pass


async def done_uploads(base: str) -> list[dict[str, Any]]:
    """What the resumable test app saved so far (its ``GET /done``)."""
    async with aiohttp.ClientSession() as session, session.get(base + "/done") as resp:
        result: list[dict[str, Any]] = await resp.json()
        return result


@contextlib.asynccontextmanager
async def resumable_server(
    partial: Path, saved: Path, *, fsize: int = 0, **options: Any
) -> AsyncIterator[tuple[str, Any]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SUPPORT / "resumable_app.py"),
        "--port",
        str(port),
        "--dir",
        str(partial),
        "--save",
        str(saved),
        "--options",
        json.dumps(options),
        "--fsize",
        str(fsize),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ok(base + "/", 10.0, what="the server starting")
        yield base, proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def resumable_gunicorn(partial: Path, saved: Path) -> AsyncIterator[str]:
    port = free_port()
    env = dict(os.environ, AH_RESUMABLE_DIR=str(partial), AH_RESUMABLE_SAVE=str(saved))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gunicorn",
        "-k", "aiohttp.GunicornWebWorker",
        "--bind", f"127.0.0.1:{port}",
        "--workers", "2",
        "--graceful-timeout", "5",
        *NO_CONTROL_SOCKET,
        "tests.support.resumable_gunicorn:create_app()",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ok(base + "/", 20.0, what="gunicorn starting")
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
