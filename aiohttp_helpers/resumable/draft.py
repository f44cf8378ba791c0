"""The IETF resumable-upload draft (each interop version served): its side of each difference."""

from __future__ import annotations

from aiohttp import HttpVersion11, web

from ..errors import UnsupportedMediaType
from .dialect import Dialect, Headers, Opening
from .errors import InvalidUploadHeader
from .protocol import (
    DRAFT_INTEROP_VERSIONS,
    PARTIAL_UPLOAD,
    TUS_OFFSET_STREAM,
    parse_sf_boolean,
)
from .storage import UploadState

__all__ = ["DRAFTS", "Draft"]

# Request types that say nothing of the upload's own media type.
_NOT_THE_UPLOADS_TYPE = (PARTIAL_UPLOAD, TUS_OFFSET_STREAM, "application/octet-stream")


class Draft(Dialect):
    """The draft at one interop version: ``Upload-Complete`` (``Upload-Incomplete`` in 3)."""

    head_status = 204

    def __init__(self, interop: int) -> None:
        self.interop = interop
        # Interop version 3 (draft -01) says the opposite: Upload-Incomplete.
        self.flag = "Upload-Incomplete" if interop == 3 else "Upload-Complete"

    def __repr__(self) -> str:
        return f"<Draft interop {self.interop}>"

    def protocol_headers(self, headers: Headers) -> None:
        headers["Upload-Draft-Interop-Version"] = str(self.interop)

    def state_headers(
        self, headers: Headers, state: UploadState, *, upload_limit: str, expires_at: float
    ) -> None:
        said = state.complete if self.interop != 3 else not state.complete
        headers[self.flag] = "?1" if said else "?0"
        headers["Upload-Limit"] = upload_limit

    def complete_flag(self, request: web.Request) -> bool:
        """What the request says of its body ending the upload (the header is required)."""
        flag = parse_sf_boolean(request.headers, self.flag)
        if flag is None:
            raise InvalidUploadHeader(self.flag, "missing")
        return flag if self.interop != 3 else not flag

    def opening(self, request: web.Request, length: int | None) -> Opening:
        return Opening(with_body=True, complete=self.complete_flag(request))

    def check_patch(self, request: web.Request) -> None:
        # From interop version 6 on, the draft names its own PATCH body type.
        if self.interop >= 6 and request.content_type != PARTIAL_UPLOAD:
            raise UnsupportedMediaType(f"PATCH needs Content-Type {PARTIAL_UPLOAD}")

    def body_type(self, request: web.Request) -> str | None:
        content_type = request.content_type
        return None if content_type in _NOT_THE_UPLOADS_TYPE else content_type

    def interim(self, request: web.Request, *, location: str, upload_limit: str) -> None:
        """Send ``104 Upload Resumption Supported`` with the upload's ``Location``.

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
            f"Upload-Draft-Interop-Version: {self.interop}\r\n"
            f"Location: {location}\r\n"
            f"Upload-Limit: {upload_limit}\r\n\r\n"
        )
        transport.write(head.encode("ascii"))


#: One dialect per interop version served.
DRAFTS = {interop: Draft(interop) for interop in sorted(DRAFT_INTEROP_VERSIONS)}
