"""A gunicorn worker that drains before it stops listening: ``-k aiohttp_helpers.gunicorn.Worker``.

::

    gunicorn -k aiohttp_helpers.gunicorn.Worker -w 2 --graceful-timeout 40 app:create_app

It serves the app the way aiohttp's ``GunicornWebWorker`` does (the app, a factory of it,
sync or async, or a coroutine function returning an ``AppRunner``), and stops it the way a
load balancer needs. On SIGTERM, for an app that went through ``setup()``:

1. readiness answers 503 and every answer carries ``Connection: close``, for
   ``drain_delay`` seconds, while the worker still accepts connections;
2. it waits, ``drain_timeout`` seconds at the most, for the requests in flight (uploads
   still arriving in particular), then ends those still running (503 + ``Retry-After``
   while their body arrives, else the connection is closed);
3. it stops listening, serves what was accepted just before, then stops the app: WebSockets
   close with 1012 SERVICE_RESTART when gunicorn is replacing the worker (a SIGHUP reload,
   or ``max_requests``), 1001 GOING_AWAY when it is stopping; streams end; shutdown and
   cleanup hooks run.

Gunicorn sends SIGTERM both on a reload and on a stop; only the master knows which. The
worker object is built in the master before it forks, so each worker gets one byte of memory
shared with the master (an anonymous shared mapping); when the master builds a worker with a
new configuration (what a reload does, before it stops the old workers), the byte of every
older worker is set, and a worker that sees it when told to stop closes with 1012.

SIGINT and SIGQUIT (gunicorn's quick shutdown) skip the waiting: 1001 at once. Keep
``graceful_timeout`` above ``drain_delay + drain_timeout`` plus a few seconds, or gunicorn
kills the worker first; the worker bounds its waiting to 80 % of it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import mmap
import os
import sys
import weakref
from types import FrameType
from typing import Any

from aiohttp import web
from aiohttp.worker import GunicornWebWorker

from ._compat import gunicorn_access_log_format, gunicorn_ssl_context
from .keys import LIFECYCLE_KEY
from .lifecycle import Lifecycle

__all__ = ["Worker"]

log = logging.getLogger("aiohttp_helpers.gunicorn")

#: Seconds to serve, after the listener is closed, the connections accepted just before.
ACCEPT_GRACE = 0.1
#: Share of gunicorn's ``graceful_timeout`` the drain and the wait for requests may take.
BUDGET = 0.8

# In the master: the workers it built (until it drops them) and the configuration it used.
_built: weakref.WeakSet[Worker] = weakref.WeakSet()
_config: list[object] = []


class Worker(GunicornWebWorker):
    """gunicorn worker class for aiohttp apps that drains first; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This runs in the master, before the fork: the byte is shared with it afterwards.
        self._replaced = mmap.mmap(-1, 1)
        self._quick = False
        self._restart = False
        if _config and _config[0] is not self.cfg:
            # A new configuration: the master is reloading and stops every older worker.
            for older in list(_built):
                older._replaced[0] = 1
        _config[:] = [self.cfg]
        _built.add(self)

    @property
    def replaced(self) -> bool:
        """Whether the master is replacing this worker (a reload)."""
        return bool(self._replaced[0])

    # -- signals (run in the event loop: aiohttp's worker installs them there) ---------------

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM: stop gracefully, at once rather than at the next heartbeat."""
        self.alive = False
        self._notify_waiter_done()

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """SIGINT/SIGQUIT: gunicorn's quick shutdown; no drain."""
        self._quick = True
        super().handle_quit(sig, frame)

    # -- serving -----------------------------------------------------------------------------

    def run(self) -> None:
        self.booted = False  # until the sockets are bound (see aiohttp's worker)
        self._task = self.loop.create_task(self._serve())
        try:
            self.loop.run_until_complete(self._task)
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
        sys.exit(self.exit_code)

    async def _make_runner(self) -> web.AppRunner:
        target: Any = self.wsgi
        if not isinstance(target, web.Application):
            if not callable(target):
                raise RuntimeError(
                    f"the app should be an aiohttp Application or a factory of it, got {target!r}"
                )
            target = target()
            if inspect.isawaitable(target):
                target = await target
        if isinstance(target, web.AppRunner):
            return target
        if not isinstance(target, web.Application):
            raise RuntimeError(f"the app factory returned {target!r}, not an aiohttp Application")
        cfg = self.cfg
        return web.AppRunner(
            target,
            logger=self.log,
            keepalive_timeout=cfg.keepalive,
            access_log=self.log.access_log if cfg.accesslog else None,
            access_log_format=gunicorn_access_log_format(self, cfg.access_log_format),
            shutdown_timeout=cfg.graceful_timeout / 100 * 95,
        )

    async def _serve(self) -> None:
        runner = await self._make_runner()
        lifecycle = _lifecycle(runner.app)
        if lifecycle is not None:
            lifecycle.handle_signals = False  # the worker handles the signals
        await runner.setup()
        ssl_context = gunicorn_ssl_context(self) if self.cfg.is_ssl else None
        for sock in self.sockets:
            await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        self.booted = True
        server = runner.server
        assert server is not None
        while self.alive:
            self.notify()
            if self.max_requests and server.requests_count > self.max_requests:
                self.alive = False
                self._restart = True
                self.log.info("Max requests, shutting down: %s", self)
            elif self.ppid != os.getppid():
                self.alive = False
                self.log.info("Parent changed, shutting down: %s", self)
            else:
                await self._wait_next_notify()
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat())
        try:
            if lifecycle is not None:
                await self._drain(runner, lifecycle)
            await runner.cleanup()
        finally:
            heartbeat.cancel()
            await asyncio.wait([heartbeat])

    async def _heartbeat(self) -> None:
        # The master kills a worker silent for `timeout` seconds: keep talking while stopping.
        while True:
            self.notify()
            await asyncio.sleep(1.0)

    async def _drain(self, runner: web.AppRunner, lifecycle: Lifecycle) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        budget = self.cfg.graceful_timeout * BUDGET
        lifecycle.restarting = self._restart or self.replaced
        why = "replaced" if lifecycle.restarting else "stopping"
        if self._quick:
            log.info("worker %d: quick shutdown, no drain", os.getpid())
            await lifecycle.drain(0)
            await lifecycle.finish_requests(0)
        else:
            delay = min(lifecycle.drain_delay, budget)
            log.info("worker %d %s: draining for %g s", os.getpid(), why, delay)
            await lifecycle.drain(delay)
            left = max(0.0, budget - (loop.time() - started))
            await lifecycle.finish_requests(min(lifecycle.drain_timeout, left))
        # Stop listening; a connection accepted just before still gets its answer.
        for site in list(runner.sites):
            await site.stop()
        if not self._quick:
            await asyncio.sleep(ACCEPT_GRACE)
            left = max(0.0, budget - (loop.time() - started))
            await lifecycle.finish_requests(min(1.0, left))


def _lifecycle(app: web.Application) -> Lifecycle | None:
    lifecycle = app.get(LIFECYCLE_KEY)
    if lifecycle is None:
        log.warning("aiohttp_helpers.setup() was not called on the app: the worker cannot drain it")
    return lifecycle
