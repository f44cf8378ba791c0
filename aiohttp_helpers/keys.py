"""Every ``web.AppKey`` and ``web.RequestKey`` the package uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .config import UploadLimits, WebSocketSettings
from .errors import HelpersError

if TYPE_CHECKING:
    from ._observe import Observer
    from .lifecycle import Lifecycle
    from .opentelemetry import RequestTrace
    from .plugin import Helpers
    from .scope import RequestScope
    from .signals import RequestSignals
    from .streams import StreamRegistry
    from .websocket.registry import WebSocketRegistry

__all__ = [
    "HELPERS_KEY",
    "LIFECYCLE_KEY",
    "METRICS_KEY",
    "PROBLEM_KEY",
    "REQUEST_SCOPE_KEY",
    "ROUTE_LIMITS_KEY",
    "SIGNALS_KEY",
    "SPAN_KEY",
    "STREAMS_KEY",
    "TRACING_KEY",
    "UPLOAD_LIMITS_KEY",
    "WEBSOCKETS_KEY",
    "WS_SETTINGS_KEY",
]

#: The :class:`~aiohttp_helpers.Helpers` handle of an app that went through ``setup()``.
HELPERS_KEY: web.AppKey[Helpers] = web.AppKey("aiohttp_helpers.helpers")
#: The :class:`~aiohttp_helpers.Lifecycle` of an app that went through ``setup()``.
LIFECYCLE_KEY: web.AppKey[Lifecycle] = web.AppKey("aiohttp_helpers.lifecycle")
#: The :class:`~aiohttp_helpers.RequestSignals` of an app that went through ``setup()``.
SIGNALS_KEY: web.AppKey[RequestSignals] = web.AppKey("aiohttp_helpers.signals")
#: The :class:`~aiohttp_helpers.WebSocketRegistry` of an app that went through ``setup()``.
WEBSOCKETS_KEY: web.AppKey[WebSocketRegistry] = web.AppKey("aiohttp_helpers.websockets")
#: The :class:`~aiohttp_helpers.StreamRegistry` of an app that went through ``setup()``.
STREAMS_KEY: web.AppKey[StreamRegistry] = web.AppKey("aiohttp_helpers.streams")
#: Upload limits of an app; sub-apps inherit them through ``request.config_dict``.
UPLOAD_LIMITS_KEY = web.AppKey("aiohttp_helpers.upload_limits", UploadLimits)
#: WebSocket settings of an app; sub-apps inherit them through ``request.config_dict``.
WS_SETTINGS_KEY = web.AppKey("aiohttp_helpers.websocket_settings", WebSocketSettings)
#: Limits set on one route with ``@upload_limits(...)``.
ROUTE_LIMITS_KEY = web.RequestKey("aiohttp_helpers.route_limits", UploadLimits)
#: Resources that live as long as one request (spooled files, say).
REQUEST_SCOPE_KEY: web.RequestKey[RequestScope] = web.RequestKey("aiohttp_helpers.scope")
#: The package error the middleware answered a request with (its problem type, its status).
PROBLEM_KEY = web.RequestKey("aiohttp_helpers.problem", HelpersError)
#: What ``aiohttp_helpers.prometheus.setup_metrics()`` installed on an app.
METRICS_KEY: web.AppKey[Observer] = web.AppKey("aiohttp_helpers.metrics")
#: What ``aiohttp_helpers.opentelemetry.setup_tracing()`` installed on an app.
TRACING_KEY: web.AppKey[Observer] = web.AppKey("aiohttp_helpers.tracing")
#: A request's server span, made or found by ``setup_tracing()``.
SPAN_KEY: web.RequestKey[RequestTrace] = web.RequestKey("aiohttp_helpers.span")
