"""``gunicorn -k aiohttp_helpers.gunicorn.Worker``: reloads and stops lose nothing.

Real gunicorn processes (2 workers) serve ``tests.support.gunicorn_app:create_app`` (the factory, no
parentheses: the worker calls it) on a free loopback port, in their own process group,
killed at the end whatever happens. The clients are real: WebSockets through aiohttp's
client, slow multipart uploads from raw sockets, and a poller that asks every 20 ms which
worker answers.

The reload test prints the issue's closing figure: with 100 WebSockets and 5 slow uploads
in flight, how many uploads completed intact, how many WebSockets got 1012, how many polls
failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.support.gunicorn import Gunicorn, close_code, gunicorn_processes
from tests.support.raw_http import Answer, slow_upload

WORKERS = 2
SOCKETS = 100
UPLOADS = 5

Start = Callable[..., Awaitable[Gunicorn]]


@pytest.fixture
async def start_gunicorn(tmp_path: Path) -> AsyncIterator[Start]:
    async with gunicorn_processes(tmp_path) as spawn:

        async def start(drain_delay: float = 0.0) -> Gunicorn:
            env = dict(os.environ, AH_DRAIN_DELAY=str(drain_delay))
            env.pop("REDIS_URL", None)
            return await spawn(
                "-k", "aiohttp_helpers.gunicorn.Worker",
                "--graceful-timeout", "30",
                "tests.support.gunicorn_app:create_app",
                env=env,
                workers=WORKERS,
            )  # fmt: skip

        yield start


@dataclass
class Poller:
    """GETs ``/pid`` every 20 ms; counts what failed (no answer, or a 5xx)."""

    url: str
    answers: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                try:
                    async with session.get(self.url) as resp:
                        text = await resp.text()
                        if resp.status >= 500:
                            self.failures.append(f"{resp.status} {text}")
                        else:
                            self.answers.append(int(text))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(repr(exc))
                await asyncio.sleep(0.02)


async def open_sockets(
    session: aiohttp.ClientSession, server: Gunicorn, count: int
) -> list[aiohttp.ClientWebSocketResponse]:
    sockets = []
    for _ in range(count):
        ws = await session.ws_connect(server.url("/ws/whoami"))
        greeting = await ws.receive_str(timeout=5)
        assert greeting.startswith("worker ")
        sockets.append(ws)
    return sockets


def intact(answer: Answer, payload: bytes) -> bool:
    if answer.status != 200:
        return False
    (described,) = json.loads(answer.body)["files"]
    return bool(
        described["sha256"] == hashlib.sha256(payload).hexdigest()
        and described["size"] == len(payload)
    )


async def stop_test(
    start_gunicorn: Start, sig: signal.Signals
) -> tuple[Gunicorn, set[int], list[bool], list[int], Poller]:
    """Sockets, slow uploads and a poller in flight, then ``sig`` to the master."""
    server = await start_gunicorn()
    old = set(server.pids("startup"))
    poller = Poller(server.url("/pid"))
    stop_polling = asyncio.Event()
    payloads = [os.urandom(300_000 + i) for i in range(UPLOADS)]
    async with aiohttp.ClientSession() as session:
        sockets = await open_sockets(session, server, SOCKETS)
        polling = asyncio.create_task(poller.run(stop_polling))
        started = [asyncio.Event() for _ in payloads]
        uploads = [
            asyncio.create_task(
                # About 3 s of sending each: the signal comes in the middle.
                slow_upload(server.port, payload, pieces=30, pause=0.1, started=event)
            )
            for payload, event in zip(payloads, started, strict=True)
        ]
        for event in started:
            await event.wait()
        await asyncio.sleep(0.3)
        server.proc.send_signal(sig)
        codes = await asyncio.gather(*(close_code(ws, within=30) for ws in sockets))
        answers = await asyncio.gather(*uploads)
        if sig is signal.SIGHUP:
            await server.until("old workers clean up", lambda: old <= set(server.pids("cleanup")))
            await asyncio.sleep(0.5)  # a few polls more, all on the new workers
        else:
            assert await server.exit_code(within=30) == 0, server.output()
        stop_polling.set()
        await polling
        for ws in sockets:
            await ws.close()
    results = [intact(answer, payload) for answer, payload in zip(answers, payloads, strict=True)]
    return server, old, results, codes, poller


async def test_sighup_reload_finishes_uploads_closes_with_1012_and_drops_no_poll(
    start_gunicorn: Start,
) -> None:
    server, old, results, codes, poller = await stop_test(start_gunicorn, signal.SIGHUP)
    new = set(server.pids("startup")) - old
    print(
        f"\nSIGHUP reload, {WORKERS} workers: {sum(results)}/{UPLOADS} slow uploads completed "
        f"intact, {codes.count(1012)}/{SOCKETS} WebSockets closed with 1012, "
        f"{len(poller.failures)}/{len(poller.answers) + len(poller.failures)} polls failed "
        f"(every 20 ms; answered by old workers {sum(p in old for p in poller.answers)}, "
        f"new workers {sum(p in new for p in poller.answers)})"
    )
    assert results == [True] * UPLOADS, server.output()
    assert codes == [1012] * SOCKETS, server.output()
    assert poller.failures == [], server.output()
    assert len(new) == WORKERS
    assert set(poller.answers) & old  # old workers served during the drain
    assert set(poller.answers) & new
    assert server.proc.returncode is None  # the master lives on
    server.proc.send_signal(signal.SIGTERM)
    assert await server.exit_code(within=30) == 0


async def test_sigterm_finishes_uploads_and_closes_with_1001(start_gunicorn: Start) -> None:
    server, old, results, codes, _ = await stop_test(start_gunicorn, signal.SIGTERM)
    assert results == [True] * UPLOADS, server.output()
    assert codes == [1001] * SOCKETS, server.output()
    assert set(server.pids("cleanup")) == old


async def test_readiness_falls_while_the_worker_still_serves(start_gunicorn: Start) -> None:
    server = await start_gunicorn(drain_delay=1.5)
    old = set(server.pids("startup"))
    seen: list[tuple[int, int]] = []  # (status of /health/ready, pid answering /pid)
    # A new connection for every poll, as a load balancer's health checks make: the kernel
    # hands each to any worker still listening, old or new. A kept-alive connection would
    # stay with whichever worker took it first, and might never reach an old one.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        server.proc.send_signal(signal.SIGHUP)
        await server.until("new workers start", lambda: len(server.pids("startup")) == 2 * WORKERS)
        old_draining = False
        async with asyncio.timeout(20):
            while not old <= set(server.pids("cleanup")):
                async with session.get(server.url("/health/ready")) as resp:
                    ready = resp.status
                async with session.get(server.url("/pid")) as resp:
                    assert resp.status == 200
                    seen.append((ready, int(await resp.text())))
                # Old workers answer 503 to readiness but still serve other requests.
                old_draining = old_draining or any(s == 503 for s, _ in seen)
                await asyncio.sleep(0.02)
    assert old_draining, seen
    assert server.proc.returncode is None
