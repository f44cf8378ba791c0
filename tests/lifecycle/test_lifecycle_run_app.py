"""SIGTERM/SIGINT under the real ``web.run_app``, on this process's main thread.

``web.run_app`` runs here, in the test's own thread (signals reach the main thread only); a
second thread plays the load balancer and the operator: it probes over HTTP and sends the
signals. It never sends a signal unless an event loop handles it, so a broken takeover fails
the test instead of killing the test run.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

import aiohttp_helpers as ah
from tests.support.apps import helped_app, record_stop
from tests.support.net import until_blocking

Events = list[tuple[str, float]]
#: What make_app() records, in order, from a clean start to a full stop.
A_WHOLE_RUN = ["ready", "draining", "stopping", "shutdown-hook", "cleanup-hook", "stopped"]


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def try_get(port: int, path: str) -> tuple[int, str] | None:
    """The answer, or None when nothing listens any more."""
    try:
        return get(port, path)
    except (ConnectionError, http.client.RemoteDisconnected):
        return None


def send(sig: signal.Signals) -> None:
    handler = signal.getsignal(sig)
    if handler in (signal.SIG_DFL, signal.default_int_handler, None):
        raise AssertionError(f"nothing handles {sig.name}: not sending it")
    os.kill(os.getpid(), sig)


@contextlib.contextmanager
def driver(action: Callable[[int], None], port: int) -> Iterator[None]:
    """Run ``action(port)`` on a thread while the body serves; re-raise what it raised."""
    failures: list[BaseException] = []
    served = threading.Event()

    def run() -> None:
        try:
            until_blocking(lambda: try_get(port, "/health/live") is not None)
            action(port)
        except BaseException as exc:
            failures.append(exc)
        finally:
            # Whatever happened, make the server stop so that the test cannot hang.
            while not served.wait(3):
                with contextlib.suppress(AssertionError):
                    send(signal.SIGTERM)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield
    finally:
        served.set()
        thread.join(10)
        asyncio.set_event_loop(None)  # run_app leaves its closed loop behind
    if failures:
        raise failures[0]


def bound_socket() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    return sock, port


def make_app(events: Events, drain_delay: float) -> tuple[web.Application, ah.Helpers]:
    app, helpers = helped_app(health="/health", drain_delay=drain_delay)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app.router.add_get("/", hello)

    record_stop(helpers, events, "shutdown-hook")

    @helpers.lifecycle.on_cleanup
    async def cleanup_hook(app: web.Application) -> None:
        events.append(("cleanup-hook", time.monotonic()))

    return app, helpers


def run_app(app: web.Application, sock: socket.socket, **kwargs: Any) -> None:
    web.run_app(app, sock=sock, print=None, access_log=None, shutdown_timeout=5, **kwargs)


def plain_context(events: Events, *, closes: bool) -> Any:
    """A plain aiohttp cleanup context that records its opening (and its closing)."""

    async def plain(app: web.Application) -> Any:
        events.append(("plain-open", 0))
        yield
        if closes:
            events.append(("plain-close", 0))

    return plain


def run_app_failing(
    app: web.Application, events: Events, error: type[BaseException], match: str
) -> list[str]:
    """``run_app(app)`` on a socket of its own, whose startup must fail with ``error``; the
    names of the events recorded."""
    sock, _ = bound_socket()
    with sock, pytest.raises(error, match=match):
        run_app(app, sock)
    asyncio.set_event_loop(None)
    return [name for name, _ in events]


@pytest.mark.parametrize(
    "sig", [pytest.param(s, id=s.name) for s in (signal.SIGTERM, signal.SIGINT)]
)
def test_signal_drains_while_serving_then_stops(sig: signal.Signals) -> None:
    events: Events = []
    app, _ = make_app(events, drain_delay=0.6)
    sock, port = bound_socket()
    seen: dict[str, float] = {}

    def operator(port: int) -> None:
        assert get(port, "/health/ready") == (200, "ready\n")
        seen["signal"] = time.monotonic()
        send(sig)
        until_blocking(lambda: get(port, "/health/ready") == (503, "draining\n"))
        seen["not-ready"] = time.monotonic()
        # Still serving while draining: the load balancer has time to notice.
        assert get(port, "/") == (200, "hello")
        seen["served"] = time.monotonic()
        until_blocking(lambda: try_get(port, "/") is None)

    with driver(operator, port):
        run_app(app, sock)
    times = dict(events)
    assert [name for name, _ in events] == A_WHOLE_RUN
    assert seen["not-ready"] < times["shutdown-hook"]
    assert seen["served"] < times["stopping"]
    assert times["shutdown-hook"] - seen["signal"] >= 0.55


def test_second_signal_cuts_the_drain_short() -> None:
    events: Events = []
    app, _ = make_app(events, drain_delay=30)
    sock, port = bound_socket()
    seen: dict[str, float] = {}

    def operator(port: int) -> None:
        send(signal.SIGTERM)
        until_blocking(lambda: get(port, "/health/ready")[0] == 503)
        seen["again"] = time.monotonic()
        send(signal.SIGTERM)

    with driver(operator, port):
        run_app(app, sock)
    assert dict(events)["stopped"] - seen["again"] < 3


def test_signal_while_stopping_lets_the_shutdown_finish(caplog: pytest.LogCaptureFixture) -> None:
    events: Events = []
    app, helpers = make_app(events, drain_delay=0)
    sock, port = bound_socket()

    @helpers.lifecycle.on_shutdown(name="impatient")
    async def impatient(app: web.Application) -> None:
        send(signal.SIGINT)
        await asyncio.sleep(0.05)
        events.append(("impatient-done", time.monotonic()))

    with (
        caplog.at_level(logging.WARNING, logger="aiohttp_helpers.lifecycle"),
        driver(lambda port: send(signal.SIGTERM), port),
    ):
        run_app(app, sock)
    names = [name for name, _ in events]
    assert names[-4:] == ["impatient-done", "shutdown-hook", "cleanup-hook", "stopped"]
    assert any("SIGINT received while stopping" in r.getMessage() for r in caplog.records)


def test_startup_failure_under_run_app_tears_down_what_started() -> None:
    events: Events = []
    app, helpers = make_app(events, drain_delay=0)

    @helpers.lifecycle.context(name="db")
    async def db(app: web.Application) -> Any:
        events.append(("db-open", 0))
        yield
        events.append(("db-close", 0))

    @helpers.lifecycle.on_startup(name="migrate", after="db")
    async def migrate(app: web.Application) -> None:
        raise RuntimeError("schema is newer than the code")

    app.cleanup_ctx.append(plain_context(events, closes=False))
    names = run_app_failing(
        app, events, ah.HookError, "startup hook 'migrate' failed: RuntimeError: schema"
    )
    # The cleanup hook took its place before "db" (registration order): it is torn down after.
    assert names == ["db-open", "stopping", "db-close", "cleanup-hook", "stopped"]


def test_plain_startup_failure_under_run_app_exits_every_context() -> None:
    # web.run_app skips cleanup entirely when startup fails: the package closes the gap.
    events: Events = []
    app, _ = make_app(events, drain_delay=0)

    async def plain_startup(app: web.Application) -> None:
        raise RuntimeError("plain startup hook failed")

    app.cleanup_ctx.append(plain_context(events, closes=True))
    app.on_startup.append(plain_startup)
    names = run_app_failing(app, events, RuntimeError, "plain startup hook failed")
    assert names == ["ready", "plain-open", "plain-close", "stopping", "cleanup-hook", "stopped"]


def test_handle_signals_false_leaves_run_app_alone() -> None:
    events: Events = []
    app, helpers = make_app(events, drain_delay=0.3)
    helpers.lifecycle.handle_signals = False
    sock, port = bound_socket()
    seen: dict[str, float] = {}

    def operator(port: int) -> None:
        seen["signal"] = time.monotonic()
        send(signal.SIGTERM)
        # run_app's own handler: the listener closes at once, the drain comes after. (A
        # connection that slips in just before the close waits out the whole drain, then
        # is dropped unanswered: probe once the listener is surely gone.)
        time.sleep(0.05)
        assert try_get(port, "/") is None
        seen["closed"] = time.monotonic()

    with driver(operator, port):
        run_app(app, sock)
    times = dict(events)
    assert seen["closed"] < times["stopping"]
    assert times["stopping"] - times["draining"] >= 0.29


def test_forced_takeover_without_run_app() -> None:
    """``handle_signals = True`` drains on SIGTERM for a hand-made runner, then exits."""
    events: Events = []
    app, helpers = make_app(events, drain_delay=0.3)
    helpers.lifecycle.handle_signals = True
    sock, port = bound_socket()
    exits: list[BaseException] = []

    async def serve() -> web.AppRunner:
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        return runner

    def operator(port: int) -> None:
        send(signal.SIGTERM)
        until_blocking(lambda: get(port, "/health/ready")[0] == 503)

    loop = asyncio.new_event_loop()
    try:
        with driver(operator, port):
            runner = loop.run_until_complete(serve())
            forever = loop.create_task(asyncio.Event().wait())
            try:
                loop.run_until_complete(forever)
            except web.GracefulExit as exc:
                exits.append(exc)
            forever.cancel()
            loop.run_until_complete(runner.cleanup())
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handed back
    finally:
        loop.close()
    assert len(exits) == 1
    assert [name for name, _ in events][:3] == ["ready", "draining", "stopping"]


def test_runner_cleanup_during_a_signal_drain_waits_for_it_and_exits_once() -> None:
    events: Events = []
    app, helpers = make_app(events, drain_delay=0.4)
    helpers.lifecycle.handle_signals = True
    sock, _ = bound_socket()
    draining = asyncio.Event()

    async def on_change(old: ah.AppState, new: ah.AppState) -> None:
        if new is ah.AppState.DRAINING:
            draining.set()

    helpers.lifecycle.on_state_change.append(on_change)

    async def scenario() -> None:
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        send(signal.SIGTERM)
        await asyncio.wait_for(draining.wait(), 5)
        started = time.monotonic()
        await runner.cleanup()  # joins the drain; the signal's exit must not fire afterwards
        events.append(("cleanup-returned", time.monotonic() - started))
        await asyncio.sleep(0.1)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario())  # a GracefulExit here would fail the test
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    names = [name for name, _ in events]
    assert names == [*A_WHOLE_RUN, "cleanup-returned"]
    assert dict(events)["cleanup-returned"] >= 0.3
