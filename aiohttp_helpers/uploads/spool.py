"""The spooler: a file's bytes in memory, then in a temporary file written by worker threads."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
import tempfile
from typing import Any

from ..errors import InsufficientStorage
from .fs import NO_ROOM, UNUSABLE, no_room_error, unlink_quietly

__all__ = ["IN_FLIGHT", "WRITE_BATCH", "Spool"]

#: Bytes handed to the worker threads at once: large enough that the thread hops are
#: cheap, small enough that a file in flight holds little memory (``IN_FLIGHT`` batches
#: being hashed and written, plus the one filling: 6 MiB at most).
WRITE_BATCH = 2 << 20
#: Batches handed over and not yet both written and hashed, at most: while one waits for
#: a worker thread the other is processed, so a hiccup of either does not stall the loop.
IN_FLIGHT = 2
# Buffers one writev() call takes at most (IOV_MAX on Linux).
_IOV_MAX = 1024
_TEMP_PREFIX = "aiohttp-helpers-"
log = logging.getLogger("aiohttp_helpers")


def _write_batch(fd: int, offset: int, chunks: list[bytes]) -> None:
    """Write one batch to ``fd`` at ``offset`` with as few ``pwritev()`` calls as it takes.

    Runs in a worker thread. No join: the chunks go to the kernel as they are, one system
    call (one release of the GIL) for up to ``_IOV_MAX`` of them. The explicit offset
    lets the writes of two batches in flight run in any order.
    """
    start = 0
    while start < len(chunks):
        group = chunks[start : start + _IOV_MAX]
        start += len(group)
        written = os.pwritev(fd, group, offset)
        offset += written
        if written != sum(map(len, group)):
            # A short write (rare: a signal, or the file reached a limit): finish the
            # group one chunk at a time, where an error such as ENOSPC surfaces.
            for chunk in group:
                if written >= len(chunk):
                    written -= len(chunk)
                    continue
                view = memoryview(chunk)[written:]
                written = 0
                while view:
                    done = os.pwrite(fd, view, offset)
                    offset += done
                    view = view[done:]


def _hash_batch(digest: Any, chunks: list[bytes]) -> None:
    """Feed one batch to ``digest`` (worker thread).

    Chunk by chunk, no join: each update of a network chunk releases the GIL.
    """
    for chunk in chunks:
        digest.update(chunk)


class Spool:
    """A file's bytes as they arrive: in memory up to ``max_memory``, then on disk.

    Disk writes and hashing run in the default executor, up to ``IN_FLIGHT`` batches
    handed over while the next one fills, so a large upload never blocks the event loop.
    A batch is hashed and written by two jobs at once (both release the GIL): it costs the
    slower of the two, not their sum. Writes carry their offset, so they may run in any
    order; hashes run one after the other, in order. ``sha256=False`` skips the hash
    (``finish()`` then returns ``""`` for it).
    """

    __slots__ = (
        "_batch",
        "_batch_size",
        "_chunks",
        "_digest",
        "_dir",
        "_fd",
        "_hashing",
        "_jobs",
        "_max_memory",
        "_memory",
        "_offset",
        "_per_batch",
        "_prefix",
        "path",
        "size",
    )

    def __init__(
        self,
        max_memory: int,
        directory: str | None,
        *,
        prefix: str = _TEMP_PREFIX,
        sha256: bool = True,
    ) -> None:
        self._chunks: list[bytes] = []
        self._memory = 0
        self._max_memory = max_memory
        self._dir = directory
        self._prefix = prefix
        self._digest: Any = hashlib.sha256() if sha256 else None
        self._fd = -1
        self.path: str | None = None
        self._batch: list[bytes] = []
        self._batch_size = 0
        # The jobs of the batches in flight, oldest first: each batch's write, then its
        # hash (a task that waits for the previous batch's hash, so the digest sees the
        # bytes in order).
        self._jobs: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._per_batch = 1 if self._digest is None else 2
        self._hashing: asyncio.Future[Any] | None = None
        self._offset = 0
        self.size = 0

    async def write(self, data: bytes) -> None:
        """Take the next bytes of the file."""
        self.size += len(data)
        if self.path is None:
            if self._memory + len(data) <= self._max_memory:
                self._chunks.append(data)
                self._memory += len(data)
                return
            self._open()
            self._batch, self._chunks = self._chunks, []
            self._batch_size, self._memory = self._memory, 0
        self._batch.append(data)
        self._batch_size += len(data)
        if self._batch_size >= WRITE_BATCH:
            await self._flush()

    def _open(self) -> None:
        try:
            self._fd, self.path = tempfile.mkstemp(prefix=self._prefix, dir=self._dir)
        except OSError as exc:
            if exc.errno in NO_ROOM:
                raise no_room_error(exc) from None
            if self._prefix == _TEMP_PREFIX and exc.errno in UNUSABLE:
                # The spool directory went away (or became read-only) after start-up:
                # the server cannot store the upload, which is not the client's fault
                # but not a crash either. The path goes to the log, not to the client.
                log.error("cannot create a temporary file in %r: %s", self._dir, exc)
                raise InsufficientStorage("the server cannot store the upload now") from None
            raise

    async def _wait_jobs(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` batches are in flight."""
        jobs = self._jobs
        while len(jobs) > keep * self._per_batch:
            job = jobs[0]
            try:
                # Shielded: a cancelled reader must not close the file under a running write.
                await asyncio.shield(job)
            except OSError as exc:
                if exc.errno in NO_ROOM:
                    raise no_room_error(exc) from None
                raise
            finally:
                if job.done() and jobs and jobs[0] is job:
                    jobs.popleft()

    async def _flush(self) -> None:
        await self._wait_jobs(IN_FLIGHT - 1)
        batch, size = self._batch, self._batch_size
        self._batch = []
        self._batch_size = 0
        if not batch:
            return
        loop = asyncio.get_running_loop()
        self._jobs.append(loop.run_in_executor(None, _write_batch, self._fd, self._offset, batch))
        self._offset += size
        if self._digest is not None:
            self._hashing = loop.create_task(_hash_after(self._hashing, self._digest, batch))
            self._jobs.append(self._hashing)

    def _hexdigest(self) -> str:
        return "" if self._digest is None else str(self._digest.hexdigest())

    async def finish(self) -> tuple[bytes | None, str | None, str]:
        """All bytes are in: ``(data, None, sha256)`` in memory or ``(None, path, sha256)``."""
        if self.path is None:
            data = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
            self._chunks = []
            digest = self._digest
            if digest is not None and len(data) > 65536:
                await asyncio.get_running_loop().run_in_executor(None, digest.update, data)
            elif digest is not None:
                digest.update(data)
            return data, None, self._hexdigest()
        await self._flush()
        await self._wait_jobs()
        os.close(self._fd)
        self._fd = -1
        return None, self.path, self._hexdigest()

    def discard(self) -> None:
        """Drop the bytes and remove the temporary file; safe while a write is in flight."""
        self._chunks = []
        self._batch = []
        for job in self._jobs:
            if isinstance(job, asyncio.Task):
                job.cancel()  # a hash: moot now, and it never touches the file
        running = [job for job in self._jobs if not job.done()]
        for job in self._jobs:
            if job.done() and not job.cancelled():
                job.exception()  # retrieved: the failure is moot once the upload is dropped
        if running:
            left = [len(running)]

            def after(job: asyncio.Future[Any]) -> None:
                if not job.cancelled():
                    job.exception()
                left[0] -= 1
                if not left[0]:
                    self._close_and_remove()

            for job in running:
                job.add_done_callback(after)
            return
        self._close_and_remove()

    def _close_and_remove(self) -> None:
        self._jobs.clear()
        self._hashing = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.path is not None:
            unlink_quietly(self.path)


async def _hash_after(
    previous: asyncio.Future[Any] | None, digest: Any, batch: list[bytes]
) -> None:
    """Hash ``batch`` in a worker thread once the batch before it is hashed."""
    if previous is not None:
        await asyncio.wait([previous])
        if previous.cancelled() or previous.exception() is not None:
            return  # the upload failed or was dropped: its digest is moot
    await asyncio.get_running_loop().run_in_executor(None, _hash_batch, digest, batch)
