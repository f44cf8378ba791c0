"""Appending one request body to an upload: locked, checked, streamed, committed, sniffed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config import UploadLimits
from ..errors import FileTooLarge, HelpersError, RequestTimeout, TypeNotAllowed
from ..uploads.sniff import SNIFF_BYTES, sniff, sniffed_allowed, type_allowed
from .body import Appender, BodyTimer, read_into
from .errors import (
    ChecksumMismatch,
    InconsistentLength,
    UploadAlreadyComplete,
    UploadConflict,
    UploadGone,
    UploadNotFound,
)
from .handover import finish, hand_over
from .protocol import Checksum
from .storage import UploadState

if TYPE_CHECKING:
    from .registration import ResumableUploads

__all__ = ["append", "check_type"]

#: Running SHA-256 states kept per process (one small object per upload in progress).
MAX_RUNNING_HASHES = 4096
#: What a completed upload hands over: its final state and where its bytes are.
_Done = tuple[UploadState, Path]


def check_type(limits: UploadLimits, field: str, declared: str) -> tuple[str, ...] | None:
    """The allowed patterns that apply to ``field``, after checking ``declared`` against them."""
    allowed = limits.allowed_types
    if allowed is None:
        return None
    patterns = allowed.get(field)
    if patterns is None:
        patterns = allowed.get("*")
    if patterns is None:
        return None
    if not type_allowed(declared, patterns):
        raise TypeNotAllowed(field, declared, tuple(patterns))
    return tuple(patterns)


async def append(
    uploads: ResumableUploads,
    request: web.Request,
    upload_id: str,
    *,
    offset: int,
    checksum: Checksum | None,
    new_length: int | None,
    complete: bool | None,
) -> UploadState:
    """Append the request body to the upload at ``offset``; its new state.

    A body that completes the upload hands it over (``on_upload``) before this returns.
    """
    limits = uploads._limits(request)
    store = uploads.store
    fd = await asyncio.to_thread(store.lock, upload_id)
    if fd is None:
        # No bytes file: no such upload, or it is complete (handed over).
        state = await uploads._current(upload_id)
        if state.offset != offset:
            raise UploadConflict(state.offset, offset)
        if request.content_length == 0 or not request.body_exists:
            return state
        raise UploadAlreadyComplete()
    handed: _Done | None = None
    try:
        found = await asyncio.to_thread(store.read, upload_id)
        if found is None:
            raise UploadNotFound()
        state = found
        if state.expires_at(uploads.expires) < time.time():
            await asyncio.to_thread(store.remove, upload_id, state.client)
            raise UploadGone()
        await asyncio.to_thread(store.cut, fd, state.offset)
        if offset != state.offset:
            raise UploadConflict(state.offset, offset)
        if new_length is not None:
            _set_length(uploads, state, new_length, limits)
        handed = await _write_body(uploads, request, fd, state, checksum, complete, limits)
    finally:
        await asyncio.to_thread(store.unlock, fd)
    if handed is not None:
        await hand_over(request, *handed, field=uploads.field, signals=uploads.signals)
        return handed[0]
    return state


def _set_length(
    uploads: ResumableUploads, state: UploadState, new_length: int, limits: UploadLimits
) -> None:
    """A deferred length given now (tus), or the same length again."""
    if state.length is None:
        if new_length < state.offset:
            raise InconsistentLength(
                f"Upload-Length {new_length} is below the offset {state.offset}"
            )
        if new_length > limits.max_file_size:
            raise FileTooLarge(uploads.field, limits.max_file_size)
        state.length = new_length
    elif new_length != state.length:
        raise InconsistentLength(
            f"Upload-Length {new_length} differs from the upload's {state.length}"
        )


async def _write_body(
    uploads: ResumableUploads,
    request: web.Request,
    fd: int,
    state: UploadState,
    checksum: Checksum | None,
    complete: bool | None,
    limits: UploadLimits,
) -> _Done | None:
    """Stream the body into the locked upload and commit it; what to hand over, if done."""
    start = state.offset
    limit = state.length if state.length is not None else limits.max_file_size
    room = limit - start
    declared_size = request.content_length
    if declared_size is not None and declared_size > room:
        raise _too_long(uploads, state, limits)
    running = uploads._running_hash(state)
    checker = checksum.new() if checksum is not None else None
    hashers = [h for h in (running, checker) if h is not None]
    appender = Appender(fd, start, hashers)
    timer = (
        BodyTimer(request.content, limits.idle_timeout, limits.min_rate)
        if limits.idle_timeout is not None
        else None
    )
    outcome: BaseException | None = None
    keep = True
    try:
        if not await read_into(request.content, appender, room=room, timer=timer):
            raise _too_long(uploads, state, limits)
    except (ConnectionResetError, RequestTimeout, asyncio.CancelledError) as exc:
        # Resumable: what arrived before the client went away (or stalled, or the
        # server stops) is kept, unless a checksum covers the whole body.
        outcome, keep = exc, checksum is None
    except BaseException as exc:
        outcome, keep = exc, False
    finally:
        if timer is not None:
            timer.close()
    if outcome is not None:
        # Upload-Complete speaks of the whole request body: a body cut short (or
        # stalled) completes nothing, whatever the header said.
        complete = None
    # Shielded: a cancelled request still commits (or discards) and so leaves the
    # bytes file and its state consistent before the lock is released.
    commit = asyncio.ensure_future(
        _commit(uploads, fd, state, appender, keep, checksum, checker, running, complete, limits)
    )
    try:
        handed = await asyncio.shield(commit)
    except asyncio.CancelledError:
        await asyncio.wait([commit])
        if not commit.cancelled() and commit.exception() is None:
            result = commit.result()
            if result is not None:
                # Nobody will receive it: the request is gone.
                with contextlib.suppress(OSError):
                    os.unlink(result[1])
        raise
    if outcome is not None:
        raise outcome
    return handed


def _too_long(uploads: ResumableUploads, state: UploadState, limits: UploadLimits) -> HelpersError:
    if state.length is not None:
        return InconsistentLength(f"the body goes past the upload's length of {state.length}")
    return FileTooLarge(uploads.field, limits.max_file_size)


async def _commit(
    uploads: ResumableUploads,
    fd: int,
    state: UploadState,
    appender: Appender,
    keep: bool,
    checksum: Checksum | None,
    checker: Any,
    running: Any,
    complete: bool | None,
    limits: UploadLimits,
) -> _Done | None:
    store = uploads.store
    start = state.offset
    if keep:
        try:
            await appender.finish()
        except BaseException:
            await appender.settle()
            await asyncio.to_thread(store.cut, fd, start)
            raise
    else:
        await appender.settle()
    if keep and checksum is not None and checker.digest() != checksum.digest:
        keep = False
        error: HelpersError | None = ChecksumMismatch(checksum.algorithm)
    else:
        error = None
    new_offset = start + appender.written
    if keep and complete is not None:
        if complete and state.length is None:
            state.length = new_offset
        elif complete and state.length != new_offset:
            keep = False
            error = InconsistentLength(
                f"Upload-Complete says the upload ends at {new_offset}, "
                f"its length is {state.length}"
            )
    if not keep:
        await asyncio.to_thread(store.cut, fd, start)
        if error is not None:
            raise error
        return None
    state.offset = new_offset
    state.updated = time.time()
    done = state.length is not None and state.offset == state.length
    if start < SNIFF_BYTES and (state.offset >= SNIFF_BYTES or done):
        await _sniff(uploads, fd, state, limits)
    if not done:
        await asyncio.to_thread(store.write, state)
        if running is not None:
            kept = uploads._running
            kept[state.id] = (state.offset, running)
            while len(kept) > MAX_RUNNING_HASHES:
                kept.popitem(last=False)
        return None
    return state, await finish(store, fd, state, running)


async def _sniff(
    uploads: ResumableUploads, fd: int, state: UploadState, limits: UploadLimits
) -> None:
    """Refuse (and remove) an upload whose first bytes are not of its declared type."""
    field = uploads.field
    sniffed_fields = limits.sniff_types
    if not sniffed_fields or (field not in sniffed_fields and "*" not in sniffed_fields):
        return
    patterns = check_type(limits, field, state.media_type)
    if patterns is None:
        return
    head = await asyncio.to_thread(uploads.store.head, fd, SNIFF_BYTES)
    found = sniff(head)
    if found is None or not sniffed_allowed(found, state.media_type, patterns):
        # The content is not what the upload claims: it will never be accepted.
        await asyncio.to_thread(uploads.store.remove, state.id, state.client)
        uploads._running.pop(state.id, None)
        shown = f"{state.media_type} (content {'not recognised' if found is None else found})"
        raise TypeNotAllowed(field, shown, patterns)
