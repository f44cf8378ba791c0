"""The adversarial corpus's server as a process: ``python -m tests.support.corpus_server``.

Run by ``tests/uploads/test_uploads_hostile.py`` to measure the server's memory (``/proc/<pid>``)
and its answers to ``/health/live`` while hostile bodies come in, apart from the test's
own client work. Prints ``port <n>`` once it listens.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from .corpus import corpus_server_app


async def main(spool: Path, dest: Path) -> None:
    runner = web.AppRunner(corpus_server_app(spool, dest), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"port {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
