"""Saving an upload: one meaning for every ``save()``, and never over an existing file unless asked.

``save(path)`` on an :class:`~aiohttp_helpers.UploadedFile` or a
:class:`~aiohttp_helpers.BodyPart` puts the bytes at ``path``, or at ``path/<safe
filename>`` when ``path`` is a directory, and returns where they are. The directory must
exist. The file appears complete or not at all: the bytes are written to a temporary file
beside it, which is then given its name with :func:`os.link` (which fails, rather than
replaces, when the name is taken: no window between a check and a rename), or with
:func:`os.replace` when ``overwrite=True``. With ``unique=True`` a taken name becomes
``name (1).ext``, ``name (2).ext``...
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from .._words import counted
from ..errors import InsufficientStorage
from .fs import file_mode, no_room
from .spool import Spool

__all__ = ["numbered", "publish", "save_stream", "target", "write_beside"]

#: Names ``unique=True`` tries before it gives up with FileExistsError.
MAX_UNIQUE = 1000
# Filesystems without hard links (FAT, exFAT, some network mounts) say so with these.
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})
_NO_DIRECTORY = "the directory to save into does not exist"
_EXTENSION = re.compile(r"\.[0-9A-Za-z]{1,5}")


def check_options(overwrite: bool, unique: bool) -> None:
    if overwrite and unique:
        raise ValueError("save(): overwrite=True and unique=True contradict each other")


def target(path: str | os.PathLike[str], filename: str) -> Path:
    """Where ``save(path)`` puts a file named ``filename`` (run in a worker thread).

    Raises:
        FileNotFoundError: ``path`` is not a directory and its parent does not exist, or
            ``path`` ends with a slash and is not a directory.
        NotADirectoryError: ``path``'s parent is not a directory.
    """
    dest = Path(path)
    if dest.is_dir():
        return dest / filename
    if os.fspath(path).endswith(("/", os.sep)):
        # "uploads/" names a directory, which is not there: never a file called uploads.
        raise FileNotFoundError(
            errno.ENOENT, "the directory to save into does not exist", str(dest)
        )
    parent = dest.parent
    if not parent.is_dir():
        if parent.exists():
            raise NotADirectoryError(errno.ENOTDIR, "cannot save into a non-directory", str(parent))
        raise FileNotFoundError(errno.ENOENT, _NO_DIRECTORY, str(parent))
    return dest


def numbered(dest: Path, n: int) -> Path:
    """``report.pdf`` -> ``report (n).pdf``; ``archive.tar.gz`` -> ``archive (n).tar.gz``."""
    name = dest.name
    stem, ext = name, ""
    for _ in range(2):
        dot = stem.rfind(".")
        if dot <= 0 or not _EXTENSION.fullmatch(stem[dot:]):
            break
        stem, ext = stem[:dot], stem[dot:] + ext
    mark = f" ({n})"
    room = 255 - len((mark + ext).encode("utf-8"))
    stem = stem.encode("utf-8")[: max(room, 1)].decode("utf-8", "ignore")
    return dest.with_name(stem + mark + ext)


def _take_name(tmp: str, dest: Path) -> None:
    """Give ``tmp`` the name ``dest`` unless something already has it (FileExistsError)."""
    try:
        os.link(tmp, dest)
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        # No hard links here: reserve the name with an exclusive create, then move the
        # file over the placeholder, which is ours.
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.unlink(dest)
            raise
        return
    os.unlink(tmp)


def publish(tmp: str, dest: Path, *, overwrite: bool = False, unique: bool = False) -> Path:
    """Give the complete file ``tmp`` its name ``dest`` (same filesystem) and return it.

    Raises:
        FileExistsError: ``dest`` exists (and neither ``overwrite`` nor ``unique`` is set,
            or ``unique`` found no free name).
        OSError: ``errno.EXDEV`` when ``tmp`` is on another filesystem (``tmp`` is kept).
    """
    os.chmod(tmp, file_mode())
    if overwrite:
        os.replace(tmp, dest)
        return dest
    candidate = dest
    for n in range(1, MAX_UNIQUE + 1):
        try:
            _take_name(tmp, candidate)
        except FileExistsError:
            if not unique:
                raise FileExistsError(
                    errno.EEXIST, "will not replace an existing file", str(candidate)
                ) from None
            candidate = numbered(dest, n)
            continue
        return candidate
    tries = counted(MAX_UNIQUE, "try", "tries")
    raise FileExistsError(errno.EEXIST, f"no free name after {tries}", str(dest))


def refuse_taken(dest: Path, overwrite: bool, unique: bool) -> None:
    """Fail early (before the bytes are written) when ``dest`` is taken."""
    if not overwrite and not unique and os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, "will not replace an existing file", str(dest))


def write_beside(dest: Path, source: Callable[[int], None]) -> str:
    """A complete temporary file beside ``dest``, written by ``source(fd)``: its path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:40]}.", suffix=".tmp", dir=dest.parent)
    try:
        try:
            source(fd)
        finally:
            os.close(fd)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def publish_beside(
    dest: Path, source: Callable[[int], None], *, overwrite: bool, unique: bool
) -> Path:
    """Write a temporary file beside ``dest`` with ``source(fd)`` and publish it."""
    tmp = write_beside(dest, source)
    try:
        return publish(tmp, dest, overwrite=overwrite, unique=unique)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


async def save_stream(
    next_chunk: Callable[[], Awaitable[bytes]],
    first: bytes,
    path: str | os.PathLike[str],
    filename: str,
    *,
    overwrite: bool,
    unique: bool,
) -> Path:
    """Stream ``first``, then ``next_chunk()`` until ``b""``, into the file ``save(path)`` names."""
    check_options(overwrite, unique)
    dest = await asyncio.to_thread(target, path, filename)
    await asyncio.to_thread(refuse_taken, dest, overwrite, unique)
    # No SHA-256: part.save() returns only the path, so nobody would read the digest.
    spool = Spool(0, os.fspath(dest.parent), prefix=f".{dest.name[:40]}.", sha256=False)
    try:
        if first:
            await spool.write(first)
        while chunk := await next_chunk():
            await spool.write(chunk)
        _, tmp, _ = await spool.finish()
        if tmp is None:
            # Nothing came: an empty file.
            return await asyncio.to_thread(
                publish_beside, dest, lambda fd: None, overwrite=overwrite, unique=unique
            )
        return await asyncio.to_thread(publish, tmp, dest, overwrite=overwrite, unique=unique)
    except BaseException as exc:
        spool.discard()
        if no_room(exc):
            raise InsufficientStorage("no room left to store the upload") from None
        raise
