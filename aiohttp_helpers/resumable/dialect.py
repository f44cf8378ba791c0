"""What differs between tus 1.0 and the IETF resumable-upload draft, behind one interface.

The shared handling (``handlers.py``) asks the request's :class:`Dialect` at each point
where the two protocols part ways; ``tus.py`` and ``draft.py`` answer.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web
from multidict import CIMultiDict

from .storage import UploadState

__all__ = ["Dialect", "Headers", "Opening"]

#: An answer's headers.
Headers = CIMultiDict[str]


@dataclass(frozen=True, slots=True)
class Opening:
    """What a creation request says beyond the shared headers.

    ``with_body``: the request carries the upload's first bytes. ``complete``: what it
    says of those bytes being the whole upload (``None``: nothing).
    """

    with_body: bool
    complete: bool | None


class Dialect(abc.ABC):
    """The answers of one protocol (and version) where tus 1.0 and the draft differ."""

    #: The status of an answer to HEAD.
    head_status: ClassVar[int]

    @abc.abstractmethod
    def protocol_headers(self, headers: Headers) -> None:
        """Set the header that says which protocol (and version) the answer speaks."""

    @abc.abstractmethod
    def state_headers(
        self, headers: Headers, state: UploadState, *, upload_limit: str, expires_at: float
    ) -> None:
        """Set the headers, beyond offset and length, that describe ``state``."""

    def head_headers(self, headers: Headers, state: UploadState) -> None:
        """Set what only an answer to HEAD says of ``state`` (nothing, by default)."""
        return None

    @abc.abstractmethod
    def opening(self, request: web.Request, length: int | None) -> Opening:
        """Check what a creation request says beyond the shared headers.

        Raises:
            InvalidUploadHeader: a header is missing or contradicts another.
            UnsupportedMediaType: the body's type is not the protocol's.
        """

    @abc.abstractmethod
    def check_patch(self, request: web.Request) -> None:
        """Check a PATCH's ``Content-Type``.

        Raises:
            UnsupportedMediaType: the body's type is not the protocol's.
        """

    def complete_flag(self, request: web.Request) -> bool | None:
        """What the request says of its body ending the upload (``None``: nothing).

        Raises:
            InvalidUploadHeader: the header is required and missing, or does not parse.
        """
        return None

    def body_type(self, request: web.Request) -> str | None:
        """The upload's media type as the request's own ``Content-Type`` says (if it may)."""
        return None

    def interim(self, request: web.Request, *, location: str, upload_limit: str) -> None:
        """Tell the client where its upload lives before its body is read (if the protocol may)."""
        return None
