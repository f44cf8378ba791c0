"""An upload service: a form with photos, a streaming endpoint, and a multipart download.

Run it with ``python examples/uploads.py`` and open http://127.0.0.1:8083/. Try it with curl::

    curl -F title=holiday -F photos=@beach.jpg http://127.0.0.1:8083/upload
    curl -F blob=@big.iso http://127.0.0.1:8083/api/blobs
    curl -s http://127.0.0.1:8083/files -o all.multipart

Every limit is enforced while the body streams in; bad input is answered with a problem
document (413, 400, 415, 408), and spooled files never outlive their request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

from aiohttp import web

import aiohttp_helpers as ah

UPLOAD_DIR = web.AppKey("upload_dir", Path)
MiB = 2**20
log = logging.getLogger("examples.uploads")

INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>uploads</title></head>
<body>
<form method="post" action="/upload" enctype="multipart/form-data">
  <p><input name="title" placeholder="title" required></p>
  <p><input name="photos" type="file" accept="image/*" multiple></p>
  <p><button>upload</button></p>
</form>
<p><a href="/files">download everything as multipart/mixed</a></p>
</body>
</html>
"""


async def index(request: web.Request) -> web.Response:
    return web.Response(text=INDEX, content_type="text/html")


async def upload(request: web.Request) -> web.Response:
    """A browser form: a title and photos, checked by type and by their leading bytes."""
    form = await ah.read_form(request)
    saved = []
    for photo in form.files.getall("photos", []):
        where = await photo.save(request.app[UPLOAD_DIR], unique=True)
        saved.append({"name": where.name, "size": photo.size, "sha256": photo.sha256})
    return web.json_response({"title": form.get("title", ""), "saved": saved})


@ah.upload_limits(max_file_size=1024 * MiB, max_body_size=1024 * MiB, max_files=1)
async def blobs(request: web.Request) -> web.Response:
    """Large files, streamed straight to their place without a spool in between."""
    stored = []
    async for part in ah.iter_parts(request):
        if part.filename is None:
            raise web.HTTPBadRequest(text="send a file")
        where = await part.save(request.app[UPLOAD_DIR], unique=True)
        stored.append({"name": where.name, "size": part.size})
    return web.json_response(stored, status=201)


async def files(request: web.Request) -> web.StreamResponse:
    """Every stored file in one multipart/mixed answer (with a Content-Length)."""
    paths = await asyncio.to_thread(lambda: sorted(request.app[UPLOAD_DIR].iterdir()))
    response = ah.MultipartResponse("mixed")
    for path in paths:
        # aiohttp reads file objects in a worker thread, and knows their size.
        response.append(
            path.open("rb"),
            {
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{path.name}"',
            },
        )
    return response


def create_app(upload_dir: Path | None = None) -> web.Application:
    """The upload service, storing files in ``upload_dir`` (a temporary directory by default)."""
    app = web.Application()
    helpers = ah.setup(
        app,
        limits=ah.UploadLimits(
            max_body_size=50 * MiB,
            max_file_size=20 * MiB,
            max_files=10,
            max_fields=20,
            allowed_types={"photos": ["image/jpeg", "image/png", "image/gif", "image/webp"]},
            sniff_types=frozenset({"photos"}),
            idle_timeout=30.0,
        ),
    )

    async def on_upload(request: web.Request, upload: ah.UploadedFile) -> None:
        log.info("received %s (%d bytes) in %s", upload.filename, upload.size, upload.name)

    helpers.signals.on_upload.append(on_upload)
    if upload_dir is None:
        upload_dir = Path(tempfile.gettempdir()) / "aiohttp-helpers-uploads"
    upload_dir.mkdir(parents=True, exist_ok=True)
    app[UPLOAD_DIR] = upload_dir
    app.router.add_get("/", index)
    app.router.add_post("/upload", upload)
    app.router.add_post("/api/blobs", blobs)
    app.router.add_get("/files", files)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8083, help="port to listen on (default: %(default)s)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where uploads are stored")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app = create_app(args.dir)
    print(f"uploads on http://{args.host}:{args.port}/ into {app[UPLOAD_DIR]}", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
