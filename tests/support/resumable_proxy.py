"""A loopback TCP proxy that cuts a connection once, after so many bytes from the client."""

from __future__ import annotations

import asyncio
import contextlib


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; the connection carrying client byte number
    ``cut_after`` (counted over all connections) is closed there, both ways, once."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.sent = 0
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # Closing both ends lets every pipe finish (cancelling the server's own tasks
        # would make asyncio log them).
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.update((writer, up_writer))
        back = asyncio.ensure_future(self._pipe(up_reader, writer, count=False))
        try:
            await self._pipe(reader, up_writer, count=True)
        finally:
            back.cancel()
            await asyncio.wait([back])
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()
            self._tasks.discard(task)
            self._writers.difference_update((writer, up_writer))

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if count and not self.cut:
                    room = self.cut_after - self.sent
                    if len(data) >= room:
                        writer.write(data[:room])
                        await writer.drain()
                        self.sent += room
                        self.cut = True
                        return
                    self.sent += len(data)
                writer.write(data)
                await writer.drain()
