"""Origin checks for WebSocket upgrades: refuse Cross-Site WebSocket Hijacking before the upgrade.

A browser lets any page open a WebSocket to any server and sends the page's cookies with
it; CORS does not apply to WebSockets. The only thing that tells a hijacking page from
the app's own is the ``Origin`` header the browser sets (and a page cannot forge), so the
upgrade must be refused when it names an origin the app does not trust.

Origins are compared in one normal form, ``scheme://host[:port]``: scheme and host in
lower case, one trailing dot of the host dropped, IPv6 addresses in brackets in their
compressed form, and the port left out when it is the scheme's default (80 for ``http``
and ``ws``, 443 for ``https`` and ``wss``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import NamedTuple

from .errors import OriginNotAllowed

__all__ = [
    "ANY_ORIGIN",
    "Origin",
    "check_origin",
    "normalise_allowed_origins",
    "parse_host",
    "parse_origin",
]

#: The one entry of ``allowed_origins`` that allows every origin.
ANY_ORIGIN = "*"

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
# A registered name as browsers send it: ASCII (IDNs arrive as punycode), no userinfo.
_REG_NAME = re.compile(r"[a-z0-9_~-]+(?:\.[a-z0-9_~-]+)*")
_PORT = re.compile(r"[0-9]{1,5}")
#: Longest Origin or Host value looked at; longer ones are refused unread.
MAX_LENGTH = 512


class Origin(NamedTuple):
    """A parsed origin: ``port`` is ``None`` when none was given and the scheme has no default."""

    scheme: str
    host: str
    port: int | None

    def __str__(self) -> str:
        if self.port is None or DEFAULT_PORTS.get(self.scheme) == self.port:
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"


def _split_host_port(value: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of ``host[:port]`` in normal form, or ``None`` if it is not one."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        literal, rest = value[1:end], value[end + 1 :]
        if "%" in literal:  # a zone id means nothing to another machine
            return None
        try:
            host = f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError:
            return None
    else:
        name, colon, port_text = value.partition(":")
        rest = colon + port_text
        name = name.lower()
        if name.endswith("."):
            name = name[:-1]
        if not _REG_NAME.fullmatch(name):
            return None
        host = name
    if not rest:
        return host, None
    if rest[0] != ":" or not _PORT.fullmatch(rest[1:]):
        return None
    port = int(rest[1:])
    if not 0 < port < 65536:
        return None
    return host, port


def parse_origin(value: str) -> Origin | None:
    """``value`` (an ``Origin`` header, or an entry of ``allowed_origins``) parsed.

    ``None`` when it is not a plain ``scheme://host[:port]``: ``null``, a path, a query, a
    fragment, userinfo, whitespace, non-ASCII, an empty or out-of-range port, or garbage.
    """
    if len(value) > MAX_LENGTH or not value.isascii():
        return None
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if not sep or not _SCHEME.fullmatch(scheme):
        return None
    split = _split_host_port(rest)
    if split is None:
        return None
    host, port = split
    return Origin(scheme, host, DEFAULT_PORTS.get(scheme) if port is None else port)


def parse_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header as ``(host, port)`` in normal form (port ``None`` when not given)."""
    if len(value) > MAX_LENGTH or not value.isascii():
        return None
    return _split_host_port(value)


def normalise_allowed_origins(value: object) -> tuple[str, ...] | None:
    """Check ``WebSocketSettings.allowed_origins`` and put its entries in normal form.

    Raises:
        TypeError: not ``None`` nor a sequence of strings.
        ValueError: an entry is not an origin, is ``"null"``, or ``"*"`` is not alone.
    """
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | frozenset | set):
        raise TypeError(
            "allowed_origins must be None or a tuple of origins such as"
            f" ('https://app.example',), got {type(value).__name__}"
        )
    out: list[str] = []
    for entry in value:
        if not isinstance(entry, str):
            raise TypeError(f"allowed_origins entries must be strings, got {entry!r}")
        if entry == ANY_ORIGIN:
            if len(value) != 1:
                raise ValueError("allowed_origins: '*' allows every origin; give it alone")
            return (ANY_ORIGIN,)
        if entry.strip().lower() == "null":
            raise ValueError(
                "allowed_origins: 'null' is the origin of every sandboxed frame and local"
                " file, an attacker's included: it cannot be trusted"
            )
        origin = parse_origin(entry.strip())
        if origin is None:
            raise ValueError(
                f"allowed_origins: {entry!r} is not an origin (scheme://host[:port], no path;"
                " internationalised names in their xn-- form)"
            )
        if str(origin) not in out:
            out.append(str(origin))
    return tuple(out)


def _refusal(request_origins: list[str], host: str, allowed: tuple[str, ...]) -> str | None:
    """Why the upgrade must be refused, or ``None`` when the origin is allowed."""
    if not request_origins:
        return None  # not a browser, or one too old to send it: nothing to hijack with
    if len(request_origins) > 1:
        return "several Origin headers"
    raw = request_origins[0]
    if raw.strip().lower() == "null":
        return "the opaque origin 'null' (sandboxed frame, local file or redirect)"
    origin = parse_origin(raw.strip())
    if origin is None:
        return "an Origin header that is not scheme://host[:port]"
    if str(origin) in allowed:
        return None
    same = parse_host(host)
    if same is None:
        return "a Host header that does not parse"
    same_host, same_port = same
    if same_port is None:
        # The browser leaves the port out of Host when it is the default of the scheme it
        # connects with, which for a same-origin page is the page's own (https -> wss).
        same_port = DEFAULT_PORTS.get(origin.scheme)
    if origin.host == same_host and origin.port == same_port and origin.port is not None:
        return None
    return "an Origin that is neither the Host nor in allowed_origins"


def check_origin(origins: list[str], host: str, allowed: tuple[str, ...] | None) -> None:
    """Refuse the upgrade unless the request's ``Origin`` headers are allowed.

    ``origins`` are the request's ``Origin`` header values, ``host`` its ``Host``;
    ``allowed`` is ``WebSocketSettings.allowed_origins`` in normal form.

    Raises:
        OriginNotAllowed: with the reason, for the log (the answer does not repeat it).
    """
    if allowed is not None and allowed and allowed[0] == ANY_ORIGIN:
        return
    reason = _refusal(origins, host, allowed or ())
    if reason is not None:
        shown = origins[0][:100] if origins else ""
        raise OriginNotAllowed(shown, host[:100], reason)
