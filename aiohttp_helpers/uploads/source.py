"""Where a multipart level's bytes come from: the HTTP body (counted, watched) or a part."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader

from .._compat import connection_closed
from ..config import UploadLimits
from ..errors import BadRequest, BodyTooLarge, RequestTimeout
from .watchdog import Watchdog

if TYPE_CHECKING:
    from .reader import PartStream

__all__ = ["SMALL", "BodySource", "PartSource", "Source"]

#: Pieces shorter than this are joined with the next ones: a read gathers what is already
#: buffered behind a small chunk, and a part joins its small pieces before handing them
#: on, so that a body sent in tiny pieces is handled and stored in pieces of a useful size.
SMALL = 8 * 1024


class Source:
    """Where a level's bytes come from; ``read()`` returns ``b""`` at the end."""

    __slots__ = ()

    async def read(self) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Stop any timer the source runs."""


class BodySource(Source):
    """An HTTP body: bytes counted against ``max_body_size``, stalls against ``idle_timeout``."""

    __slots__ = ("_content", "_limit", "_total", "_watchdog")

    def __init__(
        self, content: StreamReader, limits: UploadLimits, limit: int | None = None
    ) -> None:
        self._content = content
        self._limit = limits.max_body_size if limit is None else limit
        self._total = 0
        self._watchdog = (
            Watchdog(content, limits.idle_timeout, limits.min_rate)
            if limits.idle_timeout is not None
            else None
        )

    async def read(self) -> bytes:
        content = self._content
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.start()
        data = b""
        try:
            while True:
                data, end_of_chunk = await content.readchunk()
                # (b"", True) marks the end of an HTTP chunk; (b"", False) the end of the body.
                if data or not end_of_chunk or content.at_eof():
                    break
            if data and len(data) < SMALL:
                # Bounded in bytes, and so in time too: aiohttp takes a few microseconds
                # for each HTTP chunk it hands over, however small.
                more = content.read_nowait(SMALL - len(data))
                if more:
                    data += more
        except RequestTimeout:
            # After the answer aiohttp reads what is left of the body, and would log the
            # stall as an unhandled exception with its traceback, once per stalled client.
            # A TimeoutError there means "give up on the rest": it closes quietly.
            content.set_exception(TimeoutError("the request body stalled"))
            raise
        except RuntimeError as exc:
            if connection_closed(exc):  # a read after the connection was lost
                raise ConnectionResetError("the connection was lost") from None
            raise
        except HttpProcessingError:
            raise BadRequest("the request body's transfer framing is malformed") from None
        finally:
            if watchdog is not None:
                watchdog.stop(len(data))
        if data:
            self._total += len(data)
            if self._total > self._limit:
                raise BodyTooLarge(self._limit)
        return data

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.close()


class PartSource(Source):
    """The decoded bytes of a part that is itself a multipart body."""

    __slots__ = ("_part",)

    def __init__(self, part: PartStream) -> None:
        self._part = part

    async def read(self) -> bytes:
        return await self._part.next_chunk()
