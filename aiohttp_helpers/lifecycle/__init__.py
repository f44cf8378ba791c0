"""Application lifecycle: ordered, timed hooks, app state, readiness and graceful draining.

The package's modules, one concept each: :mod:`.errors`, :mod:`.state`, :mod:`.hooks`
(registering), :mod:`.order` (start order), :mod:`.run` (one hook under its timeout),
:mod:`.drain`, :mod:`.takeover` (run_app's signals and exit), :mod:`.stop` (ordered stop
steps) and :mod:`.core` (the :class:`Lifecycle` class, which ties them together).
"""

from __future__ import annotations

from ..serving import AppState
from .core import Lifecycle
from .errors import FrozenSignalError, HookError, HookOrderError, HookTimeout, TeardownError
from .hooks import AppHook, ContextHook
from .stop import StopStep

__all__ = [
    "AppHook",
    "AppState",
    "ContextHook",
    "FrozenSignalError",
    "HookError",
    "HookOrderError",
    "HookTimeout",
    "Lifecycle",
    "StopStep",
    "TeardownError",
]
