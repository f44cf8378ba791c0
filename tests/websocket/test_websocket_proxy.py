"""Per-client caps behind a reverse proxy, with a real aiohttp-remotes middleware in front.

``max_connections_per_client`` counts ``request.remote``. Alone, that is the peer's
address, so a forged ``X-Forwarded-For`` changes nothing (and behind a proxy every client
shares the proxy's count). With ``aiohttp_remotes.XForwardedStrict`` trusting the proxy hop,
``request.remote`` becomes the address the proxy saw, so each client gets its own count,
and a peer that is not the trusted proxy cannot claim an address at all.

Loopback has many addresses (all of 127.0.0.0/8): the proxy listens on 127.0.0.1 and
reaches the app from there; clients connect from 127.0.0.2, 127.0.0.3 and so on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp_remotes import XForwardedStrict
from yarl import URL

import aiohttp_helpers as ah
from aiohttp_helpers.websocket import CloseFrame
from tests.support.apps import Serve
from tests.support.net import until
from tests.support.peers import ws_url

CAP = 2
TRY_AGAIN = CloseFrame(1013, "too many connections from your address: try again later")


class ForwardingProxy:
    """One reverse-proxy hop, as nginx's ``proxy_set_header X-Forwarded-For $remote_addr``.

    Reads each connection's request head, replaces any ``X-Forwarded-For`` the client sent
    with the client's own address, and then relays bytes both ways (upgrades included).
    """

    def __init__(self, upstream: URL) -> None:
        assert upstream.host is not None
        assert upstream.port is not None
        self.upstream = (upstream.host, upstream.port)
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> URL:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return URL.build(scheme="http", host="127.0.0.1", port=port)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)
        await self.server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *headers = head[:-4].split(b"\r\n")
            kept = [h for h in headers if not h.lower().startswith(b"x-forwarded-for:")]
            client = writer.get_extra_info("peername")[0].encode()
            head = b"\r\n".join([request_line, *kept, b"X-Forwarded-For: " + client])
            up_reader, upstream = await asyncio.open_connection(*self.upstream)
            upstream.write(head + b"\r\n\r\n")
            async with asyncio.TaskGroup() as group:
                group.create_task(self._relay(reader, upstream))
                group.create_task(self._relay(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            if upstream is not None:
                upstream.close()

    @staticmethod
    async def _relay(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()


CappedBehindProxy = Callable[..., Awaitable[tuple[str, ah.WebSocketRegistry]]]


@pytest.fixture
async def capped_behind_proxy(serve: Serve) -> AsyncIterator[CappedBehindProxy]:
    """``await capped_behind_proxy(remotes=...)``: a :func:`capped_app` served behind a
    :class:`ForwardingProxy`; the proxy's ``ws://`` URL and the app's registry. Every proxy
    is closed when the test ends."""
    proxies: list[ForwardingProxy] = []

    async def start(*, remotes: bool) -> tuple[str, ah.WebSocketRegistry]:
        app, registry = await capped_app(remotes=remotes)
        proxy = ForwardingProxy(await serve(app))
        proxies.append(proxy)
        return ws_url(await proxy.start()), registry

    yield start
    for proxy in proxies:
        await proxy.close()


async def capped_app(*, remotes: bool) -> tuple[web.Application, ah.WebSocketRegistry]:
    """An app capped at :data:`CAP` sockets per client, behind aiohttp-remotes or not."""
    app = web.Application()
    if remotes:
        # Outermost, so that everything after it (the package's middleware and signals
        # included) sees the client's address. One trusted hop: the proxy on 127.0.0.1.
        await XForwardedStrict([["127.0.0.1"]]).setup(app)
    helpers = ah.setup(app, websockets=ah.WebSocketSettings(max_connections_per_client=CAP))

    @ah.websocket_handler(heartbeat=None)
    async def echo(request: web.Request, ws: ah.ServerWebSocket) -> None:
        await ws.send_str(request.remote or "")
        async for data in ws.messages():
            await ws.send_str(str(data))

    app.router.add_get("/", echo)
    return app, helpers.websockets


@contextlib.asynccontextmanager
async def client_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session whose connections leave from ``address`` (a loopback address)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


@contextlib.asynccontextmanager
async def alice_and_bob() -> AsyncIterator[
    tuple[contextlib.AsyncExitStack, aiohttp.ClientSession, aiohttp.ClientSession]
]:
    """An exit stack for the sockets, and clients from 127.0.0.2 (Alice) and 127.0.0.3 (Bob)."""
    async with (
        contextlib.AsyncExitStack() as stack,
        client_from("127.0.0.2") as alice,
        client_from("127.0.0.3") as bob,
    ):
        yield stack, alice, bob


async def open_served(
    stack: contextlib.AsyncExitStack,
    session: aiohttp.ClientSession,
    url: str,
    forwarded_for: str | None = None,
) -> str:
    """Open a socket that the server accepts; the address it was counted under."""
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    ws = await stack.enter_async_context(session.ws_connect(url, headers=headers))
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    remote: str = msg.data
    return remote


async def refused_with(
    session: aiohttp.ClientSession, url: str, forwarded_for: str | None = None
) -> CloseFrame:
    """Open a socket the server closes at once; the close frame it sent."""
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    async with session.ws_connect(url, headers=headers) as ws:
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE, msg
        return CloseFrame(msg.data, msg.extra or "")


async def test_forged_x_forwarded_for_does_not_bypass_the_cap(serve: Serve) -> None:
    app, registry = await capped_app(remotes=False)
    url = ws_url(await serve(app))
    async with contextlib.AsyncExitStack() as stack, client_from("127.0.0.1") as session:
        for i in range(CAP):
            assert await open_served(stack, session, url, f"198.51.100.{i}") == "127.0.0.1"
        assert await refused_with(session, url, "198.51.100.99") == TRY_AGAIN
        assert await refused_with(session, url, "198.51.100.98, 203.0.113.1") == TRY_AGAIN
        assert registry.count("127.0.0.1") == CAP
        assert registry.count("198.51.100.0") == 0


async def test_without_remotes_every_client_of_a_proxy_shares_one_count(
    capped_behind_proxy: CappedBehindProxy,
) -> None:
    url, registry = await capped_behind_proxy(remotes=False)
    async with alice_and_bob() as (stack, alice, bob):
        assert await open_served(stack, alice, url) == "127.0.0.1"
        assert await open_served(stack, alice, url) == "127.0.0.1"
        # Bob has opened nothing, but counts as the proxy, like Alice.
        assert await refused_with(bob, url) == TRY_AGAIN
        assert registry.count("127.0.0.1") == CAP


async def test_behind_a_trusted_proxy_each_client_has_its_own_count(
    capped_behind_proxy: CappedBehindProxy,
) -> None:
    url, registry = await capped_behind_proxy(remotes=True)
    async with alice_and_bob() as (stack, alice, bob):
        for _ in range(CAP):
            assert await open_served(stack, alice, url) == "127.0.0.2"
            assert await open_served(stack, bob, url) == "127.0.0.3"
        assert registry.count("127.0.0.2") == CAP
        assert registry.count("127.0.0.3") == CAP
        assert registry.count("127.0.0.1") == 0
        assert await refused_with(alice, url) == TRY_AGAIN
        # A forged X-Forwarded-For is replaced by the proxy: Alice is still Alice.
        assert await refused_with(alice, url, "198.51.100.7") == TRY_AGAIN
        assert await refused_with(bob, url, "127.0.0.4") == TRY_AGAIN
        async with client_from("127.0.0.4") as carol:
            assert await open_served(stack, carol, url) == "127.0.0.4"
        assert len(registry) == 2 * CAP + 1
    await until(lambda: len(registry) == 0)
    assert registry.count("127.0.0.2") == 0


async def test_addresses_claimed_through_the_trusted_hop_are_counted_apart(serve: Serve) -> None:
    app, registry = await capped_app(remotes=True)
    url = ws_url(await serve(app))
    # This client is the trusted hop (127.0.0.1), so what it forwards is believed.
    async with contextlib.AsyncExitStack() as stack, client_from("127.0.0.1") as hop:
        for client in ("198.51.100.1", "198.51.100.2", "2001:db8::1"):
            for _ in range(CAP):
                assert await open_served(stack, hop, url, client) == client
            assert await refused_with(hop, url, client) == TRY_AGAIN
            assert registry.count(client) == CAP
        assert registry.count("127.0.0.1") == 0


@pytest.mark.parametrize(
    "forwarded_for",
    [
        pytest.param("198.51.100.1", id="forged"),
        pytest.param("127.0.0.1", id="claims-to-be-the-proxy"),
        pytest.param(None, id="none"),
    ],
)
async def test_a_peer_that_is_not_the_trusted_hop_cannot_claim_an_address(
    serve: Serve, forwarded_for: str | None
) -> None:
    app, registry = await capped_app(remotes=True)
    base = await serve(app)
    async with client_from("127.0.0.5") as stranger:
        # XForwardedStrict refuses the request outright (400), before any socket exists.
        headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
        for _ in range(CAP + 2):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await stranger.ws_connect(ws_url(base), headers=headers)
            assert info.value.status == 400
    assert len(registry) == 0
    assert registry.count("198.51.100.1") == 0
