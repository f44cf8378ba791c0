"""A startup hook failing under ``web.run_app`` ends the process with one clear line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

APP = """
import logging
import socket
import sys

from aiohttp import web

import aiohttp_helpers as ah

if "--log" in sys.argv:
    logging.basicConfig(level=logging.ERROR)
app = web.Application()
lifecycle = ah.setup(app).lifecycle


@lifecycle.context(name="pool")
async def pool(app):
    print("pool-open", flush=True)
    yield
    print("pool-close", flush=True)
    if "--fail-close" in sys.argv:
        raise OSError("pool did not close")


@lifecycle.on_startup(name="connect", after="pool")
async def connect(app):
    raise ConnectionRefusedError("the database refused the connection")


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
web.run_app(app, sock=sock, print=None)
"""

#: Where the hook raised: the one line names it, so that no traceback is needed to find it.
RAISED_AT = (
    textwrap.dedent(APP)
    .splitlines()
    .index('    raise ConnectionRefusedError("the database refused the connection")')
    + 1
)
ONE_LINE = (
    "aiohttp_helpers.HookError: startup hook 'connect' failed: ConnectionRefusedError: "
    "the database refused the connection (raised in connect at {script}:{line})"
)


class Done(subprocess.CompletedProcess[str]):
    one_line: str


def run(tmp_path: Path, *args: str) -> Done:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP))
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    result = Done(done.args, done.returncode, done.stdout, done.stderr)
    result.one_line = ONE_LINE.format(script=script, line=RAISED_AT)
    return result


def test_one_line_and_exit_code_1_after_tearing_down(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.one_line]
    assert done.stdout.splitlines() == ["pool-open", "pool-close"]


def test_teardown_errors_follow_as_one_line_each(tmp_path: Path) -> None:
    done = run(tmp_path, "--fail-close")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        done.one_line,
        "while tearing down after it: cleanup hook 'pool' failed: OSError: pool did not close",
    ]


@pytest.mark.parametrize("fail_close", [False, True], ids=["clean", "close-fails"])
def test_configured_logging_still_gets_the_traceback_and_a_correct_count(
    tmp_path: Path, fail_close: bool
) -> None:
    done = run(tmp_path, "--log", *(["--fail-close"] if fail_close else []))
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert 'raise ConnectionRefusedError("the database refused the connection")' in done.stderr
    failed = " (1 failed)" if fail_close else ""
    assert (
        "startup hook 'connect' failed: ConnectionRefusedError: the database refused the "
        f"connection; tore down the 1 hook that had started{failed}"
    ) in done.stderr
    assert done.stderr.rstrip().splitlines()[-1 - fail_close] == done.one_line


CAUGHT_TWICE = """
import socket
import sys

from aiohttp import web

import aiohttp_helpers as ah


async def connect(app):
    raise ConnectionRefusedError("no database")


for _ in range(2):
    app = web.Application()
    ah.setup(app).lifecycle.on_startup(name="connect")(connect)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        web.run_app(app, sock=sock, print=None)
    except ah.HookError:
        print("caught", flush=True)

    def wrapper(kind, exc, tb, previous=sys.excepthook):
        # Another library's hook, calling the one that was there before it.
        print("wrapper", file=sys.stderr, flush=True)
        previous(kind, exc, tb)

    sys.excepthook = wrapper

raise KeyError("unrelated")
"""


def test_caught_failures_and_other_hooks_leave_other_errors_alone(tmp_path: Path) -> None:
    script = tmp_path / "twice.py"
    script.write_text(textwrap.dedent(CAUGHT_TWICE))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["caught", "caught"]
    assert "RecursionError" not in done.stderr
    assert done.stderr.count("wrapper") == 2
    assert done.stderr.rstrip().splitlines()[-1] == "KeyError: 'unrelated'"
    assert "Traceback (most recent call last)" in done.stderr


def test_the_hook_prints_its_error_in_one_line_and_passes_others_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process, so that coverage sees the hook the subprocess tests above drive.
    from aiohttp_helpers.lifecycle import HookError, takeover

    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, exc, tb: seen.append(exc))
    monkeypatch.setattr(takeover, "_installed", False)
    monkeypatch.setattr(takeover, "_previous_hook", None)

    def connect() -> None:
        raise ConnectionRefusedError("no database")

    try:
        connect()
    except ConnectionRefusedError as exc:
        cause = exc
    error = HookError("startup", "connect", "", "failed: ConnectionRefusedError: no database")
    error.__cause__ = cause
    error.add_note("while tearing down after it: cleanup hook 'pool' failed: OSError: x")
    takeover.exit_in_one_line(error)
    takeover.exit_in_one_line(error)  # installed once
    other = KeyError("unrelated")
    sys.excepthook(HookError, error, None)
    sys.excepthook(KeyError, other, None)
    line = connect.__code__.co_firstlineno + 1
    assert capsys.readouterr().err.splitlines() == [
        "aiohttp_helpers.HookError: startup hook 'connect' failed: ConnectionRefusedError: "
        f"no database (raised in connect at {__file__}:{line})",
        "while tearing down after it: cleanup hook 'pool' failed: OSError: x",
    ]
    assert seen == [other]  # everything else goes to the hook that was there before
