"""``iter_parts()``: the parts of a multipart body, each streamed, decoded and limited."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from multidict import CIMultiDictProxy

from ..config import UploadLimits
from ..errors import MalformedMultipart
from .charsets import charset_codec, decode_text, trusted_codec
from .filenames import safe_filename
from .limits import limits_for
from .reader import Level, PartStream, open_body
from .saving import save_stream
from .urlencoded import parse_urlencoded

__all__ = ["BodyPart", "PartIterator", "decode_text", "iter_parts"]


class BodyPart:
    """One part of a multipart body, as :func:`iter_parts` yields it.

    ``async for chunk in part`` streams the decoded bytes in chunks of at most
    ``limits.chunk_size``; the limits are enforced as they arrive. A part that is
    itself multipart (``part.is_multipart``) yields its own parts from
    :meth:`iter_parts`. Moving on to the next part skips what is left of this one.
    """

    __slots__ = ("_chunk_size", "_rest", "_stream")

    def __init__(self, stream: PartStream) -> None:
        self._stream = stream
        self._chunk_size = stream.level.limits.chunk_size
        self._rest = b""

    def __repr__(self) -> str:
        return (
            f"<BodyPart name={self.name!r} filename={self.filename!r} "
            f"content_type={self.content_type!r}>"
        )

    @property
    def name(self) -> str | None:
        """The ``name`` of the part's Content-Disposition, if any."""
        return self._stream.head.name

    @property
    def raw_filename(self) -> str | None:
        """The ``filename`` (or ``filename*``) the client sent, decoded but not sanitised."""
        return self._stream.head.filename

    @property
    def filename(self) -> str | None:
        """The client's filename made safe by :func:`safe_filename`, or None if it sent none."""
        raw = self._stream.head.filename
        return None if raw is None else safe_filename(raw)

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._stream.head.headers

    @property
    def content_type(self) -> str:
        """The media type (lowercase, no parameters); RFC 7578's defaults when not sent."""
        stream = self._stream
        if stream.head.media_type:
            return stream.head.media_type
        return "application/octet-stream" if stream.is_file else "text/plain"

    @property
    def is_file(self) -> bool:
        """Whether the part counts as a file (it has a filename, or is not form data)."""
        return self._stream.is_file

    @property
    def is_multipart(self) -> bool:
        return self._stream.container

    @property
    def size(self) -> int:
        """Decoded bytes read from the part so far."""
        return self._stream.size

    def at_eof(self) -> bool:
        """Whether every byte of the part has been read (or skipped)."""
        if self._stream.abandoned:
            self._rest = b""
        return self._stream.done and not self._rest

    def get_charset(self, default: str = "utf-8") -> str:
        """The part's charset: its Content-Type's, else the form's ``_charset_``, else default."""
        head = self._stream.head
        return head.charset or self._stream.level.charset or default

    def __aiter__(self) -> BodyPart:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read_chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def read_chunk(self, size: int | None = None) -> bytes:
        """The next decoded bytes (at most ``size``, default ``chunk_size``); ``b""`` at the end."""
        limit = self._chunk_size if size is None else size
        if limit <= 0:
            raise ValueError("size must be positive")
        if self._stream.abandoned:
            self._rest = b""
        data = self._rest or await self._stream.next_chunk()
        if len(data) > limit:
            self._rest = data[limit:]
            return data[:limit]
        self._rest = b""
        return data

    async def read(self) -> bytes:
        """The rest of the part's decoded bytes (at most its size limit)."""
        chunks = []
        if self._rest and not self._stream.abandoned:
            chunks.append(self._rest)
        self._rest = b""
        stream = self._stream
        while chunk := await stream.next_chunk():
            chunks.append(chunk)
        return b"".join(chunks)

    async def text(self, *, encoding: str | None = None) -> str:
        """The part decoded as text (see :meth:`get_charset`), or as ``encoding`` says.

        ``encoding`` is the application's choice: any Python text codec (``ValueError`` for
        one that is not); the client's charset must be one browsers submit forms in.

        The text of a form's ``_charset_`` field becomes the charset of the fields after it.
        """
        if encoding is not None:
            text = decode_text(await self.read(), encoding, self.name, trusted=True)
        else:
            text = decode_text(await self.read(), self.get_charset(), self.name)
        level = self._stream.level
        if self.name == "_charset_" and level.subtype == "form-data":
            charset_codec(text, self.name)
            level.charset = text
        return text

    async def json(self, *, encoding: str | None = None) -> Any:
        """The part parsed as JSON (None when empty); 400 when it does not parse."""
        text = await self.text(encoding=encoding)
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise MalformedMultipart(
                f"field {self.name!r} is not valid JSON", field=self.name
            ) from None

    async def form(self, *, encoding: str | None = None) -> list[tuple[str, str]]:
        """The part parsed as ``application/x-www-form-urlencoded`` pairs.

        The form's limits apply to the pairs: more than ``max_fields`` is 413
        ``too-many-fields``, as for a whole urlencoded body.
        """
        level = self._stream.level
        if encoding is not None:
            codec = trusted_codec(encoding)
        else:
            codec = charset_codec(self.get_charset(), self.name)
        return await parse_urlencoded(
            await self.read(), codec, level.limits, field=self.name, turn=level.counts, codec=True
        )

    async def release(self) -> None:
        """Skip the rest of the part."""
        self._rest = b""
        stream = self._stream
        while await stream.next_chunk():
            pass

    async def save(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, unique: bool = False
    ) -> Path:
        """Stream the rest of the part into a file and return where it is.

        Same meaning as :meth:`UploadedFile.save`: ``path`` or ``path/<filename>``, never
        over an existing file unless ``overwrite=True`` (``unique=True``: a free name).
        """
        rest, self._rest = self._rest, b""
        return await save_stream(
            self._stream.next_chunk,
            rest,
            path,
            self.filename or safe_filename(None),
            overwrite=overwrite,
            unique=unique,
        )

    def iter_parts(self) -> PartIterator:
        """The parts of this part, when it is itself multipart."""
        if not self._stream.container:
            raise TypeError(f"part {self.name!r} is not multipart ({self.content_type})")
        return PartIterator(self._stream.level.nested(self._stream), name=self.name)


class PartIterator:
    """The parts of one multipart body, in order: ``async for part in iter_parts(...)``."""

    __slots__ = ("_level", "_name")

    def __init__(self, level: Level, *, name: str | None = None) -> None:
        self._level = level
        self._name = name

    def __aiter__(self) -> PartIterator:
        return self

    async def __anext__(self) -> BodyPart:
        level = self._level
        try:
            head = await level.next_head()
        except BaseException:
            level.close()
            raise
        if head is None:
            level.close()
            raise StopAsyncIteration
        name = head.name if head.name is not None else self._name
        try:
            return BodyPart(PartStream(level, head, name))
        except BaseException:
            level.close()
            raise

    @property
    def limits(self) -> UploadLimits:
        return self._level.limits


def iter_parts(
    source: web.BaseRequest | ClientResponse, limits: UploadLimits | None = None
) -> PartIterator:
    """The parts of a multipart request (or client response) body, streamed.

    ``limits`` defaults to the route's, then the app's limits (``UploadLimits()`` for a
    client response). Nothing is read until the first part is asked for, but the
    Content-Type and Content-Length are checked at once.

    Raises:
        NotMultipart: the body is not ``multipart/*`` (415).
        MalformedMultipart: the Content-Type has no usable boundary (400).
        BodyTooLarge: the Content-Length is over ``max_body_size`` (413).
    """
    if limits is None:
        limits = limits_for(source) if isinstance(source, web.BaseRequest) else UploadLimits()
    elif not isinstance(limits, UploadLimits):
        raise TypeError(f"limits must be an UploadLimits, got {type(limits).__name__}")
    return PartIterator(open_body(source.headers, source.content, limits))
