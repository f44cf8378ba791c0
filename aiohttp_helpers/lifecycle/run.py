"""Running one hook under its timeout, and tearing hooks down newest first."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from .errors import HookError, HookTimeout
from .hooks import Hook, Kind, Phase

if TYPE_CHECKING:
    from .core import Lifecycle

__all__ = ["SHUTDOWN_KINDS", "TEARDOWN_KINDS", "enter", "run_hook", "teardown"]

log = logging.getLogger("aiohttp_helpers.lifecycle")

#: The hooks that run when the app stops, then those torn down last.
SHUTDOWN_KINDS: frozenset[Kind] = frozenset({"shutdown"})
TEARDOWN_KINDS: frozenset[Kind] = frozenset({"cleanup", "context"})


def _open_context(hook: Hook) -> AbstractAsyncContextManager[Any]:
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


async def enter(root: Lifecycle, hook: Hook) -> None:
    """Enter a ``context`` hook and arm its exit."""
    manager = _open_context(hook)
    await manager.__aenter__()
    root._armed.append((hook, manager))


async def run_hook(
    root: Lifecycle,
    hook: Hook,
    phase: Phase,
    action: Callable[[], Awaitable[Any]],
    *,
    raised: bool = False,
) -> None:
    """Run ``action`` for ``hook`` under its timeout; log it and tell ``on_hook_done``.

    ``raised``: a failure reaches the caller of the start (as the error, or in its notes),
    so it is logged only where logging is configured; unconfigured, Python's last-resort
    handler would print its traceback a second time.

    Raises:
        HookError: the action failed (:class:`HookTimeout` when it ran too long); its
            exception is ``__cause__``. A cancellation is re-raised as is.
    """
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
        # A cancelled hook raises CancelledError, not the HookError: log it always.
        if not raised or log.hasHandlers() or isinstance(exc, asyncio.CancelledError):
            log.error("%s (after %.3f s)", error, elapsed, exc_info=exc)
        await _hook_done(root, phase, hook, elapsed, error)
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
    await _hook_done(root, phase, hook, time.perf_counter() - started, None)


async def _hook_done(
    root: Lifecycle, phase: Phase, hook: Hook, seconds: float, error: BaseException | None
) -> None:
    signal_ = root.on_hook_done
    if signal_ and signal_.frozen:
        await signal_.send(phase, hook.name, seconds, error)


async def teardown(
    root: Lifecycle, kinds: frozenset[Kind], phase: Phase, *, raised: bool = False
) -> list[HookError]:
    """Run the armed hooks of ``kinds`` newest first; one failing never stops the rest.

    ``raised``: as for :func:`run_hook` (tearing down after a failed start).
    """
    errors: list[HookError] = []
    task = asyncio.current_task()
    baseline = task.cancelling() if task is not None else 0
    for hook, manager in reversed(root._armed):
        if hook.kind not in kinds:
            continue
        action: Callable[[], Awaitable[Any]]
        if manager is not None:
            action = functools.partial(manager.__aexit__, None, None, None)
        else:
            action = functools.partial(hook.func, hook.owner.app)
        try:
            await run_hook(root, hook, phase, action, raised=raised)
        except HookError as exc:
            errors.append(exc)
        except asyncio.CancelledError as exc:
            error = HookError(phase, hook.name, hook.owner._where, "was cancelled")
            error.__cause__ = exc
            errors.append(error)
            if task is not None and task.cancelling() > baseline:
                root._cancelled = True  # our caller is being cancelled: tell it at the end
    return errors
