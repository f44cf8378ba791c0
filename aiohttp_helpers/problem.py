"""A :class:`~aiohttp_helpers.HelpersError` as an HTTP answer: RFC 9457 JSON or plain text."""

from __future__ import annotations

import json

from aiohttp import web

from .errors import HelpersError, ServiceUnavailable
from .negotiation import PROBLEM_JSON, prefers_text

__all__ = ["error_response", "fill_error_response"]


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
