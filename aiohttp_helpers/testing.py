"""Helpers for users' own tests: multipart bodies (well-formed or broken), WebSocket closes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import itertools
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from .websocket.testing import assert_closed_with, receive_close

__all__ = [
    "FilenameStyle",
    "FormPart",
    "MultipartBody",
    "assert_closed_with",
    "multipart_body",
    "receive_close",
]


# ---------------------------------------------------------------------------------------
# Multipart bodies
# ---------------------------------------------------------------------------------------

FilenameStyle = Literal["browser", "escaped", "percent", "extended", "both"]


@dataclass(frozen=True, kw_only=True)
class FormPart:
    """One part of a body that :func:`multipart_body` builds.

    ``data`` is the part's content before encoding; ``transfer_encoding`` (``base64``,
    ``quoted-printable``, ``7bit``, ``8bit``, ``binary``) and ``content_encoding``
    (``gzip``, ``deflate``, ``br``, ``zstd``, ``identity``, or several, comma-separated,
    in the order they apply) are applied to it and announced in the part's headers.
    ``filename_style`` picks how the filename is written:

    - ``"browser"``: ``filename="..."`` with ``"``, CR and LF as ``%22``, ``%0D``, ``%0A``
    - ``"escaped"``: ``filename="..."`` with backslash escapes (``curl --form-escape``),
      CR and LF percent-escaped
    - ``"percent"``: ``filename="..."`` percent-encoded throughout (aiohttp's client)
    - ``"extended"``: ``filename*=UTF-8''...`` only (RFC 8187)
    - ``"both"``: an ASCII ``filename`` and a ``filename*``

    ``parts`` makes the part a nested ``multipart/<subtype>`` body. ``raw_headers``
    replaces the whole header block with the given bytes (for broken parts).
    """

    name: str | None = None
    data: bytes | str = b""
    filename: str | None = None
    content_type: str | None = None
    headers: Sequence[tuple[str, str]] = ()
    transfer_encoding: str | None = None
    content_encoding: str | None = None
    filename_style: FilenameStyle = "browser"
    parts: Sequence[FormPart] | None = None
    subtype: str = "mixed"
    boundary: str | None = None
    raw_headers: bytes | None = None


@dataclass(frozen=True)
class MultipartBody:
    """A body built by :func:`multipart_body`: bytes, and the Content-Type to send them with."""

    data: bytes
    boundary: str
    content_type: str
    parts: tuple[FormPart, ...] = field(default=(), repr=False)

    def __bytes__(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        return len(self.data)

    @property
    def headers(self) -> dict[str, str]:
        """The request headers to send the body with."""
        return {"Content-Type": self.content_type}

    def chunks(self, sizes: int | Iterable[int]) -> list[bytes]:
        """The body cut into pieces: of ``sizes`` bytes each, or of the given sizes in turn.

        Sizes are used cyclically when they run out before the body does.
        """
        if isinstance(sizes, int):
            sizes = [sizes]
        steps = list(sizes)
        if not steps or any(s <= 0 for s in steps):
            raise ValueError("chunk sizes must be positive")
        out = []
        pos = 0
        for size in itertools.cycle(steps):
            if pos >= len(self.data):
                break
            out.append(self.data[pos : pos + size])
            pos += size
        return out

    async def stream(self, chunk_size: int = 65536, *, delay: float = 0.0) -> AsyncIterator[bytes]:
        """The body as an async iterator (aiohttp's client then sends it chunked)."""
        for chunk in self.chunks(chunk_size):
            yield chunk
            if delay:
                await asyncio.sleep(delay)


def _browser_quote(value: str) -> str:
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _filename_params(filename: str, style: FilenameStyle) -> str:
    if style == "browser":
        return f'; filename="{_browser_quote(filename)}"'
    if style == "escaped":
        # A header cannot carry CR or LF at all: those stay percent-escaped.
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        escaped = escaped.replace("\r", "%0D").replace("\n", "%0A")
        return f'; filename="{escaped}"'
    if style == "percent":
        return f'; filename="{quote(filename, safe="")}"'
    extended = f"; filename*=UTF-8''{quote(filename, safe='')}"
    if style == "extended":
        return extended
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f'; filename="{_browser_quote(fallback)}"' + extended


def _compress(data: bytes, codings: str) -> bytes:
    for coding in (c.strip().lower() for c in codings.split(",")):
        if coding in ("gzip", "x-gzip"):
            data = gzip.compress(data)
        elif coding == "deflate":
            data = zlib.compress(data)
        elif coding == "br":
            import brotli

            data = brotli.compress(data)
        elif coding == "zstd":
            import zstandard

            data = zstandard.ZstdCompressor().compress(data)
        elif coding != "identity":
            raise ValueError(f"cannot apply Content-Encoding {coding!r}")
    return data


def _transfer_encode(data: bytes, encoding: str) -> bytes:
    encoding = encoding.lower()
    if encoding == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if encoding == "quoted-printable":
        return binascii.b2a_qp(data, istext=False).replace(b"\n", b"\r\n")
    if encoding in ("7bit", "8bit", "binary"):
        return data
    raise ValueError(f"cannot apply Content-Transfer-Encoding {encoding!r}")


def _part_bytes(part: FormPart, newline: bytes) -> bytes:
    data = part.data.encode() if isinstance(part.data, str) else part.data
    content_type = part.content_type
    if part.parts is not None:
        nested = multipart_body(
            *part.parts, boundary=part.boundary, subtype=part.subtype, newline=newline
        )
        data = nested.data
        content_type = nested.content_type
    if part.content_encoding:
        data = _compress(data, part.content_encoding)
    if part.transfer_encoding:
        data = _transfer_encode(data, part.transfer_encoding)
    if part.raw_headers is not None:
        return part.raw_headers + newline + newline + data
    lines = []
    if part.name is not None or part.filename is not None:
        disposition = "form-data" if part.name is not None else "file"
        if part.name is not None:
            disposition += f'; name="{_browser_quote(part.name)}"'
        if part.filename is not None:
            disposition += _filename_params(part.filename, part.filename_style)
        lines.append(f"Content-Disposition: {disposition}")
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if part.transfer_encoding:
        lines.append(f"Content-Transfer-Encoding: {part.transfer_encoding}")
    if part.content_encoding:
        lines.append(f"Content-Encoding: {part.content_encoding}")
    lines.extend(f"{key}: {value}" for key, value in part.headers)
    head = newline.join(line.encode("utf-8") for line in lines)
    return head + newline + newline + data if lines else newline + data


def multipart_body(
    *parts: FormPart | tuple[str, str | bytes],
    boundary: str | None = None,
    subtype: str = "form-data",
    preamble: bytes = b"",
    epilogue: bytes = b"",
    newline: bytes = b"\r\n",
    final_boundary: bool = True,
    header_boundary: str | None = None,
    truncate: int | None = None,
) -> MultipartBody:
    """Build a ``multipart/<subtype>`` body from ``parts`` for a test to send.

    A part is a :class:`FormPart` or a ``(name, value)`` pair for a plain text field.
    The deliberately broken bodies a parser must refuse or survive come from the other
    options: ``newline=b"\\n"`` (bare LF line ends), ``final_boundary=False`` (no close
    delimiter), ``header_boundary`` (a Content-Type boundary that is not the body's),
    ``truncate`` (the body cut after that many bytes), ``preamble`` / ``epilogue`` (bytes
    before the first and after the last boundary), and ``FormPart.raw_headers``.
    """
    if boundary is None:
        boundary = uuid.uuid4().hex
    built: list[FormPart] = [
        p if isinstance(p, FormPart) else FormPart(name=p[0], data=p[1]) for p in parts
    ]
    dash = b"--" + boundary.encode("ascii")
    out = [preamble + newline if preamble else b""]
    for part in built:
        out.append(dash + newline + _part_bytes(part, newline) + newline)
    if final_boundary:
        out.append(dash + b"--" + newline + epilogue)
    data = b"".join(out)
    if truncate is not None:
        data = data[:truncate]
    shown = header_boundary if header_boundary is not None else boundary
    if any(c in shown for c in ' "(),:;<=>?@[\\]/'):
        shown = f'"{shown}"'
    return MultipartBody(data, boundary, f"multipart/{subtype}; boundary={shown}", tuple(built))
