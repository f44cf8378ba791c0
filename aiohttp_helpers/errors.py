"""The package's error tree, each class carrying its HTTP status and its data.

::

    HelpersError                       500  (base class; never raised as such)
    ├── BadRequest                     400
    │   └── MalformedMultipart         400  bad boundary, missing final boundary, bad headers/data
    ├── RequestTimeout                 408
    │   ├── UploadIdleTimeout          408  no body bytes for ``idle_timeout`` seconds
    │   └── UploadTooSlow              408  body bytes arriving slower than ``min_rate``
    ├── PayloadTooLarge                413
    │   ├── BodyTooLarge               413  bytes on the wire over ``max_body_size``
    │   ├── FileTooLarge               413  one file over ``max_file_size``
    │   ├── FieldTooLarge              413  one text field over ``max_field_size``
    │   ├── TooManyFiles               413  more than ``max_files`` files
    │   ├── TooManyFields              413  more than ``max_fields`` text fields
    │   ├── TooManyParts               413  more than ``max_parts`` parts
    │   ├── HeadersTooLarge            413  part headers over their count or size limit
    │   ├── PreambleTooLarge           413  preamble or epilogue over ``max_preamble_size``
    │   ├── NestingTooDeep             413  nested multipart deeper than ``max_depth``
    │   ├── DecodedTooLarge            413  decoded (decompressed) bytes over their limit
    │   └── FieldsMemoryExceeded       413  text fields together over ``max_fields_memory``
    ├── UnsupportedMediaType           415
    │   ├── NotMultipart               415  the body is not multipart where multipart is required
    │   ├── UnsupportedEncoding        415  unknown Content-Encoding / Content-Transfer-Encoding
    │   └── TypeNotAllowed             415  a part's type (declared or sniffed) is not allowed
    ├── InsufficientStorage            507  the spool directory is full (ENOSPC)
    ├── Forbidden                      403
    │   └── OriginNotAllowed           403  a WebSocket upgrade from an Origin not allowed
    └── ServiceUnavailable             503  the server is stopping: retry (``Retry-After``)

Every error keeps what it is about as attributes (``field``, ``limit``) and renders itself
as an RFC 9457 problem document through :meth:`HelpersError.problem`. The package's one
middleware turns any of them into an HTTP response.

Every error is also a :class:`aiohttp.web.HTTPException`: on an app without ``setup()``
(so without the middleware), one that escapes a handler is answered by aiohttp itself,
with the same status and the same problem document, never a 500. The document is made
when the answer is sent, from the request (``instance``, and text when the client prefers
it), so building an error costs no JSON. A subclass keeps its data in attributes that
``web.Response`` does not have: ``status``, ``reason``, ``text``, ``body``, ``headers``,
``charset``, ``content_type`` (see ``_SentContentType``) and the like are the answer's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter

__all__ = [
    "BadRequest",
    "BodyTooLarge",
    "DecodedTooLarge",
    "FieldTooLarge",
    "FieldsMemoryExceeded",
    "FileTooLarge",
    "Forbidden",
    "HeadersTooLarge",
    "HelpersError",
    "InsufficientStorage",
    "MalformedMultipart",
    "NestingTooDeep",
    "NotMultipart",
    "OriginNotAllowed",
    "PayloadTooLarge",
    "PreambleTooLarge",
    "RequestTimeout",
    "ServiceUnavailable",
    "TooManyFields",
    "TooManyFiles",
    "TooManyParts",
    "TypeNotAllowed",
    "UnsupportedEncoding",
    "UnsupportedMediaType",
    "UploadIdleTimeout",
    "UploadTooSlow",
]

_TYPE_PREFIX = "urn:aiohttp-helpers:problem:"


def _slug(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


class HelpersError(web.HTTPException):
    """Base class of every error this package raises for bad input.

    ``detail`` is a sentence meant for the client: it names the field and the limit
    involved and never contains a path, a traceback or the text of another exception.
    ``str(error)`` is the detail. As a :class:`web.HTTPException` it is also the answer
    aiohttp sends when no middleware handles it (see the module docstring).
    """

    # The answer's status, read from the class; aiohttp reads ``status_code`` too.
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.status_code = cls.status

    def __init__(self, detail: str, *, field: str | None = None, limit: int | None = None) -> None:
        # Not HTTPException.__init__: its body would be text made before the subclass
        # has set its own attributes. The body is made in prepare(), from the request.
        web.Response.__init__(self, status=type(self).status)
        Exception.__init__(self, detail)
        self.detail = detail
        self.field = field
        self.limit = limit

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r})"

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Fill in the answer (as the middleware would) and start sending it."""
        if not self.prepared:
            from .problem import fill_error_response

            fill_error_response(self, request, self)
        return await super().prepare(request)

    @classmethod
    def problem_type(cls) -> str:
        """The RFC 9457 ``type`` URI of this class of error."""
        return _TYPE_PREFIX + _slug(cls.__name__)

    def problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem details object."""
        doc: dict[str, Any] = {
            "type": self.problem_type(),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            doc["field"] = self.field
        if self.limit is not None:
            doc["limit"] = self.limit
        return doc


class BadRequest(HelpersError):
    """The request is malformed."""

    status = 400
    title = "Bad Request"


class MalformedMultipart(BadRequest):
    """The multipart body does not parse: boundary, framing, headers or encoded data."""

    title = "Malformed multipart body"


class RequestTimeout(HelpersError):
    """The client took too long."""

    status = 408
    title = "Request Timeout"


class UploadIdleTimeout(RequestTimeout):
    """No body bytes arrived for ``limit`` seconds."""

    title = "Upload stalled"

    def __init__(self, timeout: float) -> None:
        super().__init__(f"no request body bytes arrived for {timeout:g} seconds")
        self.timeout = timeout


class UploadTooSlow(RequestTimeout):
    """Body bytes arrived slower than ``min_rate`` bytes per second, on average."""

    title = "Upload too slow"

    def __init__(self, min_rate: float) -> None:
        super().__init__(
            f"the request body arrived slower than {min_rate:g} bytes per second",
            limit=int(min_rate),
        )
        self.min_rate = min_rate


class PayloadTooLarge(HelpersError):
    """Something in the request is over a configured limit."""

    status = 413
    title = "Content Too Large"


class BodyTooLarge(PayloadTooLarge):
    """The request body is larger than ``max_body_size`` bytes."""

    title = "Request body too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes", limit=limit)


class FileTooLarge(PayloadTooLarge):
    """A file is larger than ``max_file_size`` bytes."""

    title = "File too large"

    def __init__(self, field: str | None, limit: int) -> None:
        super().__init__(
            f"file in field {field!r} is larger than {limit} bytes", field=field, limit=limit
        )


class FieldTooLarge(PayloadTooLarge):
    """A text field is larger than ``max_field_size`` bytes."""

    title = "Field too large"

    def __init__(self, field: str | None, limit: int) -> None:
        super().__init__(f"field {field!r} is larger than {limit} bytes", field=field, limit=limit)


class TooManyFiles(PayloadTooLarge):
    """More than ``max_files`` files."""

    title = "Too many files"

    def __init__(self, limit: int, field: str | None = None) -> None:
        super().__init__(f"more than {limit} files in the form", field=field, limit=limit)


class TooManyFields(PayloadTooLarge):
    """More than ``max_fields`` text fields."""

    title = "Too many fields"

    def __init__(self, limit: int, field: str | None = None) -> None:
        super().__init__(f"more than {limit} text fields in the form", field=field, limit=limit)


class TooManyParts(PayloadTooLarge):
    """More than ``max_parts`` parts."""

    title = "Too many parts"

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} parts in the body", limit=limit)


class HeadersTooLarge(PayloadTooLarge):
    """A part has too many header lines, or its headers are too long."""

    title = "Part headers too large"


class PreambleTooLarge(PayloadTooLarge):
    """The preamble before the first boundary, or the epilogue after the last, is too long."""

    title = "Preamble too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes outside the multipart boundaries", limit=limit)


class NestingTooDeep(PayloadTooLarge):
    """Nested multipart parts go deeper than ``max_depth``."""

    title = "Multipart nesting too deep"

    def __init__(self, limit: int, field: str | None = None) -> None:
        super().__init__(
            f"multipart parts are nested deeper than {limit} levels", field=field, limit=limit
        )


class DecodedTooLarge(PayloadTooLarge):
    """Decoded (decompressed) data is over its limit: a compression bomb, say."""

    title = "Decoded data too large"

    def __init__(self, field: str | None, limit: int) -> None:
        super().__init__(
            f"decoded data of field {field!r} is larger than {limit} bytes",
            field=field,
            limit=limit,
        )


class _SentContentType:
    """``content_type``: the type the client sent, not the Content-Type of the answer."""

    _sent_type: str

    @property
    def content_type(self) -> str:
        return self._sent_type

    @content_type.setter
    def content_type(self, value: str) -> None:
        self._sent_type = value


class FieldsMemoryExceeded(PayloadTooLarge):
    """The form's text fields together hold more than ``max_fields_memory`` decoded bytes."""

    title = "Form fields too large"

    def __init__(self, limit: int, field: str | None = None) -> None:
        super().__init__(
            f"the form's text fields hold more than {limit} bytes together",
            field=field,
            limit=limit,
        )


class UnsupportedMediaType(HelpersError):
    """The body, or a part of it, is of a type or encoding that is not accepted."""

    status = 415
    title = "Unsupported Media Type"


class NotMultipart(_SentContentType, UnsupportedMediaType):
    """A multipart body was required and something else came."""

    title = "Multipart body required"

    def __init__(self, content_type: str) -> None:
        shown = content_type[:100] or "(none)"
        super().__init__(f"expected a multipart/* body, got Content-Type {shown!r}")
        self.content_type = content_type


class UnsupportedEncoding(UnsupportedMediaType):
    """A Content-Encoding or Content-Transfer-Encoding this package cannot decode."""

    title = "Unsupported encoding"

    def __init__(self, header: str, encoding: str, field: str | None = None) -> None:
        super().__init__(
            f"{header} {encoding[:60]!r} of field {field!r} is not supported", field=field
        )
        self.header = header
        self.encoding = encoding


class TypeNotAllowed(_SentContentType, UnsupportedMediaType):
    """A part's content type is not in ``allowed_types`` for its field."""

    title = "Content type not allowed"

    def __init__(self, field: str | None, content_type: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"content type {content_type[:100]!r} is not allowed in field {field!r}"
            f" (allowed: {', '.join(allowed) or 'none'})",
            field=field,
        )
        self.content_type = content_type
        self.allowed = allowed

    def problem(self) -> dict[str, Any]:
        doc = super().problem()
        doc["allowed"] = list(self.allowed)
        return doc


class InsufficientStorage(HelpersError):
    """The temporary directory has no room for the upload."""

    status = 507
    title = "Insufficient Storage"


class Forbidden(HelpersError):
    """The request is understood and refused."""

    status = 403
    title = "Forbidden"


class OriginNotAllowed(Forbidden):
    """A WebSocket upgrade whose ``Origin`` is not allowed (Cross-Site WebSocket Hijacking).

    ``origin`` and ``host`` are the request's (cut to 100 characters), ``why`` says
    which check failed; the answer gives neither, only the log does.
    """

    title = "Origin not allowed"

    def __init__(self, origin: str, host: str, why: str) -> None:
        super().__init__("the Origin of this request may not open a WebSocket here")
        self.origin = origin
        self.host = host
        self.why = why


class ServiceUnavailable(HelpersError):
    """The server is stopping: the request was cut short or refused, and may be retried.

    Answered with ``Retry-After`` (``retry_after`` seconds) and ``Connection: close``.
    """

    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


HelpersError.status_code = HelpersError.status
