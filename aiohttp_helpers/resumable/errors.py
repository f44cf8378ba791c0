"""Answers of the resumable upload routes that the package's base error tree does not have.

::

    HelpersError
    ├── BadRequest                         400
    │   ├── InvalidUploadHeader            400  a protocol header that does not parse
    │   ├── InvalidMetadata                400  Upload-Metadata: encoding, size, key count
    │   ├── UnsupportedChecksum            400  Upload-Checksum with an unknown algorithm
    │   ├── InconsistentLength             400  Upload-Length / Upload-Complete disagree
    │   └── UploadAlreadyComplete          400  bytes sent to an upload that is complete
    ├── UploadNotFound                     404  no such upload (or it was terminated)
    ├── UploadConflict                     409  Upload-Offset is not the upload's offset
    ├── UploadGone                         410  the upload expired
    ├── VersionNotSupported                412  Tus-Resumable missing or not 1.0.0
    ├── UploadLocked                       423  another request is writing to the upload
    ├── TooManyUploads                     429  the client has too many unfinished uploads
    └── ChecksumMismatch                   460  the body does not match Upload-Checksum

Each sets, in its own ``headers``, those the answer must include (``Tus-Version`` with 412,
``Upload-Offset`` with 409, ``Retry-After`` with 423 and 429).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._words import counted
from ..errors import BadRequest, HelpersError

__all__ = [
    "ChecksumMismatch",
    "InconsistentLength",
    "InvalidMetadata",
    "InvalidUploadHeader",
    "TooManyUploads",
    "UnsupportedChecksum",
    "UploadAlreadyComplete",
    "UploadConflict",
    "UploadGone",
    "UploadLocked",
    "UploadNotFound",
    "VersionNotSupported",
]

_IANA = "https://iana.org/assignments/http-problem-types#"


class InvalidUploadHeader(BadRequest):
    """A resumable-upload header is missing or does not parse."""

    title = "Invalid upload header"

    def __init__(self, header: str, detail: str) -> None:
        super().__init__(f"{header}: {detail}")
        self.header = header


class InvalidMetadata(BadRequest):
    """``Upload-Metadata`` is malformed, too large or has too many keys."""

    title = "Invalid upload metadata"


class UnsupportedChecksum(BadRequest):
    """``Upload-Checksum`` names an algorithm the server does not compute."""

    title = "Checksum algorithm not supported"


class InconsistentLength(BadRequest):
    """The upload's length and what the request says about it disagree."""

    title = "Inconsistent upload length"

    @classmethod
    def problem_type(cls) -> str:
        return _IANA + "inconsistent-upload-length"


class UploadAlreadyComplete(BadRequest):
    """Bytes were sent to an upload that is already complete."""

    title = "Upload already complete"

    def __init__(self) -> None:
        super().__init__("the upload is already complete")

    @classmethod
    def problem_type(cls) -> str:
        return _IANA + "completed-upload"


class UploadNotFound(HelpersError):
    """No upload has this address (never created, terminated, or handed over and swept)."""

    status = 404
    title = "Upload not found"

    def __init__(self) -> None:
        super().__init__("no upload at this address")


class UploadConflict(HelpersError):
    """``Upload-Offset`` is not where the upload stands."""

    status = 409
    title = "Upload offset mismatch"

    def __init__(self, expected: int, provided: int) -> None:
        super().__init__(f"the upload is at offset {expected}, the request says {provided}")
        self.expected = expected
        self.provided = provided
        self.headers["Upload-Offset"] = str(expected)

    @classmethod
    def problem_type(cls) -> str:
        return _IANA + "mismatching-upload-offset"

    def problem(self) -> dict[str, Any]:
        doc = super().problem()
        doc["expected-offset"] = self.expected
        doc["provided-offset"] = self.provided
        return doc


class UploadGone(HelpersError):
    """The upload expired; it is removed (or about to be)."""

    status = 410
    title = "Upload expired"

    def __init__(self) -> None:
        super().__init__("the upload expired")


class VersionNotSupported(HelpersError):
    """The request speaks no protocol version the server serves."""

    status = 412
    title = "Precondition Failed"


class UploadLocked(HelpersError):
    """Another request (in this process or another) is writing to the upload."""

    status = 423
    title = "Upload locked"

    def __init__(self) -> None:
        super().__init__("another request is writing to this upload; retry later")
        self.headers["Retry-After"] = "1"


class TooManyUploads(HelpersError):
    """The client already has ``limit`` unfinished uploads."""

    status = 429
    title = "Too many unfinished uploads"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this client has {counted(limit, 'unfinished upload')}; finish or terminate one first",
            limit=limit,
        )
        self.headers["Retry-After"] = "60"


class ChecksumMismatch(HelpersError):
    """The request body does not match its ``Upload-Checksum``; its bytes were discarded."""

    status: ClassVar[int] = 460
    title = "Checksum Mismatch"

    def __init__(self, algorithm: str) -> None:
        super().__init__(f"the request body does not match its {algorithm} checksum")
        self.algorithm = algorithm
