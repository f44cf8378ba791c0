"""The request handling both protocols share: one route handler per method, errors answered."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDictProxy

from ..config import UploadLimits
from ..errors import FileTooLarge, HelpersError
from ..problem import error_response
from .append import append, check_type
from .dialect import Dialect
from .draft import DRAFTS
from .errors import (
    InconsistentLength,
    InvalidUploadHeader,
    TooManyUploads,
    UploadNotFound,
    VersionNotSupported,
)
from .protocol import (
    CHECKSUM_ALGORITHMS,
    DRAFT_INTEROP_VERSIONS,
    TUS_EXTENSIONS,
    TUS_VERSION,
    parse_checksum,
    parse_metadata,
    parse_offset,
    protocol_of,
)
from .storage import UploadState, client_tag, valid_id
from .tus import TUS

if TYPE_CHECKING:
    # Also importable from here at run time (see __getattr__ below).
    from .registration import ResumableUploads as ResumableUploads

__all__ = [
    "HEAD_SETTLE",
    "answering",
    "create",
    "delete",
    "dialect_of",
    "head",
    "options_of",
    "override",
    "patch",
]

#: Seconds a HEAD waits for a write in progress to be stored before it answers.
HEAD_SETTLE = 1.0

log = logging.getLogger("aiohttp_helpers.resumable")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A handler of one method: the uploads it serves, the request, the request's dialect.
Method = Callable[["ResumableUploads", web.Request, Dialect], Awaitable[web.StreamResponse]]


def dialect_of(headers: CIMultiDictProxy[str]) -> Dialect:
    """The dialect ``headers`` speak; a request that speaks none is refused with 412."""
    interop = protocol_of(headers)
    return TUS if interop is None else DRAFTS[interop]


def answering(uploads: ResumableUploads, method: Method) -> Handler:
    """The route handler that runs ``method`` and answers the package's errors itself."""

    async def run(request: web.Request) -> web.StreamResponse:
        dialect: Dialect | None = None
        try:
            dialect = dialect_of(request.headers)
            return await method(uploads, request, dialect)
        except HelpersError as exc:
            log.debug("%s %s answered %d: %s", request.method, request.path, exc.status, exc)
            return _error(request, dialect, exc)

    return run


def _error(request: web.Request, dialect: Dialect | None, exc: HelpersError) -> web.Response:
    response = error_response(request, exc)  # with the headers the error carries
    if isinstance(exc, VersionNotSupported):
        response.headers["Tus-Version"] = TUS_VERSION
    _protocol_headers(response, dialect)
    if not request.content.at_eof() and request.content_length != 0:
        # The body was not read: do not make the client wait while it is drained.
        response.force_close()
    return response


def _protocol_headers(response: web.StreamResponse, dialect: Dialect | None) -> None:
    # A request that speaks no protocol served is answered in tus.
    (dialect or TUS).protocol_headers(response.headers)
    response.headers.setdefault("Cache-Control", "no-store")


def _state_headers(
    uploads: ResumableUploads,
    response: web.StreamResponse,
    state: UploadState,
    dialect: Dialect,
    limits: UploadLimits,
) -> None:
    headers = response.headers
    headers["Upload-Offset"] = str(state.offset)
    if state.length is not None:
        headers["Upload-Length"] = str(state.length)
    dialect.state_headers(
        headers,
        state,
        upload_limit=uploads._upload_limit(limits),
        expires_at=state.expires_at(uploads.expires),
    )
    _protocol_headers(response, dialect)


# -- OPTIONS ----------------------------------------------------------------------------


def options_of(uploads: ResumableUploads) -> Handler:
    """The OPTIONS handler: what the server supports, in both protocols' words."""

    async def options(request: web.Request) -> web.StreamResponse:
        limits = uploads._limits(request)
        response = web.Response(status=204)
        response.headers.update(
            {
                "Tus-Resumable": TUS_VERSION,
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": ",".join(TUS_EXTENSIONS),
                "Tus-Max-Size": str(limits.max_file_size),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
                "Upload-Limit": uploads._upload_limit(limits),
                "Upload-Draft-Interop-Version": ", ".join(
                    str(v) for v in sorted(DRAFT_INTEROP_VERSIONS)
                ),
                "Cache-Control": "no-store",
            }
        )
        return response

    return options


# -- creation ---------------------------------------------------------------------------


def _declared_type(request: web.Request, dialect: Dialect, metadata: dict[str, str]) -> str:
    declared = metadata.get("filetype") or metadata.get("type") or dialect.body_type(request)
    declared = (declared or "application/octet-stream").split(";", 1)[0].strip().lower()
    if declared.count("/") != 1 or len(declared) > 255:
        raise InvalidUploadHeader("Upload-Metadata", "filetype is not a media type")
    return declared


async def create(
    uploads: ResumableUploads, request: web.Request, dialect: Dialect
) -> web.StreamResponse:
    """POST to the creation URL: a new upload, perhaps with its first bytes."""
    limits = uploads._limits(request)
    headers = request.headers
    metadata = parse_metadata(
        headers.get("Upload-Metadata"),
        max_size=uploads.max_metadata_size,
        max_pairs=uploads.max_metadata_pairs,
    )
    length = parse_offset(headers, "Upload-Length", required=False)
    opening = dialect.opening(request, length)
    if length is not None and length > limits.max_file_size:
        raise FileTooLarge(uploads.field, limits.max_file_size)
    declared_size = request.content_length if opening.with_body else None
    if declared_size is not None:
        # Refused before the upload exists, rather than leaving an orphan behind.
        if length is None and declared_size > limits.max_file_size:
            raise FileTooLarge(uploads.field, limits.max_file_size)
        if length is not None and declared_size > length:
            raise InconsistentLength(f"the body goes past the upload's length of {length}")
    declared = _declared_type(request, dialect, metadata)
    check_type(limits, uploads.field, declared)
    # Every header is checked before the upload exists: a refusal leaves nothing behind.
    first_bytes = opening.with_body or length == 0
    checksum = parse_checksum(headers.get("Upload-Checksum")) if first_bytes else None
    client = client_tag(request.remote)
    cap = uploads.max_uploads_per_client
    if cap is not None and await asyncio.to_thread(uploads.store.count, client) >= cap:
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
    await asyncio.to_thread(uploads.store.create, state)
    log.debug("created upload %s (length %s)", state.id, length)
    if uploads.interim_responses:
        dialect.interim(
            request, location=uploads.url_for(state.id), upload_limit=uploads._upload_limit(limits)
        )
    if first_bytes:
        # An empty upload is complete as soon as it exists: hand it over now.
        state = await append(
            uploads,
            request,
            state.id,
            offset=0,
            checksum=checksum,
            new_length=None,
            complete=opening.complete,
        )
    response = web.Response(status=201)
    response.headers["Location"] = uploads.url_for(state.id)
    _state_headers(uploads, response, state, dialect, limits)
    return response


# -- HEAD, PATCH, DELETE ----------------------------------------------------------------


async def head(
    uploads: ResumableUploads, request: web.Request, dialect: Dialect
) -> web.StreamResponse:
    """HEAD of an upload: where it stands."""
    upload_id = request.match_info["upload_id"]
    # A client that resumes at once after its connection broke may ask before the
    # server has noticed the loss and stored what arrived: give that write a moment
    # to land, so the offset answered is the one the next PATCH is checked against.
    # A PATCH that is still streaming keeps its lock: then the offset so far is the
    # answer (the protocol's), after at most HEAD_SETTLE seconds.
    # The writer may be another worker process: polling the lock, not an Event.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEAD_SETTLE
    while uploads.store.writing(upload_id) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    state = await uploads._current(upload_id)
    response = web.Response(status=dialect.head_status)
    _state_headers(uploads, response, state, dialect, uploads._limits(request))
    dialect.head_headers(response.headers, state)
    return response


async def patch(
    uploads: ResumableUploads, request: web.Request, dialect: Dialect
) -> web.StreamResponse:
    """PATCH of an upload: its body appended at ``Upload-Offset``."""
    headers = request.headers
    dialect.check_patch(request)
    upload_id = request.match_info["upload_id"]
    if not valid_id(upload_id):
        raise UploadNotFound()
    offset = parse_offset(headers, "Upload-Offset", required=True)
    assert offset is not None
    state = await append(
        uploads,
        request,
        upload_id,
        offset=offset,
        checksum=parse_checksum(headers.get("Upload-Checksum")),
        new_length=parse_offset(headers, "Upload-Length", required=False),
        complete=dialect.complete_flag(request),
    )
    response = web.Response(status=204)
    _state_headers(uploads, response, state, dialect, uploads._limits(request))
    return response


async def delete(
    uploads: ResumableUploads, request: web.Request, dialect: Dialect
) -> web.StreamResponse:
    """DELETE of an upload: terminated, its bytes removed."""
    if not await uploads.remove(request.match_info["upload_id"]):
        raise UploadNotFound()
    response = web.Response(status=204)
    _protocol_headers(response, dialect)
    return response


async def override(
    uploads: ResumableUploads, request: web.Request, dialect: Dialect
) -> web.StreamResponse:
    """POST with ``X-HTTP-Method-Override`` (for clients that cannot send PATCH/DELETE)."""
    method = request.headers.get("X-HTTP-Method-Override", "").strip().upper()
    if method == "PATCH":
        return await patch(uploads, request, dialect)
    if method == "DELETE":
        return await delete(uploads, request, dialect)
    raise web.HTTPMethodNotAllowed("POST", ["HEAD", "PATCH", "DELETE", "OPTIONS"])


def __getattr__(name: str) -> object:
    # ResumableUploads and add_resumable_uploads lived in this module until issue 14 split
    # it; importing them from here still works.
    if name in ("ResumableUploads", "add_resumable_uploads"):
        from . import registration

        return getattr(registration, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
