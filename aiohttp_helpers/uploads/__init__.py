"""Streaming multipart uploads: ``read_form()``, ``iter_parts()``, limits and safe filenames."""

from .filenames import safe_filename
from .form import Form, read_form
from .limits import limits_for, upload_limits
from .parts import BodyPart, PartIterator, iter_parts
from .uploaded import UploadedFile
from .writer import MultipartResponse

__all__ = [
    "BodyPart",
    "Form",
    "MultipartResponse",
    "PartIterator",
    "UploadedFile",
    "iter_parts",
    "limits_for",
    "read_form",
    "safe_filename",
    "upload_limits",
]
