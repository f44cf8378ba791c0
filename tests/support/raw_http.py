"""Raw HTTP/1.1 over asyncio streams: requests written byte by byte, answers read by hand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

__all__ = ["BOUNDARY", "Answer", "form_body", "read_answer", "sending", "slow_upload"]

#: The multipart boundary of :func:`form_body`.
BOUNDARY = "ah-slow-upload"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    #: Whether the client had sent its whole body when the answer came.
    sent_all: bool


def form_body(payload: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="data.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{BOUNDARY}--\r\n".encode()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length)
    return int(status_line.split()[1]), headers, body


@contextlib.asynccontextmanager
async def sending(
    writer: asyncio.StreamWriter, send: Coroutine[Any, Any, None]
) -> AsyncIterator[None]:
    """Run ``send`` (what writes the request) as a task while the block reads the answer;
    then stop it and close ``writer``."""
    task = asyncio.create_task(send)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def slow_upload(
    port: int, payload: bytes, *, pieces: int, pause: float, started: asyncio.Event
) -> Answer:
    """POST ``payload`` as a form to ``/upload`` in ``pieces`` writes, ``pause`` s apart."""
    body = form_body(payload)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
    )
    size = -(-len(body) // pieces)
    sent = [False]

    async def send() -> None:
        for offset in range(0, len(body), size):
            writer.write(body[offset : offset + size])
            await writer.drain()
            started.set()
            if offset + size >= len(body):
                sent[0] = True
            await asyncio.sleep(pause)

    async with sending(writer, send()), asyncio.timeout(30):
        status, headers, answer = await read_answer(reader)
        sent_all = sent[0]
    return Answer(status, headers, answer, sent_all)
