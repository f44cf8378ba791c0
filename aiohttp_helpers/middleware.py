"""The package's one middleware: typed errors to HTTP answers, request signals, request scope."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .errors import HelpersError, ServiceUnavailable
from .keys import PROBLEM_KEY, REQUEST_SCOPE_KEY
from .scope import RequestScope

if TYPE_CHECKING:
    from .signals import RequestSignals

__all__ = ["error_response", "fill_error_response", "make_middleware", "prefers_text"]

log = logging.getLogger("aiohttp_helpers")

PROBLEM_JSON = "application/problem+json"
#: Status logged when the client went away before it could be answered (nginx's convention).
CLIENT_CLOSED_REQUEST = 499


def _quality(accept: str, candidates: tuple[str, ...]) -> float:
    """The best q-value ``accept`` gives to any of ``candidates`` (``type/subtype`` strings)."""
    best = 0.0
    best_specificity = -1
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        if not media:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        main, _, sub = media.partition("/")
        for candidate in candidates:
            c_main, _, _c_sub = candidate.partition("/")
            if media == candidate:
                specificity = 2
            elif main == c_main and sub == "*":
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            # The most specific range that matches decides (RFC 9110, section 12.5.1).
            if specificity > best_specificity or (specificity == best_specificity and q > best):
                best, best_specificity = q, specificity
    return best


def prefers_text(request: web.BaseRequest) -> bool:
    """Whether the client's Accept header ranks ``text/plain`` above JSON problem documents."""
    accept = request.headers.get("Accept", "")
    if not accept:
        return False
    text = _quality(accept, ("text/plain",))
    problem = _quality(accept, (PROBLEM_JSON, "application/json"))
    return text > problem


def fill_error_response(
    response: web.Response, request: web.BaseRequest, exc: HelpersError
) -> None:
    """Make ``response`` the answer to ``exc``: RFC 9457 JSON, or text when preferred."""
    headers = response.headers
    headers["Cache-Control"] = "no-store"
    if exc.status in (408, 413):
        # The rest of the body was not read: the connection cannot be reused.
        headers["Connection"] = "close"
    if isinstance(exc, ServiceUnavailable):
        # The server is stopping: come back (elsewhere) in a moment, on a new connection.
        headers["Retry-After"] = str(exc.retry_after)
        headers["Connection"] = "close"
    if prefers_text(request):
        headers["Content-Type"] = "text/plain; charset=utf-8"
        response.body = f"{exc.status} {exc.title}: {exc.detail}\n".encode()
        return
    doc = exc.problem()
    doc["instance"] = request.path
    headers["Content-Type"] = PROBLEM_JSON
    response.body = json.dumps(doc, ensure_ascii=False).encode()


def error_response(request: web.BaseRequest, exc: HelpersError) -> web.Response:
    """``exc`` as an HTTP answer: RFC 9457 JSON, or plain text when the client prefers it."""
    response = web.Response(status=exc.status)
    # Headers the error itself carries (Retry-After, Upload-Offset, ...), as aiohttp would
    # send them when it answers the error without the middleware.
    response.headers.extend(exc.headers)
    fill_error_response(response, request, exc)
    return response


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
