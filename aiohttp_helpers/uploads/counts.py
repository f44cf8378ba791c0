"""The one upload accounting path: parts, files, fields and bytes counted against ``UploadLimits``.

Every reader of a body (``iter_parts()``, ``read_form()`` and its fast path for plain
text fields, ``BodyPart.form()`` and urlencoded bodies) counts through a :class:`Counts`,
so a limit means the same, and fails with the same error, whichever way the body is read.
The pairs of an urlencoded body, or of one part read with ``BodyPart.form()``, are a tally
of their own (:meth:`Counts.pair`: fields, field size, the text budget): a part's pairs are
not parts or fields of the body around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from time import monotonic
from typing import Final

from aiohttp import hdrs

from ..config import UploadLimits
from ..errors import (
    BodyTooLarge,
    DecodedTooLarge,
    FieldsMemoryExceeded,
    FieldTooLarge,
    FileTooLarge,
    TooManyFields,
    TooManyFiles,
    TooManyParts,
)

__all__ = ["TURN", "URLENCODED", "Counts", "body_limit", "check_declared_length", "media_type"]

#: The longest a body is parsed without letting the event loop run other tasks (seconds).
TURN: Final = 0.01


#: The one media type read as a form besides ``multipart/*``.
URLENCODED: Final = "application/x-www-form-urlencoded"


def media_type(content_type: str) -> str:
    """The media type of a Content-Type value, lower-cased, without its parameters."""
    return content_type.partition(";")[0].strip().lower()


def body_limit(media: str, limits: UploadLimits) -> int:
    """The most bytes a body of ``media`` may have on the wire.

    An urlencoded body is held whole to be parsed, so ``max_urlencoded_size`` bounds it
    too; a multipart body streams, within ``max_body_size``.
    """
    if media == URLENCODED:
        return min(limits.max_body_size, limits.max_urlencoded_size)
    return limits.max_body_size


def check_declared_length(headers: Mapping[str, str], limit: int) -> None:
    """Refuse a body whose Content-Length is over ``limit`` before a byte of it is read.

    A value that is not plain ASCII digits is left to the reader (aiohttp's parser has
    refused it on the wire already); one of more than 20 significant digits is over any
    limit, and is not converted.

    Raises:
        BodyTooLarge: the declared length is over ``limit`` (413).
    """
    length = headers.get(hdrs.CONTENT_LENGTH)
    if length is None:
        return
    length = length.strip()
    if length.isascii() and length.isdigit():
        digits = length.lstrip("0")
        if len(digits) > 20 or int(digits or "0") > limit:
            raise BodyTooLarge(limit)


class Counts:
    """What one body has used of its limits so far, shared by its nesting levels.

    Each method counts one thing and raises the limit's error the moment it is crossed.
    """

    __slots__ = ("decoded", "fields", "files", "limits", "parts", "text", "turn")

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.parts = 0
        self.files = 0
        self.fields = 0
        self.decoded = 0
        #: Decoded bytes of text (non-file) parts, against ``max_fields_memory``.
        self.text = 0
        #: When (``time.monotonic()``) the body's reader next lets other tasks run.
        self.turn = 0.0

    def part(self) -> None:
        """One more part (of any kind, at any level)."""
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise TooManyParts(self.limits.max_parts)

    def file(self, name: str | None) -> None:
        """One more file, in field ``name``."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise TooManyFiles(self.limits.max_files, name)

    def field(self, name: str | None) -> None:
        """One more text field, in field ``name``."""
        self.fields += 1
        if self.fields > self.limits.max_fields:
            raise TooManyFields(self.limits.max_fields, name)

    def data(self, n: int, size: int, name: str | None, is_file: bool) -> None:
        """``n`` more decoded bytes of part ``name``, which now holds ``size`` bytes.

        Checked against the part's own limit (``max_file_size`` or ``max_field_size``),
        the body's decoded bytes and, for text, the fields' budget.
        """
        limits = self.limits
        if is_file:
            if size > limits.max_file_size:
                raise FileTooLarge(name, limits.max_file_size)
        elif size > limits.max_field_size:
            raise FieldTooLarge(name, limits.max_field_size)
        self.decoded += n
        if self.decoded > limits.decoded_limit:
            raise DecodedTooLarge(name, limits.decoded_limit)
        if not is_file:
            self.text += n
            if self.text > limits.max_fields_memory:
                raise FieldsMemoryExceeded(limits.max_fields_memory, name)

    def text_field(self, name: str, size: int) -> None:
        """A whole plain text field of ``size`` bytes, counted in one call (the form fast path).

        The checks of :meth:`part`, :meth:`field` and :meth:`data`, in that order.
        """
        limits = self.limits
        self.parts += 1
        if self.parts > limits.max_parts:
            raise TooManyParts(limits.max_parts)
        self.fields += 1
        if self.fields > limits.max_fields:
            raise TooManyFields(limits.max_fields, name)
        if size > limits.max_field_size:
            raise FieldTooLarge(name, limits.max_field_size)
        self.decoded += size
        if self.decoded > limits.decoded_limit:
            raise DecodedTooLarge(name, limits.decoded_limit)
        self.text += size
        if self.text > limits.max_fields_memory:
            raise FieldsMemoryExceeded(limits.max_fields_memory, name)

    def pair(self, name: str, name_size: int, value_size: int) -> None:
        """An urlencoded pair's decoded sizes (the pair itself was counted by :meth:`field`).

        The value is a field of its own (``max_field_size``); name and value both take
        from the text budget (``max_fields_memory``).
        """
        limits = self.limits
        if value_size > limits.max_field_size:
            raise FieldTooLarge(name, limits.max_field_size)
        self.text += name_size + value_size
        if self.text > limits.max_fields_memory:
            raise FieldsMemoryExceeded(limits.max_fields_memory, name)

    def turn_due(self) -> bool:
        """Whether the body has held the event loop for ``TURN`` seconds.

        A client that sends faster than its body is parsed always finds bytes waiting:
        reading them then never suspends, and a body of 100,000 small parts would hold
        every other request of the process for seconds.
        """
        return monotonic() >= self.turn

    async def take_turn(self) -> None:
        """Let other tasks run (not on the first call: that starts the clock)."""
        if self.turn:
            await asyncio.sleep(0)
        self.turn = monotonic() + TURN
