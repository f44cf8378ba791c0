"""``safe_filename()``, and how filenames are decoded from what real clients send."""

from __future__ import annotations

import unicodedata

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.uploads import parts_app


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        pytest.param("report.pdf", "report.pdf", id="plain"),
        pytest.param("../../etc/passwd", "passwd", id="dot-dot"),
        pytest.param("/etc/passwd", "passwd", id="absolute"),
        pytest.param("C:\\Users\\me\\evil.exe", "evil.exe", id="windows-path"),
        pytest.param("dir/", "upload", id="only-a-directory"),
        pytest.param("a\x00b.txt", "ab.txt", id="nul"),
        pytest.param("\x1b[31mred\x7f.txt", "[31mred.txt", id="controls"),
        pytest.param("x\x85y.txt", "xy.txt", id="c1-control"),
        pytest.param('a<b>c:d"e|f?g*h.txt', "abcdefgh.txt", id="windows-forbidden"),
        pytest.param(".bashrc", "bashrc", id="hidden"),
        pytest.param("...", "upload", id="only-dots"),
        pytest.param(" . .x", "x", id="leading-dots-and-spaces"),
        pytest.param("name. . ", "name", id="trailing-dots"),
        pytest.param("", "upload", id="empty"),
        pytest.param(None, "upload", id="none"),
        pytest.param("a \t\n b.txt", "a b.txt", id="whitespace-runs"),
        pytest.param("CON", "_CON", id="con"),
        pytest.param("con.txt", "_con.txt", id="con-ext"),
        pytest.param("COM1.tar.gz", "_COM1.tar.gz", id="com1-double-ext"),
        pytest.param("lpt\u00b9.log", "_lpt1.log", id="lpt-superscript"),
        pytest.param("CONSOLE.txt", "CONSOLE.txt", id="not-reserved"),
        pytest.param("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt", id="nfc"),
        pytest.param("gpj\u202e.exe", "gpj.exe", id="bidi-override"),
        pytest.param("€ rates.xlsx", "€ rates.xlsx", id="unicode-kept"),
        pytest.param("\uff0e\uff0e\uff0fetc\uff0fpasswd", "passwd", id="full-width-traversal"),
        pytest.param("\uff0e\uff0e", "upload", id="full-width-dot-dot"),
        pytest.param("\u2025", "upload", id="two-dot-leader"),
        pytest.param("\u2025\u2215x.txt", "x.txt", id="two-dot-leader-division-slash"),
        pytest.param("a\u2215b.txt", "b.txt", id="division-slash"),
        pytest.param("a\u2044b.txt", "b.txt", id="fraction-slash"),
        pytest.param("a\uff3cb.txt", "b.txt", id="full-width-backslash"),
        pytest.param("a\ufe68b.txt", "b.txt", id="small-backslash"),
        pytest.param("a\u29f8b.txt", "b.txt", id="big-solidus"),
        pytest.param("\ufe52bashrc", "bashrc", id="small-full-stop"),
        pytest.param("x\uff1a\uff1fy.txt", "xy.txt", id="full-width-colon-question"),
        pytest.param("\uff23\uff2f\uff2e.txt", "_CON.txt", id="full-width-device-name"),
        pytest.param("\ufb01le.txt", "file.txt", id="ligature"),
        pytest.param("e\u202e\u0301.txt", "\u00e9.txt", id="recomposed-after-removal"),
    ],
)
def test_safe_filename(raw: str | None, safe: str) -> None:
    assert ah.safe_filename(raw) == safe


@pytest.mark.parametrize(
    ("raw", "ext"),
    [
        pytest.param("a" * 300 + ".txt", ".txt", id="ascii"),
        pytest.param("é" * 200 + ".png", ".png", id="two-byte"),
        pytest.param("😀" * 100 + ".jpeg", ".jpeg", id="four-byte"),
    ],
)
def test_long_names_keep_their_extension(raw: str, ext: str) -> None:
    safe = ah.safe_filename(raw)
    assert len(safe.encode()) <= 255
    assert len(safe.encode()) > 240
    assert safe.endswith(ext)
    assert raw.startswith(safe[: -len(ext)])


def test_long_extension_is_part_of_the_name() -> None:
    safe = ah.safe_filename("a." + "b" * 300)
    assert safe == ("a." + "b" * 300)[:255]


def test_options() -> None:
    assert ah.safe_filename("", default="file.bin") == "file.bin"
    assert ah.safe_filename("x" * 40 + ".txt", max_bytes=20) == "x" * 16 + ".txt"
    with pytest.raises(ValueError, match=r"default '\.\./x' is not a safe filename"):
        ah.safe_filename("", default="../x")
    with pytest.raises(ValueError, match="max_bytes must be between 16 and 255, got 10"):
        ah.safe_filename("x", max_bytes=10)
    with pytest.raises(ValueError, match="max_bytes must be between 16 and 255, got 300"):
        ah.safe_filename("x", max_bytes=300)


@settings(max_examples=300, database=None, deadline=None)
@given(st.text(max_size=400))
def test_safe_filename_property(raw: str) -> None:
    safe = ah.safe_filename(raw)
    assert safe
    assert "/" not in safe
    assert "\\" not in safe
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in safe)
    assert not safe.startswith((".", " "))
    assert not safe.endswith((".", " "))
    assert len(safe.encode("utf-8")) <= 255
    assert unicodedata.normalize("NFKC", safe) == safe
    assert ah.safe_filename(safe) == safe


# Characters a reader, a shell or another program may take for "/", "\\" or ".".
_LOOKALIKES = "./\\\uff0e\uff0f\uff3c\u2024\u2025\u2026\ufe52\ufe68\u2044\u2215\u29f8\u29f5\u2571"
_SEPARATOR_LIKE = "/\\\uff0f\uff3c\ufe68\u2044\u2215\u29f8\u29f5\u2571\u2572\u29f9"


@settings(max_examples=400, database=None, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(list(_LOOKALIKES)),
            st.text(alphabet=st.characters(codec="utf-8"), max_size=3),
        ),
        max_size=40,
    ).map("".join)
)
def test_safe_filename_lookalikes_property(raw: str) -> None:
    """Mixed with look-alikes of dots and slashes, no separator or dot-segment survives."""
    safe = ah.safe_filename(raw)
    assert not any(c in safe for c in _SEPARATOR_LIKE)
    assert safe not in (".", "..")
    # NFKC of the result is the result: nothing in it turns into a dot or a slash later.
    folded = unicodedata.normalize("NFKC", safe)
    assert folded == safe
    assert not folded.startswith(".")
    assert ah.safe_filename(safe) == safe


@settings(max_examples=200, database=None, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_safe_filename_keeps_only_the_last_component(head: str, tail: str) -> None:
    """Whatever comes before the last (full-width) slash never reaches the result."""
    sentinel = "\U0001f512"
    safe = ah.safe_filename(head.replace("/", "") + sentinel + "\uff0f" + tail)
    assert sentinel not in safe


DISPOSITIONS = {
    "browser-quote": (b'filename="a%22b.txt"', 'a"b.txt', "ab.txt"),
    "browser-newline": (b'filename="line%0Abreak.txt"', "line\nbreak.txt", "linebreak.txt"),
    "backslash-quote": (b'filename="q\\"x.txt"', 'q"x.txt', "qx.txt"),
    "ie-path": (b'filename="C:\\Users\\me\\doc.txt"', "C:\\Users\\me\\doc.txt", "doc.txt"),
    "extended": (b"filename*=UTF-8''%E2%82%AC%20rates.txt", "€ rates.txt", "€ rates.txt"),
    "extended-traversal": (b"filename*=utf-8'en'%2e%2e%2fpasswd", "../passwd", "passwd"),
    "plain-wins-over-extended": (
        b"filename=\"fallback.txt\"; filename*=UTF-8''r%C3%A9el.txt",
        "fallback.txt",
        "fallback.txt",
    ),
    "extended-after-plain-ignored": (
        b"filename=\"safe.txt\"; filename*=utf-8''evil.php",
        "safe.txt",
        "safe.txt",
    ),
    "extended-before-plain-ignored": (
        b"filename*=utf-8''evil.php; filename=\"safe.txt\"",
        "safe.txt",
        "safe.txt",
    ),
    "extended-latin-1": (b"filename*=iso-8859-1''%E9t%E9.txt", "été.txt", "été.txt"),
    "extended-bad-uses-fallback": (
        b"filename=\"ok.txt\"; filename*=UTF-8''%ff",
        "ok.txt",
        "ok.txt",
    ),
    "continuations-extended": (
        b"filename*0*=UTF-8''%E2%82%AC; filename*1=\" rates\"; filename*2*=%2Etxt",
        "€ rates.txt",
        "€ rates.txt",
    ),
    "continuations-plain": (b'filename*0="abc"; filename*1="def.txt"', "abcdef.txt", "abcdef.txt"),
    "chromium-percent-kept": (
        b'filename="..%2f..%2fescape.txt"',
        "..%2f..%2fescape.txt",
        "%2f..%2fescape.txt",
    ),
    "percent-not-decoded": (
        b'filename="my%20r%C3%A9sum%C3%A9.pdf"',
        "my%20r%C3%A9sum%C3%A9.pdf",
        "my%20r%C3%A9sum%C3%A9.pdf",
    ),
    "browser-cr": (b'filename="a%0Db%0d.txt"', "a\rb\r.txt", "ab.txt"),
    "full-width-traversal": (
        'filename="\uff0e\uff0e\uff0fetc\uff0fpasswd"'.encode(),
        "\uff0e\uff0e\uff0fetc\uff0fpasswd",
        "passwd",
    ),
    "percent-not-utf-8": (b'filename="100%ff.txt"', "100%ff.txt", "100%ff.txt"),
    "raw-utf-8": ('filename="résumé.pdf"'.encode(), "résumé.pdf", "résumé.pdf"),
    "raw-latin-1": (b'filename="\xe9t\xe9.txt"', "été.txt", "été.txt"),
    "token": (b"filename=plain.txt", "plain.txt", "plain.txt"),
    "extended-garbage-fallback": (b'filename="ok.txt"; filename*=garbage', "ok.txt", "ok.txt"),
    "odd-star-key": (b'filename="ok.txt"; filename*x="a"', "ok.txt", "ok.txt"),
    "bare-word": (b'flag; filename="ok.txt"', "ok.txt", "ok.txt"),
    "empty": (b'filename=""', "", "upload"),
}


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in DISPOSITIONS])
async def test_filenames_over_http(aiohttp_client: AiohttpClient, key: str) -> None:
    params, raw, safe = DISPOSITIONS[key]
    header = b'Content-Disposition: form-data; name="f"; ' + params
    body = multipart_body(FormPart(raw_headers=header, data=b"x"), boundary="b")
    client = await aiohttp_client(parts_app())
    resp = await client.post("/parts", data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    [part] = await resp.json()
    assert part["name"] == "f"
    assert part["raw_filename"] == raw
    assert part["filename"] == safe


@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param(b'name="a%22b"', 'a"b', id="browser-escape"),
        pytest.param(b"name*=UTF-8''%C3%A9", None, id="extended-never-supplies"),
        pytest.param(b"name=\"comment\"; name*=utf-8''role", "comment", id="extended-after"),
        pytest.param(b"name*=utf-8''role; name=\"comment\"", "comment", id="extended-before"),
        pytest.param(b'name="a%2fb"', "a%2fb", id="percent-kept"),
        pytest.param(b'name="100%"', "100%", id="percent-sign"),
        pytest.param(b'name="a\\\\b"', "a\\b", id="escaped-backslash"),
        pytest.param(b"", None, id="no-parameters"),
    ],
)
async def test_names_over_http(
    aiohttp_client: AiohttpClient, params: bytes, name: str | None
) -> None:
    header = b"Content-Disposition: form-data" + (b"; " + params if params else b"")
    body = multipart_body(FormPart(raw_headers=header, data=b"v"), boundary="b")
    client = await aiohttp_client(parts_app())
    resp = await client.post("/parts", data=body.data, headers=body.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())[0]["name"] == name


@pytest.mark.parametrize(
    "quote_fields", [pytest.param(True, id="percent-encoded"), pytest.param(False, id="raw-utf-8")]
)
async def test_aiohttp_client_filenames_round_trip(
    aiohttp_client: AiohttpClient, quote_fields: bool
) -> None:
    client = await aiohttp_client(parts_app())
    data = aiohttp.FormData(quote_fields=quote_fields)
    data.add_field("f", b"x", filename='my "résumé" (final).pdf')
    if not quote_fields:
        # aiohttp 3.14 cannot send a non-ASCII name with quote_fields=True (it asserts).
        data.add_field("ünï", "v")
    resp = await client.post("/parts", data=data)
    assert resp.status == 200
    parts = await resp.json()
    if quote_fields:
        # aiohttp's client percent-encodes every filename; only the three escapes that
        # browsers write are undone, so the rest stays as sent.
        assert parts[0]["raw_filename"] == 'my%20"r%C3%A9sum%C3%A9"%20%28final%29.pdf'
        assert parts[0]["filename"] == "my%20r%C3%A9sum%C3%A9%20%28final%29.pdf"
    else:
        assert parts[0]["raw_filename"] == 'my "résumé" (final).pdf'
        assert parts[0]["filename"] == "my résumé (final).pdf"
    if not quote_fields:
        assert parts[1]["name"] == "ünï"
