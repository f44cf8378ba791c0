"""``MultipartResponse``: a multipart response streamed with ``aiohttp.MultipartWriter``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from aiohttp import MultipartWriter, hdrs, payload, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.multipart import MultipartPayloadWriter
from multidict import CIMultiDict

from .._compat import bytes_payload_value, part_headers

__all__ = ["MultipartResponse"]

# RFC 2046 section 5.1.1: 1 to 70 of these characters, the last one not a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def _check_boundary(boundary: str) -> None:
    if not _BOUNDARY.fullmatch(boundary):
        raise ValueError(
            f"boundary {boundary!r:.80} is not a MIME boundary: 1 to 70 letters, digits or "
            "'()+_,-./:=? and spaces, not ending in a space (RFC 2046)"
        )


def _check_part(part: payload.Payload, delimiter: bytes) -> None:
    """Refuse, before anything is written, a part that would break the body's framing.

    Its headers must serialise (no CR, LF or NUL in a name or value), and bytes held in
    memory must not contain the delimiter: after them the receiver would see a part of
    the sender's client's making, with headers of its own.
    """
    for key, value in part.headers.items():
        if not key or any(c in key for c in "\r\n\x00: ") or any(c in value for c in "\r\n\x00"):
            raise ValueError(f"part header {key!r:.60}: {value!r:.60} is not a valid header line")
    if isinstance(part, payload.BytesPayload) and not _encoded(part):
        data = bytes_payload_value(part)
        # The part's bytes follow the CRLF that ends its headers.
        if data[: len(delimiter) - 2] == delimiter[2:] or data.find(delimiter) >= 0:
            raise ValueError(
                "a part contains the multipart delimiter ('\\r\\n--' and the boundary): "
                "let MultipartResponse choose the boundary, or encode the part"
            )


def _encoded(part: payload.Payload) -> bool:
    encoding = part.headers.get(hdrs.CONTENT_ENCODING, "").lower()
    te = part.headers.get(hdrs.CONTENT_TRANSFER_ENCODING, "").lower()
    return encoding not in ("", "identity") or te not in ("", "binary")


class _DelimiterGuard:
    """Passes a part's bytes on, refusing any chunk that would complete the delimiter.

    The bytes already passed on never hold a whole delimiter, so the receiver sees a
    truncated body rather than a part the content smuggled in. Only the few bytes
    where two chunks meet are copied.
    """

    __slots__ = ("_delimiter", "_tail", "_writer")

    def __init__(self, writer: AbstractStreamWriter, delimiter: bytes) -> None:
        self._writer = writer
        self._delimiter = delimiter
        self._tail = b"\r\n"  # the end of the part's headers

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        data = bytes(chunk)
        keep = len(self._delimiter) - 1
        if (self._tail + data[:keep]).find(self._delimiter) >= 0 or data.find(self._delimiter) >= 0:
            raise ValueError(
                "a part's content contains the multipart delimiter: the response was cut "
                "short before it"
            )
        self._tail = (self._tail + data)[-keep:] if len(data) < keep else data[-keep:]
        await self._writer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class MultipartResponse(web.StreamResponse):
    """A ``multipart/*`` response whose parts aiohttp's ``MultipartWriter`` encodes.

    Append parts and return the response from the handler: it is sent with a
    ``Content-Length`` when every part's size is known, chunked otherwise. To stream parts
    as they are produced, ``await response.prepare(request)`` first, then
    ``await response.send_part(...)`` for each one and ``await response.write_eof()``.
    The Content-Type carries the writer's boundary (quoted when it needs to be)::

        response = MultipartResponse("mixed")
        response.append(b"raw bytes", {"Content-Type": "application/octet-stream"})
        response.append_json({"status": "ok"})
        return response
    """

    def __init__(
        self,
        subtype: str = "mixed",
        *,
        boundary: str | None = None,
        status: int = 200,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if boundary is not None:
            _check_boundary(boundary)
        super().__init__(status=status, reason=reason, headers=headers)
        self._subtype = subtype
        self._writer = MultipartWriter(subtype, boundary)
        self._out: AbstractStreamWriter | None = None
        self._sent = 0
        self._closed = False
        self.headers[hdrs.CONTENT_TYPE] = self._writer.content_type

    @property
    def writer(self) -> MultipartWriter:
        """The aiohttp ``MultipartWriter`` holding the parts appended before ``prepare()``."""
        return self._writer

    @property
    def boundary(self) -> str:
        return self._writer.boundary

    @property
    def parts_sent(self) -> int:
        """How many parts have been written to the client so far."""
        return self._sent

    def append(self, obj: Any, headers: Mapping[str, str] | None = None) -> payload.Payload:
        """Add a part (anything aiohttp makes a payload of) to send at ``prepare()``."""
        self._refuse_started()
        return self._writer.append(obj, CIMultiDict(headers or {}))

    def append_json(self, obj: Any, headers: Mapping[str, str] | None = None) -> payload.Payload:
        """Add a JSON part to send at ``prepare()``."""
        self._refuse_started()
        return self._writer.append_json(obj, CIMultiDict(headers or {}))

    def _refuse_started(self) -> None:
        if self.prepared:
            raise RuntimeError("the response has started: use send_part()")

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Send the headers, then the parts appended so far.

        The Content-Length is set when parts were appended, every one of a known size,
        and the response is not chunked; with no parts appended the response is chunked,
        ready for :meth:`send_part`.
        """
        if self.prepared:
            return await super().prepare(request)
        if len(self._writer) and not self.chunked and self.content_length is None:
            size = self._writer.size
            if size is not None:
                self.content_length = size
        try:
            # Every part is checked before the first byte (the status line) goes out.
            for part, _, _ in self._writer:
                _check_part(part, self._delimiter)
            writer = await super().prepare(request)
            self._out = writer
            if writer is not None and len(self._writer):
                await self._write_parts(self._writer, writer)
        finally:
            # Parts such as open files are closed once written (or once the write failed).
            await self._writer.close()
        return writer

    async def send_part(self, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        """Write one more part now (after ``prepare()``, on a response with no Content-Length)."""
        writer = self._out
        if writer is None:
            raise RuntimeError("call prepare() before send_part()")
        if self._closed:
            raise RuntimeError("the response has ended")
        if self.content_length is not None:
            raise RuntimeError(
                "this response declared a Content-Length when it was prepared: call "
                "enable_chunked_encoding() before prepare() to send parts one by one"
            )
        single = MultipartWriter(self._subtype, self.boundary)
        try:
            single.append(obj, CIMultiDict(headers or {}))
            for part, _, _ in single:
                _check_part(part, self._delimiter)
            await self._write_parts(single, writer)
        finally:
            await single.close()

    @property
    def _delimiter(self) -> bytes:
        return b"\r\n--" + self.boundary.encode("ascii")

    async def _write_parts(self, parts: MultipartWriter, out: AbstractStreamWriter) -> None:
        """Write ``parts`` as ``MultipartWriter.write()`` does, each body behind a guard."""
        delimiter = self._delimiter
        for part, encoding, te_encoding in parts:
            head = part_headers(part)  # checked by _check_part: this cannot fail now
            await out.write(delimiter[2:] + b"\r\n" + head)
            guard = cast(AbstractStreamWriter, _DelimiterGuard(out, delimiter))
            if encoding or te_encoding:
                encoder = MultipartPayloadWriter(guard)
                if encoding:
                    encoder.enable_compression(encoding)
                if te_encoding:
                    encoder.enable_encoding(te_encoding)
                await part.write(cast(AbstractStreamWriter, encoder))
                await encoder.write_eof()
            else:
                await part.write(guard)
            await out.write(b"\r\n")
            self._sent += 1

    async def write_eof(self, data: bytes = b"") -> None:
        """End the body with the final boundary."""
        if data:
            raise ValueError("a multipart body ends with its boundary: send data as a part")
        if not self._closed and self._out is not None:
            self._closed = True
            await self._out.write(f"--{self.boundary}--\r\n".encode("ascii"))
        await super().write_eof()
