"""A real ``redis-server`` for the tests: a free loopback port, no persistence, always stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from .net import free_port

__all__ = ["RedisServer", "running_redis"]

#: How long a start, a stop or a PING may take before the test fails.
DEADLINE = 10.0


def _ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis server answers PING on ``port`` (plain RESP, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 that a test may stop, restart, pause.

    The port stays the same across restarts, so clients configured with :attr:`url`
    find the server again. Persistence is off: a restart starts empty, as after a crash.
    """

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: the Redis tests need it "
                "(`make sysdeps` installs it, or `apt-get install redis-server`)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = False
        self._dir = tempfile.mkdtemp(prefix="ah-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            return
        for _attempt in range(5):
            options = {
                "port": str(self.port),
                "bind": "127.0.0.1",
                "save": "",
                "appendonly": "no",
                "dir": self._dir,
                "loglevel": "warning",
            }
            args = [self.binary]
            for name, value in options.items():
                args += [f"--{name}", value]
            self.proc = subprocess.Popen(
                args,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                if _ping(self.port):
                    self._started = True
                    return
                if self.proc.poll() is not None:
                    break  # the port was taken in the meantime: try another
                time.sleep(0.01)
            self.kill()
            if self._started:
                break  # a restart keeps its port: clients are configured with it
            self.port = free_port()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        proc = self.proc
        if proc is None:
            return
        self.resume()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(DEADLINE)
        self.proc = None

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and nothing answers."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and remove its working directory."""
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, closed on the way out."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
