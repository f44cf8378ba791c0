"""Reading a multipart body level by level: each head checked, its bytes decoded and counted."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from aiohttp import hdrs
from aiohttp.streams import StreamReader

from ..config import UploadLimits
from ..errors import MalformedMultipart, NestingTooDeep, NotMultipart, TypeNotAllowed
from .counts import Counts, check_declared_length
from .decoding import Decoder, make_decoders, run_decoders
from .headers import PartHead, parse_content_type
from .parser import END, NEED_DATA, MultipartParser, Signal
from .sniff import SNIFF_BYTES, sniff, sniffed_allowed, type_allowed
from .source import SMALL, BodySource, PartSource, Source

__all__ = ["Level", "PartStream", "open_body"]

#: Decoder output gathered behind a small piece before it is handed on.
_GATHER: Final = 64 * 1024
_BCHARS: Final = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)


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
            counts.part()
            if head.is_multipart and self.depth >= self.limits.max_depth:
                raise NestingTooDeep(self.limits.max_depth, head.name or self.field)
            if counts.turn_due():
                await counts.take_turn()
            return head

    def nested(self, part: PartStream) -> Level:
        """The level of ``part``, a part that is itself multipart."""
        boundary = _check_boundary(part.head.boundary)
        level = Level(
            PartSource(part),
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


def open_body(
    headers: Mapping[str, str],
    content: StreamReader,
    limits: UploadLimits,
    *,
    urlencoded: bool = False,
) -> Level:
    """The top level of a multipart HTTP body, checked before a byte of it is read.

    ``urlencoded``: the caller also reads urlencoded bodies, and the 415 says so.
    """
    ctype = headers.get(hdrs.CONTENT_TYPE, "")
    if not ctype.partition(";")[0].strip().lower().startswith("multipart/"):
        raise NotMultipart(ctype, urlencoded=urlencoded)
    media_type, params = parse_content_type(ctype)
    boundary = _check_boundary(params.get("boundary"))
    check_declared_length(headers, limits.max_body_size)
    source = BodySource(content, limits)
    return Level(source, boundary, media_type[10:], limits, Counts(limits), depth=1)


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
        name = self.name
        if self.is_file:
            self.level.counts.file(name)
        else:
            self.level.counts.field(name)
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
        self.level.counts.data(n, self.size, self.name, self.is_file)

    async def _next_decoded(self) -> bytes:
        """The next decoded bytes: at least ``SMALL`` of them unless the part ends first.

        A client can send a part in pieces of a byte or two (each its own TCP segment, or
        its own HTTP chunk): handing each on would make whatever stores them (a spool,
        ``read()``) hold one object per piece, dozens of times the part's size.
        """
        data = await self._next_piece()
        if not data or len(data) >= SMALL:
            return data
        if self._decoders is None and self.level.parser.part_ending:
            return data  # the last piece of a short part: nothing to join it with
        buf = bytearray(data)
        while len(buf) < SMALL:
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
