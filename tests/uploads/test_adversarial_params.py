"""Hostile Content-Disposition parameters: a second spelling never changes what a part is."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

from aiohttp_helpers.testing import FormPart, multipart_body
from aiohttp_helpers.uploads.headers import parse_head
from tests.support.uploads import form_app, parts_app

CASES = {
    # RFC 7578 section 4.2: no name*, and filename* only for senders that cannot do better.
    "name-star-overrides": (
        b"Content-Disposition: form-data; name=\"comment\"; name*=utf-8''role",
        ("comment", None, None),
    ),
    "name-star-first": (
        b"Content-Disposition: form-data; name*=utf-8''role; name=\"comment\"",
        ("comment", None, None),
    ),
    "filename-star-overrides": (
        b'Content-Disposition: form-data; name="f"; filename="safe.txt"; '
        b"filename*=utf-8''evil.php",
        ("f", "safe.txt", "safe.txt"),
    ),
    "filename-star-continuation-overrides": (
        b'Content-Disposition: form-data; name="f"; filename="safe.txt"; '
        b"filename*0*=utf-8''evil; filename*1=\".php\"",
        ("f", "safe.txt", "safe.txt"),
    ),
    "filename-star-alone": (
        b"Content-Disposition: form-data; name=\"f\"; filename*=utf-8''r%C3%A9sum%C3%A9.pdf",
        ("f", "r\u00e9sum\u00e9.pdf", "r\u00e9sum\u00e9.pdf"),
    ),
    # Chromium writes only %22, %0D and %0A; a file named "..%2f..%2fescape.txt" is that.
    "chromium-percent": (
        b'Content-Disposition: form-data; name="f"; filename="..%2f..%2fescape.txt"',
        ("f", "..%2f..%2fescape.txt", "%2f..%2fescape.txt"),
    ),
    "percent-dot-dot": (
        b'Content-Disposition: form-data; name="f"; filename="%2e%2e%2f%2e%2e%2fetc%2fpasswd"',
        ("f", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
    ),
    "browser-escapes": (
        b'Content-Disposition: form-data; name="f"; filename="a%22b%0Ac.txt"',
        ("f", 'a"b\nc.txt', "abc.txt"),
    ),
    "full-width-traversal": (
        'Content-Disposition: form-data; name="f"; '
        'filename="\uff0e\uff0e\uff0fetc\uff0fpasswd"'.encode(),
        ("f", "\uff0e\uff0e\uff0fetc\uff0fpasswd", "passwd"),
    ),
    "division-slash": (
        'Content-Disposition: form-data; name="f"; filename="..\u2215..\u2215x.sh"'.encode(),
        ("f", "..\u2215..\u2215x.sh", "x.sh"),
    ),
    "fraction-slash": (
        'Content-Disposition: form-data; name="f"; filename="..\u2044x.sh"'.encode(),
        ("f", "..\u2044x.sh", "x.sh"),
    ),
    "full-width-backslash": (
        'Content-Disposition: form-data; name="f"; filename="..\uff3c..\uff3cx.bat"'.encode(),
        ("f", "..\uff3c..\uff3cx.bat", "x.bat"),
    ),
}


EACH_CASE = pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in CASES])


async def _post_part(
    aiohttp_client: AiohttpClient, app: web.Application, path: str, header: bytes
) -> Any:
    """POST one part with the raw ``header`` and data ``x`` to ``path`` of ``app``: the JSON."""
    body = multipart_body(FormPart(raw_headers=header, data=b"x"), boundary="bnd")
    client = await aiohttp_client(app)
    resp = await client.post(path, data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


@EACH_CASE
async def test_parts_see_one_meaning(aiohttp_client: AiohttpClient, key: str) -> None:
    header, (name, raw, safe) = CASES[key]
    [part] = await _post_part(aiohttp_client, parts_app(), "/parts", header)
    assert (part["name"], part["raw_filename"], part["filename"]) == (name, raw, safe)


@EACH_CASE
async def test_forms_see_one_meaning(aiohttp_client: AiohttpClient, key: str) -> None:
    header, (name, raw, safe) = CASES[key]
    doc = await _post_part(aiohttp_client, form_app(), "/form", header)
    if raw is None:
        assert doc == {"fields": [[name, "x"]], "files": []}
    else:
        [upload] = doc["files"]
        assert (upload["name"], upload["raw_filename"], upload["filename"]) == (name, raw, safe)


# Characters a browser puts in a quoted parameter as they are: no controls (CR and LF are
# escaped, the rest cannot be typed in a file name), no backslash pairs (quoted-string
# escapes), nothing that spells one of the three escapes.
_PLAIN = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="\\"),
    max_size=40,
).filter(lambda s: not any(e in s.lower() for e in ("%22", "%0d", "%0a")))


def _browser(value: str) -> str:
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@settings(max_examples=300, database=None, deadline=None)
@given(
    name=_PLAIN,
    filename=_PLAIN | st.just("..%2f..%2fescape.txt"),
    evil=st.text(max_size=20),
    order=st.permutations(range(4)),
)
def test_plain_parameters_always_win(name: str, filename: str, evil: str, order: list[int]) -> None:
    """Whatever ``name*`` and ``filename*`` say, and wherever they come, the plain ones win."""
    params = [
        f'name="{_browser(name)}"',
        f"name*=utf-8''{quote(evil, safe='')}",
        f'filename="{_browser(filename)}"',
        f"filename*=utf-8''{quote(evil, safe='')}",
    ]
    value = "form-data; " + "; ".join(params[i] for i in order)
    head = parse_head(f"Content-Disposition: {value}".encode(), 32)
    assert (head.name, head.filename) == (name, filename)


@settings(max_examples=300, database=None, deadline=None)
@given(name=_PLAIN, value=st.text(min_size=1, max_size=20))
def test_extended_filename_only_without_a_plain_one(name: str, value: str) -> None:
    header = f"Content-Disposition: form-data; name=\"{_browser(name)}\"; filename*=utf-8''"
    head = parse_head((header + quote(value, safe="")).encode(), 32)
    assert (head.name, head.filename) == (name, value)
    head = parse_head(f"Content-Disposition: form-data; name*=utf-8''{quote(value)}".encode(), 32)
    assert head.name is None
