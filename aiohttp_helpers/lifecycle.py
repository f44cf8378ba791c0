"""Application lifecycle: ordered, timed hooks, app state, readiness and graceful draining.

How it plugs into aiohttp (``setup()`` does the wiring):

- A cleanup context put first in ``app.cleanup_ctx`` starts the package's hooks, of the app
  and of every sub-app that went through ``setup()``, in one ordered pass, before aiohttp's
  own cleanup contexts and ``on_startup`` receivers. The state is then READY.
- A receiver put first in ``app.on_shutdown`` drains (state DRAINING, ``drain_delay``
  seconds), closes WebSockets and ends streams, then runs the shutdown hooks.
- A receiver put last in ``app.on_cleanup`` runs the cleanup hooks and context exits, then
  sets STOPPED: the package's hooks start first and are torn down last.
- Under ``web.run_app`` the first SIGTERM or SIGINT no longer stops the listener at once:
  the app drains while it keeps serving, waits (``drain_timeout`` at the most) for the
  requests in flight, then stops the way run_app always does. The gunicorn worker
  (``aiohttp_helpers.gunicorn.Worker``) does the same before it stops listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import inspect
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from aiohttp import web

from ._compat import run_app_handles
from .inflight import InFlight
from .keys import HELPERS_KEY
from .serving import AppState
from .signals import SafeSignal

__all__ = [
    "AppState",
    "HookError",
    "HookOrderError",
    "HookTimeout",
    "Lifecycle",
    "TeardownError",
]

log = logging.getLogger("aiohttp_helpers.lifecycle")

#: ``async def hook(app) -> None``: what ``on_startup``, ``on_shutdown`` and ``on_cleanup`` take.
AppHook = Callable[[web.Application], Awaitable[object]]
#: An async generator function of the app (one ``yield``), or a callable returning an async
#: context manager: what ``context`` takes, as aiohttp's ``cleanup_ctx`` does.
ContextHook = Callable[[web.Application], AsyncIterator[Any] | AbstractAsyncContextManager[Any]]

_H = TypeVar("_H", bound=AppHook)
_C = TypeVar("_C", bound=ContextHook)
_F = TypeVar("_F", bound=Callable[..., Any])

_Kind = Literal["startup", "shutdown", "cleanup", "context"]
#: What to call to stop the process the way the signal's previous handler would have.
_Exit = tuple[Callable[..., object], tuple[Any, ...]]
_Phase = Literal["startup", "shutdown", "cleanup"]

_SHUTDOWN_KINDS: frozenset[_Kind] = frozenset({"shutdown"})
_CLEANUP_KINDS: frozenset[_Kind] = frozenset({"cleanup", "context"})
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class HookError(RuntimeError):
    """A lifecycle hook failed; the message names the hook, its phase and its app.

    The hook's own exception is ``__cause__``. When a startup hook fails, the errors of
    tearing down what had started are in ``teardown_errors`` (and in the notes).
    """

    def __init__(self, phase: str, hook: str, where: str, detail: str) -> None:
        super().__init__(f"{phase} hook {hook!r}{where} {detail}")
        self.phase = phase
        self.hook = hook
        self.teardown_errors: list[HookError] = []


class HookTimeout(HookError):
    """A lifecycle hook ran past its ``timeout``."""

    def __init__(self, phase: str, hook: str, where: str, timeout: float) -> None:
        super().__init__(phase, hook, where, f"did not finish within {timeout:g} seconds")
        self.timeout = timeout


class HookOrderError(ValueError):
    """Hooks name an unknown hook in ``after=``, or depend on each other in a cycle.

    Raised when the application starts, before any hook runs.
    """


class TeardownError(ExceptionGroup[HookError]):
    """Shutdown or cleanup hooks failed; every other hook still ran."""

    @property
    def errors(self) -> list[HookError]:
        """The hooks' errors, in the order the hooks ran."""
        return [error for error in self.exceptions if isinstance(error, HookError)]


@dataclass(eq=False, slots=True)
class _Hook:
    kind: _Kind
    name: str
    func: Callable[[web.Application], Any]
    after: tuple[str, ...]
    timeout: float | None
    owner: Lifecycle
    seq: int


def _hook_name(func: Callable[..., Any]) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    name = getattr(func, "__name__", None)
    return name if isinstance(name, str) else repr(func)


def _is_async_callable(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 (an object with an async __call__)
    )


def _seconds(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    return float(value)


def _check_options(name: object, after: object, timeout: object) -> tuple[str, ...]:
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if isinstance(after, str):
        after = (after,)
    if not isinstance(after, Iterable):
        raise TypeError(f"after= takes a hook name or an iterable of names, got {after!r}")
    names = tuple(after)
    for dep in names:
        if not isinstance(dep, str) or not dep:
            raise TypeError(f"after= takes hook names (non-empty str), got {dep!r}")
    if timeout is not None and _seconds("timeout", timeout) <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    return names


def _subapps(app: web.Application) -> Iterator[tuple[str, web.Application]]:
    """Sub-apps mounted on ``app``, each with how it is reached (prefix or domain)."""
    for resource in app.router.resources():
        info = resource.get_info()
        sub = info.get("app")
        if isinstance(sub, web.Application):
            where = info.get("prefix") or getattr(info.get("rule"), "canonical", "a domain")
            yield str(where), sub


def _graceful_exit() -> None:
    # What aiohttp's runner does on SIGINT/SIGTERM when it handles signals (run_app's
    # default), through the public exception.
    raise web.GracefulExit()


def _run_app_exit(loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> _Exit | None:
    """The exit to take over from ``web.run_app`` for ``sig`` on ``loop``, if it handles it.

    Answers None when the loop's handler for ``sig`` is not aiohttp's runner's (or when it
    cannot tell): the package then leaves the signal alone.
    """
    # How it tells is an aiohttp internal (_compat.run_app_handles). The exit itself is the
    # public ``web.GracefulExit``, raised the way aiohttp does.
    if not run_app_handles(loop, sig):
        return None
    return _graceful_exit, ()


def _open_context(hook: _Hook) -> AbstractAsyncContextManager[Any]:
    app = hook.owner.app
    if inspect.isasyncgenfunction(hook.func):
        return contextlib.asynccontextmanager(hook.func)(app)
    made = hook.func(app)
    if isinstance(made, AbstractAsyncContextManager):
        return made
    if inspect.isasyncgen(made):
        return contextlib.asynccontextmanager(lambda _app: made)(app)
    raise TypeError(
        f"context hook {hook.name!r} returned {type(made).__name__}, not an async context manager"
    )


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
        self._hooks: dict[str, _Hook] = {}
        self._where = ""
        self._parent: Lifecycle | None = None
        self._root: Lifecycle | None = None
        # Everything below is used on the root lifecycle only: the one that drives the tree.
        self._tree: list[Lifecycle] = []
        self._armed: list[tuple[_Hook, AbstractAsyncContextManager[Any] | None]] = []
        self._errors: list[HookError] = []
        self._shutdown_ran = False
        self._finished = False
        self._context_exited = False
        self._cancelled = False
        self._drained = asyncio.Event()
        self._hurry = asyncio.Event()
        self._exit_task: asyncio.Task[None] | None = None
        self._guard_task: asyncio.Task[None] | None = None
        self._signal_exits: dict[signal.Signals, _Exit] = {}
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

    # -- registering hooks --------------------------------------------------------------

    @overload
    def on_startup(
        self, func: _H, /, *, name: str | None = ..., after: str | Iterable[str] = ...,
        timeout: float | None = ...,
    ) -> _H: ...  # fmt: skip
    @overload
    def on_startup(
        self, func: None = None, /, *, name: str | None = ...,
        after: str | Iterable[str] = ..., timeout: float | None = ...,
    ) -> Callable[[_H], _H]: ...  # fmt: skip
    def on_startup(
        self,
        func: _H | None = None,
        /,
        *,
        name: str | None = None,
        after: str | Iterable[str] = (),
        timeout: float | None = None,
    ) -> _H | Callable[[_H], _H]:
        """Register ``async def hook(app)`` to run when the application starts."""
        return self._decorate("startup", func, name, after, timeout)

    @overload
    def on_shutdown(
        self, func: _H, /, *, name: str | None = ..., after: str | Iterable[str] = ...,
        timeout: float | None = ...,
    ) -> _H: ...  # fmt: skip
    @overload
    def on_shutdown(
        self, func: None = None, /, *, name: str | None = ...,
        after: str | Iterable[str] = ..., timeout: float | None = ...,
    ) -> Callable[[_H], _H]: ...  # fmt: skip
    def on_shutdown(
        self,
        func: _H | None = None,
        /,
        *,
        name: str | None = None,
        after: str | Iterable[str] = (),
        timeout: float | None = None,
    ) -> _H | Callable[[_H], _H]:
        """Register ``async def hook(app)`` to run when the application stops.

        Shutdown hooks run after the drain and the closing of WebSockets, before the cleanup
        hooks; they are skipped when startup failed.
        """
        return self._decorate("shutdown", func, name, after, timeout)

    @overload
    def on_cleanup(
        self, func: _H, /, *, name: str | None = ..., after: str | Iterable[str] = ...,
        timeout: float | None = ...,
    ) -> _H: ...  # fmt: skip
    @overload
    def on_cleanup(
        self, func: None = None, /, *, name: str | None = ...,
        after: str | Iterable[str] = ..., timeout: float | None = ...,
    ) -> Callable[[_H], _H]: ...  # fmt: skip
    def on_cleanup(
        self,
        func: _H | None = None,
        /,
        *,
        name: str | None = None,
        after: str | Iterable[str] = (),
        timeout: float | None = None,
    ) -> _H | Callable[[_H], _H]:
        """Register ``async def hook(app)`` to run last, when the app stops.

        It also runs when a later startup hook fails, provided startup reached its place
        in the order.
        """
        return self._decorate("cleanup", func, name, after, timeout)

    @overload
    def context(
        self, func: _C, /, *, name: str | None = ..., after: str | Iterable[str] = ...,
        timeout: float | None = ...,
    ) -> _C: ...  # fmt: skip
    @overload
    def context(
        self, func: None = None, /, *, name: str | None = ...,
        after: str | Iterable[str] = ..., timeout: float | None = ...,
    ) -> Callable[[_C], _C]: ...  # fmt: skip
    def context(
        self,
        func: _C | None = None,
        /,
        *,
        name: str | None = None,
        after: str | Iterable[str] = (),
        timeout: float | None = None,
    ) -> _C | Callable[[_C], _C]:
        """Register a resource that lives as long as the app, as aiohttp's ``cleanup_ctx``.

        ``func(app)`` is an async generator that yields once, or returns an async context
        manager. ``timeout`` bounds the entry and the exit, each.
        """
        return self._decorate("context", func, name, after, timeout)

    def _decorate(
        self,
        kind: _Kind,
        func: _F | None,
        name: str | None,
        after: str | Iterable[str],
        timeout: float | None,
    ) -> _F | Callable[[_F], _F]:
        deps = _check_options(name, after, timeout)

        def register(func: _F) -> _F:
            self._register(kind, func, name, deps, timeout)
            return func

        return register if func is None else register(func)

    def _register(
        self,
        kind: _Kind,
        func: Any,
        name: str | None,
        after: tuple[str, ...],
        timeout: float | None,
    ) -> None:
        if self._root is not None:
            raise RuntimeError(
                f"cannot register {kind} hook {name or _hook_name(func)!r}: the application "
                "has already started (register hooks before it starts)"
            )
        if not callable(func):
            raise TypeError(f"a {kind} hook must be callable, got {type(func).__name__}")
        label = "lifecycle.context" if kind == "context" else f"lifecycle.on_{kind}"
        if kind == "context":
            if _is_async_callable(func):
                raise TypeError(
                    f"{label} takes an async generator function or a function returning an "
                    f"async context manager; {_hook_name(func)!r} is a coroutine function "
                    "(use lifecycle.on_startup / on_cleanup)"
                )
        elif inspect.isasyncgenfunction(func):
            raise TypeError(
                f"{label} takes an async function; {_hook_name(func)!r} is an async "
                "generator function (use lifecycle.context)"
            )
        elif not _is_async_callable(func):
            raise TypeError(f"{label} takes an async function, got {func!r}")
        name = name or _hook_name(func)
        if name in self._hooks:
            raise ValueError(
                f"a lifecycle hook named {name!r} is already registered on this app; "
                "give this one another name with name="
            )
        self._hooks[name] = _Hook(kind, name, func, after, timeout, self, len(self._hooks))

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
            await self._finish()

    def _collect_tree(self) -> list[Lifecycle]:
        tree: list[Lifecycle] = []
        seen: set[int] = set()

        def walk(app: web.Application, parent: Lifecycle | None, where: str) -> None:
            if id(app) in seen:
                return
            seen.add(id(app))
            helpers = app.get(HELPERS_KEY)
            lifecycle = self if app is self.app else getattr(helpers, "lifecycle", None)
            if isinstance(lifecycle, Lifecycle):
                if lifecycle._root is not None:
                    raise RuntimeError(
                        f"the sub-app{where} already started as part of another application: "
                        "mount a sub-app in one application only"
                    )
                lifecycle._parent, lifecycle._where = parent, where
                tree.append(lifecycle)
                parent = lifecycle
            for prefix, sub in _subapps(app):
                walk(sub, parent, f" (sub-app {prefix})")

        walk(self.app, None, "")
        return tree

    async def _start(self) -> None:
        if self._state is not AppState.STARTING:
            raise RuntimeError(
                "this application has already run and stopped; build a new one to start again"
            )
        tree = self._collect_tree()
        plan = _plan(tree)  # HookOrderError here: nothing has started
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
            for hook in plan:
                if hook.kind == "startup":
                    await self._run(hook, "startup", functools.partial(hook.func, hook.owner.app))
                elif hook.kind == "context":
                    await self._run(hook, "startup", functools.partial(self._enter, hook))
                else:
                    self._armed.append((hook, None))
        except (Exception, asyncio.CancelledError) as exc:
            await self._abort_start(exc)
            raise
        log.info("started %d lifecycle hooks in %.3f s", len(plan), time.perf_counter() - started)
        await self._broadcast(AppState.READY)
        self._take_over_signals()
        self._guard_task = asyncio.get_running_loop().create_task(self._guard())

    async def _enter(self, hook: _Hook) -> None:
        manager = _open_context(hook)
        await manager.__aenter__()
        self._armed.append((hook, manager))

    async def _abort_start(self, exc: BaseException) -> None:
        self._finished = True
        await self._broadcast(AppState.STOPPING)
        errors = await self._teardown(_CLEANUP_KINDS, "cleanup")
        await self._broadcast(AppState.STOPPED)
        if isinstance(exc, HookError):
            exc.teardown_errors = errors
            for error in errors:
                exc.add_note(f"while tearing down after it: {error}")
            torn = sum(1 for hook, _ in self._armed if hook.kind in _CLEANUP_KINDS)
            failed = f" ({len(errors)} failed)" if errors else ""
            log.error("%s; tore down the %d hooks that had started%s", exc, torn, failed)

    # -- running one hook ---------------------------------------------------------------

    async def _run(self, hook: _Hook, phase: _Phase, action: Callable[[], Awaitable[Any]]) -> None:
        where = hook.owner._where
        started = time.perf_counter()
        try:
            async with asyncio.timeout(hook.timeout) as deadline:
                await action()
        except (Exception, asyncio.CancelledError) as exc:
            elapsed = time.perf_counter() - started
            error: HookError
            if isinstance(exc, TimeoutError) and deadline.expired():
                assert hook.timeout is not None
                error = HookTimeout(phase, hook.name, where, hook.timeout)
            elif isinstance(exc, asyncio.CancelledError):
                error = HookError(phase, hook.name, where, "was cancelled")
            else:
                error = HookError(phase, hook.name, where, f"failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            log.error("%s (after %.3f s)", error, elapsed, exc_info=exc)
            await self._hook_done(phase, hook, elapsed, error)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise error from exc
        log.info(
            "%s hook %r%s finished in %.3f s",
            phase,
            hook.name,
            where,
            time.perf_counter() - started,
        )
        await self._hook_done(phase, hook, time.perf_counter() - started, None)

    async def _hook_done(
        self, phase: _Phase, hook: _Hook, seconds: float, error: BaseException | None
    ) -> None:
        signal_ = self.on_hook_done
        if signal_ and signal_.frozen:
            await signal_.send(phase, hook.name, seconds, error)

    async def _teardown(self, kinds: frozenset[_Kind], phase: _Phase) -> list[HookError]:
        """Run the armed hooks of ``kinds`` newest first; one failing never stops the rest."""
        errors: list[HookError] = []
        task = asyncio.current_task()
        baseline = task.cancelling() if task is not None else 0
        for hook, manager in reversed(self._armed):
            if hook.kind not in kinds:
                continue
            action: Callable[[], Awaitable[Any]]
            if manager is not None:
                action = functools.partial(manager.__aexit__, None, None, None)
            else:
                action = functools.partial(hook.func, hook.owner.app)
            try:
                await self._run(hook, phase, action)
            except HookError as exc:
                errors.append(exc)
            except asyncio.CancelledError as exc:
                error = HookError(phase, hook.name, hook.owner._where, "was cancelled")
                error.__cause__ = exc
                errors.append(error)
                if task is not None and task.cancelling() > baseline:
                    self._cancelled = True  # our caller is being cancelled: tell it at the end
        return errors

    # -- state --------------------------------------------------------------------------

    async def _set_state(self, state: AppState) -> None:
        old, self._state = self._state, state
        if old is not state:
            log.info("application%s state %s -> %s", self._where, old.name, state.name)
            await self.on_state_change.send(old, state)  # frozen by _start()

    async def _broadcast(self, state: AppState) -> None:
        for lifecycle in self._tree or [self]:
            await lifecycle._set_state(state)

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
        if delay is not None and _seconds("delay", delay) < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        root = self._root
        if root is None:
            raise RuntimeError("cannot drain an application that has not started")
        if root is not self:
            await root.drain(delay)
            return
        if self._state is AppState.READY:
            wait = self.drain_delay if delay is None else delay
            try:
                await self._broadcast(AppState.DRAINING)
                log.info("draining for %g s: readiness answers 503, requests are served", wait)
                if wait > 0 and not self._hurry.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._hurry.wait()
            finally:
                self._drained.set()
        elif self._state is AppState.DRAINING:
            await self._drained.wait()

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
        if timeout is not None and _seconds("timeout", timeout) < 0:
            raise ValueError(f"timeout must not be negative, got {timeout!r}")
        root = self._root or self
        wait = root.drain_timeout if timeout is None else timeout
        in_flight = root._in_flight
        count = len(in_flight)
        if count:
            log.info("waiting %g s at the most for %d request(s) in flight", wait, count)
        if await in_flight.wait(wait, root._hurry):
            return 0
        return await in_flight.abort()

    def _take_over_signals(self) -> None:
        if self.handle_signals is False:
            return
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            exit_ = _run_app_exit(loop, sig)
            if exit_ is None and not self.handle_signals:
                continue
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError) as exc:
                log.warning("cannot drain on %s here: %s", sig.name, exc)
                continue
            self._own_signals.add(sig)
            if exit_ is not None:
                self._signal_exits[sig] = exit_

    def _restore_signals(self) -> None:
        if not self._own_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in self._own_signals:
            exit_ = self._signal_exits.get(sig)
            if exit_ is not None:
                loop.add_signal_handler(sig, exit_[0], *exit_[1])
            else:
                loop.remove_signal_handler(sig)
        self._own_signals.clear()

    def _on_signal(self, sig: signal.Signals) -> None:
        task = self._exit_task
        if self._shutdown_ran:
            log.warning("%s received while stopping: the shutdown goes on", sig.name)
        elif task is None:
            log.info("%s received: draining for %g s, then stopping", sig.name, self.drain_delay)
            loop = asyncio.get_running_loop()
            self._exit_task = loop.create_task(self._drain_then_exit(sig))
        else:
            log.warning("%s received again: stopping without draining further", sig.name)
            self._hurry.set()

    async def _drain_then_exit(self, sig: signal.Signals) -> None:
        await self.drain()
        if not self._shutdown_ran:
            await self.finish_requests()
        if not self._shutdown_ran:
            # Exactly what run_app's own handler would have done on the signal.
            callback, args = self._signal_exits.get(sig, (_graceful_exit, ()))
            asyncio.get_running_loop().call_soon(callback, *args)

    # -- stopping -----------------------------------------------------------------------

    async def shutdown_receiver(self, app: web.Application) -> None:
        """The ``on_shutdown`` receiver ``setup()`` puts first: drain, WebSockets, hooks."""
        if self._root is not self or self._shutdown_ran or self._finished:
            return
        self._shutdown_ran = True
        await self.drain()
        await self._stop_task(self._exit_task)
        await self._end_stalled_uploads()
        await self._shutdown_phase()

    async def _end_stalled_uploads(self) -> None:
        # Here aiohttp's runner has already called pre_shutdown(): its connections drop every
        # body byte that arrives, so an upload still arriving could only wait out its
        # idle_timeout (408). End those now (503 + Retry-After), let the others finish.
        stalled = InFlight()
        for entry in self._in_flight:
            if not entry.request.content.is_eof():
                stalled.add(entry)
        if len(stalled):
            await stalled.abort(why="the server stopped reading request bodies")
        for entry in [*self._in_flight.cut, *stalled.cut]:
            if not entry.request.content.is_eof():
                # No byte can arrive any more: end the body, or aiohttp's lingering read
                # of it (after the 503) holds the shutdown for its whole lingering_time.
                entry.request.content.feed_eof()
        self._in_flight.cut.clear()

    async def _shutdown_phase(self) -> None:
        self._shutdown_ran = True
        await self._broadcast(AppState.STOPPING)
        self._errors += await self._close_websockets()
        self._errors += await self._teardown(_SHUTDOWN_KINDS, "shutdown")

    async def _close_websockets(self) -> list[HookError]:
        """Step 3 of stopping: WebSockets close with 1001/1012, streams end, concurrently."""
        hooks: list[tuple[_Hook, Callable[[], Awaitable[Any]]]] = []
        for lifecycle in self._tree:
            helpers = lifecycle.app.get(HELPERS_KEY)
            for name in ("websockets", "streams"):
                shutdown = getattr(getattr(helpers, name, None), "shutdown", None)
                if callable(shutdown):
                    hook = _Hook("shutdown", name, shutdown, (), None, lifecycle, -1)
                    hooks.append((hook, shutdown))
        results = await asyncio.gather(
            *(self._run(hook, "shutdown", close) for hook, close in hooks),
            return_exceptions=True,
        )
        return [error for error in results if isinstance(error, HookError)]

    async def cleanup_receiver(self, app: web.Application) -> None:
        """The ``on_cleanup`` receiver ``setup()`` puts last: cleanup hooks, then STOPPED.

        Raises:
            TeardownError: shutdown or cleanup hooks failed (all of them still ran).
        """
        if self._root is self:
            await self._finish()

    async def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        await self._stop_task(self._guard_task)
        await self._stop_task(self._exit_task)
        if not self._shutdown_ran and self.app.frozen:
            # The app served, but its on_shutdown receivers never ran to ours.
            await self._shutdown_phase()
        await self._broadcast(AppState.STOPPING)
        errors = self._errors + await self._teardown(_CLEANUP_KINDS, "cleanup")
        self._errors = []
        await self._broadcast(AppState.STOPPED)
        self._restore_signals()
        if self._cancelled:
            raise asyncio.CancelledError
        if errors:
            names = ", ".join(repr(error.hook) for error in errors)
            hooks = "hook" if len(errors) == 1 else "hooks"
            raise TeardownError(
                f"{len(errors)} lifecycle {hooks} failed while stopping: {names}", errors
            )

    async def _stop_task(self, task: asyncio.Task[None] | None) -> None:
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])

    async def _guard(self) -> None:
        """Parks until cancelled: at cleanup, or by run_app's final cancellation of all tasks.

        In the second case the app stopped without a cleanup reaching this package (a
        startup hook failed after ours, or an ``on_shutdown`` receiver raised): tear down
        here. A top-level app whose startup failed also gets aiohttp's cleanup contexts
        exited, which ``web.run_app`` skips.
        """
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if not self._finished:
                log.warning("the application stopped without cleaning up: tearing down now")
                try:
                    app = self.app
                    if not self._context_exited and not app.frozen and not app.pre_frozen:
                        await app.cleanup()
                    await self._finish()
                except (Exception, asyncio.CancelledError):
                    log.exception("tearing down the application failed")
            raise


def _plan(tree: list[Lifecycle]) -> list[_Hook]:
    """The start order of every hook of ``tree``: dependencies first, else tree order."""
    hooks = [hook for lifecycle in tree for hook in lifecycle._hooks.values()]
    rank = {id(hook): i for i, hook in enumerate(hooks)}
    needs: dict[int, list[_Hook]] = {}
    for hook in hooks:
        deps: list[_Hook] = []
        for name in hook.after:
            found = _resolve(hook.owner, name)
            if found is None:
                known = sorted({n for lc in _lineage(hook.owner) for n in lc._hooks})
                raise HookOrderError(
                    f"{hook.kind} hook {hook.name!r}{hook.owner._where} runs after {name!r}, "
                    f"which is not a hook of this app or of an app it is mounted in "
                    f"(known: {', '.join(map(repr, known))})"
                )
            deps.append(found)
        needs[id(hook)] = deps
    waiting = {id(hook): len(needs[id(hook)]) for hook in hooks}
    dependents: dict[int, list[_Hook]] = {id(hook): [] for hook in hooks}
    for hook in hooks:
        for dep in needs[id(hook)]:
            dependents[id(dep)].append(hook)
    ready = [(rank[id(hook)], hook) for hook in hooks if not waiting[id(hook)]]
    heapq.heapify(ready)
    order: list[_Hook] = []
    while ready:
        _, hook = heapq.heappop(ready)
        order.append(hook)
        for dependent in dependents[id(hook)]:
            waiting[id(dependent)] -= 1
            if not waiting[id(dependent)]:
                heapq.heappush(ready, (rank[id(dependent)], dependent))
    if len(order) < len(hooks):
        raise HookOrderError(
            "lifecycle hooks depend on each other in a cycle: "
            + _describe_cycle([h for h in hooks if waiting[id(h)]], needs)
        )
    return order


def _lineage(lifecycle: Lifecycle) -> Iterator[Lifecycle]:
    current: Lifecycle | None = lifecycle
    while current is not None:
        yield current
        current = current._parent


def _resolve(owner: Lifecycle, name: str) -> _Hook | None:
    for lifecycle in _lineage(owner):
        if name in lifecycle._hooks:
            return lifecycle._hooks[name]
    return None


def _describe_cycle(stuck: list[_Hook], needs: dict[int, list[_Hook]]) -> str:
    # Every stuck hook waits on another stuck hook: walking those edges must come back.
    stuck_ids = {id(hook) for hook in stuck}
    path: list[_Hook] = []
    seen: dict[int, int] = {}
    hook = stuck[0]
    while id(hook) not in seen:
        seen[id(hook)] = len(path)
        path.append(hook)
        hook = next(dep for dep in needs[id(hook)] if id(dep) in stuck_ids)
    cycle = [*path[seen[id(hook)] :], hook]
    return " runs after ".join(f"{h.name!r}{h.owner._where}" for h in cycle)
