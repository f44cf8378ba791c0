"""``setup(app)``: the one place that wires the package into an application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web

from ._validate import non_negative
from .config import UploadLimits, WebSocketSettings
from .expect import install_expect_handlers
from .health import add_health_routes
from .inflight import make_in_flight, make_prepare_receiver
from .keys import (
    HELPERS_KEY,
    LIFECYCLE_KEY,
    SIGNALS_KEY,
    STREAMS_KEY,
    UPLOAD_LIMITS_KEY,
    WEBSOCKETS_KEY,
    WS_SETTINGS_KEY,
)
from .lifecycle import AppState, Lifecycle
from .middleware import make_middleware
from .signals import RequestSignals
from .streams import StreamRegistry
from .websocket.registry import WebSocketRegistry

__all__ = ["Helpers", "configure", "get_helpers", "setup"]

_T = TypeVar("_T")
_DEFAULT_LIMITS = UploadLimits()
_DEFAULT_WEBSOCKETS = WebSocketSettings()


@dataclass(eq=False)
class Helpers:
    """What ``setup()`` installed on one application."""

    app: web.Application
    signals: RequestSignals
    lifecycle: Lifecycle
    websockets: WebSocketRegistry
    health: str | None = None
    #: Long-lived HTTP responses (server-sent events): refused while draining, ended on stop.
    streams: StreamRegistry = field(default_factory=StreamRegistry)

    @property
    def drain_delay(self) -> float:
        """Seconds the app keeps serving, not ready, before it stops (the lifecycle's)."""
        return self.lifecycle.drain_delay

    @property
    def drain_timeout(self) -> float:
        """Seconds stopping waits for the requests in flight (the lifecycle's)."""
        return self.lifecycle.drain_timeout

    @property
    def state(self) -> AppState:
        """The application's :class:`AppState`."""
        return self.lifecycle.state

    @property
    def limits(self) -> UploadLimits:
        """The upload limits this app's requests get, as ``request.config_dict`` finds them.

        The app's own (``app[UPLOAD_LIMITS_KEY]``), else, for a sub-app, the nearest
        parent's once the application has started, else the defaults. Set them with
        ``setup()`` or :func:`configure`.
        """
        return self._inherited(UPLOAD_LIMITS_KEY, _DEFAULT_LIMITS)

    @property
    def websocket_settings(self) -> WebSocketSettings:
        """The WebSocket settings this app's requests get, found as :attr:`limits` is."""
        return self._inherited(WS_SETTINGS_KEY, _DEFAULT_WEBSOCKETS)

    def _inherited(self, key: web.AppKey[_T], default: _T) -> _T:
        for app in (self.app, *self.lifecycle.apps_above):
            if key in app:
                return app[key]
        return default


def _refuse_frozen(app: web.Application, what: str) -> None:
    # pre_frozen: add_subapp() pre-freezes the sub-app (middlewares and router) at once.
    if app.frozen or app.pre_frozen:
        raise RuntimeError(
            f"{what} must be called before the application is frozen; this one already is "
            "(add_subapp() freezes a sub-app at once, and so does starting the app): "
            f"call {what} on it before add_subapp() or before it starts"
        )


def setup(
    app: web.Application,
    *,
    limits: UploadLimits | None = None,
    websockets: WebSocketSettings | None = None,
    health: str | None = None,
    drain_delay: float = 0.0,
    strict_signals: bool = False,
    drain_timeout: float = 30.0,
) -> Helpers:
    """Install the package on ``app`` and return its :class:`Helpers` handle.

    Call it once per application, before the application (or its parent) is frozen.

    Args:
        limits: upload limits for this app and the sub-apps that do not set their own.
        websockets: WebSocket settings, inherited the same way.
        health: a path prefix under which ``/live`` and ``/ready`` answer, or ``None``.
        drain_delay: seconds to keep serving, with readiness at 503, before shutting down.
        drain_timeout: seconds, after the drain, to wait for the requests in flight (uploads
            still arriving) before the server stops reading; those still running then are
            ended (503 with ``Retry-After`` while their body arrives, else closed).
        strict_signals: re-raise a failing signal receiver's error (for tests).

    Raises:
        RuntimeError: the app is frozen, or ``setup()`` already ran on it.
    """
    if not isinstance(app, web.Application):
        raise TypeError(f"setup() needs an aiohttp.web.Application, got {type(app).__name__}")
    _refuse_frozen(app, "aiohttp_helpers.setup()")
    if HELPERS_KEY in app:
        raise RuntimeError(
            "aiohttp_helpers.setup() already ran on this application; use the Helpers it "
            "returned (aiohttp_helpers.get_helpers(app)), or aiohttp_helpers.configure() "
            "to change its settings"
        )
    if limits is not None and not isinstance(limits, UploadLimits):
        raise TypeError(f"limits must be an UploadLimits, got {type(limits).__name__}")
    if websockets is not None and not isinstance(websockets, WebSocketSettings):
        raise TypeError(f"websockets must be a WebSocketSettings, got {type(websockets).__name__}")
    if health is not None and (not health.startswith("/") or health.endswith("/")):
        raise ValueError(f"health must be a path such as '/health', got {health!r}")
    for name, seconds in (("drain_delay", drain_delay), ("drain_timeout", drain_timeout)):
        non_negative(name, seconds, noun="a number of seconds", show="none")

    if limits is not None:
        app[UPLOAD_LIMITS_KEY] = limits
    if websockets is not None:
        app[WS_SETTINGS_KEY] = websockets
    signals = RequestSignals(app, strict=strict_signals)
    lifecycle = Lifecycle(app, drain_delay=float(drain_delay), drain_timeout=float(drain_timeout))
    # The registries are handed the lifecycle as the narrow view they need (ServingState:
    # refuse while draining, 1012 when restarting); they never import the lifecycle.
    websocket_registry = WebSocketRegistry(websockets, lifecycle=lifecycle)
    streams = StreamRegistry(lifecycle=lifecycle)
    helpers = Helpers(
        app=app,
        signals=signals,
        lifecycle=lifecycle,
        websockets=websocket_registry,
        health=health,
        streams=streams,
    )
    app[HELPERS_KEY] = helpers
    # Each feature finds its own part through its own key, never through Helpers.
    app[LIFECYCLE_KEY] = lifecycle
    app[SIGNALS_KEY] = signals
    app[WEBSOCKETS_KEY] = websocket_registry
    app[STREAMS_KEY] = streams
    # One middleware: errors answered, request signals, and inside them the requests in
    # flight, which stopping waits for (and ends at drain_timeout), Connection: close while
    # not ready, 503 + Retry-After answers.
    app.middlewares.append(make_middleware(signals, make_in_flight(lifecycle)))
    app.on_response_prepare.append(make_prepare_receiver(lifecycle))

    async def _freeze_signals(app: web.Application) -> None:
        signals.freeze()
        lifecycle.on_state_change.freeze()

    app.on_startup.insert(0, _freeze_signals)

    # Lifecycle: the package's hooks start first (cleanup_ctx[0]) and are torn down last
    # (on_cleanup, moved to the end at startup); stopping drains, runs the stop steps,
    # then the shutdown hooks, all from on_shutdown[0]. See the lifecycle package.
    app.cleanup_ctx.insert(0, lifecycle.cleanup_context)
    app.on_shutdown.insert(0, lifecycle.shutdown_receiver)
    app.on_cleanup.append(lifecycle.cleanup_receiver)
    if health is not None:
        add_health_routes(app, health, lifecycle)

    # Stop steps, run concurrently after the drain and before the shutdown hooks: every
    # open WebSocket gets 1001 (1012 when restarting), every stream is ended.
    lifecycle.add_stop_step("close WebSockets", websocket_registry.shutdown)
    lifecycle.add_stop_step("end streams", streams.shutdown)

    # WebSockets: the broadcast backend lives from startup to cleanup.
    async def _start_broadcast(app: web.Application) -> None:
        await websocket_registry.start()

    async def _stop_broadcast(app: web.Application) -> None:
        await websocket_registry.stop()

    app.on_startup.append(_start_broadcast)
    app.on_cleanup.append(_stop_broadcast)

    # Expect: 100-continue on upload routes is answered before any middleware runs
    # (aiohttp calls the route's expect handler first): see expect.py.
    async def _expect_handlers(app: web.Application) -> None:
        install_expect_handlers(app)

    app.on_startup.append(_expect_handlers)
    return helpers


def configure(
    app: web.Application,
    *,
    limits: UploadLimits | None = None,
    websockets: WebSocketSettings | None = None,
) -> None:
    """Set upload limits or WebSocket settings on ``app`` without installing anything.

    Meant for sub-apps of an app that went through ``setup()``: requests routed to the
    sub-app see these settings through ``request.config_dict``.
    """
    _refuse_frozen(app, "aiohttp_helpers.configure()")
    if limits is not None:
        if not isinstance(limits, UploadLimits):
            raise TypeError(f"limits must be an UploadLimits, got {type(limits).__name__}")
        app[UPLOAD_LIMITS_KEY] = limits
    if websockets is not None:
        if not isinstance(websockets, WebSocketSettings):
            raise TypeError(
                f"websockets must be a WebSocketSettings, got {type(websockets).__name__}"
            )
        app[WS_SETTINGS_KEY] = websockets
        registry = app.get(WEBSOCKETS_KEY)
        if registry is not None:
            # The registry keeps the settings it was built with (it is also used without
            # an app): it follows the app's.
            registry.settings = websockets


def get_helpers(app: web.Application) -> Helpers:
    """The :class:`Helpers` that ``setup()`` installed on ``app``.

    Raises:
        RuntimeError: ``setup()`` was not called on ``app``.
    """
    try:
        return app[HELPERS_KEY]
    except KeyError:
        raise RuntimeError(
            "aiohttp_helpers.setup(app) was not called on this application"
        ) from None
