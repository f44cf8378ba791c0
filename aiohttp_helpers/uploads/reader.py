"""Reading a multipart body level by level: wire limits, idle timeout, decoded part streams."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from time import monotonic
from typing import Final

from aiohttp import hdrs
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader

from .._compat import connection_closed
from ..config import UploadLimits
from ..errors import (
    BadRequest,
    BodyTooLarge,
    DecodedTooLarge,
    FieldsMemoryExceeded,
    FieldTooLarge,
    FileTooLarge,
    MalformedMultipart,
    NestingTooDeep,
    NotMultipart,
    RequestTimeout,
    TooManyFields,
    TooManyFiles,
    TooManyParts,
    TypeNotAllowed,
    UploadIdleTimeout,
    UploadTooSlow,
)
from .decoding import Decoder, make_decoders, run_decoders
from .headers import PartHead, parse_content_type
from .parser import END, NEED_DATA, MultipartParser, Signal
from .sniff import SNIFF_BYTES, sniff, sniffed_allowed, type_allowed

__all__ = ["Counts", "Level", "PartStream", "Source", "open_body"]

_BCHARS: Final = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)


#: The longest a body is parsed without letting the event loop run other tasks (seconds).
_TURN = 0.01


class Counts:
    """What one body has used of its limits so far, shared by its nesting levels."""

    __slots__ = ("decoded", "fields", "files", "parts", "text", "turn")

    def __init__(self) -> None:
        self.parts = 0
        self.files = 0
        self.fields = 0
        self.decoded = 0
        #: Decoded bytes of text (non-file) parts, against ``max_fields_memory``.
        self.text = 0
        #: When (``time.monotonic()``) the body's reader next lets other tasks run.
        self.turn = 0.0

    def turn_due(self) -> bool:
        """Whether the body has held the event loop for ``_TURN`` seconds.

        A client that sends faster than its body is parsed always finds bytes waiting:
        reading them then never suspends, and a body of 100,000 small parts would hold
        every other request of the process for seconds.
        """
        return monotonic() >= self.turn

    async def take_turn(self) -> None:
        """Let other tasks run (not on the first call: that starts the clock)."""
        if self.turn:
            await asyncio.sleep(0)
        self.turn = monotonic() + _TURN


class Source:
    """Where a level's bytes come from; ``read()`` returns ``b""`` at the end."""

    __slots__ = ()

    async def read(self) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Stop any timer the source runs."""


class _Watchdog:
    """Fails the stream when one read waits ``timeout`` seconds, or the body comes too slowly.

    One timer, re-armed lazily: every deadline it computes is no earlier than the one
    before, so a timer that fires early only re-arms itself.

    The rate counts the time spent waiting for body bytes, not the time the handler spent
    on them: a handler that saves a file slowly does not make its client "too slow".
    """

    __slots__ = (
        "_content",
        "_handle",
        "_loop",
        "_min_rate",
        "_timeout",
        "received",
        "since",
        "waited",
    )

    def __init__(self, content: StreamReader, timeout: float, min_rate: float | None) -> None:
        self._content = content
        self._timeout = timeout
        self._min_rate = min_rate
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self.since: float | None = None
        #: Seconds spent waiting in reads that have ended, and the bytes they brought.
        self.waited = 0.0
        self.received = 0

    def start(self) -> None:
        self.since = now = self._loop.time()
        if self._handle is None:
            self._handle = self._loop.call_at(self._deadline(now)[0], self._check)

    def stop(self, received: int) -> None:
        since = self.since
        if since is not None:
            self.waited += self._loop.time() - since
            self.since = None
        self.received += received

    def _deadline(self, since: float) -> tuple[float, bool]:
        """When the current wait fails, and whether it fails for the rate (not idleness)."""
        idle = since + self._timeout
        rate = self._min_rate
        if rate is None:
            return idle, False
        # Fails once the time waited reaches both idle_timeout and received / min_rate.
        slow = since - self.waited + max(self._timeout, self.received / rate)
        return (slow, True) if slow < idle else (idle, False)

    def _check(self) -> None:
        self._handle = None
        since = self.since
        if since is None:
            return
        deadline, slow = self._deadline(since)
        if self._loop.time() + 0.001 >= deadline:
            if slow:
                assert self._min_rate is not None
                self._content.set_exception(UploadTooSlow(self._min_rate))
            else:
                self._content.set_exception(UploadIdleTimeout(self._timeout))
        else:
            self._handle = self._loop.call_at(deadline, self._check)

    def close(self) -> None:
        self.since = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


#: Pieces shorter than this are joined with the next ones: a read gathers what is already
#: buffered behind a small chunk, and a part joins its small pieces before handing them
#: on, so that a body sent in tiny pieces is handled and stored in pieces of a useful size.
_SMALL = 8 * 1024
#: Decoder output gathered behind a small piece before it is handed on.
_GATHER = 64 * 1024


class BodySource(Source):
    """An HTTP body: bytes counted against ``max_body_size``, stalls against ``idle_timeout``."""

    __slots__ = ("_content", "_limit", "_total", "_watchdog")

    def __init__(
        self, content: StreamReader, limits: UploadLimits, limit: int | None = None
    ) -> None:
        self._content = content
        self._limit = limits.max_body_size if limit is None else limit
        self._total = 0
        self._watchdog = (
            _Watchdog(content, limits.idle_timeout, limits.min_rate)
            if limits.idle_timeout is not None
            else None
        )

    async def read(self) -> bytes:
        content = self._content
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.start()
        data = b""
        try:
            while True:
                data, end_of_chunk = await content.readchunk()
                # (b"", True) marks the end of an HTTP chunk; (b"", False) the end of the body.
                if data or not end_of_chunk or content.at_eof():
                    break
            if data and len(data) < _SMALL:
                # Bounded in bytes, and so in time too: aiohttp takes a few microseconds
                # for each HTTP chunk it hands over, however small.
                more = content.read_nowait(_SMALL - len(data))
                if more:
                    data += more
        except RequestTimeout:
            # After the answer aiohttp reads what is left of the body, and would log the
            # stall as an unhandled exception with its traceback, once per stalled client.
            # A TimeoutError there means "give up on the rest": it closes quietly.
            content.set_exception(TimeoutError("the request body stalled"))
            raise
        except RuntimeError as exc:
            if connection_closed(exc):  # a read after the connection was lost
                raise ConnectionResetError("the connection was lost") from None
            raise
        except HttpProcessingError:
            raise BadRequest("the request body's transfer framing is malformed") from None
        finally:
            if watchdog is not None:
                watchdog.stop(len(data))
        if data:
            self._total += len(data)
            if self._total > self._limit:
                raise BodyTooLarge(self._limit)
        return data

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.close()


class _PartSource(Source):
    """The decoded bytes of a part that is itself a multipart body."""

    __slots__ = ("_part",)

    def __init__(self, part: PartStream) -> None:
        self._part = part

    async def read(self) -> bytes:
        return await self._part.next_chunk()


class Level:
    """One multipart body (the request's, or a nested part's) being read."""

    __slots__ = (
        "charset",
        "counts",
        "current",
        "depth",
        "field",
        "limits",
        "parser",
        "source",
        "subtype",
    )

    def __init__(
        self,
        source: Source,
        boundary: str,
        subtype: str,
        limits: UploadLimits,
        counts: Counts,
        depth: int,
    ) -> None:
        self.source = source
        self.parser = MultipartParser(boundary.encode("ascii"), limits)
        self.subtype = subtype
        self.limits = limits
        self.counts = counts
        self.depth = depth
        self.current: PartStream | None = None
        #: The form's default charset, once its ``_charset_`` field has been read.
        self.charset: str | None = None
        #: The name of the field a nested level is the body of.
        self.field: str | None = None

    async def fill(self) -> None:
        data = await self.source.read()
        if data:
            self.parser.feed(data)
        else:
            self.parser.feed_eof()
        if self.counts.turn_due():
            await self.counts.take_turn()

    async def read_raw(self) -> bytes:
        """The current part's next raw bytes; ``b""`` at its end."""
        parser = self.parser
        while True:
            data = parser.read()
            if isinstance(data, bytes):
                return data
            await self.fill()

    async def next_head(self) -> PartHead | None:
        """Skip what is left of the current part; the next part's headers, or None at the end."""
        current = self.current
        if current is not None:
            current.abandon()
            self.current = None
        parser = self.parser
        while True:
            if parser.in_body:
                if parser.read() is NEED_DATA:
                    await self.fill()
                continue
            head = parser.next_part()
            if isinstance(head, Signal):
                if head is END:
                    return None
                await self.fill()
                continue
            counts = self.counts
            counts.parts += 1
            if counts.parts > self.limits.max_parts:
                raise TooManyParts(self.limits.max_parts)
            if head.is_multipart and self.depth >= self.limits.max_depth:
                raise NestingTooDeep(self.limits.max_depth, head.name or self.field)
            if counts.turn_due():
                await counts.take_turn()
            return head

    def nested(self, part: PartStream) -> Level:
        """The level of ``part``, a part that is itself multipart."""
        boundary = _check_boundary(part.head.boundary)
        level = Level(
            _PartSource(part),
            boundary,
            part.head.media_type[10:],
            self.limits,
            self.counts,
            self.depth + 1,
        )
        level.charset = self.charset
        level.field = part.name
        return level

    def close(self) -> None:
        self.source.close()


def _check_boundary(boundary: str | None) -> str:
    if not boundary:
        raise MalformedMultipart("the multipart Content-Type has no boundary")
    if len(boundary) > 70 or boundary.endswith(" ") or not _BCHARS.issuperset(boundary):
        raise MalformedMultipart("the multipart boundary is not valid (RFC 2046, section 5.1.1)")
    return boundary


def open_body(headers: Mapping[str, str], content: StreamReader, limits: UploadLimits) -> Level:
    """The top level of a multipart HTTP body, checked before a byte of it is read."""
    ctype = headers.get(hdrs.CONTENT_TYPE, "")
    if not ctype.partition(";")[0].strip().lower().startswith("multipart/"):
        raise NotMultipart(ctype)
    media_type, params = parse_content_type(ctype)
    boundary = _check_boundary(params.get("boundary"))
    length = headers.get(hdrs.CONTENT_LENGTH)
    if length is not None and length.isdigit() and int(length) > limits.max_body_size:
        raise BodyTooLarge(limits.max_body_size)
    return Level(BodySource(content, limits), boundary, media_type[10:], limits, Counts(), depth=1)


class PartStream:
    """The decoded bytes of one part, counted against its limits as they come."""

    __slots__ = (
        "_decoders",
        "_deferred",
        "_finishing",
        "_gen",
        "_sniff",
        "abandoned",
        "container",
        "done",
        "head",
        "is_file",
        "level",
        "limit",
        "name",
        "size",
    )

    def __init__(self, level: Level, head: PartHead, name: str | None) -> None:
        self.level = level
        self.head = head
        self.name = name
        limits = level.limits
        self.container = head.is_multipart
        self.is_file = head.filename is not None or level.subtype != "form-data"
        # A browser sends an empty file input as a part with filename="" and no bytes:
        # it counts as a file, and has its type checked, only if bytes come.
        self._deferred = self.is_file and head.filename == "" and not self.container
        self._sniff: tuple[str, tuple[str, ...]] | None = None
        if not self.container and not self._deferred:
            self._count_and_check_type()
        self.limit = limits.max_file_size if self.is_file else limits.max_field_size
        self._decoders: list[Decoder] | None = None
        if head.transfer_encoding is not None or head.content_encoding is not None:
            self._decoders = (
                make_decoders(
                    head.transfer_encoding, head.content_encoding, name, limits.chunk_size
                )
                or None
            )
        self._gen: Iterator[bytes] | None = None
        self._finishing = False
        self.size = 0
        self.done = False
        #: The level moved on to the next part before this one was read to its end.
        self.abandoned = False
        level.current = self

    def _count_and_check_type(self) -> None:
        limits = self.level.limits
        counts = self.level.counts
        name = self.name
        if self.is_file:
            counts.files += 1
            if counts.files > limits.max_files:
                raise TooManyFiles(limits.max_files, name)
        else:
            counts.fields += 1
            if counts.fields > limits.max_fields:
                raise TooManyFields(limits.max_fields, name)
        allowed = limits.allowed_types
        if allowed is None:
            return
        patterns = allowed.get(name) if name is not None else None
        if patterns is None and self.is_file:
            patterns = allowed.get("*")
        if patterns is None:
            return
        declared = self.head.media_type or (
            "application/octet-stream" if self.is_file else "text/plain"
        )
        if not type_allowed(declared, patterns):
            raise TypeNotAllowed(name, declared, tuple(patterns))
        sniffed = limits.sniff_types
        if sniffed and (name in sniffed or (self.is_file and "*" in sniffed)):
            self._sniff = (declared, tuple(patterns))

    @property
    def plain(self) -> bool:
        """Whether the part's bytes are used as they come (no decoding, no sniffing)."""
        return self._decoders is None and self._sniff is None and not self.container

    def take_whole(self, data: bytes) -> None:
        """The parser handed over the whole (plain) part at once: account for it."""
        if self._deferred and data:
            self._deferred = False
            self._count_and_check_type()
            if self._sniff is not None:
                self._verdict(data)
        if data:
            self._account(data)
        self._end()

    def abandon(self) -> None:
        """The level moved on: whatever is left of this part was skipped."""
        self.done = True
        self.abandoned = True
        self._gen = None

    def _account(self, data: bytes) -> None:
        n = len(data)
        self.size += n
        if self.size > self.limit:
            if self.is_file:
                raise FileTooLarge(self.name, self.limit)
            raise FieldTooLarge(self.name, self.limit)
        counts = self.level.counts
        counts.decoded += n
        limits = self.level.limits
        if counts.decoded > limits.decoded_limit:
            raise DecodedTooLarge(self.name, limits.decoded_limit)
        if not self.is_file:
            counts.text += n
            if counts.text > limits.max_fields_memory:
                raise FieldsMemoryExceeded(limits.max_fields_memory, self.name)

    async def _next_decoded(self) -> bytes:
        """The next decoded bytes: at least ``_SMALL`` of them unless the part ends first.

        A client can send a part in pieces of a byte or two (each its own TCP segment, or
        its own HTTP chunk): handing each on would make whatever stores them (a spool,
        ``read()``) hold one object per piece, dozens of times the part's size.
        """
        data = await self._next_piece()
        if not data or len(data) >= _SMALL:
            return data
        if self._decoders is None and self.level.parser.part_ending:
            return data  # the last piece of a short part: nothing to join it with
        buf = bytearray(data)
        while len(buf) < _SMALL:
            more = await self._next_piece()
            if not more:
                break
            buf += more
        return bytes(buf)

    async def _next_piece(self) -> bytes:
        level = self.level
        decoders = self._decoders
        while True:
            gen = self._gen
            if gen is not None:
                # One bounded piece at a time: a bomb is stopped after one step.
                piece = next(gen, None)
                if piece is not None:
                    if not piece:
                        # A tick: the decoder works on without output so far.
                        if level.counts.turn_due():
                            await level.counts.take_turn()
                        continue
                    if len(piece) < _GATHER:
                        piece = await self._gather(gen, piece)
                    return piece
                self._gen = None
                if self._finishing:
                    self._end()
                    return b""
            if self.done:
                return b""
            raw = await level.read_raw()
            if decoders is None:
                if not raw:
                    self._end()
                return raw
            if raw:
                self._gen = run_decoders(decoders, raw)
            else:
                self._gen = run_decoders(decoders, b"")
                self._finishing = True

    async def _gather(self, gen: Iterator[bytes], piece: bytes) -> bytes:
        """``piece`` and the decoder's next small pieces, joined up to ``_GATHER`` bytes.

        A stream of tiny decoder steps (a million 2-byte gzip members) then costs one
        object per ``_GATHER`` bytes downstream, not one per step; the event loop gets
        its turn in between.
        """
        counts = self.level.counts
        if counts.turn_due():
            await counts.take_turn()
        buf: bytearray | None = None
        while True:
            more = next(gen, None)
            if more is None:
                # Exhausted: the next call finds it so, and ends the part if it was the last.
                self._gen = iter(())
                break
            if buf is None:
                buf = bytearray(piece)
            buf += more
            if len(buf) >= _GATHER:
                break
            if counts.turn_due():
                await counts.take_turn()
        return piece if buf is None else bytes(buf)

    def _end(self) -> None:
        # It stays the level's current part: moving on still marks it abandoned, so that
        # what a reader held back of it is dropped too.
        self.done = True

    async def next_chunk(self) -> bytes:
        """The next decoded bytes, checked against the limits; ``b""`` at the end."""
        data = await self._next_decoded()
        if self.container:
            # Counted part by part by the nested level.
            return data
        if self._deferred and data:
            self._deferred = False
            self._count_and_check_type()
        if self._sniff is not None and not self._deferred:
            data = await self._check_sniff(data)
        if data:
            self._account(data)
        return data

    async def _check_sniff(self, data: bytes) -> bytes:
        head = [data]
        size = len(data)
        while data and size < SNIFF_BYTES:
            data = await self._next_decoded()
            head.append(data)
            size += len(data)
        joined = b"".join(head)
        self._verdict(joined)
        return joined

    def _verdict(self, data: bytes) -> None:
        """Check the leading bytes against the allowed types; the check is then done."""
        assert self._sniff is not None
        declared, patterns = self._sniff
        self._sniff = None
        found = sniff(data[:SNIFF_BYTES])
        if found is None or not sniffed_allowed(found, declared, patterns):
            shown = f"{declared} (content {'not recognised' if found is None else found})"
            raise TypeNotAllowed(self.name, shown, patterns)
