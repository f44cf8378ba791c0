"""One request body appended to an upload: streamed, counted, timed, hashed, written."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import StreamReader
from aiohttp.http_exceptions import HttpProcessingError

from .._compat import connection_closed, read_buffered, request_transport_gone
from ..errors import BadRequest, RequestTimeout, UploadIdleTimeout, UploadTooSlow
from ..uploads.fs import no_room, no_room_error
from .storage import pwrite_all

__all__ = ["Appender", "BodyTimer", "read_into"]

#: Bytes handed to the worker thread at once. Larger than uploads.spool.WRITE_BATCH: a
#: PATCH carries megabytes, and on a busy machine each hop to the worker thread waits for
#: a core (bench/resumable.py: 1 MiB batches ran at about 0.5 x drain+write, 4 MiB at 0.75).
#: At most two batches of one upload are held at once.
WRITE_BATCH = 4 << 20
_IOV_MAX = 1024


class BodyTimer:
    """Fails ``content`` when no byte arrives for ``idle`` seconds, or bytes come too slowly.

    Once ``idle`` seconds have passed since the request began, the average rate over
    the whole body must be at least ``min_rate`` bytes per second.
    """

    __slots__ = ("_content", "_handle", "_idle", "_last", "_loop", "_min_rate", "_start", "seen")

    def __init__(self, content: StreamReader, idle: float, min_rate: float | None) -> None:
        self._content = content
        self._idle = idle
        self._min_rate = min_rate
        self._loop = asyncio.get_running_loop()
        self._start = self._last = self._loop.time()
        self.seen = 0
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            self._start + self._tick(), self._check
        )

    def _tick(self) -> float:
        return min(max(self._idle / 4, 0.05), 1.0)

    def got(self, size: int) -> None:
        self.seen += size
        self._last = self._loop.time()

    def _check(self) -> None:
        self._handle = None
        now = self._loop.time()
        error: RequestTimeout | None = None
        if now - self._last >= self._idle:
            error = UploadIdleTimeout(self._idle)
        else:
            elapsed = now - self._start
            if self._min_rate and elapsed >= self._idle and self.seen < self._min_rate * elapsed:
                error = UploadTooSlow(self._min_rate)
        if error is not None:
            self._content.set_exception(error)
            return
        self._handle = self._loop.call_at(now + self._tick(), self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _store(fd: int, offset: int, chunks: list[bytes], hashers: list[Any]) -> None:
    """Hash and write one batch at ``offset`` (in a worker thread; both release the GIL).

    The chunks go to the kernel as they are (``pwritev``), without being joined first.
    """
    for hasher in hashers:
        for chunk in chunks:
            hasher.update(chunk)
    total = sum(len(c) for c in chunks)
    written = os.pwritev(fd, chunks, offset) if len(chunks) <= _IOV_MAX else 0
    if written < total:
        # A short write (or too many pieces for one call): the rest, the plain way.
        pwrite_all(fd, b"".join(chunks)[written:], offset + written)


class Appender:
    """Writes bytes at the end of a locked upload, one batch in flight in a worker thread."""

    __slots__ = ("_batch", "_batch_size", "_fd", "_hashers", "_job", "_pos", "written")

    def __init__(self, fd: int, offset: int, hashers: list[Any]) -> None:
        self._fd = fd
        self._pos = offset
        self._hashers = hashers
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._job: asyncio.Future[None] | None = None
        self.written = 0

    async def write(self, data: bytes) -> None:
        self._batch.append(data)
        self._batch_size += len(data)
        self.written += len(data)
        if self._batch_size >= WRITE_BATCH:
            await self._flush()

    async def _wait(self) -> None:
        job = self._job
        if job is None:
            return
        try:
            # Shielded: a cancelled request must not release the lock under a running write.
            await asyncio.shield(job)
        except OSError as exc:
            if no_room(exc):
                raise no_room_error(exc) from None
            raise
        finally:
            if job.done():
                self._job = None

    async def _flush(self) -> None:
        await self._wait()
        batch, self._batch = self._batch, []
        size, self._batch_size = self._batch_size, 0
        if batch:
            loop = asyncio.get_running_loop()
            self._job = loop.run_in_executor(
                None, _store, self._fd, self._pos, batch, self._hashers
            )
            self._pos += size

    async def finish(self) -> None:
        """Write what is batched and wait until it is on disk."""
        await self._flush()
        await self._wait()

    async def settle(self) -> None:
        """Wait for the write in flight, whatever happens (before the lock is released)."""
        job = self._job
        if job is not None:
            await asyncio.wait([job])
            if not job.cancelled():
                job.exception()
            self._job = None


async def read_into(
    content: StreamReader,
    appender: Appender,
    *,
    room: int,
    timer: BodyTimer | None,
) -> bool:
    """Stream ``content`` into ``appender``; return ``False`` when ``room`` would be exceeded.

    Bytes past ``room`` are never written: the read stops before them. A lost connection
    is raised as :class:`ConnectionResetError`.
    """
    try:
        while True:
            data = await content.readany()
            if not data:
                return True
            if timer is not None:
                timer.got(len(data))
            if appender.written + len(data) > room:
                return False
            await appender.write(data)
    except RequestTimeout:
        # aiohttp reads what is left of the body after the answer; a TimeoutError there
        # closes the connection quietly instead of logging the stall with a traceback.
        content.set_exception(TimeoutError("the request body stalled"))
        raise
    except ConnectionResetError:
        await _salvage(content, appender, room)
        raise
    except RuntimeError as exc:
        if connection_closed(exc):  # a read after the connection was lost
            await _salvage(content, appender, room)
            raise ConnectionResetError("the connection was lost") from None
        raise
    except HttpProcessingError:
        # A body cut short (Content-Length not reached, chunked framing broken).
        if content.at_eof() or _lost(content):
            await _salvage(content, appender, room)
            raise ConnectionResetError("the request body was cut short") from None
        raise BadRequest("the request body's transfer framing is malformed") from None


async def _salvage(content: StreamReader, appender: Appender, room: int) -> None:
    """Keep the bytes that arrived before the connection was lost, as resuming expects.

    Once the connection is lost every read raises at once, even while bytes that arrived
    before are still buffered (see ``_compat.read_buffered``). Where aiohttp cannot hand
    them over they are lost and the client resends them from the stored offset, as the
    protocol allows.
    """
    data = read_buffered(content)
    if data and appender.written + len(data) <= room:
        await appender.write(data)


def _lost(content: StreamReader) -> bool:
    return request_transport_gone(content)
