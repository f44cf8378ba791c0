"""Upload throughput against plain aiohttp, measured in the same run (ratio tables).

1. A large file (``--size-mb``, default 256, or ``$AH_BENCH_UPLOAD_MB``) sent by ``curl -F``
   from a separate process to a server in another process, which
   - drains ``request.content`` without parsing it (the baseline),
   - reads it with ``ah.read_form()`` and ``save()``s the file (spooled in ``--dir``),
   - reads it with aiohttp's ``request.post()`` and copies the file to the same place,
   - drains it and writes each chunk straight to a file (the ceiling for any spooling).
   Rates are timed inside the handler; the server's peak RSS growth during each upload is
   read from ``/proc/<pid>/status`` (VmHWM, reset through ``clear_refs`` before each run).
   The spool and the destination are on ``--dir`` (``/dev/shm`` by default), so that the
   figure measures the package rather than the disk; the pages of that tmpfs are touched
   once beforehand, since a first write into fresh memory of a virtual machine costs far
   more than any later one.
2. A form of ``--fields`` small text fields (default 20,000) parsed in-process from the same
   64 KiB chunks by ``ah.read_form()``, aiohttp's ``MultipartReader``, python-multipart and
   the ``multipart`` package.

Targets: (1) >= 0.8 x the drain rate, peak RSS growth <= 32 MiB for 1 GiB; (2) >= 200k
fields/s and >= 30 x aiohttp. This prints figures; it never asserts.

    python bench/uploads.py [--size-mb 256] [--rounds 3] [--fields 20000] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

import aiohttp_helpers as ah
from aiohttp_helpers.testing import multipart_body

MiB = 2**20
CHUNK = 64 * 1024


# -- the server (run in its own process) -------------------------------------------------


def server_app(directory: Path, size: int) -> web.Application:
    async def drain(request: web.Request) -> web.Response:
        started = time.perf_counter()
        total = 0
        while chunk := await request.content.readany():
            total += len(chunk)
        return web.json_response({"bytes": total, "seconds": time.perf_counter() - started})

    async def write(request: web.Request) -> web.Response:
        """The ceiling for any spooling: drain, and write every chunk to a file at once."""
        dest = directory / "dest-write.bin"
        started = time.perf_counter()
        total = 0
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while chunk := await request.content.readany():
                total += len(chunk)
                os.write(fd, chunk)
        finally:
            os.close(fd)
        seconds = time.perf_counter() - started
        await asyncio.to_thread(dest.unlink)
        return web.json_response({"bytes": total, "seconds": seconds})

    async def form(request: web.Request) -> web.Response:
        started = time.perf_counter()
        received = await ah.read_form(request)
        upload = received.files["f"]
        dest = await upload.save(directory / "dest-form.bin")
        seconds = time.perf_counter() - started
        await asyncio.to_thread(dest.unlink)
        return web.json_response({"bytes": upload.size, "seconds": seconds})

    async def post(request: web.Request) -> web.Response:
        started = time.perf_counter()
        data = await request.post()
        field = data["f"]
        assert isinstance(field, web.FileField)
        dest = directory / "dest-post.bin"

        def copy() -> int:
            with open(dest, "wb") as out:
                shutil.copyfileobj(field.file, out, 1 << 20)
                field.file.close()
                return out.tell()

        total = await asyncio.to_thread(copy)
        seconds = time.perf_counter() - started
        await asyncio.to_thread(dest.unlink)
        return web.json_response({"bytes": total, "seconds": seconds})

    app = web.Application(client_max_size=4 * size)
    ah.setup(
        app,
        limits=ah.UploadLimits(
            max_body_size=4 * size,
            max_file_size=4 * size,
            max_decoded_size=4 * size,
            tmp_dir=directory,
        ),
    )
    app.router.add_post("/drain", drain)
    app.router.add_post("/write", write)
    app.router.add_post("/form", form)
    app.router.add_post("/post", post)
    return app


def serve(directory: Path, size: int) -> None:
    async def ready(app: web.Application) -> None:
        await asyncio.sleep(0)

    app = server_app(directory, size)
    app.on_startup.append(ready)

    async def run() -> None:
        runner = web.AppRunner(app, handler_cancellation=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


# -- the large upload ---------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _make_file(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            out.write(block)
            left -= len(block)


def _touch_pages(directory: Path, size: int) -> None:
    """Write, then remove, files as large as the run will hold at once in ``directory``."""
    block = bytes(4 * MiB)
    path = directory / "ahbench-warm.bin"
    with open(path, "wb") as out:
        for _ in range(max(1, 3 * size // len(block))):
            out.write(block)
    path.unlink()


def large_upload(size: int, rounds: int, directory: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        print("curl is not installed: skipping the large upload (make sysdeps)")
        return
    source = directory / "ahbench-upload.bin"
    print(f"== large upload: {size // MiB} MiB by curl -F, spool and destination in {directory}")
    _make_file(source, size)
    _touch_pages(directory, size)
    env = dict(os.environ, TMPDIR=str(directory))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--dir", str(directory), "--size", str(size)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results: dict[str, list[dict[str, float]]] = {
            "drain": [],
            "write": [],
            "form": [],
            "post": [],
        }
        can_reset = _reset_peak(server.pid)
        for round_ in range(rounds + 1):
            for variant in results:
                _reset_peak(server.pid)
                before = _status(server.pid)["VmRSS"]
                answer = subprocess.run(
                    [curl, "-sS", "-F", f"f=@{source}", f"http://127.0.0.1:{port}/{variant}"],
                    capture_output=True,
                    check=True,
                    timeout=600,
                )
                doc = json.loads(answer.stdout)
                peak = _status(server.pid)["VmHWM"]
                if round_ == 0:
                    continue  # warm-up round
                results[variant].append(
                    {
                        "rate": doc["bytes"] / doc["seconds"],
                        "growth": (peak - before) if can_reset else float("nan"),
                    }
                )
    finally:
        server.terminate()
        server.wait(30)
        source.unlink()
    drain = [r["rate"] for r in results["drain"]]
    write = [r["rate"] for r in results["write"]]
    rows = []
    for variant, label in (
        ("drain", "drain request.content (baseline)"),
        ("write", "drain + plain os.write() of each chunk"),
        ("form", "ah.read_form() + save()"),
        ("post", "aiohttp request.post() + copy"),
    ):
        rates = [r["rate"] for r in results[variant]]
        vs_drain = [rate / base for rate, base in zip(rates, drain, strict=True)]
        vs_write = [rate / base for rate, base in zip(rates, write, strict=True)]
        growth = max(r["growth"] for r in results[variant])
        rows.append(
            (
                label,
                f"{statistics.median(rates) / 1e9:.2f} GB/s",
                f"{statistics.median(vs_drain):.2f}x",
                f"{statistics.median(vs_write):.2f}x",
                f"{growth / MiB:.1f} MiB" if growth == growth else "n/a",
            )
        )
    _table(("variant", "rate (median)", "vs drain", "vs write", "peak RSS growth"), rows)
    print(
        f"   {rounds} rounds, {os.cpu_count()} CPUs; target: read_form() + save() >= 0.80x "
        "drain (where writing the bytes is itself slower than draining them, compare with "
        "the plain write), RSS growth <= 32 MiB for 1 GiB"
    )


# -- the many-fields form -----------------------------------------------------------------


def _request(chunks: list[bytes], headers: dict[str, str]) -> web.Request:
    loop = asyncio.get_running_loop()
    reader = StreamReader(BaseProtocol(loop), 2**30, loop=loop)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return make_mocked_request("POST", "/", headers=headers, payload=reader)


async def _ours(chunks: list[bytes], headers: dict[str, str], limits: ah.UploadLimits) -> int:
    form = await ah.read_form(_request(chunks, headers), limits=limits)
    return len(form.fields)


async def _aiohttp(chunks: list[bytes], headers: dict[str, str]) -> int:
    reader = MultipartReader(headers, _request(chunks, headers).content)
    fields = []
    async for part in reader:
        assert isinstance(part, BodyPartReader)
        fields.append((part.name, await part.text()))
    return len(fields)


def _python_multipart(chunks: list[bytes], boundary: str) -> int:
    import python_multipart

    fields: list[tuple[bytes, bytes]] = []

    def on_field(field: Any) -> None:
        fields.append((field.field_name, field.value))

    def on_file(file: Any) -> None:
        raise AssertionError("no files here")

    parser = python_multipart.FormParser(
        "multipart/form-data", on_field, on_file, boundary=boundary.encode()
    )
    for chunk in chunks:
        parser.write(chunk)
    parser.finalize()
    return len(fields)


def _multipart(chunks: list[bytes], boundary: str) -> int:
    import multipart

    fields = []
    name: str | None = None
    data: list[bytes] = []
    with multipart.PushMultipartParser(boundary, max_segment_count=10**9) as parser:
        for chunk in [*chunks, b""]:
            for event in parser.parse(chunk):
                if isinstance(event, multipart.MultipartSegment):
                    name, data = event.name, []
                elif event:
                    data.append(event)
                else:
                    fields.append((name, b"".join(data).decode()))
    return len(fields)


def many_fields(count: int, repeats: int) -> None:
    body = multipart_body(*[(f"field{i}", f"value number {i}") for i in range(count)])
    chunks = body.chunks(CHUNK)
    headers = body.headers
    limits = ah.UploadLimits(max_fields=count, max_parts=count, max_body_size=len(body.data))
    print(
        f"== {count} small text fields ({len(body.data) / MiB:.1f} MiB) in-process, 64 KiB chunks"
    )

    def timed(run: Any) -> float:
        best = []
        for _ in range(repeats):
            started = time.perf_counter()
            assert run() == count
            best.append(time.perf_counter() - started)
        return count / statistics.median(best)

    loop = asyncio.new_event_loop()
    try:
        ours = timed(lambda: loop.run_until_complete(_ours(chunks, headers, limits)))
        theirs = timed(lambda: loop.run_until_complete(_aiohttp(chunks, headers)))
    finally:
        loop.close()
    pm = timed(lambda: _python_multipart(chunks, body.boundary))
    mp = timed(lambda: _multipart(chunks, body.boundary))
    rows = [
        ("aiohttp MultipartReader (baseline)", f"{theirs:,.0f}", "1.0x"),
        ("ah.read_form()", f"{ours:,.0f}", f"{ours / theirs:.1f}x"),
        ("python-multipart FormParser", f"{pm:,.0f}", f"{pm / theirs:.1f}x"),
        ("multipart PushMultipartParser", f"{mp:,.0f}", f"{mp / theirs:.1f}x"),
    ]
    _table(("parser", "fields/s (median)", "vs aiohttp"), rows)
    print("   target: ah.read_form() >= 200,000 fields/s and >= 30x aiohttp")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_mb = int(os.environ.get("AH_BENCH_UPLOAD_MB", "256"))
    shm = Path("/dev/shm")
    default_dir = shm if shm.is_dir() else Path(tempfile.gettempdir())
    parser.add_argument("--size-mb", type=int, default=default_mb)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fields", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=default_dir)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-fields", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.dir, args.size)
        return
    if not args.skip_fields:
        many_fields(args.fields, args.repeats)
    if not args.skip_large:
        large_upload(args.size_mb * MiB, args.rounds, args.dir)


if __name__ == "__main__":
    main()
