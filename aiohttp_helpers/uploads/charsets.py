"""The charsets a form may be sent in: the WHATWG Encoding Standard's, as browsers submit forms.

A charset label comes from the client (a part's ``charset=``, the form's ``_charset_``
field, an urlencoded body's ``charset=``), so it is looked up in this module's table and
nowhere else. Python's codec registry would accept far more than browsers ever send:
UTF-7 (which turns ``+ADw-`` into ``<``), UTF-16/32, EBCDIC code pages, ``unicode_escape``,
``idna``, ``punycode`` (whose decoder is quadratic) and the bytes-to-bytes codecs; and it
caches every label it fails to find, for good. None of them gets past the table.

The table maps each label of the Encoding Standard (https://encoding.spec.whatwg.org/)
to the Python codec that decodes its encoding. Browsers never submit a form in UTF-16
(it becomes UTF-8 for submission), so its labels are refused, as are the "replacement"
encoding's and ``x-user-defined``.
"""

from __future__ import annotations

import codecs
from typing import Final

from ..errors import MalformedMultipart, UnsupportedEncoding

__all__ = [
    "LABELS",
    "MAX_LABEL",
    "charset_codec",
    "decode_charset",
    "decode_text",
    "not_text",
    "trusted_codec",
]

#: The longest label accepted at all (the longest in the table has 19 characters).
MAX_LABEL: Final = 40

# Python codec -> the WHATWG labels of its encoding, written as the standard lists them.
_ENCODINGS: Final[dict[str, tuple[str, ...]]] = {
    "utf-8": (
        "unicode-1-1-utf-8",
        "unicode11utf8",
        "unicode20utf8",
        "utf-8",
        "utf8",
        "x-unicode20utf8",
    ),
    "cp866": ("866", "cp866", "csibm866", "ibm866"),
    "iso8859-2": (
        "csisolatin2",
        "iso-8859-2",
        "iso-ir-101",
        "iso8859-2",
        "iso88592",
        "iso_8859-2",
        "iso_8859-2:1987",
        "l2",
        "latin2",
    ),
    "iso8859-3": (
        "csisolatin3",
        "iso-8859-3",
        "iso-ir-109",
        "iso8859-3",
        "iso88593",
        "iso_8859-3",
        "iso_8859-3:1988",
        "l3",
        "latin3",
    ),
    "iso8859-4": (
        "csisolatin4",
        "iso-8859-4",
        "iso-ir-110",
        "iso8859-4",
        "iso88594",
        "iso_8859-4",
        "iso_8859-4:1988",
        "l4",
        "latin4",
    ),
    "iso8859-5": (
        "csisolatincyrillic",
        "cyrillic",
        "iso-8859-5",
        "iso-ir-144",
        "iso8859-5",
        "iso88595",
        "iso_8859-5",
        "iso_8859-5:1988",
    ),
    "iso8859-6": (
        "arabic",
        "asmo-708",
        "csiso88596e",
        "csiso88596i",
        "csisolatinarabic",
        "ecma-114",
        "iso-8859-6",
        "iso-8859-6-e",
        "iso-8859-6-i",
        "iso-ir-127",
        "iso8859-6",
        "iso88596",
        "iso_8859-6",
        "iso_8859-6:1987",
    ),
    "iso8859-7": (
        "csisolatingreek",
        "ecma-118",
        "elot_928",
        "greek",
        "greek8",
        "iso-8859-7",
        "iso-ir-126",
        "iso8859-7",
        "iso88597",
        "iso_8859-7",
        "iso_8859-7:1987",
        "sun_eu_greek",
    ),
    # ISO-8859-8 and ISO-8859-8-I differ in display direction, not in their bytes.
    "iso8859-8": (
        "csiso88598e",
        "csisolatinhebrew",
        "hebrew",
        "iso-8859-8",
        "iso-8859-8-e",
        "iso-ir-138",
        "iso8859-8",
        "iso88598",
        "iso_8859-8",
        "iso_8859-8:1988",
        "visual",
        "csiso88598i",
        "iso-8859-8-i",
        "logical",
    ),
    "iso8859-10": (
        "csisolatin6",
        "iso-8859-10",
        "iso-ir-157",
        "iso8859-10",
        "iso885910",
        "l6",
        "latin6",
    ),
    "iso8859-13": ("iso-8859-13", "iso8859-13", "iso885913"),
    "iso8859-14": ("iso-8859-14", "iso8859-14", "iso885914"),
    "iso8859-15": (
        "csisolatin9",
        "iso-8859-15",
        "iso8859-15",
        "iso885915",
        "iso_8859-15",
        "l9",
    ),
    "iso8859-16": ("iso-8859-16",),
    "koi8-r": ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r"),
    "koi8-u": ("koi8-ru", "koi8-u"),
    "mac-roman": ("csmacintosh", "mac", "macintosh", "x-mac-roman"),
    "cp874": ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874"),
    "cp1250": ("cp1250", "windows-1250", "x-cp1250"),
    "cp1251": ("cp1251", "windows-1251", "x-cp1251"),
    # The standard decodes every "latin1" and "ascii" label as windows-1252.
    "cp1252": (
        "ansi_x3.4-1968",
        "ascii",
        "cp1252",
        "cp819",
        "csisolatin1",
        "ibm819",
        "iso-8859-1",
        "iso-ir-100",
        "iso8859-1",
        "iso88591",
        "iso_8859-1",
        "iso_8859-1:1987",
        "l1",
        "latin1",
        "us-ascii",
        "windows-1252",
        "x-cp1252",
    ),
    "cp1253": ("cp1253", "windows-1253", "x-cp1253"),
    "cp1254": (
        "cp1254",
        "csisolatin5",
        "iso-8859-9",
        "iso-ir-148",
        "iso8859-9",
        "iso88599",
        "iso_8859-9",
        "iso_8859-9:1989",
        "l5",
        "latin5",
        "windows-1254",
        "x-cp1254",
    ),
    "cp1255": ("cp1255", "windows-1255", "x-cp1255"),
    "cp1256": ("cp1256", "windows-1256", "x-cp1256"),
    "cp1257": ("cp1257", "windows-1257", "x-cp1257"),
    "cp1258": ("cp1258", "windows-1258", "x-cp1258"),
    "mac-cyrillic": ("x-mac-cyrillic", "x-mac-ukrainian"),
    # The standard's GBK decoder is its gb18030 decoder.
    "gb18030": (
        "chinese",
        "csgb2312",
        "csiso58gb231280",
        "gb2312",
        "gb_2312",
        "gb_2312-80",
        "gbk",
        "iso-ir-58",
        "x-gbk",
        "gb18030",
    ),
    "big5hkscs": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "euc-jp": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    "iso2022-jp": ("csiso2022jp", "iso-2022-jp"),
    "cp932": (
        "csshiftjis",
        "ms932",
        "ms_kanji",
        "shift-jis",
        "shift_jis",
        "sjis",
        "windows-31j",
        "x-sjis",
    ),
    # The standard's EUC-KR is windows-949.
    "cp949": (
        "cseuckr",
        "csksc56011987",
        "euc-kr",
        "iso-ir-149",
        "korean",
        "ks_c_5601-1987",
        "ks_c_5601-1989",
        "ksc5601",
        "ksc_5601",
        "windows-949",
    ),
}

#: Every accepted label (lowercase, as the standard writes it) -> its Python codec.
LABELS: Final[dict[str, str]] = {
    label: codec for codec, labels in _ENCODINGS.items() for label in labels
}

_STRIP: Final = " \t\n\f\r\"'"
_C1_HANDLER: Final = "aiohttp_helpers.windows-1252"


def _c1_as_is(exc: UnicodeError) -> tuple[str, int]:
    """The five bytes cp1252 leaves undefined decode, as the standard says, to U+0081 etc."""
    if not isinstance(exc, UnicodeDecodeError):  # pragma: no cover - registered for decoding
        raise exc
    byte = exc.object[exc.start]
    if byte in (0x81, 0x8D, 0x8F, 0x90, 0x9D):
        return chr(byte), exc.start + 1
    raise exc  # pragma: no cover - cp1252 defines every other byte


codecs.register_error(_C1_HANDLER, _c1_as_is)


def charset_codec(label: str, field: str | None = None) -> str:
    """The Python codec of the charset ``label``; UnsupportedEncoding (415) when it is not listed.

    The label is trimmed and lowercased as the standard says (quotes dropped too, for a
    ``charset="utf-8"`` parameter); a label longer than :data:`MAX_LABEL` is refused
    before anything else is done with it.
    """
    if len(label) > MAX_LABEL + 8:
        raise UnsupportedEncoding("charset", label, field)
    key = label.strip(_STRIP)
    if len(key) > MAX_LABEL or not key.isascii():
        raise UnsupportedEncoding("charset", label, field)
    codec = LABELS.get(key.lower())
    if codec is None:
        raise UnsupportedEncoding("charset", label, field)
    return codec


def decode_charset(data: bytes, codec: str) -> str:
    """``data`` decoded with ``codec`` (one of the table's); UnicodeDecodeError if it does not."""
    if codec == "utf-8":
        return data.decode()
    if codec == "cp1252":
        return data.decode(codec, _C1_HANDLER)
    return data.decode(codec)


def trusted_codec(encoding: str) -> str:
    """The codec of an ``encoding=`` argument: the application's choice, checked as such."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"{encoding!r} is not a text encoding")
    return info.name


def not_text(field: str | None, charset: str, *, whole: bool = False) -> MalformedMultipart:
    """The 400 for bytes not text in ``charset``: of field ``field``, or of the ``whole`` form."""
    what = "the form" if whole else f"field {field!r}"
    return MalformedMultipart(f"{what} is not valid {charset[:40]} text", field=field)


def decode_text(
    data: bytes, charset: str | None, field: str | None, *, trusted: bool = False
) -> str:
    """``data`` decoded with ``charset`` (None: UTF-8, the form default); 400 if it is not text.

    ``charset`` is a label of the WHATWG Encoding Standard, 415 if it is not one, unless
    ``trusted``: an ``encoding=`` the application chose is any Python text codec.
    """
    if charset is None:
        # The common case, on the form fast path: no lookup.
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise not_text(field, "utf-8") from None
    codec = trusted_codec(charset) if trusted else charset_codec(charset, field)
    try:
        return decode_charset(data, codec)
    except UnicodeError:
        raise not_text(field, charset) from None
