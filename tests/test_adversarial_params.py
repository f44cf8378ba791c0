"""Hostile Content-Disposition parameters: a second spelling never changes what a part is."""

from __future__ import annotations

import pytest
from pytest_aiohttp import AiohttpClient

from aiohttp_helpers.testing import FormPart, multipart_body

from .test_uploads_support import form_app, parts_app

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


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in CASES])
async def test_parts_see_one_meaning(aiohttp_client: AiohttpClient, key: str) -> None:
    header, (name, raw, safe) = CASES[key]
    body = multipart_body(FormPart(raw_headers=header, data=b"x"), boundary="bnd")
    client = await aiohttp_client(parts_app())
    resp = await client.post("/parts", data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    [part] = await resp.json()
    assert (part["name"], part["raw_filename"], part["filename"]) == (name, raw, safe)


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in CASES])
async def test_forms_see_one_meaning(aiohttp_client: AiohttpClient, key: str) -> None:
    header, (name, raw, safe) = CASES[key]
    body = multipart_body(FormPart(raw_headers=header, data=b"x"), boundary="bnd")
    client = await aiohttp_client(form_app())
    resp = await client.post("/form", data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    if raw is None:
        assert doc == {"fields": [[name, "x"]], "files": []}
    else:
        [upload] = doc["files"]
        assert (upload["name"], upload["raw_filename"], upload["filename"]) == (name, raw, safe)
