"""The package's one middleware: typed errors to HTTP answers, request signals, request scope."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .errors import HelpersError
from .keys import PROBLEM_KEY, REQUEST_SCOPE_KEY
from .problem import error_response
from .scope import RequestScope

if TYPE_CHECKING:
    from .signals import RequestSignals

__all__ = ["make_middleware"]

log = logging.getLogger("aiohttp_helpers")

#: Status logged when the client went away before it could be answered (nginx's convention).
CLIENT_CLOSED_REQUEST = 499


def _client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def make_middleware(
    signals: RequestSignals,
    run: Callable[[web.Request, Handler], Awaitable[web.StreamResponse]] | None = None,
) -> Middleware:
    """The middleware ``setup()`` installs, bound to one app's request signals.

    ``run``, when given, runs the handler (``run(request, handler)``) inside the error
    handling: the lifecycle's tracking of requests in flight. One middleware, not two:
    aiohttp wraps each middleware around the handler anew on every request.
    """

    @web.middleware
    async def aiohttp_helpers_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if REQUEST_SCOPE_KEY in request:
            # A sub-app went through setup() too: the outermost middleware does the work.
            return await handler(request)
        scope = RequestScope()
        request[REQUEST_SCOPE_KEY] = scope
        timed = bool(signals.on_request_end)
        started = time.perf_counter() if timed else 0.0
        try:
            if signals.on_request_start:
                await signals.on_request_start.send(request)
            try:
                response = await (handler(request) if run is None else run(request, handler))
            except HelpersError as exc:
                log.debug("%s %s answered %d: %s", request.method, request.path, exc.status, exc)
                request[PROBLEM_KEY] = exc  # for the request signals' receivers (metrics)
                response = error_response(request, exc)
            except web.HTTPException as exc:
                if timed:
                    await signals.on_request_end.send(request, exc, time.perf_counter() - started)
                raise
            except ConnectionError as exc:
                if not _client_gone(request):
                    if signals.on_request_error:
                        await signals.on_request_error.send(request, exc)
                    raise
                log.debug("client went away during %s %s", request.method, request.path)
                response = web.Response(
                    status=CLIENT_CLOSED_REQUEST, reason="Client Closed Request"
                )
            except (Exception, asyncio.CancelledError) as exc:
                # Cancelled too (client gone under handler_cancellation, or shutdown): every
                # request that got on_request_start gets on_request_end or on_request_error.
                if signals.on_request_error:
                    await signals.on_request_error.send(request, exc)
                raise
            if timed:
                await signals.on_request_end.send(request, response, time.perf_counter() - started)
            return response
        finally:
            # Most requests leave nothing behind: closing then costs no await and no task.
            # Otherwise shielded, so that a cancelled handler still removes what it left.
            if not scope.close_empty():
                await asyncio.shield(scope.aclose())

    return aiohttp_helpers_middleware
