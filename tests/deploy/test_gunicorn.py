"""The demo app under ``gunicorn -w 2`` (the package's worker class) with Redis between workers.

Gunicorn runs ``tests.support.gunicorn_app:create_app()`` (the example app plus a socket that names
its worker) with ``examples/gunicorn_app.py`` as configuration, on a free loopback port, in
its own process group, killed at the end whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

import aiohttp_helpers as ah
from tests.support.gunicorn import Gunicorn, close_code, gunicorn_processes
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

WORKERS = 2


Start = Callable[[], Awaitable[Gunicorn]]


@pytest.fixture
async def start_gunicorn(tmp_path: Path) -> AsyncIterator[Start]:
    redis = RedisServer()
    try:
        async with gunicorn_processes(tmp_path) as spawn:

            async def start() -> Gunicorn:
                redis.start()
                return await spawn(
                    "-c", "python:examples.gunicorn_app",
                    "--graceful-timeout", "10",
                    "tests.support.gunicorn_app:create_app()",
                    env=dict(os.environ, REDIS_URL=redis.url),
                    workers=WORKERS,
                )  # fmt: skip

            yield start
    finally:
        redis.close()


async def _worker_of(ws: aiohttp.ClientWebSocketResponse) -> int:
    greeting = await ws.receive_str(timeout=5)
    assert greeting.startswith("worker ")
    return int(greeting.split()[1])


async def _receive_containing(ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
    async with asyncio.timeout(5):
        while text not in await ws.receive_str():
            pass


async def test_workers_share_the_chat_and_sigterm_closes_every_client_with_1001(
    start_gunicorn: Start,
) -> None:
    server = await start_gunicorn()
    workers = server.pids("startup")
    assert len(set(workers)) == WORKERS  # each worker ran the app's lifecycle hooks
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url("/health/ready")) as response:
            assert response.status == 200
        # Connect until both workers hold sockets (the kernel picks the worker).
        clients: list[aiohttp.ClientWebSocketResponse] = []
        seen: set[int] = set()
        while len(seen) < WORKERS or len(clients) < 4:
            assert len(clients) < 40, f"every socket went to {seen}"
            ws = await session.ws_connect(server.url("/ws/whoami"))
            clients.append(ws)
            seen.add(await _worker_of(ws))
        assert seen == set(workers)

        # The demo chat: one message, sent to one worker, reaches the sockets of both.
        chat = await session.ws_connect(server.url("/ws/chat"))
        await _receive_containing(chat, "you are guest-")
        await chat.send_json({"text": "hello, workers"})
        for ws in clients:
            await _receive_containing(ws, "hello, workers")

        server.proc.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(close_code(ws, within=15) for ws in [*clients, chat]))
        assert codes == [1001] * (len(clients) + 1), server.output()
        assert await server.exit_code() == 0
    assert sorted(server.pids("cleanup")) == sorted(workers), server.output()


async def test_a_graceful_reload_closes_with_1012_and_clients_return_to_new_workers(
    start_gunicorn: Start,
) -> None:
    server = await start_gunicorn()
    old_workers = set(server.pids("startup"))
    policy = ah.ReconnectPolicy(initial_delay=0.05, max_delay=0.5, restart_delay=(0.1, 0.5))
    clients = 6
    # Per client, one [worker pid, close code] per connection.
    history: list[list[list[int]]] = [[] for _ in range(clients)]

    async def follow(mine: list[list[int]], session: aiohttp.ClientSession) -> None:
        async with ah.ws_connect(session, server.url("/ws/whoami"), policy=policy) as sockets:
            async for ws in sockets:
                connection = [await _worker_of(ws), 0]
                mine.append(connection)
                connection[1] = await close_code(ws, within=60)

    def on_new_workers() -> bool:
        new = set(server.pids("startup")) - old_workers
        return all(mine[-1][0] in new for mine in history)

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(follow(mine, session)) for mine in history]
        try:
            await server.until("every client connects", lambda: all(history))
            server.proc.send_signal(signal.SIGHUP)
            await server.until("every client is back, on a new worker", on_new_workers)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # The clients may all be back on the first new worker before the second has started.
    await server.until(
        "both new workers start",
        lambda: len(set(server.pids("startup")) - old_workers) == WORKERS,
    )
    new_workers = set(server.pids("startup")) - old_workers
    for *replaced, _current in history:
        # One connection to an old worker, or a few when a client came back to the other
        # old worker before it had stopped listening (a worker sees SIGTERM within 1 s):
        # each ended with SERVICE_RESTART, not GOING_AWAY.
        assert replaced
        assert all(worker in old_workers for worker, _ in replaced)
        assert [code for _, code in replaced] == [1012] * len(replaced)
    # The replaced workers stopped their apps; the master and the new workers live on.
    await server.until("old workers clean up", lambda: set(server.pids("cleanup")) == old_workers)
    assert server.proc.returncode is None
    server.proc.send_signal(signal.SIGTERM)
    assert await server.exit_code() == 0
    assert set(server.pids("cleanup")) == old_workers | new_workers
