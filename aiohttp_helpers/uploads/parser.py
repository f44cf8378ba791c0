"""A push parser for multipart bodies: one buffer, boundaries found with ``bytes.find``.

The parser is synchronous and allocates little: the async readers feed it whatever the
network delivered and pull header blocks and body bytes out of it. A body chunk that holds
no delimiter is handed on as the very ``bytes`` object that was fed, without a copy.

Framing follows RFC 2046 section 5.1.1 (the delimiter is CRLF, ``--``, the boundary,
optional transport padding, CRLF), with two tolerances real clients need: bare LF line
ends, and a body that starts directly with the first boundary line.
"""

from __future__ import annotations

import enum
import re
from typing import Final, Literal

from .._words import counted
from ..config import UploadLimits
from ..errors import HeadersTooLarge, MalformedMultipart, PreambleTooLarge
from .headers import PartHead, parse_head

__all__ = ["END", "NEED_DATA", "MultipartParser", "Signal"]


class Signal(enum.Enum):
    """What the parser answers when it has no header block or bytes to give."""

    NEED_DATA = "need data"
    END = "end"


NEED_DATA: Final = Signal.NEED_DATA
END: Final = Signal.END

_PREAMBLE, _HEADERS, _BODY, _EPILOGUE, _DONE = range(5)
# The one header line of almost every text field that browsers, curl and aiohttp send.
_SIMPLE = b'Content-Disposition: form-data; name="'
_SIMPLE_LEN = len(_SIMPLE)
_PLAIN_NAME = re.compile(rb'[^\x00-\x1f\x7f"\\%]*')
# How much transport padding (spaces and tabs) may follow a boundary before its line end.
_MAX_PADDING = 256
# Answers of _after_boundary() besides "the next line starts at this index".
_NOT_BOUNDARY, _WAIT, _FINAL_BIT = -1, -2, 1 << 62


def _headers_too_long(limit: int) -> HeadersTooLarge:
    return HeadersTooLarge(
        f"a part's headers are longer than {counted(limit, 'byte')}", limit=limit
    )


class MultipartParser:
    """Split one multipart body, fed in pieces of any size, into header blocks and bytes."""

    __slots__ = (
        "_buf",
        "_delim",
        "_dlen",
        "_eof",
        "_epilogue_start",
        "_limits",
        "_outside",
        "_part_done",
        "_pattern",
        "_pos",
        "_state",
        "_virtual",
    )

    def __init__(self, boundary: bytes, limits: UploadLimits) -> None:
        self._delim = b"\n--" + boundary
        self._dlen = len(self._delim)
        # A virtual line end before the body lets the first boundary line be found
        # like every other delimiter.
        self._buf = b"\n"
        self._pos = 0
        self._eof = False
        self._state = _PREAMBLE
        self._outside = 0
        self._part_done = False
        self._virtual = True
        self._epilogue_start = False
        self._limits = limits
        self._pattern: re.Pattern[bytes] | None = None

    @property
    def in_body(self) -> bool:
        """Whether the parser is inside a part's body."""
        return self._state == _BODY

    @property
    def part_ending(self) -> bool:
        """Whether the next :meth:`read` ends the current part (it has seen the delimiter)."""
        return self._part_done

    def feed(self, data: bytes) -> None:
        """Add bytes that follow those fed so far."""
        if self._pos >= len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def feed_eof(self) -> None:
        """Mark the end of the body."""
        self._eof = True

    # -- framing ----------------------------------------------------------------------

    def _after_boundary(self, buf: bytes, j: int) -> int:
        """Classify what follows ``--boundary`` ending at ``j``.

        Returns the index where the next line starts (a delimiter), that index with
        ``_FINAL_BIT`` set (the close delimiter), ``_NOT_BOUNDARY`` (the bytes only look
        like a boundary: they are data), or ``_WAIT`` (more bytes are needed to tell).
        """
        n = len(buf)
        if j >= n:
            return _NOT_BOUNDARY if self._eof else _WAIT
        c = buf[j]
        if c == 45:  # "-"
            if j + 1 >= n:
                return _NOT_BOUNDARY if self._eof else _WAIT
            return (j + 2) | _FINAL_BIT if buf[j + 1] == 45 else _NOT_BOUNDARY
        k = j
        while c == 32 or c == 9:
            k += 1
            if k - j > _MAX_PADDING:
                return _NOT_BOUNDARY
            if k >= n:
                return _NOT_BOUNDARY if self._eof else _WAIT
            c = buf[k]
        if c == 10:
            return k + 1
        if c == 13:
            if k + 1 >= n:
                return _NOT_BOUNDARY if self._eof else _WAIT
            return k + 2 if buf[k + 1] == 10 else _NOT_BOUNDARY
        return _NOT_BOUNDARY

    def _skip_lookalikes(self, buf: bytes, start: int) -> int:
        """Where to look for the next delimiter after data that only looked like one.

        Body data may repeat ``--boundary`` lines that are not delimiters (followed by
        something other than a line end): stepping through them one ``find()`` at a
        time costs about 50 times the parse of plain data. A regular expression of the
        whole delimiter skips them in C; only the last bytes of the buffer, where a
        delimiter may be cut short, are left to :meth:`_after_boundary`.
        """
        pattern = self._pattern
        if pattern is None:
            pattern = self._pattern = re.compile(
                re.escape(self._delim) + rb"(?:--|[ \t]{0,%d}\r?\n)" % _MAX_PADDING
            )
        match = pattern.search(buf, start)
        if match is not None:
            return match.start()
        return max(start, len(buf) - self._dlen - _MAX_PADDING - 2)

    def _next_boundary(self, buf: bytes, start: int) -> tuple[int, int]:
        """The next delimiter from ``start`` that is, or may yet be, a boundary line.

        Returns ``(index, after)`` as :meth:`_after_boundary` gives ``after`` (never
        ``_NOT_BOUNDARY``), or ``(-1, _NOT_BOUNDARY)`` when the buffer holds none.
        """
        delim, dlen = self._delim, self._dlen
        while True:
            idx = buf.find(delim, start)
            if idx < 0:
                return -1, _NOT_BOUNDARY
            after = self._after_boundary(buf, idx + dlen)
            if after != _NOT_BOUNDARY:
                return idx, after
            start = self._skip_lookalikes(buf, idx + 1)

    def _count_outside(self, n: int) -> None:
        self._outside += n
        if self._outside > self._limits.max_preamble_size:
            raise PreambleTooLarge(self._limits.max_preamble_size)

    def _skip_preamble(self) -> bool:
        """Drop bytes up to the first boundary line; True once it is found."""
        buf, pos = self._buf, self._pos
        idx, after = self._next_boundary(buf, pos)
        if idx >= 0:
            # Up to the boundary, short of the CR that may precede it.
            end = idx - 1 if idx > pos and buf[idx - 1] == 13 else idx
            self._consume_preamble(end)
            if after == _WAIT:
                return False
            self._virtual = False
            self._end_part(after)
            return True
        # Keep what may be the start of the first delimiter, with its CR.
        self._consume_preamble(max(pos, len(buf) - self._dlen))
        if self._eof:
            raise MalformedMultipart("the body has no multipart boundary line")
        return False

    def _consume_preamble(self, end: int) -> None:
        """Drop the buffer up to ``end``, counting it (not the virtual line end) as preamble."""
        n = end - self._pos
        if n <= 0:
            return
        if self._virtual:
            self._virtual = False
            n -= 1
        self._pos = end
        self._count_outside(n)

    def _enter_epilogue(self) -> None:
        self._state = _EPILOGUE
        self._outside = 0
        self._epilogue_start = True

    def _read_headers(self) -> PartHead | Literal[Signal.NEED_DATA]:
        buf, pos = self._buf, self._pos
        n = len(buf)
        limits = self._limits
        first = buf[pos : pos + 2]
        if first == b"\r\n" or first[:1] == b"\n":
            # No header lines at all: the body starts after this empty line.
            self._pos = pos + len(first) if first == b"\r\n" else pos + 1
            self._state = _BODY
            return parse_head(b"", limits.max_part_headers)
        if first == b"\r" and n - pos < 2:
            return self._wait_headers()
        # The block and the CRLF CRLF that ends it.
        window = pos + limits.max_header_size + 4
        end = buf.find(b"\n\r\n", pos, window)
        if end >= 0:
            lf = buf.find(b"\n\n", pos, end + 1)
            if lf >= 0:
                end, body = lf, lf + 2
            else:
                body = end + 3
        else:
            end = buf.find(b"\n\n", pos, window)
            if end < 0:
                if n - pos >= window - pos:
                    raise _headers_too_long(limits.max_header_size)
                return self._wait_headers()
            body = end + 2
        block_end = end - 1 if buf[end - 1] == 13 else end
        if block_end - pos > limits.max_header_size:
            raise _headers_too_long(limits.max_header_size)
        head = parse_head(buf[pos:block_end], limits.max_part_headers)
        self._pos = body
        self._state = _BODY
        return head

    def _wait_headers(self) -> Literal[Signal.NEED_DATA]:
        if self._eof:
            raise MalformedMultipart("the body ends inside a part's headers")
        return NEED_DATA

    def next_part(self) -> PartHead | Signal:
        """The next part's headers, ``NEED_DATA``, or ``END`` after the final boundary.

        The current part's body must have been read to its end first.
        """
        self._part_done = False
        state = self._state
        if state == _HEADERS:
            return self._read_headers()
        if state == _PREAMBLE:
            if not self._skip_preamble():
                return NEED_DATA
            return self.next_part()
        assert state != _BODY, "the current part must be read to its end first"
        if state == _EPILOGUE:
            buf, pos = self._buf, self._pos
            if self._epilogue_start:
                # The line end after the close delimiter is not epilogue.
                head = buf[pos : pos + 2]
                if head == b"\r" and not self._eof:
                    return NEED_DATA
                if head or self._eof:
                    self._epilogue_start = False
                    pos += 2 if head == b"\r\n" else 1 if head[:1] == b"\n" else 0
            self._count_outside(len(buf) - pos)
            self._pos = len(buf)
            if not self._eof:
                return NEED_DATA
            self._state = _DONE
        return END

    # -- bodies -----------------------------------------------------------------------

    def _end_part(self, after: int) -> None:
        if after & _FINAL_BIT:
            self._pos = after & ~_FINAL_BIT
            self._enter_epilogue()
        else:
            self._pos = after
            self._state = _HEADERS

    def read(self) -> bytes | Literal[Signal.NEED_DATA]:
        """The next bytes of the current part's body, ``b""`` at its end, or ``NEED_DATA``."""
        if self._part_done:
            self._part_done = False
            return b""
        assert self._state == _BODY, "read() outside a part's body"
        buf, pos = self._buf, self._pos
        idx, after = self._next_boundary(buf, pos)
        if idx >= 0:
            end = idx - 1 if idx > pos and buf[idx - 1] == 13 else idx
            if after == _WAIT:
                if end > pos:
                    self._pos = end
                    return buf[pos:end]
                return NEED_DATA
            self._end_part(after)
            if end > pos:
                self._part_done = True
                return buf[pos:end]
            return b""
        n = len(buf)
        safe = self._safe_end(buf, pos, n)
        if safe > pos:
            self._pos = safe
            return buf if pos == 0 and safe == n else buf[pos:safe]
        if self._eof:
            raise MalformedMultipart("the body ends before the final boundary")
        return NEED_DATA

    def _safe_end(self, buf: bytes, pos: int, n: int) -> int:
        """How far the buffer holds part data for sure: short of a partial delimiter."""
        delim = self._delim
        k = buf.find(b"\n", max(pos, n - self._dlen + 1))
        while k >= 0:
            if delim.startswith(buf[k:n]):
                return k - 1 if k > pos and buf[k - 1] == 13 else k
            k = buf.find(b"\n", k + 1)
        if n > pos and buf[n - 1] == 13:
            return n - 1
        return n

    def read_whole(self) -> bytes | None:
        """The whole rest of the current part when the buffer holds its end, else None.

        Only for a part whose body has not been read from yet.
        """
        assert self._state == _BODY
        assert not self._part_done
        buf, pos = self._buf, self._pos
        idx = buf.find(self._delim, pos)
        if idx < 0:
            return None
        after = self._after_boundary(buf, idx + self._dlen)
        if after < 0:
            return None
        end = idx - 1 if idx > pos and buf[idx - 1] == 13 else idx
        self._end_part(after)
        return buf[pos:end]

    def read_simple_fields(self) -> list[tuple[bytes, bytes]]:
        """The fast path for text fields: ``(name, body)`` of the next parts, maybe none.

        Only parts whose sole header is ``Content-Disposition: form-data; name="..."``
        (a name with no escapes) and whose end is in the buffer qualify; at the first
        part that does not, the parser stops, having consumed nothing of it, and the
        caller takes the general path.
        """
        out: list[tuple[bytes, bytes]] = []
        if self._state != _HEADERS:
            return out
        buf, pos, delim, dlen = self._buf, self._pos, self._delim, self._dlen
        max_header = self._limits.max_header_size
        fullmatch = _PLAIN_NAME.fullmatch
        append = out.append
        while buf.startswith(_SIMPLE, pos):
            start = pos + _SIMPLE_LEN
            quote = buf.find(b'"', start)
            if quote < 0 or not buf.startswith(b'"\r\n\r\n', quote):
                break
            if quote + 1 - pos > max_header:
                break
            name = buf[start:quote]
            if fullmatch(name) is None:
                break
            body = quote + 5
            idx = buf.find(delim, body)
            if idx < 0:
                break
            j = idx + dlen
            if buf.startswith(b"\r\n", j):
                after = j + 2
            else:
                after = self._after_boundary(buf, j)
                if after < 0:
                    break
            end = idx - 1 if idx > body and buf[idx - 1] == 13 else idx
            append((name, buf[body:end]))
            if after & _FINAL_BIT:
                self._end_part(after)
                return out
            pos = after
        self._pos = pos
        return out
