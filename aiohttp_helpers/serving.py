"""Where an application is in its life, as the features that follow it see it.

The WebSocket registry and the stream registry refuse new connections once an application
drains, and pick 1012 over 1001 when it restarts. They need that much of the lifecycle and
no more: :class:`ServingState` is the narrow view they are handed, so neither imports the
lifecycle package, and the lifecycle never imports them (it runs the stop steps that
``setup()`` registers).
"""

from __future__ import annotations

import enum
from typing import Protocol

__all__ = ["REFUSING_STATES", "AppState", "ServingState"]


class AppState(enum.Enum):
    """Where an application is in its life."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


#: The states in which new WebSockets and streams are refused.
REFUSING_STATES = frozenset({AppState.DRAINING, AppState.STOPPING, AppState.STOPPED})


class ServingState(Protocol):
    """What a feature may ask of the lifecycle: its state, and whether it restarts."""

    @property
    def state(self) -> AppState: ...

    @property
    def restarting(self) -> bool: ...
