"""The package's HTTP error tree, each class carrying its HTTP status and its data.

Every exception the package raises on purpose, and where it lives::

    Exception
    ├── aiohttp.web.HTTPException
    │   └── HelpersError                 500  base class, never raised as such
    │       ├── BadRequest               400
    │       │   ├── MalformedMultipart   400  bad boundary or framing, bad part headers/data
    │       │   ├── InvalidUploadHeader  400  a resumable-upload header that does not parse  [r]
    │       │   ├── InvalidMetadata      400  Upload-Metadata: encoding, size, key count      [r]
    │       │   ├── UnsupportedChecksum  400  Upload-Checksum with an unknown algorithm       [r]
    │       │   ├── InconsistentLength   400  Upload-Length / Upload-Complete disagree        [r]
    │       │   └── UploadAlreadyComplete 400 bytes sent to an upload that is complete        [r]
    │       ├── Forbidden                403
    │       │   └── OriginNotAllowed     403  a WebSocket upgrade from an Origin not allowed
    │       ├── UploadNotFound           404  no such resumable upload (or terminated)        [r]
    │       ├── RequestTimeout           408
    │       │   ├── UploadIdleTimeout    408  no body bytes for ``idle_timeout`` seconds
    │       │   └── UploadTooSlow        408  body bytes arriving slower than ``min_rate``
    │       ├── UploadConflict           409  Upload-Offset is not the upload's offset        [r]
    │       ├── UploadGone               410  the resumable upload expired                    [r]
    │       ├── VersionNotSupported      412  Tus-Resumable missing or not 1.0.0              [r]
    │       ├── PayloadTooLarge          413
    │       │   ├── BodyTooLarge         413  bytes on the wire over ``max_body_size``
    │       │   ├── FileTooLarge         413  one file over ``max_file_size``
    │       │   ├── FieldTooLarge        413  one text field over ``max_field_size``
    │       │   ├── TooManyFiles         413  more than ``max_files`` files
    │       │   ├── TooManyFields        413  more than ``max_fields`` text fields
    │       │   ├── TooManyParts         413  more than ``max_parts`` parts
    │       │   ├── HeadersTooLarge      413  part headers over their count or size limit
    │       │   ├── PreambleTooLarge     413  preamble or epilogue over ``max_preamble_size``
    │       │   ├── NestingTooDeep       413  nested multipart deeper than ``max_depth``
    │       │   ├── DecodedTooLarge      413  decoded (decompressed) bytes over their limit
    │       │   └── FieldsMemoryExceeded 413  text fields together over ``max_fields_memory``
    │       ├── UnsupportedMediaType     415
    │       │   ├── NotMultipart         415  not a multipart body where one is required
    │       │   ├── UnsupportedEncoding  415  unknown Content-Encoding / -Transfer-Encoding
    │       │   └── TypeNotAllowed       415  a part's type (declared or sniffed) not allowed
    │       ├── UploadLocked             423  another request is writing to the upload        [r]
    │       ├── TooManyUploads           429  the client has too many unfinished uploads      [r]
    │       ├── ChecksumMismatch         460  the body does not match Upload-Checksum         [r]
    │       ├── ServiceUnavailable       503  the server is stopping: retry (``Retry-After``)
    │       └── InsufficientStorage      507  the spool directory is full (ENOSPC)
    ├── RuntimeError
    │   ├── HookError                         a lifecycle hook failed                         [l]
    │   │   └── HookTimeout                   a lifecycle hook ran past its timeout           [l]
    │   └── FrozenSignalError                 a receiver or hook added after the app started  [l]
    ├── ValueError
    │   └── HookOrderError                    ``after=`` names no hook, or hooks in a cycle   [l]
    ├── ExceptionGroup[HookError]
    │   └── TeardownError                     shutdown or cleanup hooks failed                [l]
    └── WSClose                               a WebSocket handler ends with a close code     [ws]

    unmarked: this module (aiohttp_helpers/errors.py)
    [r]  aiohttp_helpers/resumable/errors.py
    [l]  aiohttp_helpers/lifecycle/errors.py
    [ws] aiohttp_helpers/websocket/close.py

Why three homes:

- ``HelpersError`` and its subclasses are *answers to a client's bad input*: each is an
  HTTP status and a problem document, which the package's one middleware (or aiohttp
  itself, without it) sends. They live here; the resumable-upload protocol's own answers
  (``[r]``) extend the same tree from its feature module, and are answered the same way.
- The lifecycle's errors (``[l]``) are *not* HTTP answers: they tell the operator, at
  start-up or shutdown, that a hook of the application failed, timed out or was ordered
  wrongly; no client ever sees them. They live with the lifecycle they describe, and
  derive from the built-in class whose meaning they share (``RuntimeError`` for a failure,
  ``ValueError`` for a wrong ``after=``, an ``ExceptionGroup`` for several failures).
- ``WSClose`` (``[ws]``) is not an error at all: it is control flow by which a WebSocket
  handler ends its connection with a close code and reason, after the HTTP answer (101)
  has long been sent. It lives in ``websocket/close.py`` with the close frames it carries.

A programmer's wrong argument is a plain ``TypeError`` / ``ValueError`` everywhere.

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

from ._words import counted

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


def _measured(value: float, unit: str) -> str:
    """``value`` (shown as ``:g`` shows it) and ``unit``, in the plural unless it is 1."""
    return counted(1, unit) if value == 1 else f"{value:g} {unit}s"


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
        super().__init__(f"no request body bytes arrived for {_measured(timeout, 'second')}")
        self.timeout = timeout


class UploadTooSlow(RequestTimeout):
    """Body bytes arrived slower than ``min_rate`` bytes per second, on average."""

    title = "Upload too slow"

    def __init__(self, min_rate: float) -> None:
        super().__init__(
            f"the request body arrived slower than {_measured(min_rate, 'byte')} per second",
            limit=int(min_rate),
        )
        self.min_rate = min_rate


class PayloadTooLarge(HelpersError):
    """Something in the request is over a configured limit."""

    status = 413
    title = "Content Too Large"


class _OverLimit(PayloadTooLarge):
    """A configured ``limit`` crossed (in ``field``): the detail is :attr:`template` filled in."""

    #: The detail, a :meth:`str.format` template of ``field``, ``limit`` (the number) and
    #: ``amount`` (the limit counted in ``unit``: "1 file", "4 files").
    template: ClassVar[str] = "over the limit of {limit}"
    #: What the limit counts, in the singular.
    unit: ClassVar[str] = "byte"

    def __init__(self, limit: int, field: str | None = None) -> None:
        detail = self.template.format(field=field, limit=limit, amount=counted(limit, self.unit))
        super().__init__(detail, field=field, limit=limit)


class _FieldOverLimit(_OverLimit):
    """An :class:`_OverLimit` about one field, which its constructor takes first."""

    def __init__(self, field: str | None, limit: int) -> None:
        super().__init__(limit, field)


class BodyTooLarge(_OverLimit):
    """The request body is larger than ``max_body_size`` bytes."""

    title = "Request body too large"
    template = "request body is larger than {amount}"


class FileTooLarge(_FieldOverLimit):
    """A file is larger than ``max_file_size`` bytes."""

    title = "File too large"
    template = "file in field {field!r} is larger than {amount}"


class FieldTooLarge(_FieldOverLimit):
    """A text field is larger than ``max_field_size`` bytes."""

    title = "Field too large"
    template = "field {field!r} is larger than {amount}"


class TooManyFiles(_OverLimit):
    """More than ``max_files`` files."""

    title = "Too many files"
    template = "more than {amount} in the form"
    unit = "file"


class TooManyFields(_OverLimit):
    """More than ``max_fields`` text fields."""

    title = "Too many fields"
    template = "more than {amount} in the form"
    unit = "text field"


class TooManyParts(_OverLimit):
    """More than ``max_parts`` parts."""

    title = "Too many parts"
    template = "more than {amount} in the body"
    unit = "part"


class HeadersTooLarge(PayloadTooLarge):
    """A part has too many header lines, or its headers are too long."""

    title = "Part headers too large"


class PreambleTooLarge(_OverLimit):
    """The preamble before the first boundary, or the epilogue after the last, is too long."""

    title = "Preamble too large"
    template = "more than {amount} outside the multipart boundaries"


class NestingTooDeep(_OverLimit):
    """Nested multipart parts go deeper than ``max_depth``."""

    title = "Multipart nesting too deep"
    template = "multipart parts are nested deeper than {amount}"
    unit = "level"


class DecodedTooLarge(_FieldOverLimit):
    """Decoded (decompressed) data is over its limit: a compression bomb, say."""

    title = "Decoded data too large"
    template = "decoded data of field {field!r} is larger than {amount}"


class _SentContentType:
    """``content_type``: the type the client sent, not the Content-Type of the answer."""

    _sent_type: str

    @property
    def content_type(self) -> str:
        return self._sent_type

    @content_type.setter
    def content_type(self, value: str) -> None:
        self._sent_type = value


class FieldsMemoryExceeded(_OverLimit):
    """The form's text fields together hold more than ``max_fields_memory`` decoded bytes."""

    title = "Form fields too large"
    template = "the form's text fields hold more than {amount} together"


class UnsupportedMediaType(HelpersError):
    """The body, or a part of it, is of a type or encoding that is not accepted."""

    status = 415
    title = "Unsupported Media Type"


class NotMultipart(_SentContentType, UnsupportedMediaType):
    """A multipart body was required (or, with ``urlencoded``, a form of either kind)."""

    title = "Multipart body required"

    def __init__(self, content_type: str, *, urlencoded: bool = False) -> None:
        shown = content_type[:100] or "(none)"
        also = " or application/x-www-form-urlencoded" if urlencoded else ""
        super().__init__(f"expected a multipart/*{also} body, got Content-Type {shown!r}")
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
