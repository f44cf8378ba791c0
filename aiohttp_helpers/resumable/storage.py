"""Partial uploads on disk: the bytes, a JSON state file beside them, and a file lock.

Each upload ``<id>`` is ``<id>.part`` (the bytes received so far) and ``<id>.json`` (its
offset, length, metadata, times) in one directory. The state file is the truth: it is
replaced atomically after the bytes it counts are written, and a ``.part`` file longer
than its recorded offset (a crash mid-write, a discarded chunk) is cut back to it. A
writer holds ``flock(LOCK_EX)`` on the ``.part`` file, so two requests (in one process or
in several worker processes on the same host) never write one upload at once. A
completed upload's bytes move to ``<id>.done`` for the hand-over, and its state stays
(marked complete) until it expires, so that a client that lost the last answer learns
that the upload is complete. ``clients/<tag>/<id>`` marks the unfinished uploads of one
client, for the per-client cap. Every function here blocks: call them in a thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..uploads.fs import no_room, no_room_error
from .errors import UploadLocked

__all__ = ["Store", "UploadState", "client_tag", "pwrite_all", "valid_id"]

_ID = re.compile(r"[0-9a-f]{32}")
STATE_VERSION = 1


def valid_id(upload_id: str) -> bool:
    """Whether ``upload_id`` is one this store could have made (32 lowercase hex digits)."""
    return _ID.fullmatch(upload_id) is not None


def client_tag(remote: str | None) -> str:
    """The per-client bucket: a hash of the peer address (not the address itself, on disk)."""
    return hashlib.sha256((remote or "unknown").encode()).hexdigest()[:24]


@dataclass(slots=True)
class UploadState:
    """What is known about one upload, as stored in its JSON file."""

    id: str
    length: int | None
    metadata: dict[str, str]
    client: str
    created: float
    updated: float
    offset: int = 0
    complete: bool = False
    sha256: str | None = None
    media_type: str = "application/octet-stream"
    extra: dict[str, Any] = field(default_factory=dict)

    def expires_at(self, expires: float) -> float:
        """When the upload expires: ``expires`` seconds after its last change."""
        return self.updated + expires

    def to_json(self) -> bytes:
        doc = dataclasses.asdict(self)
        doc["v"] = STATE_VERSION
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> UploadState:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.pop("v", None) != STATE_VERSION:
            raise ValueError("not an upload state of this version")
        return cls(**doc)


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class Store:
    """The uploads in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.clients = self.directory / "clients"

    def ensure(self) -> None:
        """Create the directory (and the per-client marks) if needed."""
        self.clients.mkdir(parents=True, exist_ok=True)

    def data_path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.part"

    def state_path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.json"

    def done_path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.done"

    def _mark(self, state: UploadState) -> Path:
        return self.clients / state.client / state.id

    # -- state --------------------------------------------------------------------------

    def read(self, upload_id: str) -> UploadState | None:
        """The upload's state, or ``None`` when there is no such upload."""
        try:
            data = self.state_path(upload_id).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return UploadState.from_json(data)
        except (ValueError, TypeError):
            # A state file this version cannot read is no upload it can resume.
            return None

    def write(self, state: UploadState) -> None:
        """Replace the upload's state file atomically."""
        dest = self.state_path(state.id)
        fd, tmp = tempfile.mkstemp(prefix=f".{state.id}.", suffix=".tmp", dir=self.directory)
        try:
            try:
                pwrite_all(fd, state.to_json(), 0)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if no_room(exc):
                raise no_room_error(exc) from None
            raise

    def create(self, state: UploadState) -> None:
        """Create an empty upload: its bytes file, its state, its client mark."""
        try:
            fd = os.open(self.data_path(state.id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
            self.write(state)
            mark = self._mark(state)
            mark.parent.mkdir(exist_ok=True)
            mark.touch()
        except OSError as exc:
            self.remove(state.id, state.client)
            if no_room(exc):
                raise no_room_error(exc) from None
            raise

    def count(self, client: str) -> int:
        """How many unfinished uploads ``client`` has."""
        try:
            return len(os.listdir(self.clients / client))
        except FileNotFoundError:
            return 0

    # -- locking ------------------------------------------------------------------------

    def _open_locked(self, upload_id: str, mode: int, lock: int) -> int | None:
        """Open the upload's bytes and take ``lock`` without waiting; ``None``: no such upload.

        Raises:
            BlockingIOError: another request holds a lock that conflicts.
        """
        try:
            fd = os.open(self.data_path(upload_id), mode)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, lock | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def lock(self, upload_id: str) -> int | None:
        """Open and lock the upload's bytes; ``None`` when there is no such upload.

        Raises:
            UploadLocked: another request holds the lock.
        """
        try:
            return self._open_locked(upload_id, os.O_RDWR, fcntl.LOCK_EX)
        except BlockingIOError:
            raise UploadLocked() from None

    def writing(self, upload_id: str) -> bool:
        """Whether a request holds the upload's write lock now (never blocks)."""
        try:
            fd = self._open_locked(upload_id, os.O_RDONLY, fcntl.LOCK_SH)
        except BlockingIOError:
            return True
        if fd is not None:
            os.close(fd)  # also releases the shared lock
        return False

    @staticmethod
    def unlock(fd: int) -> None:
        """Release the lock (closing the descriptor releases it)."""
        os.close(fd)

    @staticmethod
    def cut(fd: int, offset: int) -> None:
        """Cut the bytes back to ``offset`` if they are longer (a crash, a refused chunk)."""
        if os.fstat(fd).st_size != offset:
            os.ftruncate(fd, offset)

    @staticmethod
    def head(fd: int, size: int) -> bytes:
        """The first ``size`` bytes."""
        return os.pread(fd, size, 0)

    @staticmethod
    def digest(fd: int, length: int) -> str:
        """SHA-256 of the first ``length`` bytes (when no running hash covers them)."""
        digest = hashlib.sha256()
        offset = 0
        while offset < length:
            block = os.pread(fd, min(1 << 20, length - offset), offset)
            if not block:
                break
            digest.update(block)
            offset += len(block)
        return digest.hexdigest()

    # -- completion and removal ---------------------------------------------------------

    def complete(self, state: UploadState) -> Path:
        """Mark the (locked) upload complete; its bytes move to the hand-over file."""
        done = self.done_path(state.id)
        data = self.data_path(state.id)
        os.replace(data, done)
        state.complete = True
        try:
            self.write(state)
        except BaseException:
            # The state on disk still says incomplete (a full disk, say): put the bytes
            # back where that state expects them, so the upload can still be resumed.
            state.complete = False
            os.replace(done, data)
            raise
        with contextlib.suppress(FileNotFoundError):
            self._mark(state).unlink()
        return done

    def remove(self, upload_id: str, client: str | None = None) -> None:
        """Remove the upload's bytes, state and client mark.

        The hand-over file (``.done``) belongs to the ``on_upload`` hand-over, which removes
        it unless a receiver saved it; one a dead process left is swept when old.
        """
        paths = [self.data_path(upload_id), self.state_path(upload_id)]
        if client is not None:
            paths.append(self.clients / client / upload_id)
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def ids(self) -> Iterator[str]:
        """The ids of every upload with a state file."""
        with os.scandir(self.directory) as entries:
            for entry in entries:
                stem, dot, ext = entry.name.partition(".")
                if dot and ext == "json" and valid_id(stem):
                    yield stem

    def _leftover(self, name: str) -> bool:
        """Whether ``name`` is something of a dead process, to remove once it is old."""
        if name.endswith(".done"):
            return valid_id(name[:-5])
        if name.startswith(".") and name.endswith(".tmp"):
            return valid_id(name[1:33])
        if name.endswith(".part"):
            return valid_id(name[:-5]) and not self.state_path(name[:-5]).exists()
        return False

    def sweep(self, expires: float, now: float | None = None) -> int:
        """Remove the uploads idle for ``expires`` seconds (those not locked); how many."""
        now = time.time() if now is None else now
        removed = 0
        for upload_id in list(self.ids()):
            state = self.read(upload_id)
            if state is None:
                # Unreadable or gone in between: remove what is left once it is old enough.
                path = self.state_path(upload_id)
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime + expires < now:
                        self.remove(upload_id)
                        removed += 1
                continue
            if state.expires_at(expires) > now:
                continue
            try:
                fd = self.lock(upload_id)
            except UploadLocked:
                continue  # being written right now: not idle after all
            try:
                self.remove(upload_id, state.client)
            finally:
                if fd is not None:
                    self.unlock(fd)
            removed += 1
        # Leftovers of a process that died: a hand-over file, a state file half written
        # (``.<id>.*.tmp``), the bytes of an upload whose state was never written.
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if not self._leftover(entry.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime + expires < now:
                        os.unlink(entry.path)
        return removed
