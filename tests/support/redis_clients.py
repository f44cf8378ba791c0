"""WebSocket clients of the Redis test app (``tests/support/redis_app.py``), closed at the end."""

from __future__ import annotations

from contextlib import AsyncExitStack

import aiohttp
from yarl import URL

__all__ = ["WS", "Clients", "silent"]

WS = aiohttp.ClientWebSocketResponse


async def silent(ws: WS, within: float = 0.2) -> bool:
    """True when nothing arrives on ``ws`` for ``within`` seconds."""
    try:
        await ws.receive(timeout=within)
    except TimeoutError:
        return True
    return False


class Clients:
    """WebSocket clients of the test, closed at the end."""

    def __init__(self, stack: AsyncExitStack, session: aiohttp.ClientSession) -> None:
        self.stack, self.session = stack, session

    async def connect(self, base: URL, group: str | None = None) -> WS:
        url = base.with_path("/ws")
        if group is not None:
            url = url.with_query(group=group)
        ws = await self.stack.enter_async_context(self.session.ws_connect(url))
        assert (await ws.receive_str(timeout=5)).startswith("joined ")
        return ws
