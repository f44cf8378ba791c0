"""Resumable-upload throughput against plain aiohttp drain+write, measured in the same run.

A server process (aiohttp, ``--dir`` on tmpfs: ``/dev/shm`` by default) serves
``ah.add_resumable_uploads()`` at ``/files`` and, as the reference, ``/write``: a handler
that drains ``request.content`` and appends each chunk to a file (the ceiling for any upload
path that keeps the bytes). A client in this process (aiohttp, one keep-alive connection)
sends ``--size-mb`` (default 512) in ``--chunk-mb`` (default 8) pieces:

- tus: one creation POST, then one PATCH per chunk (locks, state file, SHA-256 of the whole
  upload, the hand-over as an ``UploadedFile`` at the end, saved to ``--dir``);
- drain+write: one POST per chunk to ``/write``, appended to one file.

Each is timed from the first request to the last answer, best of ``--rounds``. Target:
tus >= 0.8 x drain+write. This prints figures; it never asserts.

    python -m bench.resumable [--size-mb 512] [--chunk-mb 8] [--rounds 3] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

import aiohttp_helpers as ah
from bench._harness import Server, free_port, module_args, table, write_body

MODULE = "bench.resumable"

MiB = 2**20
TUS = {"Tus-Resumable": "1.0.0"}


def server_app(directory: Path, size: int) -> web.Application:
    app = web.Application(client_max_size=4 * size)
    helpers = ah.setup(app)
    ah.add_resumable_uploads(
        app,
        "/files",
        directory=directory / "partial",
        limits=ah.UploadLimits(max_file_size=4 * size),
    )
    done = directory / "done.bin"

    async def keep(request: web.Request, uploaded: ah.UploadedFile) -> None:
        path = await uploaded.save(done)
        await asyncio.to_thread(path.unlink)

    helpers.signals.on_upload.append(keep)
    dest = directory / "dest-write.bin"

    async def write(request: web.Request) -> web.Response:
        total = await write_body(request.content, dest, os.O_APPEND)
        return web.json_response({"bytes": total})

    async def reset(request: web.Request) -> web.Response:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(dest.unlink)
        return web.Response(text="ok")

    app.router.add_post("/write", write)
    app.router.add_post("/reset", reset)
    return app


def serve(port: int, directory: Path, size: int, *, hashing: bool) -> None:
    if not hashing:
        # Where the time goes: the same path without the SHA-256 of the whole upload.
        from aiohttp_helpers.resumable.handlers import ResumableUploads
        from aiohttp_helpers.resumable.storage import Store

        ResumableUploads._running_hash = lambda self, state: None  # type: ignore[method-assign]
        Store.digest = staticmethod(lambda fd, length: "")  # type: ignore[method-assign]
    web.run_app(server_app(directory, size), host="127.0.0.1", port=port, print=None)


async def run_tus(session: aiohttp.ClientSession, base: str, block: bytes, count: int) -> float:
    size = len(block) * count
    started = time.perf_counter()
    async with session.post(base + "/files", headers={**TUS, "Upload-Length": str(size)}) as r:
        assert r.status == 201, await r.text()
        url = base + r.headers["Location"]
    headers = {**TUS, "Content-Type": "application/offset+octet-stream"}
    offset = 0
    for _ in range(count):
        async with session.patch(
            url, headers={**headers, "Upload-Offset": str(offset)}, data=block
        ) as r:
            assert r.status == 204, await r.text()
            offset = int(r.headers["Upload-Offset"])
    assert offset == size
    return time.perf_counter() - started


async def run_write(session: aiohttp.ClientSession, base: str, block: bytes, count: int) -> float:
    async with session.post(base + "/reset") as r:
        await r.read()
    started = time.perf_counter()
    for _ in range(count):
        async with session.post(base + "/write", data=block) as r:
            assert r.status == 200
            await r.read()
    return time.perf_counter() - started


async def measure(
    base: str, bare: str, size: int, chunk: int, rounds: int
) -> dict[str, list[float]]:
    block = os.urandom(chunk)
    count = size // chunk
    times: dict[str, list[float]] = {"drain+write": [], "tus PATCH": [], "tus, no SHA-256": []}
    async with aiohttp.ClientSession() as session:
        # One warm-up of each, so that tmpfs pages are touched before anything is timed.
        await run_write(session, base, block, count)
        await run_tus(session, base, block, count)
        await run_tus(session, bare, block, count)
        for _ in range(rounds):
            times["drain+write"].append(await run_write(session, base, block, count))
            times["tus PATCH"].append(await run_tus(session, base, block, count))
            times["tus, no SHA-256"].append(await run_tus(session, bare, block, count))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--chunk-mb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-dir", help=argparse.SUPPRESS)
    parser.add_argument("--no-hash", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size, chunk = args.size_mb * MiB, args.chunk_mb * MiB
    if args.serve:
        serve(args.serve, Path(args.serve_dir), size, hashing=not args.no_hash)
        return
    directories: list[Path] = []
    try:
        with contextlib.ExitStack() as stack:
            servers = []
            for extra in ([], ["--no-hash"]):
                directory = Path(tempfile.mkdtemp(prefix="ah-bench-resumable-", dir=args.dir))
                directories.append(directory)
                port = free_port()
                command = module_args(MODULE, "--serve", str(port), "--serve-dir", str(directory))
                command += ["--size-mb", str(args.size_mb), *extra]
                servers.append(stack.enter_context(Server(command, port=port)))
            times = asyncio.run(measure(servers[0].url, servers[1].url, size, chunk, args.rounds))
    finally:
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
    print(
        f"{args.size_mb} MiB in {args.chunk_mb} MiB requests, best of {args.rounds}, "
        f"files on {args.dir or 'the default temp dir'}"
    )
    reference = min(times["drain+write"])
    rows = []
    for name, values in times.items():
        best = min(values)
        rows.append([name, f"{best:.3f}", f"{args.size_mb / best:.0f}", f"{reference / best:.2f}"])
    print(table(["path", "seconds", "MiB/s", "x drain+write"], rows))


if __name__ == "__main__":
    main()
