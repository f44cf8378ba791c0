"""Which upload limits apply to a request, and ``@upload_limits`` to set them per route."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from aiohttp import web

from ..config import UploadLimits
from ..keys import ROUTE_LIMITS_KEY, UPLOAD_LIMITS_KEY

__all__ = ["ROUTE_LIMITS_ATTR", "limits_for", "upload_limits"]

#: The attribute of a handler decorated with ``@upload_limits``: its limits resolver.
ROUTE_LIMITS_ATTR = "__aiohttp_helpers_limits__"

_DEFAULT = UploadLimits()
_H = TypeVar("_H", bound=Callable[..., Awaitable[web.StreamResponse]])


def limits_for(request: web.BaseRequest) -> UploadLimits:
    """The limits for ``request``: its route's, else its app's (sub-apps inherit), else defaults."""
    route = request.get(ROUTE_LIMITS_KEY)
    if isinstance(route, UploadLimits):
        return route
    if isinstance(request, web.Request):
        app_limits = request.config_dict.get(UPLOAD_LIMITS_KEY)
        if app_limits is not None:
            return app_limits
    return _DEFAULT


def upload_limits(limits: UploadLimits | None = None, /, **changes: Any) -> Callable[[_H], _H]:
    """Decorate a handler (a function, or a :class:`web.View` method) with its own limits.

    ``@upload_limits(UploadLimits(...))`` replaces the app's limits for this route;
    ``@upload_limits(max_file_size=...)`` changes only the named ones, on top of whatever
    limits the app (or the sub-app) has. Both are validated when the module is imported.
    """
    if limits is not None:
        if not isinstance(limits, UploadLimits):
            raise TypeError(f"limits must be an UploadLimits, got {type(limits).__name__}")
        if changes:
            limits = limits.replace(**changes)
            changes = {}
    elif not changes:
        raise TypeError("upload_limits() needs an UploadLimits or the limits to change")
    else:
        _DEFAULT.replace(**changes)  # fail at import time, not on the first request

    fixed = limits
    derived: dict[int, tuple[UploadLimits, UploadLimits]] = {}

    def resolve(request: web.Request) -> UploadLimits:
        if fixed is not None:
            return fixed
        base = request.config_dict.get(UPLOAD_LIMITS_KEY) or _DEFAULT
        hit = derived.get(id(base))
        if hit is None or hit[0] is not base:
            hit = (base, base.replace(**changes))
            if len(derived) > 64:
                derived.clear()
            derived[id(base)] = hit
        return hit[1]

    def decorate(handler: _H) -> _H:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError("@upload_limits decorates an async handler")

        @functools.wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> web.StreamResponse:
            first = args[0] if args else None
            request = first.request if isinstance(first, web.View) else first
            if not isinstance(request, web.Request):
                raise TypeError("@upload_limits handlers take the request (or are View methods)")
            request[ROUTE_LIMITS_KEY] = resolve(request)
            return await handler(*args, **kwargs)

        wrapper.__dict__[ROUTE_LIMITS_ATTR] = resolve

        return cast(_H, wrapper)

    return decorate
