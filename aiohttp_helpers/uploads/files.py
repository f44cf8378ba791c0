"""Uploaded files: spooled in memory, then to a temporary file written by a worker thread."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import hashlib
import io
import logging
import os
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from multidict import CIMultiDictProxy

from ..errors import InsufficientStorage

__all__ = ["Spool", "UploadedFile", "file_mode", "no_room"]

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
# The filesystem is full, the quota used up, or the file may grow no larger (the
# filesystem's own size limit, or the process's RLIMIT_FSIZE): no room for the upload.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# The spool directory is gone, not a directory, or not writable.
_UNUSABLE = (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EROFS)
log = logging.getLogger("aiohttp_helpers")


@functools.cache
def file_mode() -> int:
    """The mode a newly created file gets here: 0o666 less the process's umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return 0o666 & ~mask  # pragma: no cover


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _no_room(exc: OSError) -> InsufficientStorage:
    return InsufficientStorage("no room left to store the upload")


def no_room(exc: BaseException) -> bool:
    """Whether ``exc`` says there is no room: filesystem full, quota used up, file too big."""
    return isinstance(exc, OSError) and exc.errno in _NO_ROOM


def _write_all(fd: int, chunks: Iterable[bytes | memoryview]) -> None:
    """Write ``chunks`` to ``fd`` (in a worker thread: os.write releases the GIL)."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


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
            if exc.errno in _NO_ROOM:
                raise _no_room(exc) from None
            if self._prefix == _TEMP_PREFIX and exc.errno in _UNUSABLE:
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
                if exc.errno in _NO_ROOM:
                    raise _no_room(exc) from None
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
            _unlink(self.path)


async def _hash_after(
    previous: asyncio.Future[Any] | None, digest: Any, batch: list[bytes]
) -> None:
    """Hash ``batch`` in a worker thread once the batch before it is hashed."""
    if previous is not None:
        await asyncio.wait([previous])
        if previous.cancelled() or previous.exception() is not None:
            return  # the upload failed or was dropped: its digest is moot
    await asyncio.get_running_loop().run_in_executor(None, _hash_batch, digest, batch)


class UploadedFile:
    """A file of a form read by :func:`read_form`.

    Small files stay in memory (up to ``spool_max_size``), larger ones in a temporary
    file in ``tmp_dir``. The temporary file is removed when the request ends (with
    ``setup()``), when :meth:`aclose` is called, or when the object is garbage-collected,
    whichever comes first, unless :meth:`save` moved it into place.
    """

    __slots__ = (
        "__weakref__",
        "_data",
        "_finalizer",
        "_owned",
        "_path",
        "content_type",
        "filename",
        "headers",
        "name",
        "raw_filename",
        "sha256",
        "size",
    )

    def __init__(
        self,
        *,
        name: str,
        filename: str,
        raw_filename: str | None,
        content_type: str,
        headers: CIMultiDictProxy[str],
        size: int,
        sha256: str,
        data: bytes | None = None,
        path: str | None = None,
    ) -> None:
        if (data is None) == (path is None):
            raise TypeError("an UploadedFile has either data or a path")
        self.name = name
        #: The client's filename made safe by :func:`safe_filename`.
        self.filename = filename
        #: The filename as the client sent it, not sanitised: only the escapes browsers
        #: write (``%22``, ``%0D``, ``%0A``) are undone, or ``filename*`` is decoded when
        #: no plain ``filename`` was sent.
        self.raw_filename = raw_filename
        self.content_type = content_type
        self.headers = headers
        self.size = size
        #: Hex SHA-256 of the file's bytes, computed while they streamed in.
        self.sha256 = sha256
        self._data = data
        self._path = path
        self._owned = path is not None
        self._finalizer: weakref.finalize[Any, Any] | None = (
            weakref.finalize(self, _unlink, path) if path is not None else None
        )

    def __repr__(self) -> str:
        where = "memory" if self._data is not None else self._path
        return (
            f"<UploadedFile {self.name!r} filename={self.filename!r} "
            f"content_type={self.content_type!r} size={self.size} in {where}>"
        )

    @property
    def in_memory(self) -> bool:
        """Whether the bytes are held in memory (no file on disk)."""
        return self._data is not None

    @property
    def path(self) -> Path | None:
        """The file on disk: the temporary file, or where :meth:`save` put it."""
        return Path(self._path) if self._path is not None else None

    @property
    def saved(self) -> bool:
        """Whether :meth:`save` moved or copied the file into place."""
        return self._path is not None and not self._owned

    def _check_open(self) -> None:
        if self._data is None and self._path is None:
            raise RuntimeError(f"the upload {self.name!r} was closed")

    async def read(self) -> bytes:
        """All the file's bytes (read in a worker thread when they are on disk)."""
        self._check_open()
        if self._data is not None:
            return self._data
        assert self._path is not None
        return await asyncio.to_thread(Path(self._path).read_bytes)

    def open(self) -> BinaryIO:
        """A binary file object reading the file from its start (close it when done)."""
        self._check_open()
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._path is not None
        return open(self._path, "rb")

    async def save(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, unique: bool = False
    ) -> Path:
        """Put the file at ``path`` and keep it there; return where it is.

        ``path`` is the file to create, or an existing directory to create
        ``path/<filename>`` in (the safe filename). The directory must exist. An existing
        file is never replaced unless ``overwrite=True``; ``unique=True`` picks a free name
        instead (``report (1).pdf``). The temporary file is moved when it is on the same
        filesystem and copied otherwise; either way the file appears atomically, complete
        or not at all, with the permissions a new file gets.

        Raises:
            FileExistsError: the file exists and neither ``overwrite`` nor ``unique`` is set.
            FileNotFoundError: the directory to save into does not exist.
            InsufficientStorage: the filesystem is full.
        """
        from . import saving

        saving.check_options(overwrite, unique)
        self._check_open()
        try:
            return await asyncio.to_thread(self._save, path, overwrite, unique)
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                raise _no_room(exc) from None
            raise

    def _save(self, path: str | os.PathLike[str], overwrite: bool, unique: bool) -> Path:
        from . import saving

        dest = saving.target(path, self.filename)
        saving.refuse_taken(dest, overwrite, unique)
        data, current = self._data, self._path
        if data is not None:
            return saving.publish_beside(
                dest, lambda fd: _write_all(fd, [data]), overwrite=overwrite, unique=unique
            )
        assert current is not None
        if self._owned:
            try:
                final = saving.publish(current, dest, overwrite=overwrite, unique=unique)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
            else:
                self._path = os.fspath(final)
                self._owned = False
                assert self._finalizer is not None
                self._finalizer.detach()
                return final
        with open(current, "rb") as src:
            return saving.publish_beside(
                dest, lambda fd: _copy(src.fileno(), fd), overwrite=overwrite, unique=unique
            )

    def discard(self) -> None:
        """Like :meth:`aclose`, removing the temporary file in this thread."""
        self._data = None
        if self._owned and self._finalizer is not None:
            self._finalizer()
        if self._owned:
            self._path = None

    async def aclose(self) -> None:
        """Remove the temporary file now (a saved file stays) and drop the bytes."""
        self._data = None
        if self._owned and self._finalizer is not None:
            await asyncio.to_thread(self._finalizer)
        if self._owned:
            self._path = None


def _copy(src: int, dst: int) -> None:
    while True:
        block = os.read(src, 1 << 20)
        if not block:
            return
        _write_all(dst, [block])
