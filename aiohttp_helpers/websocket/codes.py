"""WebSocket close codes: what each means, who may send it, and what a client should do."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CloseCodeInfo",
    "Retry",
    "Sender",
    "check_close_code",
    "close_code_info",
    "may_send",
]


class Sender(enum.Enum):
    """Which endpoint may put a close code on the wire."""

    EITHER = "either endpoint"
    SERVER = "the server"
    CLIENT = "the client"
    NOBODY = "nobody: reported locally, never sent"


class Retry(enum.Enum):
    """What a client should do after a connection closed with a code."""

    #: Retrying will not help: the peer meant it, or the client is at fault.
    STOP = "stop"
    #: Reconnect after an exponential backoff with full jitter.
    BACKOFF = "backoff"
    #: The server is restarting: reconnect after a random 5-30 s delay.
    RESTART_DELAY = "restart-delay"
    #: The server is overloaded: reconnect only to another address, or when the user asks.
    OTHER_ADDRESS = "other-address"
    #: An application code: the application's reconnect policy decides (default: stop).
    APPLICATION = "application"


@dataclass(frozen=True, slots=True)
class CloseCodeInfo:
    """One row of the close-code table."""

    code: int
    name: str
    meaning: str
    sender: Sender
    retry: Retry

    @property
    def may_send(self) -> bool:
        """Whether an endpoint may put this code in a close frame."""
        return self.sender is not Sender.NOBODY


def _row(code: int, name: str, meaning: str, sender: Sender, retry: Retry) -> CloseCodeInfo:
    return CloseCodeInfo(code, name, meaning, sender, retry)


# RFC 6455 section 7.4.1 and the IANA "WebSocket Close Code Number Registry".
# fmt: off
_TABLE: dict[int, CloseCodeInfo] = {
    row.code: row
    for row in (
        _row(1000, "OK", "normal closure: the purpose of the connection was fulfilled",
             Sender.EITHER, Retry.STOP),
        _row(1001, "GOING_AWAY", "the endpoint is going away (server shutting down, page left)",
             Sender.EITHER, Retry.BACKOFF),
        _row(1002, "PROTOCOL_ERROR", "the peer broke the WebSocket protocol",
             Sender.EITHER, Retry.STOP),
        _row(1003, "UNSUPPORTED_DATA", "a kind of data (text or binary) the endpoint cannot accept",
             Sender.EITHER, Retry.STOP),
        _row(1004, "RESERVED", "reserved; no meaning defined",
             Sender.NOBODY, Retry.STOP),
        _row(1005, "NO_STATUS_RCVD", "the close frame carried no status code",
             Sender.NOBODY, Retry.STOP),
        _row(1006, "ABNORMAL_CLOSURE", "the connection dropped without a close frame",
             Sender.NOBODY, Retry.BACKOFF),
        _row(1007, "INVALID_TEXT", "data inconsistent with its type (bad UTF-8, JSON that does "
             "not parse)", Sender.EITHER, Retry.STOP),
        _row(1008, "POLICY_VIOLATION", "a message violated the endpoint's policy",
             Sender.EITHER, Retry.STOP),
        _row(1009, "MESSAGE_TOO_BIG", "a message was too big to process",
             Sender.EITHER, Retry.STOP),
        _row(1010, "MANDATORY_EXTENSION", "the server did not negotiate an extension the client "
             "requires", Sender.CLIENT, Retry.STOP),
        _row(1011, "INTERNAL_ERROR", "an unexpected condition prevented the endpoint from "
             "fulfilling the request", Sender.EITHER, Retry.BACKOFF),
        _row(1012, "SERVICE_RESTART", "the server is restarting",
             Sender.SERVER, Retry.RESTART_DELAY),
        _row(1013, "TRY_AGAIN_LATER", "the server is overloaded (a connection cap was reached)",
             Sender.SERVER, Retry.OTHER_ADDRESS),
        _row(1014, "BAD_GATEWAY", "a gateway or proxy got an invalid answer from upstream",
             Sender.SERVER, Retry.BACKOFF),
        _row(1015, "TLS_HANDSHAKE", "the TLS handshake failed",
             Sender.NOBODY, Retry.STOP),
    )
}
# fmt: on

_NOT_SENDABLE = frozenset(code for code, row in _TABLE.items() if not row.may_send)


def close_code_info(code: int) -> CloseCodeInfo:
    """The table row of ``code``: every ``WSCloseCode``, 1004, 1005, 1015, and 3000-4999.

    Raises:
        ValueError: ``code`` is not a close code (below 1000, 1016-2999, above 4999).
    """
    _check_int(code)
    row = _TABLE.get(code)
    if row is not None:
        return row
    if 3000 <= code <= 3999:
        return _row(
            code,
            "REGISTERED",
            "registered with IANA for a library, framework or application",
            Sender.EITHER,
            Retry.APPLICATION,
        )
    if 4000 <= code <= 4999:
        return _row(
            code,
            "PRIVATE",
            "private use: defined by the application",
            Sender.EITHER,
            Retry.APPLICATION,
        )
    raise ValueError(_not_a_code(code))


def may_send(code: int) -> bool:
    """Whether ``code`` may be put in a close frame (1000-1003, 1007-1014, 3000-4999)."""
    if isinstance(code, bool) or not isinstance(code, int):
        return False
    if 3000 <= code <= 4999:
        return True
    return code in _TABLE and code not in _NOT_SENDABLE


def check_close_code(code: int) -> int:
    """``code`` as a plain ``int`` if it may be sent in a close frame.

    Raises:
        TypeError: ``code`` is not an ``int``.
        ValueError: the code may not be sent (1004, 1005, 1006, 1015, below 1000,
            1016-2999, above 4999).
    """
    _check_int(code)
    if may_send(code):
        return int(code)
    if code in _NOT_SENDABLE:
        row = _TABLE[code]
        raise ValueError(f"close code {code} ({row.name}) may not be sent: {row.meaning}")
    raise ValueError(_not_a_code(code))


def _check_int(code: object) -> None:
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"a close code is an int, got {type(code).__name__}")


def _not_a_code(code: int) -> str:
    return (
        f"{code} is not a WebSocket close code that may be sent (1000-1003, 1007-1014, 3000-4999)"
    )
