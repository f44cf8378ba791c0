"""``MultipartResponse``: a multipart response streamed with ``aiohttp.MultipartWriter``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import MultipartWriter, hdrs, payload, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

__all__ = ["MultipartResponse"]


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
            writer = await super().prepare(request)
            self._out = writer
            if writer is not None and len(self._writer):
                await self._writer.write(writer, close_boundary=False)
                self._sent += len(self._writer)
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
        single.append(obj, CIMultiDict(headers or {}))
        try:
            await single.write(writer, close_boundary=False)
        finally:
            await single.close()
        self._sent += 1

    async def write_eof(self, data: bytes = b"") -> None:
        """End the body with the final boundary."""
        if data:
            raise ValueError("a multipart body ends with its boundary: send data as a part")
        if not self._closed and self._out is not None:
            self._closed = True
            await self._out.write(f"--{self.boundary}--\r\n".encode("ascii"))
        await super().write_eof()
