"""Application lifecycle: state, hooks, readiness and graceful draining."""

from __future__ import annotations

import enum
import logging

from aiohttp import web

from .signals import SafeSignal

__all__ = ["AppState", "Lifecycle"]

log = logging.getLogger("aiohttp_helpers.lifecycle")


class AppState(enum.Enum):
    """Where an application is in its life."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Lifecycle:
    """Hooks and state of one application."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._state = AppState.STARTING
        #: True when the process stops to restart (a reload): WebSockets then close with 1012.
        self.restarting = False
        #: Sent with ``(old_state, new_state)`` on every change.
        self.on_state_change: SafeSignal[AppState, AppState] = SafeSignal(app, "on_state_change")

    @property
    def state(self) -> AppState:
        return self._state

    async def set_state(self, state: AppState) -> None:
        old, self._state = self._state, state
        if old is not state:
            log.info("application state %s -> %s", old.name, state.name)
            if self.on_state_change.frozen:
                await self.on_state_change.send(old, state)
