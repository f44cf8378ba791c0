"""The :class:`Lifecycle` of one application: its hooks, state, drain and stop steps.

How it plugs into aiohttp (``setup()`` does the wiring):

- A cleanup context put first in ``app.cleanup_ctx`` starts the package's hooks, of the app
  and of every sub-app that went through ``setup()``, in one ordered pass, before aiohttp's
  own cleanup contexts and ``on_startup`` receivers. The state is then READY.
- A receiver put first in ``app.on_shutdown`` drains (state DRAINING, ``drain_delay``
  seconds), runs the stop steps (closing WebSockets, ending streams), then the shutdown
  hooks.
- A receiver put last in ``app.on_cleanup`` runs the cleanup hooks and context exits, then
  sets STOPPED: the package's hooks start first and are torn down last.
- Under ``web.run_app`` the first SIGTERM or SIGINT drains before stopping (see
  :mod:`.takeover`); the gunicorn worker (``aiohttp_helpers.gunicorn.Worker``) does the
  same before it stops listening.

The work is done by the sibling modules, one concept each: :mod:`.hooks` (registering),
:mod:`.order` (start order), :mod:`.run` (one hook under its timeout), :mod:`.state`,
:mod:`.drain`, :mod:`.takeover` (signals, run_app's exit) and :mod:`.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web

from .._words import counted
from ..inflight import InFlight
from ..serving import AppState
from ..signals import SafeSignal
from . import drain as draining
from . import stop, takeover
from .errors import FrozenSignalError, HookError
from .hooks import ContextDecorator, Hook, HookDecorator, Registration
from .order import collect_tree, plan
from .run import TEARDOWN_KINDS, enter, run_hook, teardown
from .state import broadcast

__all__ = ["Lifecycle"]

log = logging.getLogger("aiohttp_helpers.lifecycle")


class Lifecycle:
    """Hooks and state of one application (``helpers.lifecycle``).

    Register hooks with the decorators :meth:`on_startup`, :meth:`on_shutdown`,
    :meth:`on_cleanup` and :meth:`context`, each taking ``name=``, ``after=`` (the names
    of the hooks it depends on) and ``timeout=`` (seconds; ``None``: no limit).

    When the application starts, the hooks of the app and of its sub-apps (those that
    went through ``setup()``) start in one pass: in dependency order, otherwise parent
    before sub-app and in registration order. A ``context`` is entered; ``on_shutdown``
    and ``on_cleanup`` hooks take their place in that order without running. Stopping
    goes in the exact reverse of what started: first the shutdown hooks, then the
    context exits and cleanup hooks. ``after=`` may name a hook of the same app or of
    an app it is mounted in.
    """

    def __init__(
        self, app: web.Application, *, drain_delay: float = 0.0, drain_timeout: float = 30.0
    ) -> None:
        self.app = app
        #: Seconds to keep serving, with readiness at 503, before stopping.
        self.drain_delay = drain_delay
        #: Seconds, after the drain, to wait for the requests in flight before stopping.
        self.drain_timeout = drain_timeout
        #: True when the process stops to restart (a reload): WebSockets then close with 1012.
        self.restarting = False
        #: Whether the first SIGINT/SIGTERM drains before stopping. ``None`` (the default):
        #: only where ``web.run_app`` (or an ``AppRunner(handle_signals=True)``) installed its
        #: handlers; ``True``: always, where the loop can handle signals; ``False``: never.
        self.handle_signals: bool | None = None
        #: Sent with ``(old_state, new_state)`` on every change.
        self.on_state_change: SafeSignal[AppState, AppState] = SafeSignal(app, "on_state_change")
        #: Sent on the root app's lifecycle after each hook ran, with ``(phase, hook name,
        #: seconds, error or None)``: what metrics of hook durations and failures read.
        self.on_hook_done: SafeSignal[str, str, float, BaseException | None] = SafeSignal(
            app, "on_hook_done"
        )
        self._state = AppState.STARTING
        self._hooks: dict[str, Hook] = {}
        self._stop_steps: list[Hook] = []
        self._where = ""
        self._parent: Lifecycle | None = None
        self._root: Lifecycle | None = None
        #: The applications this one is mounted in, innermost first: known once the tree
        #: starts (a sub-app does not know its parents before).
        self.apps_above: tuple[web.Application, ...] = ()
        # Everything below is used on the root lifecycle only: the one that drives the tree.
        self._tree: list[Lifecycle] = []
        self._armed: list[tuple[Hook, AbstractAsyncContextManager[Any] | None]] = []
        self._errors: list[HookError] = []
        self._shutdown_ran = False
        self._finished = False
        self._context_exited = False
        self._cancelled = False
        self._drained = asyncio.Event()
        self._hurry = asyncio.Event()
        self._exit_task: asyncio.Task[None] | None = None
        self._guard_task: asyncio.Task[None] | None = None
        self._signal_exits: dict[signal.Signals, takeover.Exit] = {}
        self._own_signals: set[signal.Signals] = set()
        self._in_flight = InFlight()

    @property
    def in_flight(self) -> InFlight:
        """The requests the application (with its sub-apps) is handling now."""
        return (self._root or self)._in_flight

    @property
    def is_ready(self) -> bool:
        """Whether the state is READY (new connections are welcome)."""
        return self._state is AppState.READY

    @property
    def state(self) -> AppState:
        return self._state

    # -- registering hooks (see hooks.py) ------------------------------------------------

    on_startup: Registration[HookDecorator] = Registration(
        "startup", """Register ``async def hook(app)`` to run when the application starts."""
    )
    on_shutdown: Registration[HookDecorator] = Registration(
        "shutdown",
        """Register ``async def hook(app)`` to run when the application stops.

        Shutdown hooks run after the drain and the stop steps (closing WebSockets, ending
        streams), before the cleanup hooks; they are skipped when startup failed.
        """,
    )
    on_cleanup: Registration[HookDecorator] = Registration(
        "cleanup",
        """Register ``async def hook(app)`` to run last, when the app stops.

        It also runs when a later startup hook fails, provided startup reached its place
        in the order.
        """,
    )
    context: Registration[ContextDecorator] = Registration(
        "context",
        """Register a resource that lives as long as the app, as aiohttp's ``cleanup_ctx``.

        ``func(app)`` is an async generator that yields once, or returns an async context
        manager. ``timeout`` bounds the entry and the exit, each.
        """,
    )

    def add_stop_step(self, name: str, step: Callable[[], Awaitable[object]]) -> None:
        """Run ``await step()`` when the application stops, after the drain.

        The stop steps of the app and its sub-apps run concurrently, before the shutdown
        hooks; each fails (or is reported) the way a shutdown hook does, and never stops
        the others. ``setup()`` adds "close WebSockets" and "end streams".

        Raises:
            FrozenSignalError: the application has already started.
        """
        given: object = name  # checked at run time: callers may not be typed
        if not isinstance(given, str) or not given:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if not callable(step):
            raise TypeError(f"a stop step must be callable, got {type(step).__name__}")
        if self._root is not None:
            raise FrozenSignalError(
                f"cannot add the stop step {name!r}: the application has already started "
                "(add stop steps before it starts)"
            )
        self._stop_steps.append(stop.stop_step(self, name, step))

    # -- starting -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def cleanup_context(self, app: web.Application) -> AsyncIterator[None]:
        """The ``cleanup_ctx`` entry ``setup()`` puts first: runs the hooks of the tree."""
        if self._root is None or self._root is self:
            await self._start()
        yield
        self._context_exited = True
        if self._root is self and not app.on_cleanup.frozen:
            # Startup failed after this context was entered and aiohttp only exits cleanup
            # contexts (Application.cleanup): on_shutdown/on_cleanup receivers never come.
            await stop.finish(self)

    async def _start(self) -> None:
        if self._state is not AppState.STARTING:
            raise RuntimeError(
                "this application has already run and stopped; build a new one to start again"
            )
        tree = collect_tree(self)
        order = plan(tree)  # HookOrderError here: nothing has started
        for lifecycle in tree:
            lifecycle._root = self
            lifecycle.on_state_change.freeze()
            lifecycle.on_hook_done.freeze()
        self._tree = tree
        sig = self.app.on_cleanup
        if not sig.frozen and self.cleanup_receiver in sig:
            # Receivers appended after setup() (sub-apps' among them) are torn down first.
            sig.remove(self.cleanup_receiver)
            sig.append(self.cleanup_receiver)
        started = time.perf_counter()
        try:
            for hook in order:
                if hook.kind == "startup":
                    action = functools.partial(hook.func, hook.owner.app)
                    await run_hook(self, hook, "startup", action, raised=True)
                elif hook.kind == "context":
                    action = functools.partial(enter, self, hook)
                    await run_hook(self, hook, "startup", action, raised=True)
                else:
                    self._armed.append((hook, None))
        except (Exception, asyncio.CancelledError) as exc:
            await self._abort_start(exc)
            raise
        log.info(
            "started %s in %.3f s",
            counted(len(order), "lifecycle hook"),
            time.perf_counter() - started,
        )
        await broadcast(self, AppState.READY)
        takeover.take_over_signals(self)
        self._guard_task = asyncio.get_running_loop().create_task(stop.guard(self))

    async def _abort_start(self, exc: BaseException) -> None:
        self._finished = True
        await broadcast(self, AppState.STOPPING)
        errors = await teardown(self, TEARDOWN_KINDS, "cleanup", raised=isinstance(exc, HookError))
        await broadcast(self, AppState.STOPPED)
        if isinstance(exc, HookError):
            exc.teardown_errors = errors
            for error in errors:
                exc.add_note(f"while tearing down after it: {error}")
            torn = sum(1 for hook, _ in self._armed if hook.kind in TEARDOWN_KINDS)
            failed = f" ({len(errors)} failed)" if errors else ""
            if log.hasHandlers():
                log.error(
                    "%s; tore down the %s that had started%s",
                    exc,
                    counted(torn, "hook"),
                    failed,
                )
            if takeover.under_run_app():
                takeover.exit_in_one_line(exc)

    # -- draining -----------------------------------------------------------------------

    async def drain(self, delay: float | None = None) -> None:
        """Stop being ready and keep serving for ``delay`` seconds (default ``drain_delay``).

        The state goes DRAINING, so ``/ready`` answers 503 while requests are still served.
        A second call waits for the drain in progress; once the app is stopping, there is
        nothing left to drain. A SIGTERM or SIGINT under ``web.run_app`` calls this, then
        stops the app.

        Raises:
            RuntimeError: the application has not started.
        """
        await draining.drain(self, delay)

    async def finish_requests(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 (at the bound the requests end, not us)
    ) -> int:
        """Wait for the requests in flight, then end those still running; before stopping.

        Waits ``timeout`` seconds at the most (default ``drain_timeout``), for requests that
        arrive meanwhile too. WebSocket upgrades and registered streams are not waited for.
        At the bound a request whose body is still arriving is answered 503 with
        ``Retry-After``; any other has its connection closed. A second SIGTERM/SIGINT cuts
        the wait short. Call it while the server still listens (the signal takeover and
        the gunicorn worker do, after :meth:`drain`): once aiohttp's runner starts its
        cleanup it reads no more request bodies.

        Returns:
            how many requests were ended at the bound.
        """
        return await draining.finish_requests(self, timeout)

    # -- stopping -----------------------------------------------------------------------

    async def shutdown_receiver(self, app: web.Application) -> None:
        """The ``on_shutdown`` receiver ``setup()`` puts first: drain, stop steps, hooks."""
        if self._root is not self or self._shutdown_ran or self._finished:
            return
        await stop.shutdown(self)

    async def cleanup_receiver(self, app: web.Application) -> None:
        """The ``on_cleanup`` receiver ``setup()`` puts last: cleanup hooks, then STOPPED.

        Raises:
            TeardownError: shutdown or cleanup hooks failed (all of them still ran).
        """
        if self._root is self:
            await stop.finish(self)
