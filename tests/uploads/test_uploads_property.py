"""Property tests: random forms split at random points parse back exactly; noise never crashes."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import aiohttp_helpers as ah
from aiohttp_helpers.testing import (  # the encoding on the wire
    FilenameStyle,
    FormPart,
    _compress,
    _transfer_encode,
    multipart_body,
)
from tests.support.apps import serving
from tests.support.uploads import describe_form, in_process_request, upload_app

# Names and filenames: any text a header can carry. Percent signs and (for the browser
# style) backslashes are left out: those encodings cannot tell them from escapes.
_HEADER_TEXT = st.text(
    st.characters(
        blacklist_categories=["Cs"],
        blacklist_characters="%\\\x7f" + "".join(chr(c) for c in range(32) if c not in (10, 13)),
    ),
    min_size=1,
    max_size=20,
)
_STYLES: st.SearchStrategy[FilenameStyle] = st.sampled_from(
    ["browser", "escaped", "percent", "extended", "both"]
)
_TRANSFER = st.sampled_from([None, "base64", "quoted-printable", "binary"])
_CONTENT = st.sampled_from([None, "gzip", "deflate", "br", "zstd"])
_TYPES = st.sampled_from(["application/octet-stream", "image/png", "text/plain", None])


@dataclass(frozen=True)
class Sent:
    part: FormPart
    is_file: bool


@st.composite
def _parts(draw: st.DrawFn) -> list[Sent]:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        name = draw(_HEADER_TEXT)
        if draw(st.booleans()):
            data: bytes | str = draw(st.text(max_size=300))
            out.append(Sent(FormPart(name=name, data=data), False))
        else:
            out.append(
                Sent(
                    FormPart(
                        name=name,
                        data=draw(st.binary(max_size=3000)),
                        filename=draw(_HEADER_TEXT),
                        filename_style=draw(_STYLES),
                        content_type=draw(_TYPES),
                        transfer_encoding=draw(_TRANSFER),
                        content_encoding=draw(_CONTENT),
                    ),
                    True,
                )
            )
    return out


def _received(p: FormPart) -> str | None:
    """The filename the server reports: only the browsers' escapes are undone, and a plain
    ``filename`` wins over ``filename*``."""
    name = p.filename
    if name is None:
        return None
    if p.filename_style == "percent":
        name = quote(name, safe="")
    elif p.filename_style == "both":
        name = name.encode("ascii", "replace").decode().replace("?", "_")
    else:
        return name
    return name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def _expected(sent: list[Sent]) -> dict[str, Any]:
    fields = []
    files = []
    for s in sent:
        p = s.part
        if not s.is_file:
            fields.append([p.name, p.data])
        else:
            assert isinstance(p.data, bytes)
            content_type = p.content_type or "application/octet-stream"
            files.append((p.name, _received(p), p.data, content_type))
    return {"fields": fields, "files": files}


def _seen(doc: dict[str, Any]) -> dict[str, Any]:
    import base64

    return {
        "fields": doc["fields"],
        "files": [
            (f["name"], f["raw_filename"], base64.b64decode(f["data"]), f["content_type"])
            for f in doc["files"]
        ],
    }


def _lf_safe(sent: list[Sent]) -> bool:
    # With bare-LF line ends a CR before the delimiter belongs to it: the bytes on the wire
    # must not end in CR. Those are the encoded bytes: a zstd frame of b"\r" ends in CR too.
    for s in sent:
        p = s.part
        data = p.data.encode() if isinstance(p.data, str) else p.data
        if p.content_encoding:
            data = _compress(data, p.content_encoding)
        if p.transfer_encoding:
            data = _transfer_encode(data, p.transfer_encoding)
        if data.endswith(b"\r"):
            return False
    return True


@settings(max_examples=80, database=None, deadline=None)
@given(
    sent=_parts(),
    sizes=st.lists(st.integers(1, 200), min_size=1, max_size=8),
    spool=st.integers(0, 2000),
    newline=st.sampled_from([b"\r\n", b"\n"]),
)
def test_random_forms_in_random_chunks(
    sent: list[Sent], sizes: list[int], spool: int, newline: bytes
) -> None:
    assume(newline == b"\r\n" or _lf_safe(sent))
    body = multipart_body(*[s.part for s in sent], boundary=uuid.uuid4().hex, newline=newline)
    chunks = body.chunks(sizes)

    async def check() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            limits = ah.UploadLimits(spool_max_size=spool, tmp_dir=tmp, chunk_size=1024)
            form = await ah.read_form(in_process_request(chunks, body.headers), limits=limits)
            assert _seen(await describe_form(form)) == _expected(sent)
            await form.aclose()
            assert os.listdir(tmp) == []
            # iter_parts sees the same parts.
            got = []
            async for part in ah.iter_parts(in_process_request(chunks, body.headers), limits):
                got.append((part.name, part.raw_filename, await part.read()))
            want = []
            for s in sent:
                data = s.part.data.encode() if isinstance(s.part.data, str) else s.part.data
                want.append((s.part.name, _received(s.part), data))
            assert got == want

    asyncio.run(check())


@settings(
    max_examples=25,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(sent=_parts(), size=st.integers(1, 4096))
def test_random_forms_over_http(sent: list[Sent], size: int) -> None:
    body = multipart_body(*[s.part for s in sent])

    async def check() -> None:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(await describe_form(await ah.read_form(request)))

        async with serving() as serve:
            url = await serve(upload_app(handler))
            async with (
                aiohttp.ClientSession() as session,
                session.post(url, data=body.stream(size), headers=body.headers) as resp,
            ):
                assert resp.status == 200, await resp.text()
                assert _seen(await resp.json()) == _expected(sent)

    asyncio.run(check())


@settings(max_examples=150, database=None, deadline=None)
@given(
    sent=_parts(),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete", "cut"]),
            st.integers(0, 10**6),
            st.binary(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=4,
    ),
    sizes=st.lists(st.integers(1, 100), min_size=1, max_size=4),
)
def test_noise_never_crashes(
    sent: list[Sent], edits: list[tuple[str, int, bytes]], sizes: list[int]
) -> None:
    body = multipart_body(*[s.part for s in sent], boundary="XbX")
    data = bytearray(body.data)
    for op, where, what in edits:
        at = where % (len(data) + 1)
        if op == "flip" and at < len(data):
            data[at] ^= what[0] or 1
        elif op == "insert":
            data[at:at] = what
        elif op == "delete":
            del data[at : at + len(what)]
        else:
            del data[at:]
    noisy = bytes(data)
    chunks = [noisy[i : i + sizes[0]] for i in range(0, len(noisy), sizes[0])]

    async def check() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            limits = ah.UploadLimits(
                spool_max_size=100, tmp_dir=tmp, max_preamble_size=200, max_header_size=300
            )
            try:
                form = await ah.read_form(in_process_request(chunks, body.headers), limits=limits)
            except ah.HelpersError:
                pass
            else:
                await form.aclose()
            assert os.listdir(tmp) == []
            try:
                async for part in ah.iter_parts(in_process_request(chunks, body.headers), limits):
                    await part.read()
            except ah.HelpersError:
                pass

    asyncio.run(check())
