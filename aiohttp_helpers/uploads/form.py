"""``read_form()``: a whole form, text fields as ``str`` and files spooled, limits enforced."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aiohttp import hdrs, web
from multidict import MultiDict, MultiDictProxy

from .._closing import AsyncClosing
from ..config import UploadLimits
from ..errors import BadRequest, MalformedMultipart
from ..keys import SIGNALS_KEY
from ..scope import request_scope
from .charsets import decode_text
from .counts import URLENCODED, body_limit, check_declared_length, media_type
from .decoding import check_charset
from .filenames import safe_filename
from .headers import PartHead, header_text, parse_content_type
from .limits import limits_for
from .reader import Level, PartStream, open_body
from .source import BodySource
from .spool import Spool
from .uploaded import UploadedFile
from .urlencoded import parse_urlencoded

if TYPE_CHECKING:
    from ..signals import SafeSignal

__all__ = ["Form", "read_form"]

_T = TypeVar("_T")
_MISSING: Any = object()


class Form(AsyncClosing, Mapping[str, str]):
    """A form read by :func:`read_form`: text fields by name, and :attr:`files`.

    ``form["title"]`` is the first value of a text field, ``form.getall("tag")`` all of
    them; ``form.files["avatar"]`` is an :class:`UploadedFile`. Iteration, ``len()`` and
    ``in`` cover the distinct names of the text fields; :attr:`fields` and :attr:`files`
    are multidicts with every value.
    """

    __slots__ = ("fields", "files")

    def __init__(self, fields: MultiDict[str], files: MultiDict[UploadedFile]) -> None:
        #: Text fields, in the order they came.
        self.fields: MultiDictProxy[str] = MultiDictProxy(fields)
        #: Files, in the order they came.
        self.files: MultiDictProxy[UploadedFile] = MultiDictProxy(files)

    def __repr__(self) -> str:
        fields = [k for k, _ in self.fields.items()]
        files = [k for k, _ in self.files.items()]
        return f"<Form fields={fields!r} files={files!r}>"

    def __getitem__(self, name: str) -> str:
        try:
            return self.fields[name]
        except KeyError:
            if name in self.files:
                raise KeyError(f"{name!r} is a file field: use form.files[{name!r}]") from None
            raise

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields.keys())

    @overload
    def getall(self, name: str) -> list[str]: ...
    @overload
    def getall(self, name: str, default: _T) -> list[str] | _T: ...
    def getall(self, name: str, default: Any = _MISSING) -> Any:
        """Every value of the text field ``name``."""
        if default is _MISSING:
            return self.fields.getall(name)
        return self.fields.getall(name, default)

    async def aclose(self) -> None:
        """Remove the temporary files of the form's unsaved files now."""
        for upload in self.files.values():
            await upload.aclose()


class _FormReader:
    """The state of one read_form() call."""

    __slots__ = ("fields", "files", "limits", "request", "signal", "spools")

    def __init__(self, request: web.BaseRequest, limits: UploadLimits) -> None:
        self.request = request
        self.limits = limits
        self.fields: MultiDict[str] = MultiDict()
        self.files: MultiDict[UploadedFile] = MultiDict()
        self.spools: list[Spool] = []
        self.signal: SafeSignal[Any, Any] | None = None
        if isinstance(request, web.Request):
            signals = request.config_dict.get(SIGNALS_KEY)
            if signals is not None:
                signal = signals.on_upload
                if signal and signal.frozen:
                    self.signal = signal

    async def read_level(self, level: Level, outer: str | None) -> None:
        parser = level.parser
        # Text fields with one plain header skip the general machinery (and its per-part
        # objects): that is what makes a form of many small fields fast.
        fast = outer is None and level.subtype == "form-data" and self.limits.allowed_types is None
        text_field = level.counts.text_field
        add = self.fields.add
        while True:
            if fast:
                for raw_name, value in parser.read_simple_fields():
                    # The common case inline (a call per field shows in a form of many
                    # small fields); anything else goes the one general way.
                    try:
                        field = raw_name.decode()
                    except UnicodeDecodeError:
                        field = header_text(raw_name)
                    text_field(field, len(value))
                    if level.charset is None and field != "_charset_":
                        try:
                            add(field, value.decode())
                        except UnicodeDecodeError:
                            add(field, decode_text(value, None, field))
                    else:
                        self.add_field(level, field, value, None)
            head = await level.next_head()
            if head is None:
                return
            name = outer if outer is not None else head.name
            if name is None:
                raise MalformedMultipart("a part of the form has no name")
            part = PartStream(level, head, name)
            if part.container:
                await self.read_level(level.nested(part), name)
            elif part.is_file:
                await self.read_file(level, part, head, name)
            else:
                if head.charset is not None:
                    check_charset(head.charset, name)  # 415 before the body is read
                whole = parser.read_whole() if part.plain else None
                if whole is not None:
                    part.take_whole(whole)
                else:
                    chunks = []
                    while chunk := await part.next_chunk():
                        chunks.append(chunk)
                    whole = b"".join(chunks)
                self.add_field(level, name, whole, head.charset)

    def add_field(self, level: Level, name: str, data: bytes, charset: str | None) -> None:
        value = decode_text(data, charset or level.charset, name)
        if name == "_charset_" and level.subtype == "form-data":
            check_charset(value, name)
            level.charset = value
        self.fields.add(name, value)

    async def read_file(self, level: Level, part: PartStream, head: PartHead, name: str) -> None:
        tmp_dir = self.limits.tmp_dir
        spool = Spool(self.limits.spool_max_size, None if tmp_dir is None else os.fspath(tmp_dir))
        self.spools.append(spool)
        data = level.parser.read_whole() if part.plain else None
        if data is not None:
            part.take_whole(data)
            await spool.write(data)
        else:
            while chunk := await part.next_chunk():
                await spool.write(chunk)
        if head.filename == "" and spool.size == 0:
            # An empty file input: the user chose no file.
            self.spools.remove(spool)
            return
        content, path, digest = await spool.finish()
        self.spools.remove(spool)
        raw = head.filename
        upload = UploadedFile(
            name=name,
            filename=safe_filename(raw),
            raw_filename=raw,
            content_type=head.media_type or "application/octet-stream",
            headers=head.headers,
            size=spool.size,
            sha256=digest,
            data=content,
            path=path,
        )
        self.files.add(name, upload)
        if path is not None:
            scope = request_scope(self.request)
            if scope is not None and not scope.closed:
                scope.push(upload.aclose)
        if self.signal is not None:
            await self.signal.send(self.request, upload)

    def discard(self) -> None:
        """The read failed: drop every file it made."""
        for spool in self.spools:
            spool.discard()
        self.spools.clear()
        for upload in self.files.values():
            upload.discard()


async def _read_urlencoded(
    request: web.BaseRequest, limits: UploadLimits, params: dict[str, str]
) -> Form:
    charset = params.get("charset") or "utf-8"
    check_charset(charset, None)  # 415 before a byte of the body is read
    limit = body_limit(URLENCODED, limits)
    check_declared_length(request.headers, limit)
    source = BodySource(request.content, limits, limit)
    body = bytearray()
    try:
        while chunk := await source.read():
            body += chunk
    finally:
        source.close()
    pairs = await parse_urlencoded(bytes(body), charset, limits)
    return Form(MultiDict(pairs), MultiDict())


async def read_form(request: web.BaseRequest, limits: UploadLimits | None = None) -> Form:
    """Read the whole form of ``request`` (multipart or urlencoded), enforcing ``limits``.

    Text fields come back as ``str`` (decoded with the part's charset, else the form's
    ``_charset_`` field, else UTF-8); files as :class:`UploadedFile`, in memory up to
    ``spool_max_size`` and in a temporary file beyond. ``limits`` defaults to the
    route's (``@upload_limits``), then the app's. Each finished file is sent to the
    ``on_upload`` signal. If reading fails, every file read so far is removed.

    Raises:
        HelpersError: the body breaks a limit (413), is malformed (400), or is not a form
            or uses an encoding or type that is not accepted (415); it stalled (408).
    """
    if limits is None:
        limits = limits_for(request)
    elif not isinstance(limits, UploadLimits):
        raise TypeError(f"limits must be an UploadLimits, got {type(limits).__name__}")
    ctype = request.headers.get(hdrs.CONTENT_TYPE, "")
    if media_type(ctype) == URLENCODED:
        try:
            _, params = parse_content_type(ctype)
        except MalformedMultipart:
            raise BadRequest("the Content-Type header is malformed") from None
        return await _read_urlencoded(request, limits, params)
    level = open_body(request.headers, request.content, limits, urlencoded=True)
    reader = _FormReader(request, limits)
    try:
        await reader.read_level(level, None)
    except BaseException:
        reader.discard()
        raise
    finally:
        level.close()
    return Form(reader.fields, reader.files)
