"""Frames on the wire: strict checks of client frames, and prebuilt server frames.

Client frames: the RFC 6455 checks aiohttp's reader leaves out, made as bytes arrive.

aiohttp 3.14's reader accepts an unmasked client frame and a payload length written in
more bytes than needed, and checks the UTF-8 of a text message only once the whole
message is in. :class:`StrictFrames` stands between the connection and aiohttp's reader,
walks the frame headers of every chunk the socket delivers, and fails the connection as
aiohttp itself does (the error reaches ``receive()``, which answers with its close code):

==============================================================  ====
a client frame without a mask (RFC 6455, section 5.1)            1002
a payload length in 16 bits below 126, or in 64 bits below       1002
65536 or with its top bit set (section 5.2: the minimal number
of bytes must be used)
text that is not UTF-8, as soon as the bad byte arrives rather   1007
than when the message ends (section 8.1)
==============================================================  ====

Payloads are not copied on the usual path: a chunk is handed to aiohttp's reader as it
came, and only its headers are read. The UTF-8 check needs the payload unmasked, so it
costs a copy, but only of text that arrives in a chunk before the one where its message
ends: aiohttp decodes a message, and so checks the piece in that last chunk, in the same
step. ASCII needs no decoding. Compressed (permessage-deflate) text can only be checked
once inflated, which aiohttp does when the message is complete.

Server frames: :class:`Prebuilt` frames one broadcast message once, for every socket
that takes it (see ``WebSocketRegistry.deliver``).
"""

from __future__ import annotations

import codecs
import logging
import struct
import zlib
from typing import TYPE_CHECKING, Any, Final

from aiohttp import WebSocketError, WSCloseCode, WSMsgType

from .._compat import websocket_mask

if TYPE_CHECKING:
    from .._compat import WebSocketWriter

__all__ = ["Prebuilt", "StrictFrames"]

log = logging.getLogger("aiohttp_helpers.websocket")

_OP_CONTINUATION: Final = 0x0
_OP_TEXT: Final = 0x1
_MAX_HEADER: Final = 14
_UTF8 = codecs.getincrementaldecoder("utf-8")

UNMASKED = "client frame is not masked"
NOT_MINIMAL = "payload length is not in its minimal form"
TOO_LONG = "payload length has its most significant bit set"
BAD_UTF8 = "text message is not valid UTF-8"

#: By second header byte: the size of a masked frame with a 7-bit length, header
#: included (2 + 4 + length); 0 for an unmasked frame or a longer length.
_STEP: Final = tuple(0x80 <= b < 0xFE and b - 0x7A for b in range(256))
#: By first header byte: whether a whole frame needs no more than its header looked at.
#: Outside a text message: anything but text or continuation, and a FIN text frame (a
#: whole message, which aiohttp checks at once). Inside one, only the former.
_SKIP: Final = tuple(bool(b & 0x0E) or b & 0xBF == 0x81 for b in range(256))
_SKIP_IN_TEXT: Final = tuple(bool(b & 0x0E) for b in range(256))

#: ``(where in the chunk the failing frame starts, close code, reason)``.
_Failure = tuple[int, int, str]


class StrictFrames:
    """A connection's payload parser that checks frames before aiohttp's reader parses them.

    ``reader`` is aiohttp's ``WebSocketReader`` and ``queue`` its ``WebSocketDataQueue``;
    every byte goes on to ``reader`` unchanged until a frame fails, then the connection
    fails with the frame's close code, as when aiohttp's reader finds an error.
    """

    __slots__ = (
        "_check_text",
        "_decoder",
        "_failed",
        "_frame_text",
        "_head",
        "_in_text",
        "_left",
        "_mask",
        "_offset",
        "_queue",
        "_reader",
        "_text_final",
    )

    def __init__(self, reader: Any, queue: Any, *, check_text: bool = True) -> None:
        self._reader = reader
        #: False when aiohttp hands text over undecoded (``decode_text=False``), so that
        #: no UTF-8 is required of it.
        self._check_text = check_text
        self._queue = queue
        self._failed = False
        #: Bytes of a frame header cut by the end of the last chunk.
        self._head = b""
        #: Payload bytes of the current frame still to come in later chunks.
        self._left = 0
        #: Whether those bytes are text to check, with the frame's mask, how many payload
        #: bytes of the frame came before, and whether the frame ends its message.
        self._frame_text = False
        self._mask = b""
        self._offset = 0
        self._text_final = False
        #: An uncompressed text message goes on past the current frame, being checked.
        self._in_text = False
        self._decoder: codecs.IncrementalDecoder | None = None

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Check ``data`` and pass it on; ``(True, b"")`` once the connection has failed."""
        if self._failed:
            return True, b""
        failure = self._scan(data)
        if failure is None:
            result: tuple[bool, bytes] = self._reader.feed_data(data)
            return result
        start, code, reason = failure
        if start > 0:
            # The frames before the failing one are good: their messages are delivered.
            eof, _ = self._reader.feed_data(data[:start])
            if eof:
                self._failed = True
                return True, b""
        self._fail(code, reason)
        return True, b""

    def _fail(self, code: int, reason: str) -> None:
        self._failed = True
        self._decoder = None
        log.debug("WebSocket client frame refused with %d: %s", code, reason)
        self._queue.set_exception(WebSocketError(code, reason))

    # -- the walk over one chunk -------------------------------------------------------

    def _scan(self, data: bytes) -> _Failure | None:
        n = len(data)
        pos = 0
        if self._left:
            pos = n if self._left > n else self._left
            self._left -= pos
            if self._frame_text and not self._check(data, 0, pos, 0):
                return 0, WSCloseCode.INVALID_TEXT, BAD_UTF8
            if self._left:
                return None
        if self._head:
            # A header cut by the end of the last chunk: complete it from this one.
            joined = self._head + data[: _MAX_HEADER - len(self._head)]
            parsed = _parse_header(joined, 0)
            if parsed is None:
                self._head = joined
                return None
            if isinstance(parsed[0], str):
                return 0, WSCloseCode.PROTOCOL_ERROR, parsed[0]
            hlen, length, first = parsed
            pos = hlen - len(self._head)
            mask = joined[hlen - 4 : hlen]
            self._head = b""
            failure = self._payload(data, pos, pos + length, first, mask, 0)
            if failure is not None:
                return failure
            pos += length
            if pos >= n:
                return None
        # The hot loop: one pass per frame, a few integer operations for the frames that
        # need nothing more than a look at their header (short, masked, whole in this
        # chunk, and not text, or a whole unfragmented text message).
        skip = _SKIP_IN_TEXT if self._in_text else _SKIP
        limit = n - 1
        steps = _STEP
        while pos < limit:
            step = steps[data[pos + 1]]
            if step:
                end = pos + step
                if end <= n and skip[data[pos]]:
                    pos = end
                    continue
            found = self._frame(data, pos)
            if not isinstance(found, int):
                return found
            pos = found
            if pos >= n:
                return None
            skip = _SKIP_IN_TEXT if self._in_text else _SKIP
        if pos < n:
            self._head = data[pos:]  # one byte of the next header
        return None

    def _frame(self, data: bytes, pos: int) -> int | _Failure | None:
        """The careful look at the frame at ``pos``: where the next one starts.

        ``None`` when the header is cut by the end of the chunk; a failure when refused.
        """
        n = len(data)
        parsed = _parse_header(data, pos)
        if parsed is None:
            self._head = data[pos:]
            return None
        if isinstance(parsed[0], str):
            return pos, WSCloseCode.PROTOCOL_ERROR, parsed[0]
        hlen, length, first = parsed
        begin = pos + hlen
        end = begin + length
        opcode = first & 0x0F
        if opcode == _OP_TEXT or (opcode == _OP_CONTINUATION and self._in_text):
            if first & 0x8F == 0x81 and end <= n:
                # A whole unfragmented text message: aiohttp checks it at once (and
                # refuses it if a continuation was due).
                self._in_text = False
            else:
                failure = self._payload(data, begin, end, first, data[begin - 4 : begin], pos)
                if failure is not None:
                    return failure
        elif end > n:
            self._frame_text = False
            self._left = end - n
        return end

    def _payload(
        self, data: bytes, begin: int, end: int, first: int, mask: bytes, start: int
    ) -> _Failure | None:
        """Start checking the payload of a frame whose header ended at ``begin``."""
        n = len(data)
        opcode = first & 0x0F
        fin = bool(first & 0x80)
        if opcode == _OP_TEXT:
            # RSV1: compressed; aiohttp inflates and checks it when complete.
            if first & 0x40 or not self._check_text:
                self._in_text = False
                self._frame_text = False
                self._left = max(end - n, 0)
                return None
            self._decoder = _UTF8()
            self._in_text = not fin
        elif opcode == _OP_CONTINUATION and self._in_text:
            if fin:
                self._in_text = False
        else:
            # Binary or control, or the continuation of a message not checked here.
            self._frame_text = False
            self._left = max(end - n, 0)
            return None
        self._mask = mask
        self._text_final = fin
        self._frame_text = True
        self._offset = 0
        stop = end if end <= n else n
        self._left = end - stop
        if not self._check(data, begin, stop, start):
            return start, WSCloseCode.INVALID_TEXT, BAD_UTF8
        return None

    def _check(self, data: bytes, begin: int, stop: int, start: int) -> bool:
        """Unmask ``data[begin:stop]`` of the current text frame and decode it further."""
        decoder = self._decoder
        if decoder is None:  # pragma: no cover (a text frame always has one)
            return True
        final = self._text_final and not self._left
        if final:
            # The message ends in this chunk: aiohttp decodes it whole, and so checks
            # this last piece, in the same step.
            self._frame_text = False
            self._decoder = None
            return True
        chunk = bytearray(memoryview(data)[begin:stop])
        shift = self._offset & 3
        mask = self._mask if not shift else self._mask[shift:] + self._mask[:shift]
        websocket_mask(mask, chunk)
        self._offset += stop - begin
        # ASCII after a complete character is valid as it stands: no decoding, no string.
        if not chunk.isascii() or decoder.getstate()[0]:
            try:
                decoder.decode(chunk, False)
            except UnicodeDecodeError:
                return False
        if not self._left:
            self._frame_text = False
        return True


def _parse_header(data: bytes, pos: int) -> tuple[int, int, int] | tuple[str, int, int] | None:
    """``(header length, payload length, first byte)`` of the frame header at ``pos``.

    ``None`` when the header is not all there yet; ``(reason, 0, 0)`` when it is refused.
    """
    n = len(data) - pos
    if n < 2:
        return None
    first, second = data[pos], data[pos + 1]
    if second < 0x80:
        return UNMASKED, 0, 0
    length = second & 0x7F
    if length < 126:
        hlen = 6
    elif length == 126:
        if n < 4:
            return None
        length = data[pos + 2] << 8 | data[pos + 3]
        if length < 126:
            return NOT_MINIMAL, 0, 0
        hlen = 8
    else:
        if n < 10:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        if length >> 63:
            return TOO_LONG, 0, 0
        if length < 65536:
            return NOT_MINIMAL, 0, 0
        hlen = 14
    if n < hlen:
        return None
    return hlen, length, first


# -- server frames, prebuilt ------------------------------------------------------------


class Prebuilt:
    """One broadcast message's server frames: built once, shared by every socket that takes them."""

    __slots__ = ("_compressed", "opcode", "payload", "plain")

    def __init__(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.payload, self.opcode = data.encode("utf-8"), WSMsgType.TEXT
        else:
            self.payload, self.opcode = bytes(data), WSMsgType.BINARY
        self.plain = _frame(self.payload, self.opcode, 0)
        self._compressed: dict[int, bytes] = {}

    def for_writer(self, writer: WebSocketWriter) -> bytes:
        """The frame for a socket that negotiated permessage-deflate (RFC 7692).

        A socket that keeps its compression context (the usual case, browsers
        included) gets the uncompressed frame: RSV1 unset marks an uncompressed message,
        which the peer takes as is and which touches neither side's compression
        context, whereas a frame compressed here would shift the window that the
        socket's own next compressed message refers to. A socket without context
        takeover gets a frame compressed once per window size, shared by all of them.
        """
        if not writer.notakeover:
            return self.plain
        wbits = writer.compress
        frame = self._compressed.get(wbits)
        if frame is None:
            compressor = zlib.compressobj(zlib.Z_BEST_SPEED, zlib.DEFLATED, -wbits)
            body = compressor.compress(self.payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
            frame = self._compressed[wbits] = _frame(
                body.removesuffix(_DEFLATE_TAIL), self.opcode, 0x40
            )
        return frame


#: The empty stored block that ends a sync flush; RFC 7692 section 7.2.1 drops it.
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def _frame(payload: bytes, opcode: int, rsv: int) -> bytes:
    """A final, unmasked frame (servers never mask, RFC 6455 section 5.1)."""
    first = 0x80 | rsv | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload
