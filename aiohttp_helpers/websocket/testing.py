"""Helpers for tests of WebSocket endpoints: what close code and reason did the client get?"""

from __future__ import annotations

import asyncio

from aiohttp import ClientWebSocketResponse, WSCloseCode, WSMsgType

from .close import CloseFrame

__all__ = ["assert_closed_with", "receive_close"]


async def receive_close(
    ws: ClientWebSocketResponse,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 (a test helper's bound, reported as a failure)
) -> CloseFrame:
    """Read ``ws`` until it closes; the code and reason of the server's close frame.

    Messages that arrive first are skipped. A connection that ends without a close
    frame from the server gives the code the client recorded (1006 when it dropped).

    Raises:
        AssertionError: the connection did not close within ``timeout`` seconds.
    """
    try:
        async with asyncio.timeout(timeout):
            while True:
                msg = await ws.receive()
                if msg.type is WSMsgType.CLOSE:
                    return CloseFrame.from_message(msg)
                if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                    code = ws.close_code
                    return CloseFrame(code or WSCloseCode.ABNORMAL_CLOSURE, "")
    except TimeoutError:
        raise AssertionError(f"the WebSocket did not close within {timeout:g}s") from None


async def assert_closed_with(
    ws: ClientWebSocketResponse,
    code: int,
    reason: str | None = None,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 (a test helper's bound, reported as a failure)
) -> CloseFrame:
    """Assert that the server closes ``ws`` with ``code`` (and ``reason``, when given).

    Returns:
        the close frame received, for further checks.
    """
    frame = await receive_close(ws, timeout=timeout)
    if frame.code != code or (reason is not None and frame.reason != reason):
        expected = f"{code}" if reason is None else f"{code} {reason!r}"
        raise AssertionError(
            f"expected the WebSocket to close with {expected}, got {frame.code} {frame.reason!r}"
        )
    return frame
