"""Accept-header negotiation: whether a client prefers plain text to a problem document."""

from __future__ import annotations

from aiohttp import web

__all__ = ["PROBLEM_JSON", "prefers_text", "quality"]

#: The media type of an RFC 9457 problem document.
PROBLEM_JSON = "application/problem+json"


def quality(accept: str, candidates: tuple[str, ...]) -> float:
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
    text = quality(accept, ("text/plain",))
    problem = quality(accept, (PROBLEM_JSON, "application/json"))
    return text > problem
