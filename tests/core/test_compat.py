"""``_compat``'s assumptions hold for the installed aiohttp: real objects, no stand-ins."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, payload, web, web_runner
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.worker import GunicornWebWorker
from gunicorn.config import Config  # type: ignore[import-untyped]
from gunicorn.glogging import Logger  # type: ignore[import-untyped]
from pytest_aiohttp import AiohttpClient

from aiohttp_helpers import _compat


async def test_websocket_internals_on_a_real_connection(aiohttp_client: AiohttpClient) -> None:
    seen: dict[str, Any] = {}
    sent: list[tuple[bytes, int]] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seen["transport"] = _compat.ws_transport(ws)
        writer = _compat.writable_ws(ws)
        seen["writer"] = writer
        seen["paused"] = None if writer is None else _compat.writer_paused(writer)
        seen["closing_open"] = _compat.ws_closing(ws)
        # What install_ws_parser reads: aiohttp's reader is the connection's parser.
        protocol: Any = request.protocol
        seen["parser_is_reader"] = protocol._payload_parser is ws._parser
        seen["queue"] = ws._reader
        seen["decode_text"] = ws._decode_text
        seen["tail"] = protocol._message_tail
        seen["hooked"] = _compat.on_frame_sent(ws, lambda data, op: sent.append((data, op)))
        await ws.send_str("hello")
        msg = await ws.receive()
        seen["close_msg"] = msg.type
        seen["closing_after_peer_close"] = _compat.ws_closing(ws)
        await ws.close()
        seen["writable_after_close"] = _compat.writable_ws(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    client = await aiohttp_client(app)
    async with client.ws_connect("/ws") as ws:
        assert isinstance(_compat.ws_transport(ws), asyncio.Transport)
        assert (await ws.receive_str()) == "hello"
        await ws.close(code=4000)
    assert isinstance(seen["transport"], asyncio.Transport)
    assert seen["writer"] is not None
    assert seen["writer"].transport is seen["transport"]
    assert isinstance(seen["writer"].compress, int)
    assert isinstance(seen["writer"].notakeover, bool)
    assert seen["paused"] is False
    assert seen["closing_open"] is False
    assert seen["parser_is_reader"] is True
    assert seen["queue"] is not None
    assert seen["decode_text"] is True
    assert seen["tail"] == b""
    assert seen["hooked"] is True
    assert (b"hello", WSMsgType.TEXT) in sent
    assert seen["close_msg"] is WSMsgType.CLOSE
    assert seen["closing_after_peer_close"] is True
    assert seen["writable_after_close"] is None


def test_websocket_mask_is_aiohttps_own() -> None:
    assert _compat.websocket_mask.__module__.startswith("aiohttp._websocket")
    data = bytearray(b"\x00\x00\x00\x00\x00\xff")
    _compat.websocket_mask(b"\x01\x02\x03\x04", data)
    assert data == bytearray(b"\x01\x02\x03\x04\x01\xfd")


def test_connection_closed_is_the_message_aiohttp_raises() -> None:
    source = inspect.getsource(StreamReader._wait)
    assert 'RuntimeError("Connection closed.")' in source
    assert _compat.connection_closed(RuntimeError("Connection closed."))
    assert not _compat.connection_closed(RuntimeError("something else"))


async def test_read_buffered_and_transport_gone_on_a_real_stream_reader() -> None:
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    content = StreamReader(protocol, 2**16, loop=loop)
    content.feed_data(b"kept bytes")
    assert _compat.read_buffered(content) == b"kept bytes"
    assert _compat.read_buffered(content) == b""
    # A protocol without a transport: the connection is gone.
    assert _compat.request_transport_gone(content) is True


async def test_transport_gone_is_false_while_a_request_is_served(
    aiohttp_client: AiohttpClient,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=str(_compat.request_transport_gone(request.content)))

    app = web.Application()
    app.router.add_post("/", handler)
    client = await aiohttp_client(app)
    async with client.post("/", data=b"x" * 10) as resp:
        assert await resp.text() == "False"


async def test_expect_handler_get_and_set_on_a_real_route(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=(await request.read()).decode())

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=417, text="no")

    app = web.Application()
    route = app.router.add_post("/", handler)
    assert isinstance(route, web.ResourceRoute)
    original = _compat.expect_handler(route)
    assert original.__name__ == "_default_expect_handler"
    _compat.set_expect_handler(route, refuse)
    assert _compat.expect_handler(route) is refuse
    client = await aiohttp_client(app)
    async with client.post("/", data=b"body", expect100=True) as resp:
        assert resp.status == 417


def test_payload_internals() -> None:
    part = payload.BytesPayload(b"the bytes", headers={"X-Name": "a"})
    assert _compat.bytes_payload_value(part) == b"the bytes"
    head = _compat.part_headers(part)
    assert head.endswith(b"\r\n\r\n")
    assert b"X-Name: a\r\n" in head


async def test_run_app_handles_with_a_real_runner() -> None:
    loop = asyncio.get_running_loop()
    assert _compat.run_app_handles(loop, signal.SIGTERM) is False
    previous = signal.getsignal(signal.SIGINT)
    runner = web.AppRunner(web.Application(), handle_signals=True)
    await runner.setup()
    try:
        assert _compat.run_app_handles(loop, signal.SIGTERM) is True
        assert _compat.run_app_handles(loop, signal.SIGINT) is True
        assert inspect.isfunction(web_runner._raise_graceful_exit)
    finally:
        await runner.cleanup()
        signal.signal(signal.SIGINT, previous)
    assert _compat.run_app_handles(loop, signal.SIGTERM) is False


def _worker() -> GunicornWebWorker:
    cfg = Config()
    return GunicornWebWorker(0, os.getppid(), [], None, 30, cfg, Logger(cfg))


def test_gunicorn_access_log_format() -> None:
    worker = _worker()
    try:
        default = worker.cfg.access_log_format
        assert _compat.gunicorn_access_log_format(worker, default) == (
            GunicornWebWorker.DEFAULT_AIOHTTP_LOG_FORMAT
        )
        assert _compat.gunicorn_access_log_format(worker, "%a %s") == "%a %s"
        with pytest.raises(ValueError, match="Gunicorn's style options"):
            _compat.gunicorn_access_log_format(worker, "%(h)s")
    finally:
        worker.tmp.close()


def test_gunicorn_ssl_context(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    worker = _worker()
    try:
        worker.cfg.set("keyfile", str(key))
        worker.cfg.set("certfile", str(cert))
        worker.cfg.set("ssl_version", ssl.PROTOCOL_TLS_SERVER)
        context = _compat.gunicorn_ssl_context(worker)
        assert isinstance(context, ssl.SSLContext)
        assert context.protocol == ssl.PROTOCOL_TLS_SERVER
    finally:
        worker.tmp.close()


async def test_a_cancelled_drain_poisons_the_next_one_on_a_real_connection() -> None:
    """What ``stale_drain_cancelled`` works around: a cancelled drain's waiter stays behind."""
    loop = asyncio.get_running_loop()
    accepted: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # and never read: the client's writes back up

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, protocol = await loop.create_connection(
        lambda: BaseProtocol(loop), "127.0.0.1", port
    )
    try:
        protocol.pause_writing()  # the peer is not reading: over the high-water mark
        first = asyncio.ensure_future(protocol._drain_helper())
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        seen: list[bool] = []

        async def later_send() -> None:
            try:
                await protocol._drain_helper()
            except asyncio.CancelledError:
                seen.append(_compat.stale_drain_cancelled())

        await asyncio.wait_for(later_send(), 5)
        assert seen == [True]  # raised at once, and nobody cancelled this task
    finally:
        transport.abort()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
