"""The adversarial multipart corpus: hostile bodies, their expected answers, server and client.

Used by ``tests/uploads/test_adversarial.py``, ``tests/uploads/test_uploads_hostile.py`` and
``python -m tests.support.corpus_server``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import hashlib
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import brotli
import zstandard
from aiohttp import web
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.keys import UPLOAD_LIMITS_KEY
from tests.support.raw_http import read_answer, sending
from tests.support.uploads import listing

__all__ = [
    "CORPUS",
    "LIMITS",
    "PROMPT",
    "Case",
    "Route",
    "corpus_app",
    "corpus_server_app",
    "exchange",
    "ping_until",
    "wire_body",
]

MiB = 1 << 20
KiB = 1 << 10
#: The longest a ``GET /ping`` may take while a hostile request is being handled.
PROMPT = 1.0
#: Limits an upload endpoint could run with; cases override some of them.
LIMITS = ah.UploadLimits(
    max_body_size=16 * MiB,
    max_file_size=2 * MiB,
    max_files=10,
    max_field_size=64 * KiB,
    max_fields=200,
    max_parts=210,
    max_part_headers=16,
    max_header_size=4 * KiB,
    max_preamble_size=4 * KiB,
    max_depth=3,
    max_decoded_size=8 * MiB,
    spool_max_size=64 * KiB,
    idle_timeout=0.4,
    chunk_size=64 * KiB,
)
CT = "multipart/form-data; boundary=Bq"

# -- building bodies -------------------------------------------------------------------


def part(*headers: str | bytes, data: bytes = b"v", boundary: bytes = b"Bq") -> bytes:
    """One part, delimiter first, header lines as given (str lines are UTF-8)."""
    head = b"\r\n".join(h.encode() if isinstance(h, str) else h for h in headers)
    return b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n"


def close(boundary: bytes = b"Bq") -> bytes:
    return b"--" + boundary + b"--\r\n"


def text_field(name: str, value: bytes = b"v") -> bytes:
    return part(f'Content-Disposition: form-data; name="{name}"', data=value)


def file(filename: str, data: bytes = b"data", *headers: str, name: str = "f") -> bytes:
    return part(
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"', *headers, data=data
    )


def nested(depth: int) -> bytes:
    """A file wrapped in ``depth`` levels of multipart/mixed."""
    inner = part(
        'Content-Disposition: attachment; filename="deep.txt"', data=b"deep", boundary=b"L0"
    )
    inner += close(b"L0")
    for level in range(1, depth):
        outer = f"L{level}".encode()
        inner = part(
            f"Content-Type: multipart/mixed; boundary=L{level - 1}", data=inner, boundary=outer
        )
        inner += close(outer)
    return (
        part(
            'Content-Disposition: form-data; name="n"',
            f"Content-Type: multipart/mixed; boundary=L{depth - 1}",
            data=inner,
        )
        + close()
    )


@functools.cache
def gzip_zeros(mib: int) -> bytes:
    """``mib`` MiB of zeros in about a KiB per MiB: the same gzip member repeated."""
    return gzip.compress(b"\0" * MiB, 9, mtime=0) * mib


@functools.cache
def bomb(coding: str) -> bytes:
    zeros = b"\0" * (16 * MiB)
    if coding == "gzip":
        return gzip_zeros(16)
    if coding == "deflate":
        return zlib.compress(zeros, 1)
    if coding == "br":
        return bytes(brotli.compress(zeros, quality=5))
    if coding == "zstd":
        return bytes(zstandard.ZstdCompressor(level=3).compress(zeros))
    if coding == "gzip, gzip":
        return gzip.compress(gzip_zeros(256), 9, mtime=0)
    raise AssertionError(coding)


@functools.cache
def gzip_members(count: int) -> bytes:
    """``count`` gzip members of two bytes (``ab``) each, back to back."""
    return gzip.compress(b"ab", 1, mtime=0) * count


def _charset_part(label: str, data: bytes, name: str = "c") -> bytes:
    return (
        part(
            f'Content-Disposition: form-data; name="{name}"',
            f"Content-Type: text/plain; charset={label}",
            data=data,
        )
        + close()
    )


#: Charsets Python decodes and browsers never submit a form in: label, data, the harm.
HOSTILE_CHARSETS: list[tuple[str, bytes, str]] = [
    ("utf-7", b"+ADw-script+AD4-alert(1)+ADw-/script+AD4-", "+ADw- decodes to <"),
    ("UTF-7", b"+ADw-", "the same in capitals"),
    ("utf-16", "<b>".encode("utf-16"), "browsers submit forms in UTF-8 instead"),
    ("utf-16-le", "<b>".encode("utf-16-le"), "a byte order of UTF-16"),
    ("utf-32", "<b>".encode("utf-32"), "UTF-32"),
    ("cp037", "<script>".encode("cp037"), "EBCDIC: no byte of it looks like <script>"),
    ("cp500", "<script>".encode("cp500"), "EBCDIC"),
    ("cp1140", "<script>".encode("cp1140"), "EBCDIC"),
    ("unicode_escape", b"\\u003cscript\\u003e", "backslash escapes become markup"),
    ("raw_unicode_escape", b"\\u003c", "the same without the other escapes"),
    ("punycode", b"a" * (60 * KiB) + b"-" + b"b" * 200, "its decoder is quadratic"),
    ("base64_codec", b"PHNjcmlwdD4=", "a bytes-to-bytes codec"),
    ("hex", b"3c7363726970743e", "a bytes-to-bytes codec"),
    ("zlib_codec", zlib.compress(b"x" * 1000), "a decompressor"),
    ("x-user-defined", b"\x80", "not a form encoding"),
    ("iso-2022-kr", b"\x1b$)C", "the standard's 'replacement' encoding"),
    ("utf8\u212a", b"x", "a label that only lowercases to a listed one"),
]

#: Python codecs that are no form charset, each with its own reason: id, source, label, data.
PYTHON_ONLY_CODECS: list[tuple[str, str, str, bytes]] = [
    (
        "charset-undefined",
        "a text field in Python's 'undefined' codec, which fails on any input: not a form "
        "charset (WHATWG Encoding Standard), refused before any lookup",
        "undefined",
        b"text",
    ),
    (
        "charset-idna",
        "a text field in the idna codec, with a label it cannot decode: not a form charset",
        "idna",
        b"xn--" + b"a" * 70,
    ),
    ("charset-not-text", "a 'charset' that is a bytes-to-bytes codec (rot13)", "rot13", b"v"),
]


# -- the corpus ------------------------------------------------------------------------

Route = Literal["read_form", "iter_parts"]
BOTH: tuple[Route, ...] = ("read_form", "iter_parts")
Check = Callable[[Any, Path], None]


@dataclass(frozen=True)
class Case:
    """One hostile request and the answer it must get."""

    id: str
    #: Where the input comes from: the advisory, or the class of bug.
    source: str
    body: Callable[[], bytes]
    #: The status, by route when the two readers answer differently.
    status: int | dict[Route, int]
    #: How the problem document's ``type`` ends (None: not a problem document).
    problem: str | None = None
    check: Check | None = None
    content_type: str = CT
    routes: tuple[Route, ...] = BOTH
    limits: dict[str, Any] = field(default_factory=dict)
    #: How the client sends it: bytes per write and the pause between writes.
    write_size: int = 256 * KiB
    delay: float = 0.0
    #: Content-Length to announce (None: the true length); "chunked" to stream it.
    length: int | Literal["chunked"] | None = None
    #: Send only this many body bytes, then go quiet with the connection open.
    stall_after: int | None = None
    #: Bytes sent after the body on the same connection, and how many answers to read.
    then: bytes = b""
    answers: int = 1
    extra_headers: str = ""
    #: For a chunked body: the size of each HTTP chunk (default: one chunk per write).
    http_chunk: int | None = None

    def expected(self, route: Route) -> int:
        return self.status if isinstance(self.status, int) else self.status[route]


def _saved_inside(name: str) -> Check:
    """The 200 of a traversal attempt: the safe name, and (read_form) saved inside ``dest``."""

    def check(doc: Any, dest: Path) -> None:
        [upload] = doc["files"]
        assert upload["filename"] == name
        if "saved" in upload:
            path = Path(upload["saved"])
            assert path.parent == dest
            assert path.read_bytes() == b"data"
            assert listing(dest) == [name]

    return check


def _fields(count: int) -> Check:
    def check(doc: Any, dest: Path) -> None:
        assert doc["fields"] == count

    return check


def _file_data(data: bytes) -> Check:
    def check(doc: Any, dest: Path) -> None:
        [upload] = doc["files"]
        assert upload["size"] == len(data)
        assert upload["sha256"] == hashlib.sha256(data).hexdigest()

    return check


def _named_file(filename: str) -> bytes:
    return file(filename) + close()


#: Filenames that must be saved inside the destination under a safe name: id, source,
#: filename, the safe name.
UNSAFE_FILENAMES: list[tuple[str, str, str, str]] = [
    (
        "traversal-dotdot",
        "Django CVE-2021-31542 (directory traversal through uploaded file names)",
        "../../etc/passwd",
        "passwd",
    ),
    (
        "traversal-backslashes",
        "Django CVE-2021-31542, with Windows separators",
        "..\\..\\windows\\win.ini",
        "win.ini",
    ),
    (
        "traversal-four-dots",
        "Django CVE-2021-28658: '....//' survives naive removal of '../'",
        "....//....//etc/passwd",
        "passwd",
    ),
    ("absolute-path", "an absolute path as the filename", "/etc/cron.d/job", "job"),
    (
        "hidden-file",
        "a dotfile that would configure the upload directory (.htaccess)",
        ".htaccess",
        "htaccess",
    ),
    (
        "windows-device-name",
        "a Windows device name (CON) that would not be a file at all",
        "CON",
        "_CON",
    ),
    (
        "right-to-left-override",
        "a right-to-left override that shows 'gpj.exe' as 'exe.jpg'",
        "photo\u202egpj.exe",
        "photogpj.exe",
    ),
]


LOOKALIKES = b"\r\n--Bqx\r\n--Bq-\n--Bq \tz" * (1 * MiB // 22)
CR_THEN_DATA = b"\r" + b"a" * (3 * MiB // 2)

CORPUS: list[Case] = [
    # -- preamble and epilogue --
    Case(
        "huge-preamble",
        "aiohttp's own multipart reader skipped the preamble without counting it against "
        "client_max_size (this package's design notes): 1 MiB of junk before the first boundary",
        lambda: b"x" * MiB + b"\r\n" + text_field("a") + close(),
        413,
        "preamble-too-large",
    ),
    Case(
        "crlf-preamble",
        "python-multipart CVE-2024-53981: CR and LF bytes before the first boundary were "
        "skipped one at a time, each with a log line",
        lambda: b"\r\n" * (MiB // 2) + text_field("a") + close(),
        413,
        "preamble-too-large",
    ),
    Case(
        "crlf-epilogue",
        "python-multipart CVE-2024-53981, the same after the final boundary",
        lambda: text_field("a") + close() + b"\r\n" * (MiB // 2),
        413,
        "preamble-too-large",
    ),
    Case(
        "no-boundary-at-all",
        "a body that never contains its boundary: all of it is preamble",
        lambda: b"\x00junk" * (MiB // 5),
        413,
        "preamble-too-large",
    ),
    # -- framing --
    Case(
        "missing-final-boundary",
        "aiohttp CVE-2024-30251: a malformed multipart body sent the reader into an "
        "endless loop; here the close delimiter never comes",
        lambda: text_field("a") + file("x.bin", b"x" * 100_000),
        400,
        "malformed-multipart",
    ),
    Case(
        "ends-inside-headers",
        "aiohttp CVE-2024-30251, a body cut inside a part's headers",
        lambda: text_field("a") + b'--Bq\r\nContent-Disposition: form-data; name="b"',
        400,
        "malformed-multipart",
    ),
    Case(
        "ends-after-a-delimiter",
        "aiohttp CVE-2024-30251, a body that ends right after a delimiter line",
        lambda: text_field("a") + b"--Bq\r\n",
        400,
        "malformed-multipart",
    ),
    Case(
        "boundary-lookalikes",
        "Apache Commons FileUpload CVE-2016-3092 and Werkzeug CVE-2023-46136 (data that "
        "makes the boundary search crawl): a file made of lines that start like the delimiter",
        lambda: file("look.bin", LOOKALIKES) + close(),
        200,
        check=_file_data(LOOKALIKES),
    ),
    Case(
        "cr-then-megabytes",
        "Werkzeug CVE-2023-46136: file data that starts with CR, then megabytes with no line end",
        lambda: file("cr.bin", CR_THEN_DATA) + close(),
        200,
        check=_file_data(CR_THEN_DATA),
    ),
    Case(
        "lf-only-line-ends",
        "parser differentials over bare LF line ends (RFC 2046 says CRLF; browsers, curl and "
        "most parsers send or accept LF): tolerated, parsed like CRLF",
        lambda: b'--Bq\nContent-Disposition: form-data; name="a"\n\nv\n--Bq--\n',
        200,
        check=_fields(1),
    ),
    Case(
        "bare-cr-line-ends",
        "bare CR line ends: no parser should take them as line ends",
        lambda: b'--Bq\rContent-Disposition: form-data; name="a"\r\rv\r--Bq--\r',
        400,
        "malformed-multipart",
    ),
    # -- part headers --
    Case(
        "endless-part-headers",
        "Go CVE-2023-24536 (mime/multipart spent CPU and memory on many headers) and "
        "CVE-2023-24534 (net/textproto): header lines that never end in an empty line",
        lambda: b"--Bq\r\n" + b"X-Header: value\r\n" * (MiB // 17),
        413,
        "headers-too-large",
    ),
    Case(
        "many-short-header-lines",
        "Go CVE-2023-24536: many tiny header lines, within the byte limit",
        lambda: part('Content-Disposition: form-data; name="a"', *["A: 1"] * 500) + close(),
        413,
        "headers-too-large",
    ),
    Case(
        "very-long-header-line",
        "Go CVE-2023-24534: one header line of a MiB",
        lambda: part('Content-Disposition: form-data; name="a"', "X: " + "y" * MiB) + close(),
        413,
        "headers-too-large",
    ),
    Case(
        "parameter-flood",
        "python-multipart CVE-2024-24762 (ReDoS in header options): hundreds of parameters "
        "in one Content-Disposition",
        lambda: part('Content-Disposition: form-data; name="a"' + "; p" * 1000) + close(),
        400,
        "malformed-multipart",
    ),
    Case(
        "redos-quoted-backslashes",
        "python-multipart CVE-2024-24762: an unterminated quoted parameter full of backslashes",
        lambda: part('Content-Disposition: form-data; name="a' + "\\" * 3000) + close(),
        400,
        "malformed-multipart",
    ),
    Case(
        "redos-request-content-type",
        "python-multipart CVE-2024-24762, in the request's own Content-Type",
        lambda: text_field("a") + close(),
        400,
        "malformed-multipart",
        content_type='multipart/form-data; boundary=Bq; x="' + "\\" * 4000,
    ),
    Case(
        "nul-in-part-header",
        "busboy/dicer CVE-2022-24434 (a malformed part header crashed the process): NUL in a "
        "header",
        lambda: part(b'Content-Disposition: form-data; name="a\x00b"') + close(),
        400,
        "malformed-multipart",
    ),
    Case(
        "header-without-colon",
        "busboy/dicer CVE-2022-24434: a header line that is not a header",
        lambda: part("Content-Disposition form-data") + close(),
        400,
        "malformed-multipart",
    ),
    # -- counts --
    Case(
        "100k-tiny-fields",
        "Werkzeug CVE-2023-25577, Starlette CVE-2023-30798, Django CVE-2023-24580, Go "
        "CVE-2023-24536, PHP CVE-2023-0662, Apache Commons FileUpload CVE-2023-24998 (no "
        "limit on the number of parts): 100,000 one-byte fields",
        lambda: b"".join(text_field(f"f{i}") for i in range(100_000)) + close(),
        413,
        "too-many-fields",
    ),
    Case(
        "100k-tiny-files",
        "Django CVE-2023-24580 and Go CVE-2022-41725 (ReadForm made temporary files without "
        "limit): 100,000 one-byte files",
        lambda: b"".join(file(f"{i}.txt", b"x", name=f"f{i}") for i in range(100_000)) + close(),
        413,
        "too-many-files",
    ),
    Case(
        "100k-empty-parts",
        "Werkzeug CVE-2023-25577: parts with no headers and no data",
        lambda: b"--Bq\r\n\r\n\r\n" * 100_000 + close(),
        {"read_form": 400, "iter_parts": 413},
    ),
    Case(
        "100k-fields-allowed",
        "the same 100,000 fields under limits that allow them: parsed in time linear in "
        "their number, the server answering others meanwhile",
        lambda: b"".join(text_field(f"f{i}") for i in range(100_000)) + close(),
        200,
        check=_fields(100_000),
        limits={"max_parts": 100_000, "max_fields": 100_000},
    ),
    Case(
        "unbounded-text-field",
        "Starlette CVE-2024-47874: a part without a filename buffered in memory without limit",
        lambda: text_field("a", b"x" * (4 * MiB)) + close(),
        413,
        "field-too-large",
    ),
    Case(
        "decoded-total",
        "many parts each under its limit, together over the decoded total",
        lambda: (
            b"".join(file(f"{i}.bin", b"z" * (MiB + 1), name=f"f{i}") for i in range(9)) + close()
        ),
        413,
        "decoded-too-large",
    ),
    # -- nesting --
    Case(
        "deep-nesting",
        "unbounded recursion in nested multipart (the class of stack-exhaustion bugs in "
        "MIME parsers): 60 levels of multipart/mixed",
        lambda: nested(60),
        413,
        "nesting-too-deep",
    ),
    Case(
        "nested-reuses-outer-boundary",
        "a nested body that reuses its parent's boundary (RFC 2046 forbids it): the outer "
        "delimiter ends the part, the nested body is cut short",
        lambda: (
            part(
                'Content-Disposition: form-data; name="n"',
                "Content-Type: multipart/mixed; boundary=Bq",
                data=part("Content-Disposition: attachment", data=b"inner"),
            )
            + close()
        ),
        400,
        "malformed-multipart",
    ),
    # -- boundaries --
    Case(
        "boundary-71-chars",
        "Apache Commons FileUpload CVE-2014-0050 (a boundary longer than the buffer looped "
        "forever): one character over RFC 2046's 70",
        lambda: b"--" + b"b" * 71 + b"--\r\n",
        400,
        "malformed-multipart",
        content_type="multipart/form-data; boundary=" + "b" * 71,
    ),
    Case(
        "boundary-4000-chars",
        "Apache Commons FileUpload CVE-2014-0050 and CVE-2016-3092: a boundary of 4000 chars",
        lambda: b"--" + b"b" * 4000 + b"--\r\n",
        400,
        "malformed-multipart",
        content_type="multipart/form-data; boundary=" + "b" * 4000,
    ),
    Case(
        "boundary-70-chars",
        "RFC 2046's longest boundary, with a MiB of data that repeats most of it",
        lambda: (
            part(
                'Content-Disposition: form-data; name="f"; filename="b.bin"',
                data=(b"\r\n--" + b"b" * 69 + b"x") * (MiB // 74),
                boundary=b"b" * 70,
            )
            + close(b"b" * 70)
        ),
        200,
        check=_file_data((b"\r\n--" + b"b" * 69 + b"x") * (MiB // 74)),
        content_type="multipart/form-data; boundary=" + "b" * 70,
    ),
    Case(
        "boundary-quoted-with-spaces",
        "parser differentials over quoted boundaries (RFC 2046 allows spaces inside)",
        lambda: (
            part('Content-Disposition: form-data; name="a"', boundary=b"a b c") + close(b"a b c")
        ),
        200,
        check=_fields(1),
        content_type='multipart/form-data; boundary="a b c"',
    ),
    Case(
        "boundary-trailing-space",
        "RFC 2046: a boundary may not end in a space; parsers disagree on whether it counts",
        lambda: part('Content-Disposition: form-data; name="a"', boundary=b"ab ") + close(b"ab "),
        400,
        "malformed-multipart",
        content_type='multipart/form-data; boundary="ab "',
    ),
    Case(
        "boundary-given-twice",
        "parser differentials (the class behind multipart WAF bypasses): two boundary "
        "parameters, each parser picking a different one",
        lambda: text_field("a") + close(),
        400,
        "malformed-multipart",
        content_type="multipart/form-data; boundary=Bq; boundary=Other",
    ),
    Case(
        "boundary-empty",
        "an empty boundary: every line would match",
        lambda: b"--\r\n\r\nv\r\n----\r\n",
        400,
        "malformed-multipart",
        content_type='multipart/form-data; boundary=""',
    ),
    # -- encodings and bombs --
    *[
        Case(
            f"{coding}-bomb",
            "decompression bombs (the zip bomb class): 16 MiB of zeros, compressed to KiB, "
            "in a file part",
            functools.partial(
                lambda c: file("bomb.bin", bomb(c), f"Content-Encoding: {c}") + close(), coding
            ),
            413,
            "file-too-large",
        )
        for coding in ("gzip", "deflate", "br", "zstd")
    ],
    Case(
        "nested-gzip-bomb",
        "a bomb inside a bomb: 256 MiB of zeros, gzip of gzip, in 3 KiB",
        lambda: file("bomb.bin", bomb("gzip, gzip"), "Content-Encoding: gzip, gzip") + close(),
        413,
        "file-too-large",
    ),
    Case(
        "gzip-bomb-in-a-field",
        "Starlette CVE-2024-47874 meets a zip bomb: a compressed text field",
        lambda: (
            part(
                'Content-Disposition: form-data; name="a"',
                "Content-Encoding: gzip",
                data=bomb("gzip"),
            )
            + close()
        ),
        413,
        "field-too-large",
    ),
    Case(
        "base64-gzip-bomb",
        "a base64 bomb: a compression bomb wrapped in base64, past checks on the encoded size",
        lambda: (
            file(
                "bomb.bin",
                base64.encodebytes(bomb("gzip")),
                "Content-Transfer-Encoding: base64",
                "Content-Encoding: gzip",
            )
            + close()
        ),
        413,
        "file-too-large",
    ),
    Case(
        "base64-whitespace-flood",
        "base64 padded with a MiB of line breaks and spaces between the characters",
        lambda: (
            file(
                "ws.bin",
                b"aGVs" + b" \r\n\t" * (MiB // 4) + b"bG8=",
                "Content-Transfer-Encoding: base64",
            )
            + close()
        ),
        200,
        check=_file_data(b"hello"),
    ),
    Case(
        "base64-garbage",
        "base64 that is not base64",
        lambda: file("b.bin", b"@@@@" * 1000, "Content-Transfer-Encoding: base64") + close(),
        400,
        "malformed-multipart",
    ),
    Case(
        "stacked-codings",
        "five Content-Encodings stacked on one part",
        lambda: file("b.bin", b"x", "Content-Encoding: gzip, gzip, gzip, gzip, gzip") + close(),
        415,
        "unsupported-encoding",
    ),
    *[
        Case(
            case_id,
            source,
            functools.partial(_charset_part, label, data, "a"),
            415,
            "unsupported-encoding",
            routes=("read_form",),
        )
        for case_id, source, label, data in PYTHON_ONLY_CODECS
    ],
    Case(
        "urlencoded-charset-idna",
        "a urlencoded form in the idna codec with a percent-escape it cannot decode: not a "
        "form charset",
        lambda: b"a=%FF%FE",
        415,
        "unsupported-encoding",
        content_type="application/x-www-form-urlencoded; charset=idna",
        routes=("read_form",),
    ),
    # -- filenames --
    *[
        Case(
            case_id,
            source,
            functools.partial(_named_file, filename),
            200,
            check=_saved_inside(saved),
        )
        for case_id, source, filename, saved in UNSAFE_FILENAMES
    ],
    Case(
        "traversal-percent-encoded",
        "aiohttp's own reader decodes filename*=UTF-8''%2e%2e%2f... to ../ (design notes)",
        lambda: (
            part(
                "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%2e%2e%2f%2e%2e%2fetc"
                "%2fpasswd",
                data=b"data",
            )
            + close()
        ),
        200,
        check=_saved_inside("passwd"),
    ),
    Case(
        "nul-in-encoded-filename",
        "PHP CVE-2006-7243 (NUL in a path cut it short at a C boundary): evil.php%00.jpg",
        lambda: (
            part(
                "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''evil.php%00.jpg",
                data=b"data",
            )
            + close()
        ),
        200,
        check=_saved_inside("evil.php.jpg"),
    ),
    Case(
        "nul-in-raw-filename",
        "PHP CVE-2006-7243, the NUL sent as a raw byte in the header",
        lambda: (
            part(b'Content-Disposition: form-data; name="f"; filename="a.php\x00.jpg"') + close()
        ),
        400,
        "malformed-multipart",
    ),
    # -- the wire --
    Case(
        "content-length-short",
        "a Content-Length that is shorter than the body (the request smuggling class): the "
        "body ends where it says, and the bytes after it are read as the next request",
        lambda: text_field("a") + close(),
        400,
        "malformed-multipart",
        length=30,
        then=b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
        answers=2,
    ),
    Case(
        "content-length-long",
        "a Content-Length longer than the body: the rest never comes (slow-POST class)",
        lambda: text_field("a") + file("big.bin", b"x" * (200 * KiB)) + close(),
        408,
        "upload-idle-timeout",
        length=4 * MiB,
    ),
    Case(
        "content-length-over-limit",
        "a Content-Length over max_body_size, refused before a byte is read",
        lambda: text_field("a") + close(),
        413,
        "body-too-large",
        length=1 << 40,
        stall_after=0,
    ),
    Case(
        "content-length-and-chunked",
        "RFC 9112 section 6.1, the CL.TE request smuggling class: both framings at once",
        lambda: b"5\r\nhello\r\n0\r\n\r\n",
        400,
        extra_headers="Transfer-Encoding: chunked\r\n",
        length=11,
    ),
    Case(
        "chunked-over-limit",
        "a chunked body (no Content-Length to refuse early) over max_body_size",
        lambda: file("big.bin", b"x" * (3 * MiB)) + close(),
        413,
        "body-too-large",
        length="chunked",
        limits={"max_body_size": MiB},
    ),
    Case(
        "slow-drip",
        "Slowloris and R-U-Dead-Yet (slow POST): a body dripped a few bytes at a time, never "
        "quiet for the idle timeout, parsed exactly",
        lambda: text_field("a", b"dripped") + file("d.bin", b"0123456789" * 4) + close(),
        200,
        check=_file_data(b"0123456789" * 4),
        write_size=20,
        delay=0.01,
    ),
    Case(
        "slow-drip-then-stall",
        "slow POST that stops: 408 after the idle timeout, the spooled file removed",
        lambda: text_field("a") + file("d.bin", b"x" * (300 * KiB)) + close(),
        408,
        "upload-idle-timeout",
        write_size=64 * KiB,
        delay=0.05,
        stall_after=200 * KiB,
        limits={"spool_max_size": 0},
    ),
    Case(
        "drip-under-min-rate",
        "slow POST that is never quiet for the idle timeout: a byte every 0.3 s (idle timeout "
        "0.4 s) would hold the upload open for ever; under min_rate it gets 408",
        lambda: text_field("a") + file("d.bin", b"x" * 100) + close(),
        408,
        "upload-too-slow",
        write_size=1,
        delay=0.3,
    ),
    Case(
        "file-in-2-byte-chunks",
        "a file sent in 2-byte HTTP chunks: every piece used to be stored as its own object "
        "(35 x the part's size in memory). Written 8 KiB at a time: aiohttp's own HTTP parser "
        "spends microseconds on each chunk of a socket read, a stall this package cannot split",
        lambda: file("c.bin", bytes(range(256)) * (MiB // 512)) + close(),
        200,
        check=_file_data(bytes(range(256)) * (MiB // 512)),
        length="chunked",
        http_chunk=2,
        write_size=8 * KiB,
        delay=0.002,
        limits={"spool_max_size": 4 * MiB, "max_file_size": 4 * MiB},
    ),
    # -- memory and CPU of decoders --
    Case(
        "gzip-tiny-members",
        "a gzip part made of 300,000 members of 2 bytes each: one decoder step (and one stored "
        "object) per member used to cost memory and hold the event loop",
        lambda: file("m.bin", gzip_members(300_000), "Content-Encoding: gzip") + close(),
        200,
        check=_file_data(b"ab" * 300_000),
        limits={"max_body_size": 32 * MiB},
    ),
    Case(
        "gzip-text-fields",
        "200 gzip-compressed text fields (a few KiB on the wire) that each expand to 64 KiB: "
        "the text a form holds in memory has its own budget",
        lambda: (
            b"".join(
                part(
                    f'Content-Disposition: form-data; name="t{i}"',
                    "Content-Encoding: gzip",
                    data=gzip.compress(b"a" * (64 * KiB - 1), 9, mtime=0),
                )
                for i in range(200)
            )
            + close()
        ),
        413,
        "fields-memory-exceeded",
        routes=("read_form",),
    ),
    Case(
        "urlencoded-over-its-cap",
        "a urlencoded body over max_urlencoded_size (aiohttp's own cap is 1 MiB): read whole "
        "and parsed in one go it held the event loop",
        lambda: b"a=" + b"x" * (2 * MiB),
        413,
        "body-too-large",
        content_type="application/x-www-form-urlencoded",
        routes=("read_form",),
    ),
    Case(
        "urlencoded-many-pairs",
        "3 MiB of urlencoded pairs under raised limits: parsed in steps, the loop stays free",
        lambda: b"&".join(b"k%d=%%41%%42%%43" % i for i in range(200_000)),
        200,
        check=_fields(200_000),
        content_type="application/x-www-form-urlencoded",
        routes=("read_form",),
        limits={
            "max_urlencoded_size": 16 * MiB,
            "max_fields": 1_000_000,
            "max_fields_memory": 64 * MiB,
        },
    ),
    Case(
        "urlencoded-one-escaped-value",
        "one 6 MiB value of percent-escapes under raised limits: undone in bounded slices",
        lambda: b"a=" + b"%41" * (2 * MiB),
        200,
        check=_fields(1),
        content_type="application/x-www-form-urlencoded",
        routes=("read_form",),
        limits={
            "max_urlencoded_size": 8 * MiB,
            "max_field_size": 4 * MiB,
            "max_fields_memory": 8 * MiB,
        },
    ),
    Case(
        "urlencoded-too-many-fields",
        "more pairs than max_fields: 413 too-many-fields, as for a multipart form",
        lambda: b"&".join(b"k=v" for _ in range(300)),
        413,
        "too-many-fields",
        content_type="application/x-www-form-urlencoded",
        routes=("read_form",),
    ),
    *[
        Case(
            "charset-" + re.sub("[^A-Za-z0-9_-]", "-", label),
            f"a text field in {label}: {why}; not a charset browsers submit forms in (WHATWG "
            "Encoding Standard), refused before it decodes anything",
            functools.partial(_charset_part, label, data),
            415,
            "unsupported-encoding",
            routes=("read_form",),
        )
        for label, data, why in HOSTILE_CHARSETS
    ],
    Case(
        "charset-field-utf-7",
        "the form's _charset_ field naming UTF-7, so that the next field's +ADw-script+AD4- "
        "would read as <script>",
        lambda: text_field("_charset_", b"utf-7") + text_field("c", b"+ADw-script+AD4-") + close(),
        415,
        "unsupported-encoding",
        routes=("read_form",),
    ),
    Case(
        "charset-field-huge-label",
        "a 60 KB _charset_ value: each unique label a codec lookup used to cache for good",
        lambda: text_field("_charset_", b"x" * (60 * KiB)) + text_field("c") + close(),
        415,
        "unsupported-encoding",
        routes=("read_form",),
    ),
    Case(
        "urlencoded-charset-utf-7",
        "a urlencoded form declared as UTF-7: +ADw-script+AD4- must not become <script>",
        lambda: b"c=%2BADw-script%2BAD4-",
        415,
        "unsupported-encoding",
        content_type="application/x-www-form-urlencoded; charset=utf-7",
        routes=("read_form",),
    ),
]


# -- the client ------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    return Answer(*await read_answer(reader))


async def _send(writer: asyncio.StreamWriter, case: Case, path: str, body: bytes) -> None:
    length = case.length
    framing = (
        "Transfer-Encoding: chunked\r\n"
        if length == "chunked"
        else f"Content-Length: {len(body) if length is None else length}\r\n"
    )
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {case.content_type}\r\n"
            f"{framing}{case.extra_headers}\r\n"
        ).encode("latin-1")
    )
    sent = body if case.stall_after is None else body[: case.stall_after]
    if isinstance(length, int) and length < len(sent):
        # What follows the announced length is, for the server, the next request.
        sent = sent[:length]
    try:
        for i in range(0, len(sent), case.write_size):
            piece = sent[i : i + case.write_size]
            if length == "chunked" and case.http_chunk is None:
                piece = b"%x\r\n%s\r\n" % (len(piece), piece)
            writer.write(piece)
            await writer.drain()
            if case.delay:
                await asyncio.sleep(case.delay)
        if case.stall_after is None:
            if length == "chunked":
                writer.write(b"0\r\n\r\n")
            writer.write(case.then)
            await writer.drain()
    except ConnectionError:
        pass  # the server answered early and stopped reading: the answer tells the rest


def wire_body(case: Case, body: bytes) -> bytes:
    """``body`` as sent: framed in HTTP chunks of ``case.http_chunk`` bytes when it says so.

    Done before the exchange starts, so that framing a body of a million chunks does not
    hold the test's own event loop while the server is timed.
    """
    size = case.http_chunk
    if size is None:
        return body
    return b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    )


async def exchange(url: URL, case: Case, path: str, body: bytes) -> list[Answer]:
    """Send ``body`` as ``case`` says over a fresh connection; the answers to it."""
    assert url.host is not None
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    async with sending(writer, _send(writer, case, path, body)), asyncio.timeout(30):
        return [await _read_answer(reader) for _ in range(case.answers)]


async def ping_until(url: URL, stop: asyncio.Event) -> list[float]:
    """Time ``GET /ping`` on a connection of its own until ``stop``, then once more."""
    loop = asyncio.get_running_loop()
    times = []
    async with aiohttp.ClientSession() as session:
        while True:
            done = stop.is_set()
            started = loop.time()
            async with session.get(url / "ping") as resp:
                assert resp.status == 200
                assert await resp.text() == "pong"
            times.append(loop.time() - started)
            if done:
                return times
            await asyncio.sleep(0.02)


# -- the server ------------------------------------------------------------------------


async def _walk(parts: ah.PartIterator, seen: dict[str, Any]) -> None:
    async for p in parts:
        if p.is_multipart:
            await _walk(p.iter_parts(), seen)
        elif not p.is_file:
            seen["fields"] += 1
            await p.release()
        else:
            digest = hashlib.sha256()
            size = 0
            async for chunk in p:
                digest.update(chunk)
                size += len(chunk)
            seen["files"].append(
                {"filename": p.filename, "size": size, "sha256": digest.hexdigest()}
            )


def corpus_routes(app: web.Application, dest: Path) -> None:
    """``POST /read_form`` and ``POST /iter_parts``: what a careful upload handler does."""

    async def read_form(request: web.Request) -> web.Response:
        async with await ah.read_form(request) as form:
            files = []
            for upload in form.files.values():
                saved = await upload.save(dest, unique=True)
                files.append(
                    {
                        "filename": upload.filename,
                        "size": upload.size,
                        "sha256": upload.sha256,
                        "saved": str(saved),
                    }
                )
            return web.json_response({"fields": len(form.fields), "files": files})

    async def iter_parts(request: web.Request) -> web.Response:
        seen: dict[str, Any] = {"fields": 0, "files": []}
        await _walk(ah.iter_parts(request), seen)
        return web.json_response(seen)

    app.router.add_post("/read_form", read_form)
    app.router.add_post("/iter_parts", iter_parts)


async def _ping(request: web.Request) -> web.Response:
    return web.Response(text="pong")


def corpus_app(limits: ah.UploadLimits, dest: Path) -> web.Application:
    app = web.Application()
    ah.setup(app, limits=limits)
    corpus_routes(app, dest)
    app.router.add_get("/ping", _ping)
    return app


def corpus_server_app(spool: Path, dest: Path) -> web.Application:
    """Every case of the corpus at ``/<case id>/<route>``, with its own limits (a sub-app
    each), plus ``/ping`` and ``/health/live``: the server the child process runs."""
    app = web.Application()
    ah.setup(app, limits=LIMITS.replace(tmp_dir=spool), health="/health")
    app.router.add_get("/ping", _ping)
    for case in CORPUS:
        sub = web.Application()
        sub[UPLOAD_LIMITS_KEY] = LIMITS.replace(tmp_dir=spool, **case.limits)
        corpus_routes(sub, dest)
        app.add_subapp(f"/{case.id}/", sub)
    return app
