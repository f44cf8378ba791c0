"""Stopping waits for requests in flight (``drain_timeout``) and ends streams: real processes.

``tests/support/lifecycle_app.py`` runs under ``web.run_app``; the clients are raw sockets that send
a multipart upload a piece at a time (a slow client), aiohttp's client reading server-sent
events, and probes of readiness. SIGTERM arrives while they are in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import aiohttp_helpers as ah
from tests.support.processes import Server, until_event, wait_ready
from tests.support.raw_http import slow_upload


async def test_sigterm_waits_for_a_slow_upload_that_then_completes_intact(
    lifecycle_app: Any,
) -> None:
    server: Server = await lifecycle_app("--drain", "0.2", "--drain-timeout", "20")
    payload = os.urandom(600_000)
    started = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, server)
        upload = asyncio.create_task(
            slow_upload(server.port, payload, pieces=20, pause=0.1, started=started)
        )
        await started.wait()
        await until_event(server, "upload-start")
        server.proc.send_signal(signal.SIGTERM)
        # Readiness falls at once and stays down; the app keeps serving meanwhile.
        readiness: list[int] = []
        served = 0
        while "upload-end" not in server.names():
            try:
                async with session.get(server.url("/health/ready")) as resp:
                    readiness.append(resp.status)
                async with session.get(server.url("/")) as resp:
                    assert resp.status == 200
                    if 503 in readiness:  # draining: keep-alive clients move elsewhere
                        assert resp.headers["Connection"] == "close"
                    served += 1
            except aiohttp.ClientConnectionError:
                # Only once the upload is saved may the server stop listening.
                assert "upload-end" in server.names()
            await asyncio.sleep(0.05)
        answer = await upload
    code, stderr = await server.wait()
    assert code == 0, stderr
    assert answer.status == 200, answer
    assert answer.sent_all
    assert json.loads(answer.body)["file"] == {
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size": len(payload),
    }
    assert 503 in readiness
    assert set(readiness[readiness.index(503) :]) == {503}, readiness
    assert served >= 3
    # The server stopped (and stopped reading) only after the upload was saved.
    assert server.time_of("upload-end") < next(
        e["t"] for e in server.events if e.get("state") == "stopping"
    )


async def test_an_upload_still_arriving_at_drain_timeout_gets_503_with_retry_after(
    lifecycle_app: Any,
) -> None:
    server: Server = await lifecycle_app("--drain", "0", "--drain-timeout", "0.5")
    started = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, server)
        upload = asyncio.create_task(
            # 20 s of sending at this pace: it cannot finish within the bound.
            slow_upload(server.port, os.urandom(200_000), pieces=200, pause=0.1, started=started)
        )
        await started.wait()
        await until_event(server, "upload-start")
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        answer = await upload
        answered = time.monotonic() - signalled
    code, stderr = await server.wait()
    assert code == 0, stderr
    assert answer.status == 503, answer
    assert not answer.sent_all
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "application/problem+json"
    assert json.loads(answer.body)["type"].endswith(":service-unavailable")
    assert answered < 5  # well before the 5 s idle_timeout: never a 408
    assert (await until_event(server, "upload-end"))["outcome"] == "CancelledError"
    # Nothing held the stop afterwards (aiohttp's lingering read of the rest of the body
    # would have held it for shutdown_timeout, 5 s here).
    draining = next(e["t"] for e in server.events if e.get("state") == "draining")
    assert server.time_of("exited") - draining < 4


async def test_sse_streams_end_after_the_drain_and_new_ones_get_503(lifecycle_app: Any) -> None:
    server: Server = await lifecycle_app("--drain", "0.8")
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, server)
        async with session.get(server.url("/events")) as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"] == "text/event-stream"
            assert await stream.content.readline() == b"data: tick 0\r\n"
            server.proc.send_signal(signal.SIGTERM)
            while True:
                async with session.get(server.url("/health/ready")) as resp:
                    if resp.status == 503:
                        break
                await asyncio.sleep(0.02)
            # Draining: a new stream is refused, one can retry elsewhere.
            async with session.get(server.url("/events")) as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "1"
                problem = await refused.json(content_type="application/problem+json")
                assert problem["status"] == 503
            # The open stream goes on during the drain, then ends cleanly (final chunk).
            lines = [line async for line in stream.content]
        ticks = [line for line in lines if line.startswith(b"data: tick")]
    code, stderr = await server.wait()
    assert code == 0, stderr
    assert len(ticks) >= 5
    names = server.names()
    assert names.index("stream-end") < names.index("state:stopped")
    assert server.time_of("stream-end") >= next(
        e["t"] for e in server.events if e.get("state") == "stopping"
    )


async def test_runner_cleanup_without_takeover_ends_a_stalled_upload_with_503(
    tmp_path: Path,
) -> None:
    """A hand-made runner stops reading before on_shutdown: the upload fails fast, no 408."""
    app = web.Application()
    ah.setup(app, limits=ah.UploadLimits(idle_timeout=30))
    outcome: list[str] = []

    async def upload(request: web.Request) -> web.Response:
        try:
            form = await ah.read_form(request)
        except BaseException as exc:
            outcome.append(type(exc).__name__)
            raise
        return web.Response(text=str(len(form.files)))

    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app, shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    started = asyncio.Event()
    task = asyncio.create_task(
        slow_upload(site.port, os.urandom(100_000), pieces=100, pause=0.1, started=started)
    )
    await started.wait()
    await asyncio.sleep(0.2)
    begun = time.monotonic()
    await runner.cleanup()
    answer = await task
    assert time.monotonic() - begun < 10
    assert answer.status == 503
    assert answer.headers["retry-after"] == "1"
    assert outcome == ["CancelledError"]
