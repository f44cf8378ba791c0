"""Resumable uploads: tus 1.0 and the IETF resumable-upload draft, on the package's limits."""

from .errors import (
    ChecksumMismatch,
    InconsistentLength,
    InvalidMetadata,
    InvalidUploadHeader,
    TooManyUploads,
    UnsupportedChecksum,
    UploadAlreadyComplete,
    UploadConflict,
    UploadGone,
    UploadLocked,
    UploadNotFound,
    VersionNotSupported,
)
from .protocol import DRAFT_INTEROP_VERSIONS, TUS_EXTENSIONS, TUS_VERSION
from .registration import ResumableUploads, add_resumable_uploads
from .storage import UploadState

__all__ = [
    "DRAFT_INTEROP_VERSIONS",
    "TUS_EXTENSIONS",
    "TUS_VERSION",
    "ChecksumMismatch",
    "InconsistentLength",
    "InvalidMetadata",
    "InvalidUploadHeader",
    "ResumableUploads",
    "TooManyUploads",
    "UnsupportedChecksum",
    "UploadAlreadyComplete",
    "UploadConflict",
    "UploadGone",
    "UploadLocked",
    "UploadNotFound",
    "UploadState",
    "VersionNotSupported",
    "add_resumable_uploads",
]
