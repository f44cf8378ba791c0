"""An app with resumable uploads, for the tests: in-process, or run as a real server process.

Completed uploads are saved into ``save_dir`` under their SHA-256 (so two uploads of one
name do not collide) and listed at ``GET /done``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

import aiohttp_helpers as ah

DONE_KEY = web.AppKey("done", list)
UPLOADS_KEY = web.AppKey("uploads", ah.ResumableUploads)
#: The headers of a tus 1.0 PATCH.
STREAM = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}


class Patching(Protocol):
    """What sends a PATCH: a ``TestClient`` or an ``aiohttp.ClientSession``."""

    def patch(self, url: str, *, headers: dict[str, str], data: Any) -> Any: ...


async def held_patch(
    client: Patching, url: str, part: Path
) -> tuple[asyncio.Future[Any], asyncio.Event]:
    """A PATCH at offset 0 that writes 5 bytes to ``part``, then holds the upload's lock.

    It sends 5 more bytes once the event is set; await the future for its answer.
    """
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"A" * 5
        await release.wait()
        yield b"A" * 5

    writing = asyncio.ensure_future(
        client.patch(url, headers={**STREAM, "Upload-Offset": "0"}, data=slow())
    )
    for _ in range(200):
        if (await asyncio.to_thread(part.stat)).st_size == 5:
            break
        await asyncio.sleep(0.02)
    return writing, release


async def let_held_patch_win(
    writing: asyncio.Future[Any], release: asyncio.Event, part: Path
) -> None:
    """Release a ``held_patch``: it must end with 204 at offset 10, its 10 bytes in ``part``."""
    release.set()
    async with await writing as won:
        assert won.status == 204
        assert won.headers["Upload-Offset"] == "10"
    assert await asyncio.to_thread(part.read_bytes) == b"A" * 10


def create_app(
    directory: str | Path,
    save_dir: str | Path,
    *,
    limits: ah.UploadLimits | None = None,
    **options: object,
) -> web.Application:
    app = web.Application()
    helpers = ah.setup(app, limits=limits, strict_signals=True)
    uploads = ah.add_resumable_uploads(app, "/files", directory=directory, **options)  # type: ignore[arg-type]
    done: list[dict[str, object]] = []
    app[DONE_KEY] = done
    app[UPLOADS_KEY] = uploads
    target = Path(save_dir)
    target.mkdir(parents=True, exist_ok=True)

    async def saved(request: web.Request, uploaded: ah.UploadedFile) -> None:
        path = await uploaded.save(target / uploaded.sha256)
        done.append(
            {
                "filename": uploaded.filename,
                "raw_filename": uploaded.raw_filename,
                "content_type": uploaded.content_type,
                "size": uploaded.size,
                "sha256": uploaded.sha256,
                "path": str(path),
            }
        )

    helpers.signals.on_upload.append(saved)

    async def list_done(request: web.Request) -> web.Response:
        return web.json_response(done)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/done", list_done)
    app.router.add_get("/", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--save", required=True)
    parser.add_argument("--options", default="{}")
    parser.add_argument("--fsize", type=int, default=0, help="RLIMIT_FSIZE: a full disk")
    args = parser.parse_args()
    if args.fsize:
        # Writes past the limit fail with EFBIG, as on a full disk (SIGXFSZ ignored).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    options = json.loads(args.options)
    limits = ah.UploadLimits(**options.pop("limits")) if "limits" in options else None
    app = create_app(args.dir, args.save, limits=limits, **options)
    print("serving", flush=True)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, handler_cancellation=False)


if __name__ == "__main__":
    main()
