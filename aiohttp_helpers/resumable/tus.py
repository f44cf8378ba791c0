"""tus 1.0 (https://tus.io/protocols/resumable-upload): its side of each difference."""

from __future__ import annotations

import email.utils

from aiohttp import web

from ..errors import UnsupportedMediaType
from .dialect import Dialect, Headers, Opening
from .errors import InvalidUploadHeader
from .protocol import TUS_OFFSET_STREAM, TUS_VERSION, encode_metadata
from .storage import UploadState

__all__ = ["TUS", "Tus"]


class Tus(Dialect):
    """tus 1.0: ``Tus-Resumable``, deferred lengths, ``Upload-Expires``, metadata on HEAD."""

    head_status = 200

    def __repr__(self) -> str:
        return "<Tus 1.0.0>"

    def protocol_headers(self, headers: Headers) -> None:
        headers["Tus-Resumable"] = TUS_VERSION

    def state_headers(
        self, headers: Headers, state: UploadState, *, upload_limit: str, expires_at: float
    ) -> None:
        if not state.complete:
            headers["Upload-Expires"] = email.utils.formatdate(expires_at, usegmt=True)

    def head_headers(self, headers: Headers, state: UploadState) -> None:
        if state.length is None:
            headers["Upload-Defer-Length"] = "1"
        if state.metadata:
            headers["Upload-Metadata"] = encode_metadata(state.metadata)

    def opening(self, request: web.Request, length: int | None) -> Opening:
        defer = request.headers.get("Upload-Defer-Length")
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
        return Opening(with_body=with_body, complete=None)

    def check_patch(self, request: web.Request) -> None:
        if request.content_type != TUS_OFFSET_STREAM:
            raise UnsupportedMediaType(f"PATCH needs Content-Type {TUS_OFFSET_STREAM}")


#: The one tus dialect (tus has one version); also the answer's dialect when a request
#: speaks no protocol served.
TUS = Tus()
