"""Stopping in order: drain, the stop steps (concurrently), shutdown hooks, then cleanup.

``setup()`` registers the stop steps of the features it installs ("close WebSockets",
"end streams"); the lifecycle runs them after the drain, concurrently, each under the
same error handling as a hook, and never imports the features themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .._words import counted
from ..serving import AppState
from .drain import drain, end_stalled_uploads
from .errors import HookError, TeardownError
from .hooks import Hook
from .run import SHUTDOWN_KINDS, TEARDOWN_KINDS, run_hook, teardown
from .state import broadcast
from .takeover import restore_signals

if TYPE_CHECKING:
    from .core import Lifecycle

__all__ = ["StopStep", "finish", "guard", "shutdown", "stop_task"]

log = logging.getLogger("aiohttp_helpers.lifecycle")

#: ``async def step() -> object``: what :meth:`Lifecycle.add_stop_step` takes.
StopStep = Callable[[], Awaitable[object]]


async def shutdown(root: Lifecycle) -> None:
    """The ``on_shutdown`` part: drain, end stalled uploads, then :func:`_shutdown_phase`."""
    root._shutdown_ran = True
    await drain(root, None)
    await stop_task(root._exit_task)
    await end_stalled_uploads(root)
    await _shutdown_phase(root)


async def _shutdown_phase(root: Lifecycle) -> None:
    root._shutdown_ran = True
    await broadcast(root, AppState.STOPPING)
    root._errors += await _run_stop_steps(root)
    root._errors += await teardown(root, SHUTDOWN_KINDS, "shutdown")


async def _run_stop_steps(root: Lifecycle) -> list[HookError]:
    """Every app's stop steps (WebSockets close with 1001/1012, streams end), concurrently."""
    steps = [hook for lifecycle in root._tree for hook in lifecycle._stop_steps]
    results = await asyncio.gather(
        *(run_hook(root, hook, "shutdown", hook.func) for hook in steps),
        return_exceptions=True,
    )
    return [error for error in results if isinstance(error, HookError)]


def stop_step(lifecycle: Lifecycle, name: str, step: StopStep) -> Hook:
    """A stop step as a hook of ``lifecycle``: it runs and fails the way hooks do."""
    return Hook("shutdown", name, step, (), None, lifecycle, -1)


async def finish(root: Lifecycle) -> None:
    """Cleanup hooks and context exits, then STOPPED (and the shutdown, if it never came).

    Raises:
        TeardownError: shutdown or cleanup hooks failed (all of them still ran).
    """
    if root._finished:
        return
    root._finished = True
    await stop_task(root._guard_task)
    await stop_task(root._exit_task)
    if not root._shutdown_ran and root.app.frozen:
        # The app served, but its on_shutdown receivers never ran to ours.
        await _shutdown_phase(root)
    await broadcast(root, AppState.STOPPING)
    errors = root._errors + await teardown(root, TEARDOWN_KINDS, "cleanup")
    root._errors = []
    await broadcast(root, AppState.STOPPED)
    restore_signals(root)
    if root._cancelled:
        raise asyncio.CancelledError
    if errors:
        names = ", ".join(repr(error.hook) for error in errors)
        raise TeardownError(
            f"{counted(len(errors), 'lifecycle hook')} failed while stopping: {names}", errors
        )


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (unless it is the caller) and wait for it to end."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()
        await asyncio.wait([task])


async def guard(root: Lifecycle) -> None:
    """Parks until cancelled: at cleanup, or by run_app's final cancellation of all tasks.

    In the second case the app stopped without a cleanup reaching this package (a
    startup hook failed after ours, or an ``on_shutdown`` receiver raised): tear down
    here. A top-level app whose startup failed also gets aiohttp's cleanup contexts
    exited, which ``web.run_app`` skips.
    """
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        if not root._finished:
            log.warning("the application stopped without cleaning up: tearing down now")
            try:
                app = root.app
                if not root._context_exited and not app.frozen and not app.pre_frozen:
                    await app.cleanup()
                await finish(root)
            except (Exception, asyncio.CancelledError):
                log.exception("tearing down the application failed")
        raise
