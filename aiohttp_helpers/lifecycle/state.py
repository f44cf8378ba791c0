"""The application's state as the lifecycle moves it, for the app and its sub-apps."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..serving import REFUSING_STATES, AppState

if TYPE_CHECKING:
    from .core import Lifecycle

__all__ = ["REFUSING_STATES", "AppState", "broadcast", "set_state"]

log = logging.getLogger("aiohttp_helpers.lifecycle")


async def set_state(lifecycle: Lifecycle, state: AppState) -> None:
    """Move one app to ``state`` and tell its ``on_state_change`` receivers."""
    old, lifecycle._state = lifecycle._state, state
    if old is not state:
        log.info("application%s state %s -> %s", lifecycle._where, old.name, state.name)
        await lifecycle.on_state_change.send(old, state)  # frozen when the app started


async def broadcast(root: Lifecycle, state: AppState) -> None:
    """Move every app of the tree ``root`` drives (the app alone before it starts)."""
    for lifecycle in root._tree or [root]:
        await set_state(lifecycle, state)
