"""Frozen, keyword-only settings: upload limits and WebSocket settings."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ._validate import non_negative, positive
from .origins import normalise_allowed_origins

if TYPE_CHECKING:
    from .broadcast import BroadcastBackend

__all__ = ["UploadLimits", "WebSocketSettings"]

KiB = 2**10
MiB = 2**20


def _check_tmp_dir(path: str | os.PathLike[str]) -> None:
    """Fail at start-up, not on the first spooled file, when ``tmp_dir`` cannot be used."""
    if not os.path.exists(path):
        raise ValueError(f"tmp_dir {path!r} does not exist")
    if not os.path.isdir(path):
        raise ValueError(f"tmp_dir {path!r} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"tmp_dir {path!r} is not writable by this process")


@dataclass(frozen=True, kw_only=True, slots=True)
class UploadLimits:
    """Limits enforced while a multipart body streams in.

    Sizes are bytes. ``max_body_size`` counts bytes on the wire (chunked bodies
    included); ``max_file_size`` and ``max_field_size`` count decoded bytes of one
    part; ``max_decoded_size`` caps the decoded bytes of the whole body, so that a
    compressed or base64 part cannot expand past it. ``allowed_types`` maps a field
    name (or ``"*"`` for any file field) to the media types accepted there; a
    pattern such as ``"image/*"`` matches a whole top-level type. ``sniff_types``
    names the fields (``"*"``: every file field) whose leading bytes must also look like
    one of their allowed types. ``spool_max_size`` bytes of a file stay in memory, the
    rest goes to a temporary file in ``tmp_dir``; ``chunk_size`` bounds the chunks a
    part yields.
    ``idle_timeout`` is the number of seconds with no body bytes arriving before
    the request is answered with 408.
    ``min_rate`` is the slowest average (bytes per second) a body may arrive at: once the
    reader has spent ``idle_timeout`` seconds waiting for body bytes, a body that came
    slower than that over the time waited is answered with 408 (``None``: no minimum;
    without an ``idle_timeout`` there is none either).
    ``max_fields_memory`` caps the decoded bytes of all text (non-file) parts of a body
    together, the text a form holds in memory; ``max_urlencoded_size`` caps an
    ``application/x-www-form-urlencoded`` body (bytes on the wire).
    """

    max_body_size: int = 100 * MiB
    max_file_size: int = 100 * MiB
    max_files: int = 100
    max_field_size: int = 1 * MiB
    max_fields: int = 1000
    max_parts: int = 1100
    max_part_headers: int = 32
    max_header_size: int = 16 * KiB
    max_preamble_size: int = 64 * KiB
    max_depth: int = 2
    max_decoded_size: int | None = None
    allowed_types: Mapping[str, Sequence[str]] | None = None
    sniff_types: frozenset[str] = frozenset()
    spool_max_size: int = 1 * MiB
    tmp_dir: str | os.PathLike[str] | None = None
    idle_timeout: float | None = 30.0
    min_rate: float | None = 500.0
    chunk_size: int = 256 * KiB
    max_fields_memory: int = 4 * MiB
    max_urlencoded_size: int = 1 * MiB

    def __post_init__(self) -> None:
        for name in (
            "max_body_size",
            "max_file_size",
            "max_files",
            "max_field_size",
            "max_fields",
            "max_parts",
            "max_part_headers",
            "max_header_size",
            "max_preamble_size",
            "max_depth",
            "chunk_size",
        ):
            positive(name, getattr(self, name))
        positive("max_decoded_size", self.max_decoded_size, optional=True)
        positive("idle_timeout", self.idle_timeout, optional=True)
        positive("min_rate", self.min_rate, optional=True)
        positive("max_fields_memory", self.max_fields_memory)
        positive("max_urlencoded_size", self.max_urlencoded_size)
        non_negative("spool_max_size", self.spool_max_size, integer=True, show="none")
        if self.chunk_size < 1024:
            raise ValueError("chunk_size must be at least 1024 bytes")
        if self.allowed_types is not None:
            frozen: dict[str, tuple[str, ...]] = {}
            for key, types in self.allowed_types.items():
                if isinstance(types, str):
                    raise TypeError(
                        f"allowed_types[{key!r}] must be a sequence of media types, not a string"
                    )
                cleaned = tuple(t.strip().lower() for t in types)
                for t in cleaned:
                    if t.count("/") != 1:
                        raise ValueError(f"allowed_types[{key!r}]: {t!r} is not a media type")
                frozen[key] = cleaned
            object.__setattr__(self, "allowed_types", MappingProxyType(frozen))
        given: object = self.sniff_types
        if isinstance(given, str):
            raise TypeError("sniff_types must be a set of field names, not a string")
        object.__setattr__(self, "sniff_types", frozenset(self.sniff_types))
        unchecked = self.sniff_types - set(self.allowed_types or ())
        if unchecked and "*" not in (self.allowed_types or ()):
            # Sniffing checks content against a field's allowed types: without them it
            # would silently check nothing.
            raise ValueError(
                f"sniff_types names fields without allowed_types: {', '.join(sorted(unchecked))}"
            )
        if self.tmp_dir is not None:
            object.__setattr__(self, "tmp_dir", os.fspath(self.tmp_dir))
            _check_tmp_dir(self.tmp_dir)

    @property
    def decoded_limit(self) -> int:
        """The effective cap on decoded bytes of a whole body."""
        if self.max_decoded_size is not None:
            return self.max_decoded_size
        return self.max_body_size * 4

    def replace(self, **changes: Any) -> UploadLimits:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True, slots=True)
class WebSocketSettings:
    """How the package's WebSocket handlers and registry behave.

    ``heartbeat`` is the ping interval in seconds (``None``: no pings);
    ``max_msg_size`` the largest message accepted (larger ones close with 1009);
    ``receive_timeout`` the longest wait for a message; ``max_connections`` and
    ``max_connections_per_client`` cap open sockets (over a cap, 1013);
    ``send_timeout`` bounds one socket's share of a broadcast; ``close_timeout`` is
    the deadline for the closing handshake at shutdown; ``broadcast`` selects the
    backend that carries broadcasts between processes (``None``: in memory);
    ``broadcast_backlog`` is how many bytes a socket's write buffer may hold past its
    high-water mark and still take broadcasts (0: none): a socket that would go past it,
    or that stays over its high-water mark for longer than ``send_timeout``, is closed
    with 1008 rather than waited for;
    ``messages`` is what a handler's ``ws.messages()`` yields: ``"any"`` (text as
    ``str``, binary as ``bytes``), ``"text"``, ``"bytes"`` or ``"json"`` (text parsed as
    JSON); data of the other kind closes with 1003, JSON that does not parse with 1007.
    ``allowed_origins`` says which browser pages may open a socket: ``None`` (or ``()``)
    only a request without ``Origin`` or with an Origin whose host and port are the
    request's ``Host``; a tuple of origins (``"https://app.example"``) adds those;
    ``("*",)`` allows every origin. Others get 403 before the upgrade.
    ``strict_frames`` fails a connection on client frames aiohttp lets through: unmasked
    (1002), a payload length not in its minimal form (1002), and text that is not UTF-8
    as soon as the bad byte arrives (1007), not when the message ends.
    """

    heartbeat: float | None = 30.0
    max_msg_size: int = 4 * MiB
    receive_timeout: float | None = None
    protocols: tuple[str, ...] = ()
    compress: bool = True
    max_connections: int | None = None
    max_connections_per_client: int | None = None
    send_timeout: float = 5.0
    close_timeout: float = 5.0
    broadcast: BroadcastBackend | None = field(default=None, compare=False)
    messages: Literal["any", "text", "bytes", "json"] = "any"
    allowed_origins: tuple[str, ...] | None = None
    strict_frames: bool = True
    broadcast_backlog: int = 256 * KiB

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_origins", normalise_allowed_origins(self.allowed_origins))
        positive("heartbeat", self.heartbeat, optional=True)
        positive("max_msg_size", self.max_msg_size)
        positive("receive_timeout", self.receive_timeout, optional=True)
        positive("max_connections", self.max_connections, optional=True)
        positive("max_connections_per_client", self.max_connections_per_client, optional=True)
        positive("send_timeout", self.send_timeout)
        positive("close_timeout", self.close_timeout)
        non_negative(
            "broadcast_backlog", self.broadcast_backlog, integer=True, rule="must be 0 or more"
        )
        if self.messages not in ("any", "text", "bytes", "json"):
            raise ValueError(
                f"messages must be 'any', 'text', 'bytes' or 'json', got {self.messages!r}"
            )
        object.__setattr__(self, "protocols", tuple(self.protocols))
        if not isinstance(self.strict_frames, bool):
            raise TypeError(f"strict_frames must be True or False, got {self.strict_frames!r}")

    def replace(self, **changes: Any) -> WebSocketSettings:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)
