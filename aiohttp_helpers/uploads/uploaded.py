"""``UploadedFile``: a file of a form, in memory or in a temporary file until it is saved."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import weakref
from pathlib import Path
from typing import Any, BinaryIO

from multidict import CIMultiDictProxy

from . import saving
from .fs import NO_ROOM, copy_fd, no_room_error, unlink_quietly, write_all

__all__ = ["UploadedFile"]


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
            weakref.finalize(self, unlink_quietly, path) if path is not None else None
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
        saving.check_options(overwrite, unique)
        self._check_open()
        try:
            return await asyncio.to_thread(self._save, path, overwrite, unique)
        except OSError as exc:
            if exc.errno in NO_ROOM:
                raise no_room_error(exc) from None
            raise

    def _save(self, path: str | os.PathLike[str], overwrite: bool, unique: bool) -> Path:
        dest = saving.target(path, self.filename)
        saving.refuse_taken(dest, overwrite, unique)
        data, current = self._data, self._path
        if data is not None:
            return saving.publish_beside(
                dest, lambda fd: write_all(fd, [data]), overwrite=overwrite, unique=unique
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
                dest, lambda fd: copy_fd(src.fileno(), fd), overwrite=overwrite, unique=unique
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
