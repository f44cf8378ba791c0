"""Strict client frames: unmasked (1002), non-minimal lengths (1002), early bad UTF-8 (1007).

Hand-built frames over raw sockets against a real server, and the same checks fed to
aiohttp's real reader split at every byte, so that where TCP cuts the stream never
changes the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
import zlib
from typing import Literal

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from aiohttp.base_protocol import BaseProtocol
from yarl import URL

from aiohttp_helpers.websocket import CloseFrame, ServerWebSocket
from aiohttp_helpers.websocket.frames import StrictFrames
from tests.support.apps import Serve
from tests.support.net import until
from tests.support.peers import GUID, RawPeer, raw_peer, recording_app, text_echo, ws_url

Length = Literal["7", "16", "64"]

PROTOCOL_ERROR = CloseFrame(1002, "protocol error")
INVALID_TEXT = CloseFrame(1007, "text message is not valid UTF-8")


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    masked: bool = True,
    length: Length | None = None,
    rsv1: bool = False,
    raw_length: int | None = None,
) -> bytes:
    """One client frame, written in the length form asked for (minimal by default)."""
    n = len(payload) if raw_length is None else raw_length
    if length is None:
        length = "7" if n < 126 else "16" if n < 65536 else "64"
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    bit = 0x80 if masked else 0
    if length == "7":
        header = struct.pack("!BB", first, bit | n)
    elif length == "16":
        header = struct.pack("!BBH", first, bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, bit | 127, n)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    masked_payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked_payload


def text(data: str | bytes, **kwargs: object) -> bytes:
    payload = data.encode() if isinstance(data, str) else data
    return frame(0x1, payload, **kwargs)  # type: ignore[arg-type]


async def send(peer: RawPeer, *pieces: bytes, pause: float = 0.0) -> None:
    """Write ``pieces`` one by one; with ``pause``, so that each arrives on its own."""
    for piece in pieces:
        peer.writer.write(piece)
        await peer.writer.drain()
        if pause:
            await asyncio.sleep(pause)


async def echo_server(serve: Serve, **settings: object) -> tuple[URL, list[CloseFrame]]:
    app, closes = recording_app(None, heartbeat=None, **settings)
    return await serve(app), closes


async def echo_peer(serve: Serve, **settings: object) -> tuple[RawPeer, list[CloseFrame]]:
    """A :class:`RawPeer` on :func:`echo_server`, and the closes it records."""
    base, closes = await echo_server(serve, **settings)
    return await RawPeer.connect(base), closes


async def expect_close(
    peer: RawPeer, closes: list[CloseFrame], expected: CloseFrame, *, eof: bool = False
) -> None:
    """The server closes with ``expected`` (then, with ``eof``, drops the connection) and
    records it; then the peer is closed."""
    assert await peer.read_close() == expected
    if eof:
        assert await peer.at_eof()
    await until(lambda: closes == [expected])
    peer.close()


async def read_text(peer: RawPeer) -> str:
    opcode, payload = await peer.read_frame()
    assert opcode == 0x1, (opcode, payload[:40])
    return payload.decode()


# -- unmasked frames -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opcode", "payload"),
    [
        pytest.param(0x1, b"hello", id="text"),
        pytest.param(0x2, b"\x00\x01", id="binary"),
        pytest.param(0x9, b"ping", id="ping"),
        pytest.param(0xA, b"pong", id="pong"),
        pytest.param(0x8, struct.pack("!H", 1000), id="close"),
        pytest.param(0x1, b"x" * 300, id="text-16-bit-length"),
    ],
)
async def test_unmasked_frame_fails_with_1002(serve: Serve, opcode: int, payload: bytes) -> None:
    peer, closes = await echo_peer(serve)
    await send(peer, text("before"))
    assert await read_text(peer) == "before"
    await send(peer, frame(opcode, payload, masked=False))
    await expect_close(peer, closes, PROTOCOL_ERROR, eof=True)


async def test_plain_aiohttp_echoes_an_unmasked_frame(serve: Serve) -> None:
    """The gap this closes: aiohttp alone takes an unmasked client frame."""
    peer = await raw_peer(serve, text_echo(web.WebSocketResponse))
    await send(peer, text("unmasked", masked=False))
    assert await read_text(peer) == "unmasked"
    peer.close()


async def test_strict_frames_off_behaves_as_aiohttp(serve: Serve) -> None:
    peer, _ = await echo_peer(serve, strict_frames=False)
    await send(peer, text("unmasked", masked=False), text("x" * 5, length="16"))
    assert await read_text(peer) == "unmasked"
    assert await read_text(peer) == "xxxxx"
    peer.close()


async def test_frames_before_the_bad_one_in_the_same_chunk_are_delivered(serve: Serve) -> None:
    peer, closes = await echo_peer(serve)
    await send(peer, text("one") + text("two") + text("three", masked=False) + text("four"))
    assert await read_text(peer) == "one"
    assert await read_text(peer) == "two"
    await expect_close(peer, closes, PROTOCOL_ERROR)


async def test_unmasked_frame_sent_with_the_upgrade_request(serve: Serve) -> None:
    base, closes = await echo_server(serve)
    assert base.host is not None
    assert base.port is not None
    reader, writer = await asyncio.open_connection(base.host, base.port)
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET / HTTP/1.1\r\nHost: {base.host}:{base.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    # One write: the frames travel in the same segment as the request.
    writer.write(handshake + text("early") + text("sneaky", masked=False))
    peer = RawPeer(reader, writer)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    assert accept in head
    assert await read_text(peer) == "early"
    await expect_close(peer, closes, PROTOCOL_ERROR)


# -- payload lengths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "length"),
    [
        pytest.param(0, "16", id="0-in-16-bits"),
        pytest.param(125, "16", id="125-in-16-bits"),
        pytest.param(0, "64", id="0-in-64-bits"),
        pytest.param(125, "64", id="125-in-64-bits"),
        pytest.param(126, "64", id="126-in-64-bits"),
        pytest.param(65535, "64", id="65535-in-64-bits"),
    ],
)
async def test_non_minimal_length_fails_with_1002(serve: Serve, size: int, length: Length) -> None:
    peer, closes = await echo_peer(serve)
    await send(peer, text("x" * size, length=length))
    await expect_close(peer, closes, PROTOCOL_ERROR)


async def test_length_with_its_top_bit_set_fails_with_1002(serve: Serve) -> None:
    peer, closes = await echo_peer(serve)
    await send(peer, text(b"abc", length="64", raw_length=2**63 + 3))
    await expect_close(peer, closes, PROTOCOL_ERROR)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(125, id="125"),
        pytest.param(126, id="126"),
        pytest.param(65535, id="65535"),
        pytest.param(65536, id="65536"),
    ],
)
async def test_minimal_lengths_at_the_edges_are_fine(serve: Serve, size: int) -> None:
    peer, _ = await echo_peer(serve)
    await send(peer, text("é" * (size // 2) + "x" * (size % 2)))
    assert await read_text(peer) == "é" * (size // 2) + "x" * (size % 2)
    await send(peer, frame(0x2, b"\x00" * size))
    opcode, payload = await peer.read_frame()
    assert (opcode, payload) == (0x2, b"\x00" * size)
    peer.close()


# -- invalid UTF-8 as soon as it arrives -----------------------------------------------------


async def test_bad_utf8_fails_before_the_message_ends(serve: Serve) -> None:
    peer, closes = await echo_peer(serve)
    message = b"valid start " + b"\xff" + b"x" * (1_000_000 - 13)
    whole = text(message)
    # The header and the first 100 payload bytes, the bad byte among them; the other
    # 999,900 bytes are never sent.
    await send(peer, whole[: 14 + 100])
    await expect_close(peer, closes, INVALID_TEXT)


async def test_without_strict_frames_bad_utf8_waits_for_the_end(serve: Serve) -> None:
    """The gap this closes: aiohttp reads the whole message before it checks it."""
    peer, _ = await echo_peer(serve, strict_frames=False)
    whole = text(b"\xff" + b"x" * 99_999)
    await send(peer, whole[:1000])
    assert not await peer.at_eof(within=0.3)
    await send(peer, whole[1000:])
    assert await peer.read_close() == INVALID_TEXT
    peer.close()


@pytest.mark.parametrize(
    ("pieces", "pause"),
    [
        pytest.param(
            [text("héllo wor", fin=False), frame(0x0, b"ld \xc3\x28", fin=False)],
            0.0,
            id="bad-continuation-frame",
        ),
        pytest.param(
            [text("ok", fin=False), frame(0x9, b"ping"), frame(0x0, b"\xed\xa0\x80", fin=False)],
            0.0,
            id="surrogate-after-a-ping",
        ),
        pytest.param([text(b"\xf4\x90\x80\x80", fin=False)], 0.0, id="above-u10ffff-first-frame"),
        pytest.param([text(b"\xc0\xaf", fin=False)], 0.0, id="overlong"),
    ],
)
async def test_bad_utf8_in_an_unfinished_fragmented_message(
    serve: Serve, pieces: list[bytes], pause: float
) -> None:
    peer, closes = await echo_peer(serve)
    await send(peer, *pieces, pause=pause)
    # The message never ends; the close comes anyway.
    await expect_close(peer, closes, INVALID_TEXT)


async def test_bad_byte_in_a_later_chunk_of_one_frame(serve: Serve) -> None:
    peer, closes = await echo_peer(serve)
    whole = text(b"a" * 5000 + b"\xe2\x82" + b"(" + b"a" * 100_000)
    # a 14-byte header: the bad "(" is byte 5016 of the frame
    await send(peer, whole[:3000], whole[3000:5020], pause=0.05)
    await expect_close(peer, closes, INVALID_TEXT)


async def test_character_split_across_frames_and_chunks_is_fine(serve: Serve) -> None:
    peer, _ = await echo_peer(serve)
    euro = "€".encode()  # 3 bytes, split 1 + 2 across two frames
    frames = (
        text(b"price: " + euro[:1], fin=False)
        + frame(0x9, b"mid-message ping")
        + frame(0x0, euro[1:] + " 5 ☕".encode(), fin=False)
        + frame(0x0, b"", fin=False)
        + frame(0x0, b"!", fin=True)
    )
    # Byte by byte: headers, masks and characters all cut at every place.
    await send(peer, *(frames[i : i + 1] for i in range(len(frames))), pause=0.001)
    opcode, payload = await peer.read_frame()
    assert opcode == 0xA  # the pong
    assert payload == b"mid-message ping"
    assert await read_text(peer) == "price: € 5 ☕!"
    peer.close()


async def test_truncated_character_at_the_end_of_a_message(serve: Serve) -> None:
    peer, closes = await echo_peer(serve)
    await send(peer, text(b"abc\xe2\x82", fin=False), frame(0x0, b"", fin=True), pause=0.05)
    await expect_close(peer, closes, INVALID_TEXT)


async def test_compressed_messages_from_aiohttps_client(serve: Serve) -> None:
    base, closes = await echo_server(serve)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(base), compress=15) as ws,
    ):
        assert ws.compress == 15
        for message in ("short", "é" * 40_000, "x" * 200_000):
            await ws.send_str(message)
            assert await ws.receive_str() == message
        await ws.send_bytes(b"\xff" * 70_000)
        assert await ws.receive_bytes() == b"\xff" * 70_000
    await until(lambda: closes == [CloseFrame(1000, "")])


async def test_a_large_conversation_in_random_pieces(serve: Serve) -> None:
    rng = random.Random(12)
    peer, _ = await echo_peer(serve)
    expected: list[tuple[int, bytes]] = []
    stream = b""
    for _ in range(40):
        size = rng.choice([0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000])
        if rng.random() < 0.5:
            message = "".join(rng.choice("aé€😀") for _ in range(size // 3)).encode()
            parts = sorted(rng.randint(0, len(message)) for _ in range(2))
            pieces = [message[: parts[0]], message[parts[0] : parts[1]], message[parts[1] :]]
            stream += text(pieces[0], fin=False)
            stream += frame(0x0, pieces[1], fin=False) + frame(0x0, pieces[2])
            expected.append((0x1, message))
        else:
            message = rng.randbytes(size)
            stream += frame(0x2, message)
            expected.append((0x2, message))
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 2, 7, 100, 4096, 65536, 200_000])
        await send(peer, stream[pos : pos + step])
        pos += step
    for opcode, message in expected:
        assert await peer.read_frame() == (opcode, message)
    peer.close()


# -- every split point, through aiohttp's real reader ----------------------------------------


def _reader(max_msg_size: int = 2**20) -> tuple[StrictFrames, WebSocketDataQueue]:
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    queue = WebSocketDataQueue(protocol, 2**16, loop=loop)
    inner = WebSocketReader(queue, max_msg_size, compress=True, decode_text=True)
    return StrictFrames(inner, queue), queue


async def _drain(queue: WebSocketDataQueue) -> tuple[list[tuple[WSMsgType, object]], int | None]:
    """Messages queued so far, and the close code of the error the connection failed with."""
    out: list[tuple[WSMsgType, object]] = []
    while queue._buffer:
        msg = await queue.read()
        out.append((msg.type, msg.data))
    exc = queue.exception()
    code: int | None = None if exc is None else exc.code  # type: ignore[attr-defined]
    return out, code


def _deflated(message: str) -> bytes:
    """A text frame compressed with permessage-deflate (RSV1 set), as browsers send them."""
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(message.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return frame(0x1, data[:-4], rsv1=True)


OK = [(WSMsgType.TEXT, "ok")]
Outcome = tuple[list[tuple[WSMsgType, object]], int | None]

STREAMS = [
    pytest.param(
        text("héllo") + frame(0x2, b"\x00" * 300) + text("x" * 70_000),
        (
            [
                (WSMsgType.TEXT, "héllo"),
                (WSMsgType.BINARY, b"\x00" * 300),
                (WSMsgType.TEXT, "x" * 70_000),
            ],
            None,
        ),
        id="valid",
    ),
    pytest.param(
        text("a€", fin=False) + frame(0x9, b"p") + frame(0x0, "😀".encode()),
        ([(WSMsgType.PING, b"p"), (WSMsgType.TEXT, "a€😀")], None),
        id="fragmented-valid",
    ),
    pytest.param(text("ok") + text("bad", masked=False), (OK, 1002), id="unmasked"),
    pytest.param(text("ok") + text("x" * 10, length="16"), (OK, 1002), id="non-minimal-16"),
    pytest.param(text("ok") + text("x" * 300, length="64"), (OK, 1002), id="non-minimal-64"),
    pytest.param(text("ok") + text(b"ab\xffcd" + b"x" * 200), (OK, 1007), id="bad-utf8"),
    pytest.param(
        text("ok") + text(b"ab\xe2\x82", fin=False) + frame(0x0, b"(x"),
        (OK, 1007),
        id="bad-across-frames",
    ),
    pytest.param(
        text("ok") + text(b"ab\xe2\x82", fin=False) + frame(0x0, b"(x", fin=False),
        (OK, 1007),
        id="ascii-after-a-lead-byte-in-an-unfinished-message",
    ),
    pytest.param(
        text("ok") + text(b"caf\xc3" + b"(" * 300, fin=False),
        (OK, 1007),
        id="ascii-after-a-lead-byte-in-one-frame",
    ),
    pytest.param(
        text("ok") + _deflated("ünïcödé " * 40) + _deflated("second, in one frame"),
        ([*OK, (WSMsgType.TEXT, "ünïcödé " * 40), (WSMsgType.TEXT, "second, in one frame")], None),
        id="compressed-text-is-left-to-aiohttp",
    ),
    pytest.param(
        text("ok") + frame(0x3, b"") + text("unmasked", masked=False),
        (OK, 1002),
        id="aiohttp-refuses-an-earlier-frame-of-the-chunk",
    ),
    pytest.param(
        text("ok") + text("é€😀".encode() * 50, fin=False) + frame(0x0, b"\xf0\x9f", fin=False),
        (OK, None),
        id="unfinished-valid-non-ascii",
    ),
]


@pytest.mark.parametrize(("stream", "expected"), STREAMS)
async def test_every_split_point_gives_the_same_outcome(stream: bytes, expected: Outcome) -> None:
    n = len(stream)
    # Every cut among the first frames and at the end; a sample in a long payload's middle.
    cuts = set(range(min(n, 1500) + 1)) | set(range(max(n - 100, 0), n + 1))
    cuts |= set(random.Random(n).sample(range(n + 1), min(n + 1, 500)))
    for cut in sorted(cuts):
        strict, queue = _reader()
        for piece in (stream[:cut], stream[cut:]):
            if piece:
                strict.feed_data(piece)
        assert await _drain(queue) == expected, cut


async def test_bad_utf8_is_refused_at_the_byte_that_makes_it_bad() -> None:
    head = b"valid text, then a bad byte: "
    stream = text(head + b"\xff" + b"y" * 5000)
    bad_at = 8 + len(head)  # a 16-bit length: 4 header bytes, then the 4-byte mask
    strict, queue = _reader()
    strict.feed_data(stream[:bad_at])
    assert await _drain(queue) == ([], None)
    strict.feed_data(stream[bad_at : bad_at + 1])
    assert await _drain(queue) == ([], 1007)
    # Once failed, nothing more reaches aiohttp's reader.
    assert strict.feed_data(text("later")) == (True, b"")


async def test_undecoded_text_is_not_held_to_utf8_but_frames_still_are(serve: Serve) -> None:
    """``decode_text=False``: aiohttp hands text over as bytes, so no UTF-8 is required."""
    peer = await raw_peer(
        serve, text_echo(lambda: ServerWebSocket(decode_text=False, heartbeat=None))
    )
    await send(peer, text(b"not \xff utf-8", fin=False), pause=0.05)
    await send(peer, frame(0x0, b" at all \xc3"))
    assert await peer.read_frame() == (0x2, b"not \xff utf-8 at all \xc3")
    await send(peer, text("unmasked", masked=False))
    assert await peer.read_close() == PROTOCOL_ERROR
    peer.close()
