"""Part headers: the header block, Content-Disposition and Content-Type, parsed fast."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from multidict import CIMultiDict, CIMultiDictProxy

from .._words import counted
from ..errors import HeadersTooLarge, MalformedMultipart

__all__ = ["PartHead", "header_text", "parse_content_type", "parse_head", "parse_params"]

# C0 controls (other than HTAB, and CR when it starts a CRLF), and DEL: never valid in a header.
# Checked with bytes methods: a regular expression looks at each byte at a tenth the speed.
_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 13)) + b"\x7f"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# The only escapes browsers write in a quoted name or filename (WHATWG's multipart/form-data
# encoding): every other "%" is the client's own character (Chromium sends a file named
# "..%2fx" as is), so nothing else is decoded.
_NAME_ESCAPES = {"%22": '"', "%0A": "\n", "%0D": "\r", "%0a": "\n", "%0d": "\r"}
_NAME_ESCAPE = re.compile("%22|%0[ADad]")
_EXTENDED = re.compile(r"([^']*)'[^']*'(.*)", re.DOTALL)
_CONTINUATION = re.compile(r"([^*]+)\*([0-9]{1,3})(\*?)")
_MAX_CONTINUATIONS = 64
# Real clients send two or three parameters; parsing each costs far more than its bytes.
_MAX_PARAMS = 64


def _unquote_name(value: str) -> str:
    if "%" not in value:
        return value
    return _NAME_ESCAPE.sub(lambda m: _NAME_ESCAPES[m.group()], value)


def _decode_extended(value: str) -> str | None:
    """An RFC 8187 / RFC 2231 ``charset'lang'pct-encoded`` value, or None if it does not decode."""
    match = _EXTENDED.fullmatch(value)
    if match is None:
        return None
    charset = match.group(1).strip().lower() or "utf-8"
    if charset not in ("utf-8", "utf8", "iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
        return None
    try:
        return unquote(match.group(2), charset, "strict")
    except UnicodeDecodeError:
        return None


def _quoted_string(text: str, start: int) -> tuple[str, int]:
    """The value of the quoted string whose text begins at ``start``, and where it ends.

    Worked out with ``str`` methods rather than a character at a time: a 16 KiB
    filename would otherwise cost a hundred times what its bytes cost elsewhere.
    """
    scan = start
    while True:
        end = text.find('"', scan)
        if end < 0:
            raise MalformedMultipart("a part header has an unterminated quoted string")
        # The quote ends the string unless an odd run of backslashes escapes it; the
        # run cannot reach back past the previous (escaped) quote.
        run = text[scan:end]
        if (len(run) - len(run.rstrip("\\"))) % 2 == 0:
            break
        scan = end + 1
    value = text[start:end]
    if "\\" in value:
        # Backslashes pair from the left; a lone one escapes a quote or stays as it is.
        value = "\\".join(piece.replace('\\"', '"') for piece in value.split("\\\\"))
    return value, end + 1


def parse_params(text: str, start: int = 0) -> dict[str, str]:
    """Parameters of a header value from ``start`` (``; key=value`` pairs), keys lowercased.

    Quoted strings keep every backslash except those escaping ``"`` or ``\\``, so that a
    Windows path sent unescaped (``C:\\dir\\a.txt``) survives. A parameter given twice
    makes the header malformed (different parsers would pick different values).
    """
    params: dict[str, str] = {}
    n = len(text)
    i = start
    seen = 0
    while i < n:
        c = text[i]
        if c in " \t;":
            i += 1
            continue
        seen += 1
        if seen > _MAX_PARAMS:
            raise MalformedMultipart(f"a header has more than {counted(_MAX_PARAMS, 'parameter')}")
        eq = text.find("=", i)
        semi = text.find(";", i)
        if eq < 0 or (0 <= semi < eq):
            # A bare word without a value: skip it.
            i = n if semi < 0 else semi + 1
            continue
        key = text[i:eq].strip().lower()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            value, i = _quoted_string(text, i + 1)
        else:
            end = text.find(";", i)
            if end < 0:
                end = n
            value = text[i:end].strip()
            i = end
        if not key or not _TOKEN.fullmatch(key):
            raise MalformedMultipart(f"a part header has a bad parameter name {key[:40]!r}")
        if key in params:
            raise MalformedMultipart(f"a part header repeats the parameter {key!r}")
        params[key] = value
    return params


def _collapse_continuations(params: dict[str, str]) -> None:
    """Join RFC 2231 continuations (``filename*0*=...; filename*1=...``) in place."""
    pieces: dict[str, dict[int, tuple[str, bool]]] = {}
    for key in [k for k in params if ("*" in k and not k.endswith("*")) or k.count("*") > 1]:
        match = _CONTINUATION.fullmatch(key)
        if match is None:
            continue
        base, number, star = match.groups()
        pieces.setdefault(base, {})[int(number)] = (params.pop(key), bool(star))
    for base, found in pieces.items():
        if len(found) > _MAX_CONTINUATIONS or sorted(found) != list(range(len(found))):
            raise MalformedMultipart(f"a part header has broken {base!r} continuations")
        first, first_extended = found[0]
        if first_extended:
            # Only the first section names the charset; later sections are pct-encoded
            # when marked with a star and literal otherwise.
            rest = (found[i] for i in range(1, len(found)))
            raw = first + "".join(v if ext else quote(v, safe="") for v, ext in rest)
            params.setdefault(base + "*", raw)
        else:
            params.setdefault(base, "".join(found[i][0] for i in range(len(found))))


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lowercased) and the parameters of a Content-Type value."""
    semi = value.find(";")
    if semi < 0:
        return value.strip().lower(), {}
    return value[:semi].strip().lower(), parse_params(value, semi + 1)


def _disposition(value: str) -> tuple[str | None, str | None]:
    """``name`` and decoded ``filename`` from a Content-Disposition value."""
    # The shape every browser, curl and aiohttp send for a plain field, parsed without
    # the general tokenizer: form-data; name="..."[; filename="..."].
    if value.startswith('form-data; name="') and "\\" not in value:
        rest = value[17:]
        end = rest.find('"')
        if end >= 0:
            plain = rest[:end]
            tail = rest[end + 1 :]
            if not tail and "%" not in plain:
                return plain, None
            if (
                tail.startswith('; filename="')
                and tail.endswith('"')
                and tail.count('"') == 2
                and "%" not in plain
            ):
                return plain, _unquote_name(tail[12:-1])
    semi = value.find(";")
    if semi < 0:
        if not _TOKEN.fullmatch(value.strip()):
            raise MalformedMultipart("a part has a malformed Content-Disposition header")
        return None, None
    if not _TOKEN.fullmatch(value[:semi].strip()):
        raise MalformedMultipart("a part has a malformed Content-Disposition header")
    params = parse_params(value, semi + 1)
    if any("*" in key for key in params):
        _collapse_continuations(params)
    # RFC 7578 section 4.2: form-data has no "name*", and "filename*" is only for
    # senders that cannot write the plain parameter. A second spelling that overrides
    # the first would let one part mean different things to different parsers.
    name = _unquote_name(params["name"]) if "name" in params else None
    filename: str | None = None
    if "filename" in params:
        filename = _unquote_name(params["filename"])
    elif "filename*" in params:
        filename = _decode_extended(params["filename*"])
        if filename is None:
            raise MalformedMultipart("a part has a filename* parameter that does not decode")
    return name, filename


class PartHead:
    """What the headers of one part say: name, filename, type and encodings."""

    __slots__ = (
        "_headers",
        "charset",
        "content_encoding",
        "content_type",
        "disposition",
        "filename",
        "media_type",
        "name",
        "pairs",
        "params",
        "transfer_encoding",
    )

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        self._headers: CIMultiDictProxy[str] | None = None
        self.name: str | None = None
        self.filename: str | None = None
        self.disposition: str | None = None
        self.content_type: str | None = None
        self.media_type = ""
        self.params: dict[str, str] = {}
        self.charset: str | None = None
        self.transfer_encoding: str | None = None
        self.content_encoding: str | None = None

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The part's headers as aiohttp gives them."""
        if self._headers is None:
            self._headers = CIMultiDictProxy(CIMultiDict(self.pairs))
        return self._headers

    @property
    def is_multipart(self) -> bool:
        return self.media_type.startswith("multipart/")

    @property
    def boundary(self) -> str | None:
        return self.params.get("boundary")


def header_text(block: bytes) -> str:
    """Header bytes as text: UTF-8, else Latin-1 (a part's headers, a fast-path field name)."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        # HTTP's historical header charset: every byte maps to one character.
        return block.decode("latin-1")


def parse_head(block: bytes, max_headers: int) -> PartHead:
    """Parse a part's header block (the lines between the boundary and the empty line)."""
    if len(block.translate(None, _CONTROLS)) != len(block) or block.count(b"\r") != block.count(
        b"\r\n"
    ):
        raise MalformedMultipart("a part header contains a control character")
    pairs: list[tuple[str, str]] = []
    head = PartHead(pairs)
    if not block:
        return head
    lines = header_text(block).split("\n")
    if len(lines) > max_headers:
        raise HeadersTooLarge(
            f"a part has more than {counted(max_headers, 'header line')}", limit=max_headers
        )
    for line in lines:
        if line[-1:] == "\r":
            line = line[:-1]
        if line[:1] in (" ", "\t"):
            # obs-fold: a continuation of the previous header's value.
            if not pairs:
                raise MalformedMultipart("a part's headers begin with a continuation line")
            key, value = pairs[-1]
            pairs[-1] = (key, value + " " + line.strip(" \t"))
            continue
        colon = line.find(":")
        if colon <= 0:
            raise MalformedMultipart("a part header line has no name")
        key = line[:colon]
        if not _TOKEN.fullmatch(key):
            raise MalformedMultipart(f"a part header has a bad name {key[:40]!r}")
        pairs.append((key, line[colon + 1 :].strip(" \t")))
    for key, value in pairs:
        lower = key.lower()
        if lower == "content-disposition":
            if head.disposition is not None:
                raise MalformedMultipart("a part has two Content-Disposition headers")
            head.disposition = value
            head.name, head.filename = _disposition(value)
        elif lower == "content-type":
            if head.content_type is not None:
                raise MalformedMultipart("a part has two Content-Type headers")
            head.content_type = value
            head.media_type, head.params = parse_content_type(value)
            head.charset = head.params.get("charset")
        elif lower == "content-transfer-encoding":
            head.transfer_encoding = value.strip().lower()
        elif lower == "content-encoding":
            head.content_encoding = value.strip().lower()
    return head
