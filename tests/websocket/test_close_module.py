"""``websocket/close.py`` owns close frames: read, checked, encoded, named, recorded."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aiohttp import WSMessage, WSMsgType

import aiohttp_helpers as ah
from aiohttp_helpers import websocket
from aiohttp_helpers.websocket import close
from aiohttp_helpers.websocket.close import CloseFrame, CloseRecord

PACKAGE = Path(ah.__file__).parent


@pytest.mark.parametrize(
    ("data", "extra", "expected"),
    [
        pytest.param(4000, "bye", (4000, "bye"), id="code-and-reason"),
        pytest.param(1001, None, (1001, ""), id="no-reason"),
        pytest.param(0, None, (1005, ""), id="empty-frame"),
        pytest.param(None, None, (1005, ""), id="no-code"),
    ],
)
def test_from_message(data: int | None, extra: str | None, expected: tuple[int, str]) -> None:
    assert CloseFrame.from_message(WSMessage(WSMsgType.CLOSE, data, extra)) == expected


def test_checked_cuts_the_reason_and_checks_the_code() -> None:
    frame = CloseFrame.checked(4000, "é" * 100)
    assert frame.code == 4000
    assert len(frame.reason.encode()) == 122
    assert CloseFrame.checked(1000, b"done") == (1000, "done")
    with pytest.raises(ValueError, match="1005"):
        CloseFrame.checked(1005)
    with pytest.raises(ValueError, match="UTF-8"):
        CloseFrame.checked(1000, b"\xff")


def test_payload_is_the_wire_form() -> None:
    assert CloseFrame(1001, "going").payload == b"\x03\xe9going"
    assert len(CloseFrame(4000, "x" * 500).payload) == 125


def test_wsclose_carries_a_checked_frame() -> None:
    exc = ah.WSClose(4001, "é" * 100)
    assert exc.frame == (4001, exc.reason)
    assert len(exc.reason.encode()) == 122
    assert ah.WSClose is websocket.WSClose is close.WSClose


def test_the_registry_and_handler_use_the_named_frames() -> None:
    registry = ah.WebSocketRegistry()
    assert registry.shutdown_frame is close.SHUTDOWN
    assert close.TOO_MANY.code == close.TOO_MANY_FROM_CLIENT.code == 1013


def test_named_frames_are_defined_once() -> None:
    """No module but close.py builds a CloseFrame at module level."""
    for path in sorted((PACKAGE / "websocket").glob("*.py")):
        if path.name == "close.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            built = [
                call
                for call in ast.walk(node.value)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "CloseFrame"
            ]
            assert not built, f"{path.name}:{node.lineno} defines a close frame"


def test_record_keeps_the_first_frame() -> None:
    record = CloseRecord()
    assert (record.first, record.sent, record.received) == (None, None, None)
    assert not record.peer_first
    record.on_sent(CloseFrame(1001, "going"))
    record.on_received(CloseFrame(1001, ""))
    assert record.first == (1001, "going")
    assert record.received == (1001, "")
    assert not record.peer_first
    record.on_sent(CloseFrame(1000, ""))
    assert record.sent == (1000, "")
    assert record.first == (1001, "going")


def test_record_completes_a_reason_learnt_later() -> None:
    record = CloseRecord()
    record.on_received(CloseFrame(4000, ""))
    record.on_received(CloseFrame(4000, "bye"))
    assert record.first == record.received == (4000, "bye")
    assert record.peer_first
    # Another code, or a reason already known, is not replaced.
    record.on_received(CloseFrame(4001, "other"))
    record.on_received(CloseFrame(4000, "again"))
    assert record.received == (4000, "bye")
    assert "first=CloseFrame(code=4000" in repr(record)
