"""The close-code table: meaning, sender and retry advice of every code."""

from __future__ import annotations

import pytest
from aiohttp import WSCloseCode

import aiohttp_helpers as ah
from aiohttp_helpers.websocket import Retry, Sender, check_close_code, may_send


@pytest.mark.parametrize("member", [pytest.param(m, id=m.name) for m in WSCloseCode])
def test_every_aiohttp_member_has_a_row(member: WSCloseCode) -> None:
    info = ah.close_code_info(member)
    assert info.code == member
    assert info.name == member.name
    assert info.meaning
    assert isinstance(info.sender, Sender)
    assert isinstance(info.retry, Retry)
    assert info.may_send is (member != WSCloseCode.ABNORMAL_CLOSURE)


@pytest.mark.parametrize(
    ("code", "name"),
    [
        pytest.param(1004, "RESERVED", id="1004"),
        pytest.param(1005, "NO_STATUS_RCVD", id="1005"),
        pytest.param(1015, "TLS_HANDSHAKE", id="1015"),
    ],
)
def test_reserved_codes_have_rows_but_may_not_be_sent(code: int, name: str) -> None:
    info = ah.close_code_info(code)
    assert info.name == name
    assert info.sender is Sender.NOBODY
    assert not info.may_send
    assert not may_send(code)


@pytest.mark.parametrize(
    ("code", "name"),
    [
        pytest.param(3000, "REGISTERED", id="3000"),
        pytest.param(3999, "REGISTERED", id="3999"),
        pytest.param(4000, "PRIVATE", id="4000"),
        pytest.param(4999, "PRIVATE", id="4999"),
    ],
)
def test_application_ranges(code: int, name: str) -> None:
    info = ah.close_code_info(code)
    assert (info.code, info.name, info.retry) == (code, name, Retry.APPLICATION)
    assert info.sender is Sender.EITHER
    assert may_send(code)
    assert check_close_code(code) == code


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(0, id="0"),
        pytest.param(999, id="999"),
        pytest.param(1016, id="1016"),
        pytest.param(2999, id="2999"),
        pytest.param(5000, id="5000"),
        pytest.param(65536, id="65536"),
        pytest.param(-1, id="negative"),
    ],
)
def test_not_close_codes(code: int) -> None:
    with pytest.raises(ValueError, match=f"{code} is not a WebSocket close code"):
        ah.close_code_info(code)
    with pytest.raises(ValueError, match=f"{code} is not a WebSocket close code"):
        check_close_code(code)
    assert not may_send(code)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("1000", id="str"),
        pytest.param(True, id="bool"),
        pytest.param(1000.0, id="float"),
    ],
)
def test_codes_are_ints(value: object) -> None:
    with pytest.raises(TypeError, match="a close code is an int"):
        ah.close_code_info(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a close code is an int"):
        check_close_code(value)  # type: ignore[arg-type]
    assert not may_send(value)  # type: ignore[arg-type]


def test_check_returns_a_plain_int() -> None:
    checked = check_close_code(WSCloseCode.GOING_AWAY)
    assert type(checked) is int
    assert checked == 1001


# The client reconnect table of DESIGN.md, one test per row.


@pytest.mark.parametrize("code", [1000, 1002, 1003, 1007, 1008, 1009, 1010], ids=str)
def test_client_row_stop(code: int) -> None:
    assert ah.close_code_info(code).retry is Retry.STOP


@pytest.mark.parametrize("code", [1001, 1006, 1011, 1014], ids=str)
def test_client_row_backoff(code: int) -> None:
    assert ah.close_code_info(code).retry is Retry.BACKOFF


def test_client_row_service_restart() -> None:
    assert ah.close_code_info(1012).retry is Retry.RESTART_DELAY


def test_client_row_try_again_later() -> None:
    assert ah.close_code_info(1013).retry is Retry.OTHER_ADDRESS


@pytest.mark.parametrize("code", [3000, 3500, 4000, 4999], ids=str)
def test_client_row_application_codes(code: int) -> None:
    assert ah.close_code_info(code).retry is Retry.APPLICATION
    # The default policy stops; an application can choose otherwise.
    assert ah.ReconnectPolicy().advice(code) is Retry.STOP
    policy = ah.ReconnectPolicy(application_codes={code: Retry.BACKOFF})
    assert policy.advice(code) is Retry.BACKOFF


@pytest.mark.parametrize(
    ("code", "sender"),
    [
        pytest.param(1000, Sender.EITHER, id="1000"),
        pytest.param(1010, Sender.CLIENT, id="1010"),
        pytest.param(1012, Sender.SERVER, id="1012"),
        pytest.param(1013, Sender.SERVER, id="1013"),
        pytest.param(1006, Sender.NOBODY, id="1006"),
    ],
)
def test_who_may_send(code: int, sender: Sender) -> None:
    assert ah.close_code_info(code).sender is sender
