"""Filesystem helpers of uploads: file modes, "no room" errors, writing and copying descriptors."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from collections.abc import Iterable

from ..errors import InsufficientStorage

__all__ = [
    "NO_ROOM",
    "UNUSABLE",
    "copy_fd",
    "file_mode",
    "no_room",
    "no_room_error",
    "unlink_quietly",
    "write_all",
]

# The filesystem is full, the quota used up, or the file may grow no larger (the
# filesystem's own size limit, or the process's RLIMIT_FSIZE): no room for the upload.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# A directory is gone, not a directory, or not writable.
UNUSABLE = (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EROFS)


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


def unlink_quietly(path: str) -> None:
    """Remove ``path``; gone already is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def no_room_error(exc: OSError) -> InsufficientStorage:
    """The 507 answer for ``exc``, an error that :func:`no_room` recognises."""
    return InsufficientStorage("no room left to store the upload")


def no_room(exc: BaseException) -> bool:
    """Whether ``exc`` says there is no room: filesystem full, quota used up, file too big."""
    return isinstance(exc, OSError) and exc.errno in NO_ROOM


def write_all(fd: int, chunks: Iterable[bytes | memoryview]) -> None:
    """Write ``chunks`` to ``fd`` (in a worker thread: os.write releases the GIL)."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def copy_fd(src: int, dst: int) -> None:
    """Copy the rest of ``src`` to ``dst`` (in a worker thread)."""
    while True:
        block = os.read(src, 1 << 20)
        if not block:
            return
        write_all(dst, [block])
