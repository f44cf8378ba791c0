"""What the benchmarks share: free ports, server processes, the fd limit, memory, tables."""

from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from types import TracebackType

__all__ = [
    "Server",
    "free_port",
    "median",
    "raise_nofile",
    "rss",
    "table",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (up to the hard limit).

    Returns:
        the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


class Server:
    """A benchmark server in a process of its own, started by running a script.

    The script prints one line once it serves (anything, often its port); the line is
    kept in :attr:`banner`. Leaving the ``with`` block terminates the process (SIGTERM,
    then SIGKILL after ``grace`` seconds).
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        ready_within: float = 30.0,
        grace: float = 10.0,
        interactive: bool = False,
    ) -> None:
        self.args = [sys.executable, *args]
        self.interactive = interactive
        self.env = env
        self.ready_within = ready_within
        self.grace = grace
        self.banner = ""
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send(self, line: str) -> None:
        """Write one line to the process (``interactive=True`` only)."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def readline(self) -> str:
        """The process's next line of output, stripped ("" once it has ended)."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE if self.interactive else subprocess.DEVNULL,
            env=self.env,
            text=True,
        )
        assert self.proc.stdout is not None
        # readline() blocks; a server that dies first closes stdout, so it returns "".
        began = time.monotonic()
        self.banner = self.proc.stdout.readline().strip()
        if not self.banner or time.monotonic() - began > self.ready_within:
            self.__exit__(None, None, None)
            raise RuntimeError(f"a server did not start: {' '.join(self.args)}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(self.grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def environment() -> str:
    """One line on where the figures come from."""
    return f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
