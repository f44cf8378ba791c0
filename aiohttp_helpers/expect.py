"""``Expect: 100-continue`` on upload routes: the final answer first when the headers decide.

aiohttp answers ``Expect: 100-continue`` from the route's *expect handler*, which runs
before any middleware (``web.Application._handle``), so the error middleware cannot stop
the ``100 Continue``. ``setup()`` therefore wraps, at startup, the expect handler of every
route whose handler carries ``@upload_limits``: when the declared Content-Type is not a
form or multipart body (415), or the declared Content-Length is over the route's
``max_body_size`` (413), the client gets that final answer (the same problem document as
the middleware's, and ``Connection: close``) instead of ``100 Continue``, and never sends
the body (RFC 9110, section 10.1.1). Every other request, and every other route, gets
the route's own expect handler, aiohttp's ``100 Continue`` by default.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import hdrs, web

from ._compat import expect_handler, set_expect_handler
from .config import UploadLimits
from .errors import BodyTooLarge, HelpersError, NotMultipart
from .problem import error_response
from .uploads.counts import URLENCODED, body_limit, check_declared_length, media_type
from .uploads.limits import ROUTE_LIMITS_ATTR

__all__ = ["declared_error", "install_expect_handlers"]

log = logging.getLogger("aiohttp_helpers")

_ExpectHandler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse | None]]
_Resolver = Callable[[web.Request], UploadLimits]
_WRAPPED = "__aiohttp_helpers_expect__"


def declared_error(request: web.BaseRequest, limits: UploadLimits) -> HelpersError | None:
    """The error the headers alone already decide for an upload route, or None."""
    ctype = request.headers.get(hdrs.CONTENT_TYPE, "")
    media = media_type(ctype)
    if not media.startswith("multipart/") and media != URLENCODED:
        return NotMultipart(ctype, urlencoded=True)
    try:
        # The limit read_form() holds the body to: an urlencoded one is held whole.
        check_declared_length(request.headers, body_limit(media, limits))
    except BodyTooLarge as error:
        return error
    return None


def _resolvers(handler: Any) -> dict[str, _Resolver]:
    """The ``@upload_limits`` resolvers of a route's handler, by method (``"*"``: all)."""
    found = getattr(handler, ROUTE_LIMITS_ATTR, None)
    if found is not None:
        return {"*": found}
    if inspect.isclass(handler) and issubclass(handler, web.View):
        methods = {}
        for method in hdrs.METH_ALL:
            found = getattr(getattr(handler, method.lower(), None), ROUTE_LIMITS_ATTR, None)
            if found is not None:
                methods[method] = found
        return methods
    return {}


def _wrap(original: _ExpectHandler, resolvers: dict[str, _Resolver]) -> _ExpectHandler:
    async def upload_expect_handler(request: web.Request) -> web.StreamResponse | None:
        resolve = resolvers.get("*") or resolvers.get(request.method)
        if (
            resolve is not None
            and request.version >= (1, 1)
            and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue"
        ):
            error = declared_error(request, resolve(request))
            if error is not None:
                log.debug(
                    "%s %s answered %d before 100 Continue: %s",
                    request.method,
                    request.path,
                    error.status,
                    error,
                )
                response = error_response(request, error)
                response.headers[hdrs.CONNECTION] = "close"
                await response.prepare(request)
                await response.write_eof()
                # The body was never asked for: close once the answer is out, rather than
                # let aiohttp wait up to its lingering_time for bytes that will not come.
                request.protocol.force_close()
                return response
        return await original(request)

    setattr(upload_expect_handler, _WRAPPED, True)
    return upload_expect_handler


def install_expect_handlers(app: web.Application) -> int:
    """Wrap the expect handler of each upload route of ``app`` and its sub-apps.

    Routes are final once the app is frozen, so this runs from ``on_startup``. Returns how
    many routes were wrapped (a route already wrapped, by a parent's ``setup()``, is kept).
    """
    wrapped = 0
    for route in app.router.routes():
        if not isinstance(route, web.ResourceRoute):
            continue
        resolvers = _resolvers(route.handler)
        current = expect_handler(route)
        if not resolvers or getattr(current, _WRAPPED, False):
            continue
        set_expect_handler(route, _wrap(current, resolvers))
        wrapped += 1
    return wrapped
