"""The demo app: ``make demo`` serves it on http://127.0.0.1:8080/.

It shows the three pillars in one page: an upload form (drag-and-drop, a progress bar, the
parsed result or the 413/415 answer), a live chat over a WebSocket that shows how each
connection ended and reconnects only when the close code says so, and readiness that
turns 503 while the app drains. A resumable-upload panel sends files with tus-js-client
(tus 1.0 or the IETF draft) in chunks: pause, resume, or reload the page and pick the file
again, and the upload continues from the offset the server stored. Chat commands:
``/kick`` closes with the application code 4000, ``/crash`` raises in the handler (1011),
``/bye`` ends the handler (1000).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import shutil
import tempfile
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

import aiohttp_helpers as ah
from aiohttp_helpers.prometheus import setup_metrics

STATIC = Path(__file__).resolve().parent / "static"
#: tus-js-client's browser build, installed by ``npm ci`` (``make install``); served as is.
TUS_JS = Path(__file__).resolve().parent.parent / "node_modules/tus-js-client/dist/tus.min.js"
RESUMABLE_FIELD = "resumable"
COMPLETED_KEY: web.AppKey[collections.deque[dict[str, object]]] = web.AppKey("completed")
MiB = 2**20
KICKED = 4000
AVATAR_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

_guests = itertools.count(1)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def limits(request: web.Request) -> web.Response:
    """The upload limits the page shows."""
    current = ah.get_helpers(request.app).limits
    avatar = current.allowed_types.get("avatar") if current.allowed_types else None
    return web.json_response(
        {
            "max_body_size": current.max_body_size,
            "max_file_size": current.max_file_size,
            "max_files": current.max_files,
            "avatar_types": list(avatar) if avatar else None,
        }
    )


async def upload(request: web.Request) -> web.Response:
    """Read the form and describe what came; nothing is kept."""
    async with await ah.read_form(request) as form:
        return web.json_response(
            {
                "fields": {name: form[name] for name in form},
                "files": [
                    {
                        "field": f.name,
                        "filename": f.filename,
                        "raw_filename": f.raw_filename,
                        "content_type": f.content_type,
                        "size": f.size,
                        "sha256": f.sha256,
                    }
                    for f in form.files.values()
                ],
            }
        )


async def tus_js(request: web.Request) -> web.StreamResponse:
    """tus-js-client's browser build, from node_modules (no build step)."""
    if not TUS_JS.is_file():
        raise web.HTTPNotFound(text="tus-js-client is not installed: run `npm ci` (make install)")
    return web.FileResponse(TUS_JS, headers={"Cache-Control": "no-cache"})


async def completed(request: web.Request) -> web.Response:
    """The resumable uploads completed so far (the newest last)."""
    done = request.app[COMPLETED_KEY]
    return web.json_response(list(done))


def _message(text: str, sender: str | None = None) -> str:
    body = {"text": text} if sender is None else {"from": sender, "text": text}
    return json.dumps(body, ensure_ascii=False)


@ah.websocket_handler(messages="json", max_msg_size=64 * 1024)
async def chat(request: web.Request, ws: ah.ServerWebSocket) -> None:
    """One chat member; commands show the close codes."""
    name = f"guest-{next(_guests)}"
    websockets = ah.get_helpers(request.app).websockets
    websockets.join(ws, "chat")
    await ws.send_str(_message(f"you are {name}; try /kick, /crash or /bye"))
    await websockets.broadcast(_message(f"{name} joined"), group="chat")
    async for message in ws.messages():
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ah.WSClose(1008, 'send {"text": "..."}')
        command = text.strip()
        if command == "/kick":
            raise ah.WSClose(KICKED, "kicked: you asked for it")
        if command == "/crash":
            raise RuntimeError("the demo handler crashed on purpose")
        if command == "/bye":
            return
        await websockets.broadcast(_message(text[:2000], name), group="chat")


def create_app(
    *,
    max_file_size: int = 64 * MiB,
    max_body_size: int = 70 * MiB,
    max_ws_connections: int | None = 200,
    tmp_dir: str | None = None,
    drain_delay: float = 0.0,
    resumable_dir: str | None = None,
) -> web.Application:
    """The demo application, with the package set up.

    ``resumable_dir`` keeps partial resumable uploads (by default a temporary directory,
    removed when the app stops); give one to resume uploads across restarts too.
    """
    app = web.Application()
    helpers = ah.setup(
        app,
        limits=ah.UploadLimits(
            max_file_size=max_file_size,
            max_body_size=max_body_size,
            max_files=10,
            # The avatar must be an image, by its declared type and by its first bytes.
            allowed_types={"avatar": AVATAR_TYPES},
            sniff_types=frozenset({"avatar"}),
            tmp_dir=tmp_dir,
        ),
        websockets=ah.WebSocketSettings(heartbeat=20.0, max_connections=max_ws_connections),
        health="/health",
        drain_delay=drain_delay,
    )
    app.router.add_get("/", index)
    app.router.add_get("/limits", limits)
    app.router.add_post("/upload", upload)
    app.router.add_get("/ws/chat", chat)
    app.router.add_static("/static", STATIC)
    setup_metrics(app, registry=CollectorRegistry())  # GET /metrics, one registry per app

    # Resumable uploads: the bytes of a completed one are checked and described, not kept.
    own_dir = resumable_dir is None
    directory = resumable_dir or tempfile.mkdtemp(prefix="aiohttp-helpers-demo-resumable-")
    ah.add_resumable_uploads(
        app,
        "/files",
        directory=directory,
        limits=ah.UploadLimits(max_file_size=max_file_size),
        field=RESUMABLE_FIELD,
    )
    done: collections.deque[dict[str, object]] = collections.deque(maxlen=50)
    app[COMPLETED_KEY] = done

    async def on_upload(request: web.Request, uploaded: ah.UploadedFile) -> None:
        if uploaded.name == RESUMABLE_FIELD:
            done.append(
                {
                    "filename": uploaded.filename,
                    "content_type": uploaded.content_type,
                    "size": uploaded.size,
                    "sha256": uploaded.sha256,
                }
            )

    helpers.signals.on_upload.append(on_upload)
    if own_dir:

        @helpers.lifecycle.on_cleanup(name="demo resumable directory")
        async def remove_directory(app: web.Application) -> None:
            shutil.rmtree(directory, ignore_errors=True)

    app.router.add_get("/vendor/tus.min.js", tus_js)
    app.router.add_get("/resumable/done", completed)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="aiohttp-helpers demo")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default: %(default)s)"
    )
    parser.add_argument("--max-file-size", type=int, default=64 * MiB)
    parser.add_argument("--max-ws-connections", type=int, default=200)
    parser.add_argument("--drain-delay", type=float, default=0.0)
    parser.add_argument(
        "--resumable-dir",
        default=None,
        help="keep partial resumable uploads here (default: a temp dir)",
    )
    args = parser.parse_args(argv)
    app = create_app(
        max_file_size=args.max_file_size,
        max_body_size=max(args.max_file_size + MiB, 2 * MiB),
        max_ws_connections=args.max_ws_connections,
        drain_delay=args.drain_delay,
        resumable_dir=args.resumable_dir,
    )
    print(f"aiohttp-helpers demo on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
