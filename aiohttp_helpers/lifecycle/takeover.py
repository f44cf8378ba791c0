"""Taking over ``web.run_app``'s signals (drain first, then stop) and its exit on failure.

Under ``web.run_app`` the first SIGTERM or SIGINT no longer stops the listener at once:
the app drains while it keeps serving, waits (``drain_timeout`` at the most) for the
requests in flight, then stops the way run_app always does. A startup hook that fails
under run_app ends the process with one line naming the hook, not three tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._compat import run_app_handles
from .drain import drain, finish_requests
from .errors import HookError

if TYPE_CHECKING:
    from .core import Lifecycle

__all__ = ["SIGNALS", "Exit", "exit_in_one_line", "restore_signals", "take_over_signals"]

log = logging.getLogger("aiohttp_helpers.lifecycle")

#: What to call to stop the process the way the signal's previous handler would have.
Exit = tuple[Callable[..., object], tuple[Any, ...]]
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _graceful_exit() -> None:
    # What aiohttp's runner does on SIGINT/SIGTERM when it handles signals (run_app's
    # default), through the public exception.
    raise web.GracefulExit()


def _run_app_exit(loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> Exit | None:
    """The exit to take over from ``web.run_app`` for ``sig`` on ``loop``, if it handles it.

    Answers None when the loop's handler for ``sig`` is not aiohttp's runner's (or when it
    cannot tell): the package then leaves the signal alone.
    """
    # How it tells is an aiohttp internal (_compat.run_app_handles). The exit itself is the
    # public ``web.GracefulExit``, raised the way aiohttp does.
    if not run_app_handles(loop, sig):
        return None
    return _graceful_exit, ()


def take_over_signals(root: Lifecycle) -> None:
    """Drain on the first SIGINT/SIGTERM, where ``handle_signals`` says so."""
    if root.handle_signals is False:
        return
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        exit_ = _run_app_exit(loop, sig)
        if exit_ is None and not root.handle_signals:
            continue
        try:
            loop.add_signal_handler(sig, _on_signal, root, sig)
        except (NotImplementedError, RuntimeError, ValueError) as exc:
            log.warning("cannot drain on %s here: %s", sig.name, exc)
            continue
        root._own_signals.add(sig)
        if exit_ is not None:
            root._signal_exits[sig] = exit_


def restore_signals(root: Lifecycle) -> None:
    """Give the signals back to the handlers they had before the takeover."""
    if not root._own_signals:
        return
    loop = asyncio.get_running_loop()
    for sig in root._own_signals:
        exit_ = root._signal_exits.get(sig)
        if exit_ is not None:
            loop.add_signal_handler(sig, exit_[0], *exit_[1])
        else:
            loop.remove_signal_handler(sig)
    root._own_signals.clear()


def _on_signal(root: Lifecycle, sig: signal.Signals) -> None:
    task = root._exit_task
    if root._shutdown_ran:
        log.warning("%s received while stopping: the shutdown goes on", sig.name)
    elif task is None:
        log.info("%s received: draining for %g s, then stopping", sig.name, root.drain_delay)
        loop = asyncio.get_running_loop()
        root._exit_task = loop.create_task(_drain_then_exit(root, sig))
    else:
        log.warning("%s received again: stopping without draining further", sig.name)
        root._hurry.set()


async def _drain_then_exit(root: Lifecycle, sig: signal.Signals) -> None:
    await drain(root, None)
    if not root._shutdown_ran:
        await finish_requests(root, None)
    if not root._shutdown_ran:
        # Exactly what run_app's own handler would have done on the signal.
        callback, args = root._signal_exits.get(sig, (_graceful_exit, ()))
        asyncio.get_running_loop().call_soon(callback, *args)


def under_run_app() -> bool:
    """Whether ``web.run_app`` (or a runner handling signals) serves the running loop."""
    loop = asyncio.get_running_loop()
    return any(run_app_handles(loop, sig) for sig in SIGNALS)


# The startup errors that leave run_app to end the process: printed in one line each.
_one_line: weakref.WeakSet[BaseException] = weakref.WeakSet()
_previous_hook: Callable[[type[BaseException], BaseException, TracebackType | None], Any] | None
_previous_hook = None
_installed = False


def _raised_at(exc: BaseException | None) -> str:
    """`` (raised in f at file:line)``: the innermost frame of ``exc``, or nothing."""
    tb = exc.__traceback__ if exc is not None else None
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f" (raised in {code.co_name} at {code.co_filename}:{tb.tb_lineno})"


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if exc in _one_line:
        # What Python prints last for an uncaught exception, without the chained
        # tracebacks of the hook and of aiohttp's runner: the message names the hook, and
        # where its error was raised (the traceback goes to the log, when one is set up).
        lines = [f"aiohttp_helpers.{type(exc).__name__}: {exc}{_raised_at(exc.__cause__)}"]
        lines += [str(note) for note in getattr(exc, "__notes__", ())]
        print("\n".join(lines), file=sys.stderr, flush=True)
        return
    previous = _previous_hook or sys.__excepthook__
    previous(kind, exc, tb)


def exit_in_one_line(error: HookError) -> None:
    """Should ``error`` end the process uncaught, print it in one line (with its notes).

    Only ``error`` itself is printed that way; any other exception goes to the hook
    that was there before. The hook is installed once per process and never wraps
    another hook twice (a hook installed later that calls ours cannot make a loop).
    """
    global _previous_hook, _installed
    if not _installed:
        _installed = True
        _previous_hook = sys.excepthook
        sys.excepthook = _excepthook
    _one_line.add(error)
