"""``application/x-www-form-urlencoded`` bodies, parsed in steps that leave the event loop free.

``urllib.parse.parse_qsl`` decodes and splits a whole body in one call: a legal body of a
few MiB holds every other request of the process for a second. Here the pairs are cut
out one by one, escapes are undone in bounded slices, and the parse lets other tasks
run every ``counts.TURN`` seconds; the field count, field size and the text budget are checked
as the pairs come, so a body over a limit stops at the first pair that crosses it.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote_to_bytes

from ..config import UploadLimits
from .charsets import charset_codec, decode_charset, not_text
from .counts import Counts

__all__ = ["parse_urlencoded"]

#: Escaped bytes undone at once (about a millisecond of work).
_SLICE: Final = 32 * 1024


def _unescape_small(raw: bytes) -> bytes:
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    return unquote_to_bytes(raw) if b"%" in raw else raw


async def _unescape(raw: bytes, turn: Counts) -> bytes:
    """``raw`` with ``+`` as a space and ``%XX`` escapes undone, a bounded slice at a time."""
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    if b"%" not in raw:
        return raw
    if len(raw) <= _SLICE:
        return unquote_to_bytes(raw)
    out = bytearray()
    start = 0
    while start < len(raw):
        end = start + _SLICE
        # An escape cut by the slice's end goes whole into the next slice.
        cut = raw.rfind(b"%", max(start, end - 2), end)
        if cut >= 0 and end < len(raw):
            end = cut
        out += unquote_to_bytes(raw[start:end])
        start = end
        if turn.turn_due():
            await turn.take_turn()
    return bytes(out)


async def parse_urlencoded(
    data: bytes,
    charset: str,
    limits: UploadLimits,
    *,
    field: str | None = None,
    turn: Counts | None = None,
    codec: bool = False,
) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of ``data``, decoded with ``charset``.

    ``charset`` is a form charset label, or (``codec=True``) a Python codec the caller has
    already chosen or checked.

    Raises:
        UnsupportedEncoding: ``charset`` is not a form charset (415).
        TooManyFields: more than ``max_fields`` pairs (413).
        FieldTooLarge: a value over ``max_field_size`` decoded bytes (413).
        FieldsMemoryExceeded: the names and values together over ``max_fields_memory``
            (413).
        MalformedMultipart: a name or value that is not text in ``charset`` (400).
    """
    python_codec = charset if codec else charset_codec(charset, field)
    # The pairs are counted on their own: a part's pairs are not fields of the body.
    tally = Counts(limits)
    if turn is None:
        turn = tally
    await turn.take_turn()
    pairs: list[tuple[str, str]] = []
    end = len(data)
    # A trailing line end (curl --data-binary @file) is not part of the last value.
    while end and data[end - 1] in b"\r\n":
        end -= 1
    pos = 0
    while pos < end:
        amp = data.find(b"&", pos, end)
        if amp < 0:
            amp = end
        piece = data[pos:amp]
        pos = amp + 1
        if not piece:
            continue
        tally.field(field)
        raw_name, _, raw_value = piece.partition(b"=")
        if len(piece) <= _SLICE:
            name_bytes = _unescape_small(raw_name)
            value_bytes = _unescape_small(raw_value)
        else:
            name_bytes = await _unescape(raw_name, turn)
            value_bytes = await _unescape(raw_value, turn)
        try:
            name = decode_charset(name_bytes, python_codec)
            value = decode_charset(value_bytes, python_codec)
        except UnicodeError:
            raise not_text(field, charset, whole=field is None) from None
        tally.pair(name, len(name_bytes), len(value_bytes))
        pairs.append((name, value))
        if len(pairs) & 255 == 0 and turn.turn_due():
            await turn.take_turn()
    return pairs
