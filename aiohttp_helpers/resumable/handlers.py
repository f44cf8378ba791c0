"""``add_resumable_uploads()``: tus 1.0 and the IETF resumable-upload draft on one set of routes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import HttpVersion11, web
from multidict import CIMultiDict, CIMultiDictProxy

from ..config import UploadLimits
from ..errors import (
    FileTooLarge,
    HelpersError,
    RequestTimeout,
    TypeNotAllowed,
    UnsupportedMediaType,
)
from ..keys import HELPERS_KEY
from ..plugin import Helpers
from ..problem import error_response
from ..scope import request_scope
from ..uploads.filenames import safe_filename
from ..uploads.files import UploadedFile
from ..uploads.limits import limits_for
from ..uploads.sniff import SNIFF_BYTES, sniff, sniffed_allowed, type_allowed
from .body import Appender, BodyTimer, read_into
from .errors import (
    ChecksumMismatch,
    InconsistentLength,
    InvalidUploadHeader,
    TooManyUploads,
    UploadAlreadyComplete,
    UploadConflict,
    UploadGone,
    UploadNotFound,
    VersionNotSupported,
)
from .protocol import (
    CHECKSUM_ALGORITHMS,
    DRAFT_INTEROP_VERSIONS,
    PARTIAL_UPLOAD,
    TUS_EXTENSIONS,
    TUS_OFFSET_STREAM,
    TUS_VERSION,
    Checksum,
    Speaks,
    encode_metadata,
    parse_checksum,
    parse_metadata,
    parse_offset,
    parse_sf_boolean,
    protocol_of,
)
from .storage import Store, UploadState, valid_id

__all__ = ["ResumableUploads", "add_resumable_uploads"]

#: Seconds a HEAD waits for a write in progress to be stored before it answers.
HEAD_SETTLE = 1.0

log = logging.getLogger("aiohttp_helpers.resumable")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ProtocolHandler = Callable[[web.Request, Speaks], Awaitable[web.StreamResponse]]
#: Running SHA-256 states kept per process (one small object per upload in progress).
_MAX_RUNNING_HASHES = 4096


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def _client_tag(request: web.Request) -> str:
    """The per-client bucket: a hash of the peer address (not the address itself, on disk)."""
    return hashlib.sha256((request.remote or "unknown").encode()).hexdigest()[:24]


class ResumableUploads:
    """Resumable uploads (tus 1.0 and the IETF draft) under one path of one app.

    Made by :func:`add_resumable_uploads`. ``path`` is the creation URL; each upload
    lives at ``path/<id>``. A completed upload reaches ``on_upload`` receivers as an
    :class:`~aiohttp_helpers.UploadedFile` and is removed after the request that completed
    it, unless a receiver saved it.
    """

    def __init__(
        self,
        helpers: Helpers,
        path: str,
        *,
        directory: str | os.PathLike[str],
        limits: UploadLimits | None,
        expires: float,
        field: str,
        max_uploads_per_client: int | None,
        max_metadata_size: int,
        max_metadata_pairs: int,
        sweep_interval: float,
        interim_responses: bool = True,
    ) -> None:
        self.helpers = helpers
        self.interim_responses = interim_responses
        self.path = path
        self.store = Store(directory)
        self.limits = limits
        self.expires = float(expires)
        self.field = field
        self.max_uploads_per_client = max_uploads_per_client
        self.max_metadata_size = max_metadata_size
        self.max_metadata_pairs = max_metadata_pairs
        self.sweep_interval = float(sweep_interval)
        self._running: collections.OrderedDict[str, tuple[int, Any]] = collections.OrderedDict()
        self._item: web.Resource | None = None

    @property
    def directory(self) -> Path:
        """Where partial uploads and their state live."""
        return self.store.directory

    def __repr__(self) -> str:
        return f"<ResumableUploads {self.path!r} in {str(self.directory)!r}>"

    # -- public operations --------------------------------------------------------------

    async def sweep(self) -> int:
        """Remove the uploads idle for ``expires`` seconds; return how many were removed."""
        removed = await asyncio.to_thread(self.store.sweep, self.expires)
        if removed:
            log.info("removed %d expired uploads from %s", removed, self.directory)
        return removed

    async def get(self, upload_id: str) -> UploadState | None:
        """The stored state of an upload, or ``None``."""
        if not valid_id(upload_id):
            return None
        return await asyncio.to_thread(self.store.read, upload_id)

    async def remove(self, upload_id: str) -> bool:
        """Terminate an upload now; ``False`` if there was none.

        Raises:
            UploadLocked: a request is writing to it.
        """
        if not valid_id(upload_id):
            return False
        return await asyncio.to_thread(self._terminate, upload_id)

    def url_for(self, upload_id: str) -> str:
        """The path of an upload (the ``Location`` a creation answers with)."""
        assert self._item is not None
        return str(self._item.url_for(upload_id=upload_id))

    # -- wiring -------------------------------------------------------------------------

    def _install(self, app: web.Application) -> None:
        router = app.router
        base = router.add_resource(self.path)
        base.add_route("POST", self._wrap(self._create))
        base.add_route("OPTIONS", self._options)
        item = router.add_resource(self.path.rstrip("/") + "/{upload_id}")
        item.add_route("HEAD", self._wrap(self._head))
        item.add_route("PATCH", self._wrap(self._patch))
        item.add_route("DELETE", self._wrap(self._delete))
        item.add_route("POST", self._wrap(self._override))
        item.add_route("OPTIONS", self._options)
        self._item = item
        self.helpers.lifecycle.context(self._lifetime, name=f"resumable uploads {self.path}")

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except OSError:
                log.exception("sweeping %s failed", self.directory)

    @contextlib.asynccontextmanager
    async def _lifetime_cm(self) -> AsyncIterator[None]:
        await asyncio.to_thread(self.store.ensure)
        await self.sweep()
        task = asyncio.create_task(self._sweeper(), name=f"resumable sweeper {self.path}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])

    def _lifetime(self, app: web.Application) -> contextlib.AbstractAsyncContextManager[None]:
        return self._lifetime_cm()

    def _wrap(
        self, handler: Callable[[web.Request, Speaks], Awaitable[web.StreamResponse]]
    ) -> _Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            speaks: Speaks | None = None
            try:
                speaks = protocol_of(request.headers)
                return await handler(request, speaks)
            except HelpersError as exc:
                log.debug("%s %s answered %d: %s", request.method, request.path, exc.status, exc)
                return self._error(request, speaks, exc)

        return run

    def _error(
        self, request: web.Request, speaks: Speaks | None, exc: HelpersError
    ) -> web.Response:
        response = error_response(request, exc)  # with the headers the error carries
        if isinstance(exc, VersionNotSupported):
            response.headers["Tus-Version"] = TUS_VERSION
        self._protocol_headers(response, speaks)
        if not request.content.at_eof() and request.content_length != 0:
            # The body was not read: do not make the client wait while it is drained.
            response.force_close()
        return response

    def _protocol_headers(self, response: web.StreamResponse, speaks: Speaks | None) -> None:
        if speaks is None or not speaks.draft:
            response.headers["Tus-Resumable"] = TUS_VERSION
        else:
            response.headers["Upload-Draft-Interop-Version"] = str(speaks.interop)
        response.headers.setdefault("Cache-Control", "no-store")

    def _limits(self, request: web.Request) -> UploadLimits:
        return self.limits if self.limits is not None else limits_for(request)

    def _upload_limit(self, limits: UploadLimits) -> str:
        return f"max-size={limits.max_file_size}, expires={int(self.expires)}"

    # -- OPTIONS ------------------------------------------------------------------------

    async def _options(self, request: web.Request) -> web.StreamResponse:
        limits = self._limits(request)
        response = web.Response(status=204)
        response.headers.update(
            {
                "Tus-Resumable": TUS_VERSION,
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": ",".join(TUS_EXTENSIONS),
                "Tus-Max-Size": str(limits.max_file_size),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
                "Upload-Limit": self._upload_limit(limits),
                "Upload-Draft-Interop-Version": ", ".join(
                    str(v) for v in sorted(DRAFT_INTEROP_VERSIONS)
                ),
                "Cache-Control": "no-store",
            }
        )
        return response

    # -- creation -----------------------------------------------------------------------

    def _declared_type(self, request: web.Request, speaks: Speaks, metadata: dict[str, str]) -> str:
        declared = metadata.get("filetype") or metadata.get("type")
        if not declared and speaks.draft:
            content_type = request.content_type
            if content_type not in (PARTIAL_UPLOAD, TUS_OFFSET_STREAM, "application/octet-stream"):
                declared = content_type
        declared = (declared or "application/octet-stream").split(";", 1)[0].strip().lower()
        if declared.count("/") != 1 or len(declared) > 255:
            raise InvalidUploadHeader("Upload-Metadata", "filetype is not a media type")
        return declared

    def _check_type(self, limits: UploadLimits, declared: str) -> tuple[str, ...] | None:
        """The allowed patterns that apply, after checking ``declared`` against them."""
        allowed = limits.allowed_types
        if allowed is None:
            return None
        patterns = allowed.get(self.field)
        if patterns is None:
            patterns = allowed.get("*")
        if patterns is None:
            return None
        if not type_allowed(declared, patterns):
            raise TypeNotAllowed(self.field, declared, tuple(patterns))
        return tuple(patterns)

    async def _create(self, request: web.Request, speaks: Speaks) -> web.StreamResponse:
        limits = self._limits(request)
        headers = request.headers
        metadata = parse_metadata(
            headers.get("Upload-Metadata"),
            max_size=self.max_metadata_size,
            max_pairs=self.max_metadata_pairs,
        )
        length = parse_offset(headers, "Upload-Length", required=False)
        complete: bool | None = None
        if speaks.draft:
            complete = self._complete_flag(headers, speaks, required=True)
            with_body = True
        else:
            defer = headers.get("Upload-Defer-Length")
            if length is None and defer is None:
                raise InvalidUploadHeader("Upload-Length", "missing (or Upload-Defer-Length: 1)")
            if defer is not None and (defer.strip() != "1" or length is not None):
                raise InvalidUploadHeader("Upload-Defer-Length", "must be 1, without Upload-Length")
            with_body = request.content_type == TUS_OFFSET_STREAM and (
                request.content_length != 0 and request.body_exists
            )
            if not with_body and request.content_length and request.content_length > 0:
                raise UnsupportedMediaType(
                    f"a creation request with a body needs Content-Type {TUS_OFFSET_STREAM}"
                )
        if length is not None and length > limits.max_file_size:
            raise FileTooLarge(self.field, limits.max_file_size)
        declared_size = request.content_length if with_body else None
        if declared_size is not None:
            # Refused before the upload exists, rather than leaving an orphan behind.
            if length is None and declared_size > limits.max_file_size:
                raise FileTooLarge(self.field, limits.max_file_size)
            if length is not None and declared_size > length:
                raise InconsistentLength(f"the body goes past the upload's length of {length}")
        declared = self._declared_type(request, speaks, metadata)
        self._check_type(limits, declared)
        client = _client_tag(request)
        cap = self.max_uploads_per_client
        if cap is not None and await asyncio.to_thread(self.store.count, client) >= cap:
            raise TooManyUploads(cap)
        now = time.time()
        state = UploadState(
            id=secrets.token_hex(16),
            length=length,
            metadata=metadata,
            client=client,
            created=now,
            updated=now,
            media_type=declared,
        )
        await asyncio.to_thread(self.store.create, state)
        log.debug("created upload %s (length %s)", state.id, length)
        if speaks.draft and self.interim_responses:
            self._send_104(request, speaks, state.id)
        if with_body or length == 0:
            # An empty upload is complete as soon as it exists: hand it over now.
            state = await self._append(
                request,
                state.id,
                offset=0,
                checksum=parse_checksum(headers.get("Upload-Checksum")),
                new_length=None,
                complete=complete,
                speaks=speaks,
            )
        response = web.Response(status=201)
        response.headers["Location"] = self.url_for(state.id)
        self._state_headers(response, state, speaks, limits)
        return response

    def _send_104(self, request: web.Request, speaks: Speaks, upload_id: str) -> None:
        """Tell a draft client where its upload lives before its body is read.

        aiohttp has no API for 1xx answers other than 100 Continue; before the final
        answer is prepared nothing else has been written on the connection, so the
        interim answer goes straight to the transport (HTTP/1.1 only).
        """
        transport = request.transport
        if request.version < HttpVersion11 or transport is None or transport.is_closing():
            return
        if request.writer.output_size:  # pragma: no cover - nothing was sent before
            return
        head = (
            "HTTP/1.1 104 Upload Resumption Supported\r\n"
            f"Upload-Draft-Interop-Version: {speaks.interop}\r\n"
            f"Location: {self.url_for(upload_id)}\r\n"
            f"Upload-Limit: {self._upload_limit(self._limits(request))}\r\n\r\n"
        )
        transport.write(head.encode("ascii"))

    # -- HEAD ---------------------------------------------------------------------------

    async def _head(self, request: web.Request, speaks: Speaks) -> web.StreamResponse:
        upload_id = request.match_info["upload_id"]
        # A client that resumes at once after its connection broke may ask before the
        # server has noticed the loss and stored what arrived: give that write a moment
        # to land, so the offset answered is the one the next PATCH is checked against.
        # A PATCH that is still streaming keeps its lock: then the offset so far is the
        # answer (the protocol's), after at most HEAD_SETTLE seconds.
        # The writer may be another worker process: polling the lock, not an Event.
        deadline = asyncio.get_running_loop().time() + HEAD_SETTLE
        while self.store.writing(upload_id) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        state = await self._state(upload_id)
        response = web.Response(status=204 if speaks.draft else 200)
        self._state_headers(response, state, speaks, self._limits(request))
        if not speaks.draft:
            if state.length is None:
                response.headers["Upload-Defer-Length"] = "1"
            if state.metadata:
                response.headers["Upload-Metadata"] = encode_metadata(state.metadata)
        return response

    def _state_headers(
        self, response: web.StreamResponse, state: UploadState, speaks: Speaks, limits: UploadLimits
    ) -> None:
        headers = response.headers
        headers["Upload-Offset"] = str(state.offset)
        if state.length is not None:
            headers["Upload-Length"] = str(state.length)
        if speaks.draft:
            if speaks.interop == 3:
                headers["Upload-Incomplete"] = "?0" if state.complete else "?1"
            else:
                headers["Upload-Complete"] = "?1" if state.complete else "?0"
            headers["Upload-Limit"] = self._upload_limit(limits)
        elif not state.complete:
            headers["Upload-Expires"] = _http_date(state.expires_at(self.expires))
        self._protocol_headers(response, speaks)

    async def _state(self, upload_id: str) -> UploadState:
        if not valid_id(upload_id):
            raise UploadNotFound()
        state = await asyncio.to_thread(self.store.read, upload_id)
        if state is None:
            raise UploadNotFound()
        if state.expires_at(self.expires) < time.time():
            raise UploadGone()
        return state

    # -- PATCH --------------------------------------------------------------------------

    def _complete_flag(
        self, headers: CIMultiDictProxy[str], speaks: Speaks, *, required: bool
    ) -> bool | None:
        if speaks.interop == 3:
            incomplete = parse_sf_boolean(headers, "Upload-Incomplete")
            flag = None if incomplete is None else not incomplete
            name = "Upload-Incomplete"
        else:
            flag = parse_sf_boolean(headers, "Upload-Complete")
            name = "Upload-Complete"
        if flag is None and required:
            raise InvalidUploadHeader(name, "missing")
        return flag

    async def _override(self, request: web.Request, speaks: Speaks) -> web.StreamResponse:
        """POST with ``X-HTTP-Method-Override`` (for clients that cannot send PATCH/DELETE)."""
        method = request.headers.get("X-HTTP-Method-Override", "").strip().upper()
        if method == "PATCH":
            return await self._patch(request, speaks)
        if method == "DELETE":
            return await self._delete(request, speaks)
        raise web.HTTPMethodNotAllowed("POST", ["HEAD", "PATCH", "DELETE", "OPTIONS"])

    async def _patch(self, request: web.Request, speaks: Speaks) -> web.StreamResponse:
        headers = request.headers
        content_type = request.content_type
        if not speaks.draft and content_type != TUS_OFFSET_STREAM:
            raise UnsupportedMediaType(f"PATCH needs Content-Type {TUS_OFFSET_STREAM}")
        if speaks.interop == 6 and content_type != PARTIAL_UPLOAD:
            raise UnsupportedMediaType(f"PATCH needs Content-Type {PARTIAL_UPLOAD}")
        upload_id = request.match_info["upload_id"]
        if not valid_id(upload_id):
            raise UploadNotFound()
        offset = parse_offset(headers, "Upload-Offset", required=True)
        assert offset is not None
        state = await self._append(
            request,
            upload_id,
            offset=offset,
            checksum=parse_checksum(headers.get("Upload-Checksum")),
            new_length=parse_offset(headers, "Upload-Length", required=False),
            complete=self._complete_flag(headers, speaks, required=True) if speaks.draft else None,
            speaks=speaks,
        )
        response = web.Response(status=204)
        self._state_headers(response, state, speaks, self._limits(request))
        return response

    # -- DELETE -------------------------------------------------------------------------

    async def _delete(self, request: web.Request, speaks: Speaks) -> web.StreamResponse:
        upload_id = request.match_info["upload_id"]
        if not valid_id(upload_id) or not await asyncio.to_thread(self._terminate, upload_id):
            raise UploadNotFound()
        response = web.Response(status=204)
        self._protocol_headers(response, speaks)
        return response

    def _terminate(self, upload_id: str) -> bool:
        fd = self.store.lock(upload_id)  # UploadLocked while a PATCH writes
        try:
            state = self.store.read(upload_id)
            if state is None:
                return False
            self._running.pop(upload_id, None)
            self.store.remove(upload_id, state.client)
            return True
        finally:
            if fd is not None:
                self.store.unlock(fd)

    # -- appending ----------------------------------------------------------------------

    async def _append(
        self,
        request: web.Request,
        upload_id: str,
        *,
        offset: int,
        checksum: Checksum | None,
        new_length: int | None,
        complete: bool | None,
        speaks: Speaks,
    ) -> UploadState:
        """Append the request body to the upload at ``offset``; its new state."""
        limits = self._limits(request)
        store = self.store
        fd = await asyncio.to_thread(store.lock, upload_id)
        if fd is None:
            # No bytes file: no such upload, or it is complete (handed over).
            state = await self._state(upload_id)
            if state.offset != offset:
                raise UploadConflict(state.offset, offset)
            if request.content_length == 0 or not request.body_exists:
                return state
            raise UploadAlreadyComplete()
        handed: tuple[UploadState, Path] | None = None
        try:
            found = await asyncio.to_thread(store.read, upload_id)
            if found is None:
                raise UploadNotFound()
            state = found
            if state.expires_at(self.expires) < time.time():
                await asyncio.to_thread(store.remove, upload_id, state.client)
                raise UploadGone()
            await asyncio.to_thread(store.cut, fd, state.offset)
            if offset != state.offset:
                raise UploadConflict(state.offset, offset)
            if new_length is not None:
                if state.length is None:
                    if new_length < state.offset:
                        raise InconsistentLength(
                            f"Upload-Length {new_length} is below the offset {state.offset}"
                        )
                    if new_length > limits.max_file_size:
                        raise FileTooLarge(self.field, limits.max_file_size)
                    state.length = new_length
                elif new_length != state.length:
                    raise InconsistentLength(
                        f"Upload-Length {new_length} differs from the upload's {state.length}"
                    )
            handed = await self._write_body(request, fd, state, checksum, complete, limits)
        finally:
            await asyncio.to_thread(store.unlock, fd)
        if handed is not None:
            await self._hand_over(request, *handed)
            return handed[0]
        return state

    def _running_hash(self, state: UploadState) -> Any:
        entry = self._running.pop(state.id, None)
        if entry is not None and entry[0] == state.offset:
            return entry[1]
        return hashlib.sha256() if state.offset == 0 else None

    async def _write_body(
        self,
        request: web.Request,
        fd: int,
        state: UploadState,
        checksum: Checksum | None,
        complete: bool | None,
        limits: UploadLimits,
    ) -> tuple[UploadState, Path] | None:
        """Stream the body into the locked upload and commit it; what to hand over, if done."""
        start = state.offset
        limit = state.length if state.length is not None else limits.max_file_size
        room = limit - start
        declared_size = request.content_length
        if declared_size is not None and declared_size > room:
            raise self._too_long(state, limits)
        running = self._running_hash(state)
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
                raise self._too_long(state, limits)
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
            self._commit(fd, state, appender, keep, checksum, checker, running, complete, limits)
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

    def _too_long(self, state: UploadState, limits: UploadLimits) -> HelpersError:
        if state.length is not None:
            return InconsistentLength(f"the body goes past the upload's length of {state.length}")
        return FileTooLarge(self.field, limits.max_file_size)

    async def _commit(
        self,
        fd: int,
        state: UploadState,
        appender: Appender,
        keep: bool,
        checksum: Checksum | None,
        checker: Any,
        running: Any,
        complete: bool | None,
        limits: UploadLimits,
    ) -> tuple[UploadState, Path] | None:
        store = self.store
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
            await self._sniff(fd, state, limits)
        if not done:
            await asyncio.to_thread(store.write, state)
            if running is not None:
                self._running[state.id] = (state.offset, running)
                while len(self._running) > _MAX_RUNNING_HASHES:
                    self._running.popitem(last=False)
            return None
        if running is not None:
            state.sha256 = running.hexdigest()
        else:
            state.sha256 = await asyncio.to_thread(store.digest, fd, state.offset)
        path = await asyncio.to_thread(store.complete, state)
        log.debug("upload %s complete: %d bytes", state.id, state.offset)
        return state, path

    async def _sniff(self, fd: int, state: UploadState, limits: UploadLimits) -> None:
        sniffed_fields = limits.sniff_types
        if not sniffed_fields or (self.field not in sniffed_fields and "*" not in sniffed_fields):
            return
        patterns = self._check_type(limits, state.media_type)
        if patterns is None:
            return
        head = await asyncio.to_thread(self.store.head, fd, SNIFF_BYTES)
        found = sniff(head)
        if found is None or not sniffed_allowed(found, state.media_type, patterns):
            # The content is not what the upload claims: it will never be accepted.
            await asyncio.to_thread(self.store.remove, state.id, state.client)
            self._running.pop(state.id, None)
            shown = f"{state.media_type} (content {'not recognised' if found is None else found})"
            raise TypeNotAllowed(self.field, shown, patterns)

    async def _hand_over(self, request: web.Request, state: UploadState, path: Path) -> None:
        raw = state.metadata.get("filename") or state.metadata.get("name")
        headers: CIMultiDict[str] = CIMultiDict()
        headers["Content-Type"] = state.media_type
        uploaded = UploadedFile(
            name=self.field,
            filename=safe_filename(raw),
            raw_filename=raw,
            content_type=state.media_type,
            headers=CIMultiDictProxy(headers),
            size=state.offset,
            sha256=state.sha256 or "",
            path=os.fspath(path),
        )
        scope = request_scope(request)
        if scope is not None and not scope.closed:
            scope.push(uploaded.aclose)
        try:
            signal = self.helpers.signals.on_upload
            if signal and signal.frozen:
                await signal.send(request, uploaded)
        finally:
            if scope is None or scope.closed:
                await uploaded.aclose()


def add_resumable_uploads(
    app: web.Application,
    path: str,
    *,
    directory: str | os.PathLike[str],
    limits: UploadLimits | None = None,
    expires: float = 24 * 3600,
    field: str = "file",
    max_uploads_per_client: int | None = 20,
    max_metadata_size: int = 4096,
    max_metadata_pairs: int = 32,
    sweep_interval: float | None = None,
    interim_responses: bool = True,
) -> ResumableUploads:
    """Serve resumable uploads (tus 1.0 and the IETF draft) at ``path`` of ``app``.

    Call it after :func:`~aiohttp_helpers.setup` on the same app and before the app (or
    its parent) is frozen. ``directory`` keeps the partial uploads and their state (it
    is created if needed); use a directory of its own, on a local filesystem shared by
    every worker process. ``limits`` (default: the app's) apply to each upload as to a
    file of a form, its ``allowed_types`` / ``sniff_types`` looked up under ``field``.
    ``expires`` seconds after its last byte, an unfinished upload is removed (swept at
    startup and every ``sweep_interval`` seconds, by default ``min(expires, 600)``).
    ``interim_responses``: answer a draft client's creation with ``104 Upload Resumption
    Supported`` (its upload's ``Location``) before reading the body, as the draft asks.

    Raises:
        RuntimeError: ``setup()`` was not called on ``app``, or ``app`` is frozen.
    """
    if not isinstance(app, web.Application):
        raise TypeError(
            f"add_resumable_uploads() needs a web.Application, got {type(app).__name__}"
        )
    if app.frozen or app.pre_frozen:
        raise RuntimeError(
            "add_resumable_uploads() must be called before the application is frozen "
            "(before add_subapp() or before it starts)"
        )
    helpers = app.get(HELPERS_KEY)
    if helpers is None:
        raise RuntimeError(
            "add_resumable_uploads() needs aiohttp_helpers.setup(app) first: its middleware, "
            "signals and lifecycle serve the uploads"
        )
    if not path.startswith("/") or (path.endswith("/") and path != "/") or "{" in path:
        raise ValueError(f"path must be a plain path such as '/files', got {path!r}")
    if limits is not None and not isinstance(limits, UploadLimits):
        raise TypeError(f"limits must be an UploadLimits, got {type(limits).__name__}")
    for name, value in (
        ("expires", expires),
        ("max_metadata_size", max_metadata_size),
        ("max_metadata_pairs", max_metadata_pairs),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be a number")
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if max_uploads_per_client is not None and max_uploads_per_client <= 0:
        raise ValueError("max_uploads_per_client must be positive or None")
    interval = min(float(expires), 600.0) if sweep_interval is None else float(sweep_interval)
    if interval <= 0:
        raise ValueError(f"sweep_interval must be positive, got {sweep_interval!r}")
    if not field or safe_filename(field, default="file") != field:
        raise ValueError(f"field must be a plain name, got {field!r}")
    uploads = ResumableUploads(
        helpers,
        path,
        directory=directory,
        limits=limits,
        expires=expires,
        field=field,
        max_uploads_per_client=max_uploads_per_client,
        max_metadata_size=max_metadata_size,
        max_metadata_pairs=max_metadata_pairs,
        sweep_interval=interval,
        interim_responses=bool(interim_responses),
    )
    Path(directory).mkdir(parents=True, exist_ok=True)
    uploads._install(app)
    return uploads
