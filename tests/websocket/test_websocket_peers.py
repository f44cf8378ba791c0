"""Raw frames from a peer: bad close codes and UTF-8, reserved opcodes, each peer's round trip."""

from __future__ import annotations

import struct

import pytest

from aiohttp_helpers.websocket import CloseFrame
from tests.support.apps import Serve
from tests.support.peers import PeerKind, open_peer, raw_session, recording_app, ws_url

# -- raw frames from the peer ------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(999, id="below-1000"),
        pytest.param(1004, id="1004-reserved"),
        pytest.param(1005, id="1005-no-status"),
        pytest.param(1006, id="1006-abnormal"),
        pytest.param(1015, id="1015-tls"),
        pytest.param(1016, id="1016-unassigned"),
        pytest.param(2999, id="2999-unassigned"),
        pytest.param(5000, id="5000-above-range"),
        pytest.param(65535, id="65535-max"),
    ],
)
async def test_invalid_close_code_from_peer_gets_1002(serve: Serve, code: int) -> None:
    async with raw_session(serve) as (peer, closes):
        assert peer.status == 101
        peer.send_close(code, b"bad")
        frame = await peer.read_close()
        assert frame.code == 1002
        assert await peer.at_eof()
    # aiohttp alone records 1006 here; the code that went out on the wire is 1002.
    assert closes == [CloseFrame(1002, frame.reason)]
    assert frame.reason in ("protocol error", "invalid close code")


@pytest.mark.parametrize(
    ("code", "echo"),
    [
        pytest.param(1000, 1000, id="1000"),
        pytest.param(1001, 1001, id="1001"),
        pytest.param(1011, 1011, id="1011"),
        pytest.param(3000, 3000, id="3000"),
        pytest.param(4999, 4999, id="4999"),
    ],
)
async def test_valid_close_code_from_peer_is_echoed_and_recorded(
    serve: Serve, code: int, echo: int
) -> None:
    async with raw_session(serve) as (peer, closes):
        peer.send_close(code, "au revoir, élan".encode())
        assert await peer.read_close() == CloseFrame(echo, "")
        assert await peer.at_eof()
    assert closes == [CloseFrame(code, "au revoir, élan")]


async def test_empty_close_frame_is_recorded_as_1005(serve: Serve) -> None:
    async with raw_session(serve) as (peer, closes):
        peer.send_close(None)
        assert (await peer.read_close()).code == 1000
    assert closes == [CloseFrame(1005, "")]


@pytest.mark.parametrize(
    ("opcode", "payload", "expected"),
    [
        pytest.param(
            0x8,
            struct.pack("!H", 1000) + b"\xff\xfe",
            CloseFrame(1007, "text message is not valid UTF-8"),
            id="close-reason-that-is-not-utf8-gets-1007",
        ),
        pytest.param(0x3, b"?", CloseFrame(1002, "protocol error"), id="reserved-opcode-gets-1002"),
    ],
)
async def test_bad_frame_is_closed_with(
    serve: Serve, opcode: int, payload: bytes, expected: CloseFrame
) -> None:
    async with raw_session(serve) as (peer, closes):
        peer.send_frame(opcode, payload)
        assert await peer.read_close() == expected
    assert closes == [expected]


async def test_close_frame_with_one_byte_payload_gets_1002(serve: Serve) -> None:
    async with raw_session(serve) as (peer, closes):
        peer.send_frame(0x8, b"\x03")
        assert (await peer.read_close()).code == 1002
    assert closes[0].code == 1002


async def test_peers_round_trip(serve: Serve) -> None:
    """The peers themselves work: both libraries echo through the default handler."""
    app, _ = recording_app()
    base = await serve(app)
    kinds: tuple[PeerKind, ...] = ("aiohttp", "websockets")
    for kind in kinds:
        async with open_peer(kind, ws_url(base)) as peer:
            await peer.send_text("héllo")
            assert await peer.receive() == "héllo"
            await peer.send_bytes(b"\x00\x01")
            assert await peer.receive() == b"\x00\x01"
