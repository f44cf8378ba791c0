"""What the benchmarks share: free ports, server processes, the fd limit, CPU and memory, tables.

Every benchmark runs from the repository root as ``python -m bench.<name>`` and re-runs
itself the same way for its servers and load generators (:func:`module_args`), so that
``bench/`` never comes first on ``sys.path`` (where a module named like a library, such as
``websockets``, would shadow it).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "ROOT",
    "Server",
    "connect",
    "cpu_seconds",
    "environment",
    "fds",
    "free_port",
    "median",
    "memory",
    "module_args",
    "pin",
    "raise_nofile",
    "redis_server",
    "require",
    "reset_peak",
    "rss",
    "run_json",
    "table",
    "wait_port",
    "write_body",
]

#: The repository root: every child process runs from here.
ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def module_args(module: str, *args: str) -> list[str]:
    """The interpreter arguments that run ``python -m <module> *args`` (from :data:`ROOT`)."""
    return ["-m", module, *args]


def require(binary: str) -> str:
    """The path of ``binary``; a clear exit when it is not installed."""
    path = shutil.which(binary)
    if path is None:
        raise SystemExit(f"{binary} is not installed (make sysdeps installs it)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def connect(port: int, *, within: float = 10.0, timeout: float | None = 600) -> socket.socket:
    """A connection to ``port`` on 127.0.0.1, retried for ``within`` seconds while refused."""
    deadline = time.monotonic() + within
    while True:
        try:
            return socket.create_connection((HOST, port), timeout=timeout)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def wait_port(
    port: int, *, within: float = 20.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    """Return once ``port`` accepts connections; RuntimeError if ``proc`` ends or time runs out."""
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f"the server ended ({proc.returncode}) before port {port} was open"
                ) from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port} after {within:g} s") from None
            time.sleep(0.02)


def pin(cpu: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins a child to ``cpu``; None on a machine with one core."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


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


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds process ``pid`` has run so far (Linux's /proc), None where it cannot tell.

    ``schedstat`` counts nanoseconds; ``stat`` clock ticks, where schedstat is missing.
    """
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open(f"/proc/{pid}/schedstat", encoding="ascii") as f,
    ):
        return int(f.read().split()[0]) / 1e9
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak since the last :func:`reset_peak`) of ``pid``, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    if "VmRSS" not in out:
        raise RuntimeError(f"no VmRSS for process {pid}")
    return out


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    return memory(pid)["VmRSS"]


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: clear_refs 5); False where it cannot."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def fds(pid: int) -> int:
    """How many descriptors process ``pid`` holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


async def write_body(content: Any, path: Path, flag: int) -> int:
    """Write an aiohttp request's ``content`` to ``path`` as it arrives, unbuffered; the size.

    ``flag`` is added to ``os.O_WRONLY | os.O_CREAT`` (``os.O_APPEND``, ``os.O_EXCL``): the
    bare ceiling for keeping the bytes, against which the package's saving is measured.
    """
    total = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o600)
    try:
        while chunk := await content.readany():
            total += len(chunk)
            os.write(fd, chunk)
    finally:
        os.close(fd)
    return total


def median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def run_json(
    args: Sequence[str],
    *,
    timeout: float | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run ``python *args`` from :data:`ROOT` to its end; its last line of output, as JSON."""
    out = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


class Server:
    """A benchmark server (or load generator) in a process of its own: ``python *args``.

    It runs from :data:`ROOT`. Without ``port``, the process prints one line once it
    serves (anything, often its port), kept in :attr:`banner`; with ``port``, it is ready
    once the port accepts connections, and its output is not captured. Leaving the
    ``with`` block terminates the process (SIGTERM, then SIGKILL after ``grace`` seconds);
    its exit status is then in :attr:`returncode`.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        cpu: int | None = None,
        ready_within: float = 30.0,
        grace: float = 10.0,
        interactive: bool = False,
    ) -> None:
        self.args = [sys.executable, *args]
        self.interactive = interactive
        self.env = env
        self.port = port
        self.cpu = cpu
        self.ready_within = ready_within
        self.grace = grace
        self.banner = ""
        self.returncode: int | None = None
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the given port, else the banner's."""
        return f"http://{HOST}:{self.port or int(self.banner)}"

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

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

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end; its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            self.args,
            stdout=None if self.port else subprocess.PIPE,
            stdin=subprocess.PIPE if self.interactive else subprocess.DEVNULL,
            env=self.env,
            cwd=ROOT,
            text=True,
            preexec_fn=None if self.cpu is None else pin(self.cpu),
        )
        if self.port:
            try:
                wait_port(self.port, within=self.ready_within, proc=self.proc)
            except RuntimeError:
                self.__exit__(None, None, None)
                raise
            return self
        assert self.proc.stdout is not None
        # readline() blocks; a server that dies first closes stdout, so it returns "".
        began = time.monotonic()
        self.banner = self.proc.stdout.readline().strip()
        try:
            if not self.banner or time.monotonic() - began > self.ready_within:
                raise RuntimeError(f"a server did not start: {' '.join(self.args)}")
            if self.banner.isdigit():  # a port, perhaps printed before it listens
                wait_port(int(self.banner), within=self.ready_within, proc=self.proc)
        except RuntimeError:
            self.__exit__(None, None, None)
            raise
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
        if proc.poll() is None:
            proc.terminate()
        try:
            self.returncode = proc.wait(self.grace)
        except subprocess.TimeoutExpired:  # a server that hangs
            proc.kill()
            self.returncode = proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port, persistence off; its URL."""
    binary = require("redis-server")
    port, directory = free_port(), tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "",
         "--appendonly", "no", "--dir", directory, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.02)
        yield f"redis://{HOST}:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        aligned = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(aligned).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def environment() -> str:
    """One line on where the figures come from."""
    return f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
