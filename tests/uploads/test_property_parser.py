"""Property tests of the upload parser: any input parses correctly or fails with a typed error.

Three properties, each checked on generated inputs split into random chunks:

- hostile input (multipart-shaped token soup, nested bodies, encodings, random bytes):
  ``iter_parts`` and ``read_form`` end either with parts or with a :class:`HelpersError`,
  and no part, chunk, count or total ever goes past its limit;
- the outcome does not depend on how the network split the body;
- well-formed bodies under random limits come back exactly when they are within every
  limit, and otherwise fail with the error of a limit the body really breaks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import itertools
import os
import tempfile
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.uploads.headers import _quoted_string as quoted_string
from tests.support.apps import serving
from tests.support.uploads import upload_app

B = b"Bq"
INNER = b"Cq"
HEADERS = {"Content-Type": "multipart/form-data; boundary=Bq"}

# What BaseRequest reads from its connection: there is none, the body is fed in directly.
_NO_CONNECTION: Any = SimpleNamespace(ssl_context=None, peername=None, sockname=None)


def in_process_request(chunks: list[bytes], headers: dict[str, str]) -> web.BaseRequest:
    """A request whose body is ``chunks``, each one ``readchunk()`` of a real StreamReader.

    Cheaper than aiohttp's ``make_mocked_request`` by a factor of ten, which matters at
    hundreds of examples; nothing but the body and headers is used by the parser.
    """
    loop = asyncio.get_running_loop()
    reader = StreamReader(BaseProtocol(loop), 2**30, loop=loop)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    message = RawRequestMessage(
        "POST",
        "/",
        HttpVersion11,
        CIMultiDictProxy(CIMultiDict(headers)),
        (),
        False,
        None,
        False,
        False,
        URL("/"),
    )
    return web.BaseRequest(message, reader, _NO_CONNECTION, cast(Any, None), cast(Any, None), loop)


# -- hostile input -------------------------------------------------------------------

_DELIMITERS = [
    b"--Bq\r\n",
    b"\r\n--Bq\r\n",
    b"\n--Bq\n",
    b"\r\n--Bq \t\r\n",
    b"\r\n--Bq--\r\n",
    b"\r\n--Bq--",
    b"--Bq--",
    b"\r\n--Bqx\r\n",
    b"\r\n--B",
    b"\r\n--Bq\r",
    b"\r\n--Bq" + b" " * 256 + b"\r\n",
    b"\r\n--Bq" + b"\t" * 257 + b"\r\n",
    b"\r\n--Cq\r\n",
    b"\r\n--Cq--\r\n",
]
_HEADER_LINES = [
    b'Content-Disposition: form-data; name="a"',
    b'Content-Disposition: form-data; name="f"; filename="x.txt"',
    b'Content-Disposition: form-data; name="f"; filename=""',
    b"Content-Disposition: form-data; name*=UTF-8''%E2%82%AC; filename*0*=UTF-8''a; "
    b'filename*1="b"',
    b'Content-Disposition: form-data; name="_charset_"',
    b"Content-Disposition: attachment",
    b'Content-Disposition: form-data; name="a"; name="b"',
    b"Content-Type: text/plain; charset=utf-8",
    b"Content-Type: text/plain; charset=latin-1",
    b"Content-Type: text/plain; charset=idna",
    b"Content-Type: text/plain; charset=undefined",
    b"Content-Type: multipart/mixed; boundary=Cq",
    b"Content-Type: multipart/mixed; boundary=Bq",
    b"Content-Type: multipart/mixed",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Transfer-Encoding: x-uuencode",
    b"Content-Encoding: gzip",
    b"Content-Encoding: deflate",
    b"Content-Encoding: br",
    b"Content-Encoding: zstd",
    b"Content-Encoding: gzip, gzip",
    b"X-Filler: " + b"x" * 60,
    b" folded continuation",
]
_BAD_LINES = [b"no colon here", b"Bad Name: value", b"Content-Disposition: form data"]
_DATA = [
    b"",
    b"value",
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b"=",
    b"=\r\n",
    b"utf-8",
    b"\xff\xfe",
    b"xn--" + b"a" * 70,
    base64.b64encode(b"hello world"),
    b"aGVsbG8=\r\nd29y",
    gzip.compress(b"z" * 5000),
    gzip.compress(b"z" * 50)[:20],
    b"--Cq\r\n\r\ninner\r\n--Cq--\r\n",
    b'--Cq\r\nContent-Disposition: form-data; name="n"; filename="n"\r\n\r\nnested\r\n--Cq--',
]
_TOKEN = st.one_of(
    st.sampled_from(_DELIMITERS),
    st.sampled_from(_HEADER_LINES + _BAD_LINES).map(lambda line: line + b"\r\n"),
    st.sampled_from(_DATA),
    st.binary(max_size=24),
    st.integers(1, 300).map(lambda n: b"d" * n),
)
# Most inputs start like a body: the parser's interesting states are past the preamble.
_SOUP = st.tuples(st.booleans(), st.lists(_TOKEN, max_size=30)).map(
    lambda t: (b"--Bq\r\n" if t[0] else b"") + b"".join(t[1])
)
_NEWLINE = st.sampled_from([b"\r\n", b"\r\n", b"\n"])


@st.composite
def _shaped_part(draw: st.DrawFn) -> bytes:
    """One part that is mostly right: a delimiter, header lines, an empty line, data."""
    nl = draw(_NEWLINE)
    delimiter = draw(st.sampled_from([b"--Bq", b"--Bq", b"--Bq ", b"--Bqx", b"--Cq"]))
    first = draw(st.one_of(st.sampled_from(_HEADER_LINES[:5]), st.sampled_from(_HEADER_LINES)))
    # A malformed line, or no empty line after the headers, in about one part in ten.
    line = st.sampled_from(_HEADER_LINES[5:] * 3 + _BAD_LINES)
    lines = [first, *draw(st.lists(line, max_size=3))]
    data = draw(st.one_of(st.sampled_from(_DATA), st.binary(max_size=60)))
    end = draw(st.sampled_from([nl] * 9 + [b""]))
    return delimiter + nl + nl.join(lines) + nl + end + data + nl


_SHAPED = st.tuples(
    st.lists(_shaped_part(), min_size=1, max_size=6),
    st.sampled_from([b"--Bq--\r\n", b"--Bq--", b"--Bq--\r\nepilogue", b"--Bq", b""]),
).map(lambda t: b"".join(t[0]) + t[1])
_BODIES = st.one_of(_SOUP, _SHAPED)


def _limit(tight: st.SearchStrategy[int], loose: int) -> st.SearchStrategy[int]:
    """Mostly a limit the body stays under, sometimes one it can break."""
    return st.one_of(tight, st.just(loose), st.just(loose))


_LIMITS = st.builds(
    ah.UploadLimits,
    max_body_size=_limit(st.integers(200, 3000), 100_000),
    max_file_size=_limit(st.integers(1, 600), 100_000),
    max_files=_limit(st.integers(1, 3), 100),
    max_field_size=_limit(st.integers(1, 300), 100_000),
    max_fields=_limit(st.integers(1, 3), 100),
    max_parts=_limit(st.integers(1, 4), 100),
    max_part_headers=_limit(st.integers(1, 3), 32),
    max_header_size=_limit(st.integers(1, 150), 16_384),
    max_preamble_size=_limit(st.integers(1, 100), 65_536),
    max_depth=st.integers(1, 3),
    max_decoded_size=st.one_of(st.none(), st.integers(1, 3000)),
    spool_max_size=st.integers(0, 100),
    chunk_size=st.just(1024),
    idle_timeout=st.none(),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a] or [b""]


@dataclass
class Used:
    """What a walk through the parts used of each limit."""

    parts: int = 0
    files: int = 0
    fields: int = 0
    decoded: int = 0
    wire: int = 0
    chunks: list[int] = field(default_factory=list)


async def _walk(
    parts: ah.PartIterator, limits: ah.UploadLimits, depth: int, used: Used
) -> list[Any]:
    out: list[Any] = []
    async for part in parts:
        used.parts += 1
        assert used.parts <= limits.max_parts
        headers = part.headers
        assert len(headers) <= limits.max_part_headers
        # Characters never outnumber the bytes they came from.
        assert sum(len(k) + len(v) for k, v in headers.items()) <= limits.max_header_size
        if part.is_multipart:
            assert depth < limits.max_depth
            out.append((part.name, await _walk(part.iter_parts(), limits, depth + 1, used)))
            continue
        chunks = [chunk async for chunk in part]
        assert all(0 < len(c) <= limits.chunk_size for c in chunks)
        data = b"".join(chunks)
        if part.is_file and (data or part.raw_filename != ""):
            used.files += 1
        elif not part.is_file:
            used.fields += 1
        assert used.files <= limits.max_files
        assert used.fields <= limits.max_fields
        assert len(data) <= (limits.max_file_size if part.is_file else limits.max_field_size)
        used.decoded += len(data)
        assert used.decoded <= limits.decoded_limit
        out.append((part.name, part.raw_filename, part.content_type, data))
    return out


def _verdict(exc: BaseException) -> tuple[str, str, str]:
    # Only the package's typed errors are allowed out of the parser.
    assert isinstance(exc, ah.HelpersError), repr(exc)
    assert 400 <= exc.status < 500, exc.status
    return "error", type(exc).__name__, str(exc)


async def _parts_outcome(chunks: list[bytes], limits: ah.UploadLimits) -> Any:
    try:
        parts = ah.iter_parts(in_process_request(chunks, HEADERS), limits)
        return "parts", await _walk(parts, limits, 1, Used())
    except ah.HelpersError as exc:
        return _verdict(exc)


async def _form_outcome(chunks: list[bytes], limits: ah.UploadLimits, tmp: str) -> Any:
    try:
        form = await ah.read_form(in_process_request(chunks, HEADERS), limits=limits)
    except ah.HelpersError as exc:
        assert os.listdir(tmp) == [], "a failed read left files behind"
        return _verdict(exc)
    async with form:
        assert len(form.files) <= limits.max_files
        assert len(form.fields) <= limits.max_fields
        assert len(form.files) + len(form.fields) <= limits.max_parts
        for upload in form.files.values():
            assert upload.size <= limits.max_file_size
            assert len(await upload.read()) == upload.size
        for value in form.fields.values():
            assert len(value) <= limits.max_field_size
        files = [(k, f.raw_filename, f.size) for k, f in form.files.items()]
        outcome = ("form", [*form.fields.items()], files)
    assert os.listdir(tmp) == []
    return outcome


def _same(whole: Any, split: Any, size: int, limits: ah.UploadLimits) -> None:
    """The outcomes of one body fed whole and fed in pieces agree."""
    if "BodyTooLarge" in (whole[1], split[1]):
        # Bytes on the wire are counted as they arrive: fed whole, the body is over the
        # limit before a byte is parsed; fed in pieces, an earlier error may come first.
        assert size > limits.max_body_size
        assert whole[0] == split[0] == "error"
        return
    too_large = {c.__name__ for c in _subclasses(ah.PayloadTooLarge)}
    if whole[0] == split[0] == "error" and {whole[1], split[1]} & too_large:
        # A body over a limit, and over or against something else too, may fail on
        # either first, as its bytes come: the limit is counted as bytes arrive, and
        # a decoder may see the bad data in one piece before the limit is reached.
        return
    assert split == whole, "the outcome depends on how the body was split"


def _subclasses(cls: type[Exception]) -> list[type[Exception]]:
    subs: list[type[Exception]] = cls.__subclasses__()
    return [cls, *(s for sub in subs for s in _subclasses(sub))]


@settings(max_examples=150, database=None, deadline=None)
@given(body=_BODIES, limits=_LIMITS, cuts=st.lists(st.integers(0, 10**6), max_size=6))
# Found by this test: base64 data after the padding was refused in one chunk and accepted
# when the padding ended a chunk.
@example(
    body=b'--Bq\r\nContent-Disposition: form-data; name="a"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\nd29y\r\n--Bq--\r\n",
    limits=ah.UploadLimits(),
    cuts=[93],
)
# Found by this test: a charset whose codec raises UnicodeError (not UnicodeDecodeError).
@example(
    body=b'--Bq\r\nContent-Disposition: form-data; name="a"\r\n'
    b"Content-Type: text/plain; charset=undefined\r\n\r\nv\r\n--Bq--\r\n",
    limits=ah.UploadLimits(),
    cuts=[],
)
def test_hostile_input_parses_or_fails_typed_within_limits(
    body: bytes, limits: ah.UploadLimits, cuts: list[int]
) -> None:
    async def check() -> None:
        whole = await _parts_outcome([body], limits)
        split = await _parts_outcome(_split(body, cuts), limits)
        _same(whole, split, len(body), limits)
        with tempfile.TemporaryDirectory() as tmp:
            form_limits = limits.replace(tmp_dir=tmp)
            whole_form = await _form_outcome([body], form_limits, tmp)
            split_form = await _form_outcome(_split(body, cuts), form_limits, tmp)
            _same(whole_form, split_form, len(body), limits)

    asyncio.run(check())


# -- well-formed bodies under random limits --------------------------------------------


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None
    encoding: str | None
    extra_headers: int

    def head(self) -> list[bytes]:
        disposition = f'Content-Disposition: form-data; name="{self.name}"'
        if self.filename is not None:
            disposition += f'; filename="{self.filename}"'
        lines = [disposition.encode()]
        if self.encoding == "gzip":
            lines.append(b"Content-Encoding: gzip")
        elif self.encoding is not None:
            lines.append(b"Content-Transfer-Encoding: " + self.encoding.encode())
        lines.extend(b"X-Extra-%d: %d" % (i, i) for i in range(self.extra_headers))
        return lines

    def wire_data(self) -> bytes:
        if self.encoding == "gzip":
            return gzip.compress(self.data, mtime=0)
        if self.encoding == "base64":
            return base64.encodebytes(self.data).replace(b"\n", b"\r\n")
        if self.encoding == "quoted-printable":
            return binascii.b2a_qp(self.data, istext=False).replace(b"\n", b"\r\n")
        return self.data

    def limit(self, limits: ah.UploadLimits) -> int:
        return limits.max_file_size if self.filename is not None else limits.max_field_size


_NAMES = st.text("abcdefgh", min_size=1, max_size=6)
# Data that looks like a delimiter of the body's boundary and is not one.
_LOOKALIKES = st.lists(
    st.sampled_from(
        [b"\r\n--Bqx", b"\n--Bq x", b"\n--Bq-x", b"\n--Bq" + b" " * 257 + b"\n", b"--B", b"\r"]
    ).map(lambda s: s + b"y"),
    max_size=200,
).map(b"".join)
_PART = st.builds(
    Part,
    name=_NAMES,
    # Text fields: UTF-8 text never ending in CR (which a bare-LF body would swallow).
    data=st.one_of(st.binary(max_size=400), st.text(max_size=150).map(str.encode), _LOOKALIKES),
    filename=st.one_of(st.none(), _NAMES.map(lambda n: n + ".bin")),
    encoding=st.sampled_from([None, None, "gzip", "base64", "quoted-printable"]),
    extra_headers=st.integers(0, 3),
)


def _build(parts: list[Part], newline: bytes) -> bytes:
    out = []
    for part in parts:
        head = newline.join(part.head())
        out.append(b"--Bq" + newline + head + newline + newline + part.wire_data() + newline)
    out.append(b"--Bq--" + newline)
    return b"".join(out)


def _breaks(
    exc: ah.HelpersError, parts: list[Part], limits: ah.UploadLimits, wire: int, newline: bytes
) -> bool:
    """Whether the body really breaks the limit ``exc`` names."""
    files = [p for p in parts if p.filename is not None]
    if isinstance(exc, ah.TooManyParts):
        return len(parts) > limits.max_parts
    if isinstance(exc, ah.TooManyFiles):
        return len(files) > limits.max_files
    if isinstance(exc, ah.TooManyFields):
        return len(parts) - len(files) > limits.max_fields
    if isinstance(exc, ah.FileTooLarge | ah.FieldTooLarge):
        return any(p.name == exc.field and len(p.data) > p.limit(limits) for p in parts)
    if isinstance(exc, ah.HeadersTooLarge):
        return any(
            len(p.head()) > limits.max_part_headers
            or len(newline.join(p.head())) > limits.max_header_size
            for p in parts
        )
    if isinstance(exc, ah.DecodedTooLarge):
        return sum(len(p.data) for p in parts) > limits.decoded_limit
    if isinstance(exc, ah.BodyTooLarge):
        return wire > limits.max_body_size
    return False


def _within(parts: list[Part], limits: ah.UploadLimits, wire: int, newline: bytes) -> bool:
    files = sum(p.filename is not None for p in parts)
    return (
        wire <= limits.max_body_size
        and len(parts) <= limits.max_parts
        and files <= limits.max_files
        and len(parts) - files <= limits.max_fields
        and all(len(p.data) <= p.limit(limits) for p in parts)
        and sum(len(p.data) for p in parts) <= limits.decoded_limit
        and all(
            len(p.head()) <= limits.max_part_headers
            and len(newline.join(p.head())) <= limits.max_header_size
            for p in parts
        )
    )


@settings(max_examples=100, database=None, deadline=None)
@given(
    parts=st.lists(_PART, min_size=1, max_size=6),
    limits=_LIMITS,
    newline=st.sampled_from([b"\r\n", b"\n"]),
    cuts=st.lists(st.integers(0, 10**6), max_size=5),
)
def test_well_formed_bodies_come_back_or_break_a_real_limit(
    parts: list[Part], limits: ah.UploadLimits, newline: bytes, cuts: list[int]
) -> None:
    # With bare LF line ends a CR just before a delimiter belongs to it.
    parts = [p for p in parts if not (newline == b"\n" and p.wire_data().endswith(b"\r"))] or [
        Part("a", b"", None, None, 0)
    ]
    body = _build(parts, newline)
    chunks = _split(body, cuts)

    async def check() -> None:
        got: list[tuple[str | None, bytes]] = []
        failed: ah.PayloadTooLarge | None = None
        try:
            async for part in ah.iter_parts(in_process_request(chunks, HEADERS), limits):
                got.append((part.name, await part.read()))
        except ah.PayloadTooLarge as exc:
            failed = exc
        if failed is not None:
            assert _breaks(failed, parts, limits, len(body), newline), f"{failed!r}, yet within"
            # Everything before the failing part came back intact.
            assert got == [(p.name, p.data) for p in parts[: len(got)]]
        else:
            assert _within(parts, limits, len(body), newline), "a limit broken, nothing said"
            assert got == [(p.name, p.data) for p in parts]

    asyncio.run(check())


# -- over HTTP -----------------------------------------------------------------------


@settings(
    max_examples=20,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(body=_BODIES, limits=_LIMITS)
def test_hostile_input_over_http_never_500(body: bytes, limits: ah.UploadLimits) -> None:
    async def check() -> None:
        with tempfile.TemporaryDirectory() as tmp:

            async def form(request: web.Request) -> web.Response:
                async with await ah.read_form(request) as got:
                    return web.json_response({"fields": len(got.fields), "files": len(got.files)})

            async with serving() as serve:
                url = await serve(upload_app(form, limits.replace(tmp_dir=tmp)))
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(url, data=body, headers=HEADERS) as resp,
                ):
                    assert resp.status in (200, 400, 413, 415), await resp.text()
                    if resp.status != 200:
                        doc = await resp.json(content_type=None)
                        assert doc["status"] == resp.status
            assert os.listdir(tmp) == []

    asyncio.run(check())


# -- quoted strings in part headers ------------------------------------------------------


def _read_quoted(text: str) -> tuple[str, int] | None:
    """A quoted string read a character at a time: its value and end, or None if open."""
    out: list[str] = []
    i = 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return None


@settings(max_examples=200, database=None, deadline=None)
@given(st.text(st.sampled_from('ab"\\; =é'), max_size=40))
def test_quoted_strings_read_as_one_character_at_a_time(rest: str) -> None:
    text = '"' + rest
    expected = _read_quoted(text)
    if expected is None:
        with pytest.raises(ah.MalformedMultipart, match="unterminated quoted string"):
            quoted_string(text, 1)
    else:
        assert quoted_string(text, 1) == expected
