"""Uploads end to end: ours against drain, drain+write, aiohttp ``post()`` and Starlette.

Two servers, each in a process of its own on 127.0.0.1, measured in the same run, in
rotated order, with ``curl`` as the client:

- aiohttp (``web.AppRunner``): ``/drain`` reads ``request.content`` and keeps nothing (the
  network ceiling); ``/write`` writes each chunk to a file as it comes (drain+write: the
  ceiling for any path that keeps the bytes); ``/form`` is ``ah.read_form()`` +
  ``save()`` (SHA-256 computed while streaming); ``/parts`` is ``ah.iter_parts()`` +
  ``part.save()``; ``/post`` is aiohttp's ``request.post()`` + a copy of the file;
- Starlette under uvicorn (python-multipart): ``await request.form()`` + a copy.

1. A large file (``--size-mb``, default 512, or ``$AH_BENCH_UPLOAD_MB``) sent by
   ``curl -F``; spools, copies and destinations are on ``--dir`` (``/dev/shm``, a tmpfs, by
   default) so that the figures measure the code rather than a disk.
2. A form of ``--fields`` small text fields (default 20,000) sent by ``curl
   --data-binary``: ours (``read_form()``), aiohttp (``post()``), Starlette (``form()``).

Every rate is timed inside the handler, from its first line until the data is where it
goes; medians of ``--rounds`` rounds (after one warm-up round). Prints tables with ratios;
asserts nothing.

    python -m bench.uploads [--size-mb 512] [--rounds 3] [--fields 20000] [--dir /dev/shm]
    python -m bench.uploads --profile form|parts   # cProfile of our handler in the server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench._harness import (
    Server,
    free_port,
    median,
    memory,
    module_args,
    require,
    reset_peak,
    table,
    write_body,
)

MODULE = "bench.uploads"
MiB = 2**20
LARGE = ("drain", "write", "form", "parts", "starlette", "post")
LABELS = {
    "drain": "drain request.content (network ceiling)",
    "write": "drain+write (ceiling for keeping the bytes)",
    "form": "ours: read_form() + save() (sha256)",
    "parts": "ours: iter_parts() + part.save()",
    "starlette": "Starlette/uvicorn: request.form() + copy",
    "post": "aiohttp: request.post() + copy",
}
FIELDS = ("fields-ours", "fields-starlette", "fields-post")
FIELD_LABELS = {
    "fields-ours": "ours: read_form()",
    "fields-starlette": "Starlette/uvicorn: request.form()",
    "fields-post": "aiohttp: request.post()",
}


# -- the aiohttp server (its own process) ---------------------------------------------------


def aiohttp_app(directory: Path, size: int, profile: str | None) -> Any:
    from aiohttp import web

    import aiohttp_helpers as ah

    def dest(name: str) -> Path:
        return directory / f"dest-{name}-{uuid.uuid4().hex}.bin"

    async def drain(request: web.Request) -> dict[str, float]:
        total = 0
        while chunk := await request.content.readany():
            total += len(chunk)
        return {"bytes": total}

    async def write(request: web.Request) -> dict[str, float]:
        path = dest("write")
        total = await write_body(request.content, path, os.O_EXCL)
        return {"bytes": total, "path": str(path)}  # type: ignore[dict-item]

    async def form(request: web.Request) -> dict[str, float]:
        received = await ah.read_form(request)
        upload = received.files["f"]
        assert len(upload.sha256) == 64
        path = await upload.save(dest("form"))
        return {"bytes": upload.size, "path": str(path)}  # type: ignore[dict-item]

    async def parts(request: web.Request) -> dict[str, float]:
        total, path = 0, dest("parts")
        async for part in ah.iter_parts(request):
            await part.save(path)
            total += part.size
        return {"bytes": total, "path": str(path)}  # type: ignore[dict-item]

    async def post(request: web.Request) -> dict[str, float]:
        data = await request.post()
        field = data["f"]
        assert isinstance(field, web.FileField)
        path = dest("post")

        def copy() -> int:
            with open(path, "wb") as out:
                shutil.copyfileobj(field.file, out, MiB)
                field.file.close()
                return out.tell()

        return {"bytes": await asyncio.to_thread(copy), "path": str(path)}  # type: ignore[dict-item]

    async def fields_ours(request: web.Request) -> dict[str, float]:
        return {"fields": len((await ah.read_form(request)).fields)}

    async def fields_post(request: web.Request) -> dict[str, float]:
        return {"fields": len(await request.post())}

    Handler = Callable[[web.Request], Awaitable[dict[str, float]]]

    def timed(name: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            profiler = cProfile.Profile() if profile == name else None
            started = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            doc = await handler(request)
            seconds = time.perf_counter() - started
            if profiler is not None:
                profiler.disable()
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
                stats.print_stats(25)
                doc["profile"] = out.getvalue()  # type: ignore[assignment]
            path = doc.pop("path", None)
            if path is not None:
                await asyncio.to_thread(os.unlink, str(path))
            return web.json_response({**doc, "seconds": seconds})

        return run

    many = 10**6
    app = web.Application(client_max_size=4 * size, client_max_fields=many)
    ah.setup(
        app,
        limits=ah.UploadLimits(
            max_body_size=4 * size,
            max_file_size=4 * size,
            max_decoded_size=4 * size,
            max_fields=many,
            max_parts=many,
            tmp_dir=directory,
        ),
    )
    for name, handler in (
        ("drain", drain),
        ("write", write),
        ("form", form),
        ("parts", parts),
        ("post", post),
        ("fields-ours", fields_ours),
        ("fields-post", fields_post),
    ):
        app.router.add_post(f"/{name}", timed(name, handler))
    return app


async def serve_aiohttp(directory: Path, size: int, profile: str | None) -> None:
    from aiohttp import web

    runner = web.AppRunner(aiohttp_app(directory, size, profile), handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


# -- the Starlette server (its own process) -------------------------------------------------


def serve_starlette(directory: Path) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.datastructures import UploadFile
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def form(request: Request) -> JSONResponse:
        started = time.perf_counter()
        async with request.form(max_files=10, max_fields=10) as data:
            upload = data["f"]
            assert isinstance(upload, UploadFile)
            path = directory / f"dest-starlette-{uuid.uuid4().hex}.bin"

            def copy() -> int:
                with open(path, "wb") as out:
                    upload.file.seek(0)
                    shutil.copyfileobj(upload.file, out, MiB)
                    return out.tell()

            total = await asyncio.to_thread(copy)
        seconds = time.perf_counter() - started
        await asyncio.to_thread(path.unlink)
        return JSONResponse({"bytes": total, "seconds": seconds})

    async def fields(request: Request) -> JSONResponse:
        started = time.perf_counter()
        async with request.form(max_fields=10**6) as data:
            count = len(data)
        return JSONResponse({"fields": count, "seconds": time.perf_counter() - started})

    app = Starlette(routes=[Route("/form", form, methods=["POST"]),
                            Route("/fields", fields, methods=["POST"])])  # fmt: skip
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
            await asyncio.sleep(0.01)
        print(port, flush=True)
        await task

    asyncio.run(run())


# -- the runs (this process) ----------------------------------------------------------------


def _make_file(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            out.write(block)
            left -= len(block)


def _touch_pages(directory: Path, size: int) -> None:
    """Write, then remove, as much as the run holds at once: first touches of tmpfs pages
    in a virtual machine cost far more than any later write."""
    block = bytes(4 * MiB)
    path = directory / f"ahbench-warm-{os.getpid()}.bin"
    with open(path, "wb") as out:
        for _ in range(max(1, 3 * size // len(block))):
            out.write(block)
    path.unlink()


def _curl(url: str, *args: str) -> dict[str, Any]:
    answer = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-H", "Expect:", *args, url],
        capture_output=True,
        check=True,
        timeout=900,
    )
    doc: dict[str, Any] = json.loads(answer.stdout)
    return doc


def run(size: int, rounds: int, fields: int, directory: Path, skip_large: bool) -> None:
    require("curl")
    from aiohttp_helpers.testing import multipart_body

    env = dict(os.environ, TMPDIR=str(directory))
    source = directory / f"ahbench-upload-{os.getpid()}.bin"
    form_file = directory / f"ahbench-fields-{os.getpid()}.bin"
    body = multipart_body(*[(f"field{i}", f"value number {i}") for i in range(fields)])
    form_file.write_bytes(body.data)
    content_type = body.headers["Content-Type"]
    started = time.monotonic()
    try:
        if not skip_large:
            _make_file(source, size)
            _touch_pages(directory, size)
        aio = module_args(
            MODULE, "--serve", "aiohttp", "--dir", str(directory), "--size", str(size)
        )
        star = module_args(MODULE, "--serve", "starlette", "--dir", str(directory))
        with Server(aio, env=env) as aio_server, Server(star, env=env) as star_server:
            bases = {"aiohttp": aio_server.url, "starlette": star_server.url}

            def url(variant: str) -> str:
                if variant == "starlette":
                    return bases["starlette"] + "/form"
                if variant == "fields-starlette":
                    return bases["starlette"] + "/fields"
                return f"{bases['aiohttp']}/{variant}"

            large: dict[str, list[float]] = {v: [] for v in LARGE}
            growth: dict[str, list[float]] = {v: [] for v in LARGE}
            many: dict[str, list[float]] = {v: [] for v in FIELDS}
            for round_ in range(rounds + 1):
                if not skip_large:
                    order = LARGE[round_ % len(LARGE) :] + LARGE[: round_ % len(LARGE)]
                    for variant in order:
                        pid = star_server.pid if variant == "starlette" else aio_server.pid
                        can_reset = reset_peak(pid)
                        before = memory(pid)["VmRSS"]
                        doc = _curl(url(variant), "-F", f"f=@{source}")
                        # drain and write count the multipart framing too
                        assert doc["bytes"] >= size, (variant, doc)
                        peak = max(0, memory(pid)["VmHWM"] - before) if can_reset else float("nan")
                        if round_:
                            large[variant].append(size / doc["seconds"])
                            growth[variant].append(peak)
                for variant in FIELDS:
                    doc = _curl(
                        url(variant), "-H", f"Content-Type: {content_type}",
                        "--data-binary", f"@{form_file}",
                    )  # fmt: skip
                    assert doc["fields"] == fields, (variant, doc)
                    if round_:
                        many[variant].append(fields / doc["seconds"])
    finally:
        source.unlink(missing_ok=True)
        form_file.unlink(missing_ok=True)

    if not skip_large:
        print(
            f"\nLarge upload: {size // MiB} MiB by curl -F to a server process, files on "
            f"{directory}; median of {rounds} rounds, variants rotated"
        )
        rows = []
        for variant in LARGE:
            rates = large[variant]

            def vs(base: str, rates: list[float] = rates) -> str:
                ratios = [r / b for r, b in zip(rates, large[base], strict=True)]
                return f"{median(ratios):.2f}x"

            peak = max(growth[variant])
            rows.append(
                [LABELS[variant], f"{median(rates) / 1e9:.2f} GB/s", vs("drain"), vs("write"),
                 vs("starlette"), "n/a" if peak != peak else f"{peak / MiB:.1f} MiB"]
            )  # fmt: skip
        print(
            table(
                ["variant", "rate", "vs drain", "vs drain+write", "vs Starlette",
                 "peak RSS growth"],
                rows,
            )
        )  # fmt: skip
        print(
            "targets: read_form()+save() >= 0.8x drain+write, iter_parts()+part.save() >= "
            "0.9x, both >= 2x Starlette (ratios are medians of per-round ratios)"
        )
    print(
        f"\n{fields:,} small text fields ({len(body.data) / MiB:.1f} MiB) by curl "
        f"--data-binary; median of {rounds} rounds"
    )
    best_peer = max(median(many["fields-starlette"]), median(many["fields-post"]))
    rows = [
        [FIELD_LABELS[v], f"{median(many[v]):,.0f}", f"{median(many[v]) / best_peer:.2f}x"]
        for v in FIELDS
    ]
    print(table(["parser", "fields/s", "vs best peer"], rows))
    print("target: ours >= 3x the best peer")
    print(f"total {time.monotonic() - started:.0f} s")


def profile(variant: str, size: int, directory: Path, uploads: int) -> None:
    """Upload ``uploads`` times to ``variant`` with cProfile on in the server; print it."""
    env = dict(os.environ, TMPDIR=str(directory))
    source = directory / f"ahbench-upload-{os.getpid()}.bin"
    try:
        _make_file(source, size)
        _touch_pages(directory, size)
        args = module_args(MODULE, "--serve", "aiohttp", "--dir", str(directory),
                           "--size", str(size), "--profile", variant)  # fmt: skip
        with Server(args, env=env) as server:
            base = server.url
            _curl(f"{base}/{variant}", "-F", f"f=@{source}")  # warm-up, profiled too
            doc = _curl(f"{base}/{variant}", "-F", f"f=@{source}")
            write = _curl(f"{base}/write", "-F", f"f=@{source}")
            print(
                f"{variant}: {size / doc['seconds'] / 1e9:.2f} GB/s under cProfile; "
                f"drain+write {size / write['seconds'] / 1e9:.2f} GB/s"
            )
            print(doc["profile"])
    finally:
        source.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description=__doc__.splitlines()[0]
    )
    default_mb = int(os.environ.get("AH_BENCH_UPLOAD_MB", "512"))
    shm = Path("/dev/shm")
    parser.add_argument("--size-mb", type=int, default=default_mb)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fields", type=int, default=20_000)
    parser.add_argument(
        "--dir", type=Path, default=shm if shm.is_dir() else Path(tempfile.gettempdir())
    )
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--profile", choices=["form", "parts"])
    parser.add_argument("--serve", choices=["aiohttp", "starlette"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "aiohttp":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_aiohttp(args.dir, args.size, args.profile))
    elif args.serve == "starlette":
        serve_starlette(args.dir)
    elif args.profile:
        profile(args.profile, args.size_mb * MiB, args.dir, 2)
    else:
        run(args.size_mb * MiB, args.rounds, args.fields, args.dir, args.skip_large)


if __name__ == "__main__":
    main()
