"""Decoding part bodies while they stream: transfer encodings, compression, charsets.

Every decoder turns one input chunk into an iterator of output chunks, each at most
about ``max_out`` bytes long (small outputs batched up to it), so that the reader can
count decoded bytes and stop a compression bomb after one bounded step instead of after
it has expanded.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import zlib
from collections.abc import Iterator
from typing import Any, Protocol

from ..errors import MalformedMultipart, UnsupportedEncoding
from .charsets import charset_codec

__all__ = ["Decoder", "check_charset", "make_decoders", "run_decoders"]


def _optional(module: str) -> Any:
    """The module if the optional extra that provides it is installed, else None."""
    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - the test environment has both
        return None


brotli: Any = _optional("brotli")
zstandard: Any = _optional("zstandard")

_TRANSFER_IDENTITY = frozenset({"7bit", "8bit", "binary"})
_WHITESPACE = b" \t\r\n"
# zstd has no bound on the output of one call: feed it slices this small, and one call
# yields at most about 33 blocks of 128 KiB (an RLE block is 4 bytes long).
_ZSTD_SLICE = 128
_MAX_CODINGS = 4
# Input slice for gzip bodies of many members (see _Zlib._run).
_MEMBER_SLICE = 1024
# Decoder steps between two yields: a step (one gzip member, one zstd slice) is a few
# microseconds, so a decoder hands control back well within a millisecond.
_STEPS = 256
# Outputs at least this long are handed on as they are, not copied into a batch.
_LARGE = 16 * 1024


class _Output:
    """Batches a decoder's small outputs up to ``limit`` bytes; yields ``b""`` as a tick.

    A decoder whose steps each produce a few bytes (a gzip member of two bytes, say)
    would otherwise hand on one object per step: memory and work would grow with the
    number of steps, not with the bytes. Every ``_STEPS`` steps it yields what it has,
    or ``b""`` when it has nothing, so that the reader can let other tasks run.
    """

    __slots__ = ("_buf", "_limit", "_steps")

    def __init__(self, limit: int) -> None:
        self._buf = bytearray()
        self._limit = limit
        self._steps = 0

    def add(self, out: bytes) -> Iterator[bytes]:
        buf = self._buf
        if out:
            if not buf and len(out) >= _LARGE:
                self._steps = 0
                yield out
                return
            buf += out
            if len(buf) >= self._limit:
                yield from self.flush()
                return
        self._steps += 1
        if self._steps >= _STEPS:
            self._steps = 0
            if buf:
                yield from self.flush()
            else:
                yield b""

    def flush(self) -> Iterator[bytes]:
        self._steps = 0
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            yield data


class Decoder(Protocol):
    """One decoding step of a part's body."""

    def decode(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


def _bad(field: str | None, what: str) -> MalformedMultipart:
    return MalformedMultipart(f"field {field!r} has bad {what} data", field=field)


class _Base64:
    __slots__ = ("_carry", "_field", "_padded")

    def __init__(self, field: str | None) -> None:
        self._carry = b""
        self._field = field
        self._padded = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        data = self._carry + data.translate(None, _WHITESPACE)
        if data and self._padded:
            # Padding ends the data: what follows it is as wrong in the next chunk as in
            # the same one (where b64decode refuses it), whatever the network's split.
            raise _bad(self._field, "base64")
        cut = len(data) - len(data) % 4
        self._carry = data[cut:]
        if cut:
            try:
                yield base64.b64decode(data[:cut], validate=True)
            except binascii.Error:
                raise _bad(self._field, "base64") from None
            self._padded = data[cut - 1] == 61  # "="

    def finish(self) -> Iterator[bytes]:
        if self._carry:
            raise _bad(self._field, "base64")
        return iter(())


class _QuotedPrintable:
    __slots__ = ("_carry",)

    def __init__(self) -> None:
        self._carry = b""

    def decode(self, data: bytes) -> Iterator[bytes]:
        data = self._carry + data
        # An escape (=XX, or a soft line break) cut in two waits for the next chunk.
        eq = data.rfind(b"=", max(len(data) - 2, 0))
        if eq >= 0:
            self._carry, data = data[eq:], data[:eq]
        else:
            self._carry = b""
        if data:
            yield binascii.a2b_qp(data)

    def finish(self) -> Iterator[bytes]:
        if self._carry:
            yield binascii.a2b_qp(self._carry)


class _Zlib:
    __slots__ = ("_d", "_field", "_gzip", "_max", "_members", "_name", "_padding", "_pending")

    def __init__(self, name: str, field: str | None, max_out: int) -> None:
        self._name = name
        #: Gzip members seen to end (counted up to 2: from then on, input goes in slices).
        self._members = 0
        self._padding = False
        self._field = field
        self._max = max_out
        self._gzip = name == "gzip"
        # deflate is meant to be zlib-wrapped (RFC 9110) but raw deflate is common: decide
        # on the first two bytes.
        self._d: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        self._pending = b""

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return
            wrapped = (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._d = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            self._pending = b""
        yield from self._run(data)

    def _run(self, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        pos, end = 0, len(view)
        out_buf = _Output(self._max)
        try:
            while pos < end:
                # The whole chunk at once, until a gzip member ends inside it: zlib copies
                # the input left over after a member, so many small members are fed in
                # small slices, or each would copy the rest of the chunk.
                size = end if self._members < 2 else _MEMBER_SLICE
                piece: bytes | memoryview = view[pos : pos + size]
                pos += len(piece)
                while piece:
                    d = self._d
                    if d.eof:
                        if not self._gzip:
                            raise _bad(self._field, self._name)
                        if not bytes(piece).strip(b"\0"):
                            self._padding = True  # NUL padding after the last member
                            break
                        if self._padding:
                            raise _bad(self._field, self._name)
                        # Another gzip member follows (RFC 1952 allows several).
                        d = self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        self._members += 1
                    out = d.decompress(piece, self._max)
                    if d.eof:
                        self._members += self._members == 0
                        rest = d.unused_data
                        if rest and self._members < 2 and len(rest) > _MEMBER_SLICE:
                            # The next member starts here: go on in slices.
                            self._members = 2
                            pos -= len(rest)
                            piece = b""
                        else:
                            piece = rest
                    else:
                        piece = d.unconsumed_tail
                    yield from out_buf.add(out)
            yield from out_buf.flush()
        except zlib.error:
            raise _bad(self._field, self._name) from None

    def finish(self) -> Iterator[bytes]:
        if self._d is None:
            raise _bad(self._field, self._name)
        d = self._d
        try:
            tail = d.flush()
        except zlib.error:  # pragma: no cover - flush reports truncation through eof
            raise _bad(self._field, self._name) from None
        if tail:  # pragma: no cover - the input ran out exactly at a max_length step
            yield tail
        if not d.eof:
            raise _bad(self._field, self._name)


class _Brotli:
    __slots__ = ("_d", "_field", "_max")

    def __init__(self, field: str | None, max_out: int) -> None:
        self._d = brotli.Decompressor()
        self._field = field
        self._max = max_out

    def decode(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        try:
            if d.is_finished():
                raise _bad(self._field, "br")
            out = d.process(data, output_buffer_limit=self._max)
            if out:
                yield out
            while not d.can_accept_more_data():
                out = d.process(b"", output_buffer_limit=self._max)
                if out:
                    yield out
        except brotli.error:
            raise _bad(self._field, "br") from None

    def finish(self) -> Iterator[bytes]:
        if not self._d.is_finished():
            raise _bad(self._field, "br")
        return iter(())


class _Zstd:
    __slots__ = ("_d", "_field", "_max", "_seen")

    def __init__(self, field: str | None, max_out: int) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._field = field
        self._max = max_out
        self._seen = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        limit = self._max
        out_buf = _Output(limit)
        try:
            for i in range(0, len(view), _ZSTD_SLICE):
                piece: bytes | memoryview = view[i : i + _ZSTD_SLICE]
                while piece:
                    d = self._d
                    if d.eof:
                        # The next frame of a multi-frame stream.
                        d = self._d = zstandard.ZstdDecompressor().decompressobj()
                    out = d.decompress(piece)
                    self._seen = True
                    piece = d.unused_data if d.eof else b""
                    if len(out) <= limit:
                        yield from out_buf.add(out)
                        continue
                    yield from out_buf.flush()
                    for j in range(0, len(out), limit):
                        yield out[j : j + limit]
            yield from out_buf.flush()
        except zstandard.ZstdError:
            raise _bad(self._field, "zstd") from None

    def finish(self) -> Iterator[bytes]:
        if not self._seen or not self._d.eof:
            raise _bad(self._field, "zstd")
        return iter(())


def _content_decoder(coding: str, field: str | None, max_out: int) -> Decoder | None:
    if coding in ("identity", ""):
        return None
    if coding in ("gzip", "x-gzip"):
        return _Zlib("gzip", field, max_out)
    if coding == "deflate":
        return _Zlib("deflate", field, max_out)
    if coding == "br" and brotli is not None:
        return _Brotli(field, max_out)
    if coding == "zstd" and zstandard is not None:
        return _Zstd(field, max_out)
    raise UnsupportedEncoding("Content-Encoding", coding, field)


def make_decoders(
    transfer_encoding: str | None,
    content_encoding: str | None,
    field: str | None,
    max_out: int,
) -> list[Decoder]:
    """The decoders a part needs, in the order they apply (an empty list: none)."""
    decoders: list[Decoder] = []
    if transfer_encoding and transfer_encoding not in _TRANSFER_IDENTITY:
        if transfer_encoding == "base64":
            decoders.append(_Base64(field))
        elif transfer_encoding == "quoted-printable":
            decoders.append(_QuotedPrintable())
        else:
            raise UnsupportedEncoding("Content-Transfer-Encoding", transfer_encoding, field)
    if content_encoding:
        codings = [c.strip() for c in content_encoding.split(",")]
        if len(codings) > _MAX_CODINGS:
            raise UnsupportedEncoding("Content-Encoding", content_encoding, field)
        # Codings are listed in the order they were applied: undo the last one first.
        for coding in reversed(codings):
            decoder = _content_decoder(coding, field, max_out)
            if decoder is not None:
                decoders.append(decoder)
    return decoders


def run_decoders(decoders: list[Decoder], data: bytes, index: int = 0) -> Iterator[bytes]:
    """Push ``data`` through ``decoders[index:]``; ``b""`` means: finish them.

    Yields decoded bytes, and ``b""`` now and then while a decoder works without output
    (a tick: the caller may let other tasks run).
    """
    if index == len(decoders):
        if data:
            yield data
        return
    decoder = decoders[index]
    pieces = decoder.decode(data) if data else decoder.finish()
    for piece in pieces:
        if piece:  # b"" would mean "finish" to the next decoder
            yield from run_decoders(decoders, piece, index + 1)
        else:
            yield piece
    if not data:
        yield from run_decoders(decoders, b"", index + 1)


def check_charset(charset: str, field: str | None) -> str:
    """The codec name for ``charset``, or UnsupportedEncoding (415): see :mod:`.charsets`."""
    return charset_codec(charset, field)
