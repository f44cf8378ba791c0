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

ONE_LINE = (
    "aiohttp_helpers.HookError: startup hook 'connect' failed: ConnectionRefusedError: "
    "the database refused the connection"
)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP))
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_one_line_and_exit_code_1_after_tearing_down(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [ONE_LINE]
    assert done.stdout.splitlines() == ["pool-open", "pool-close"]


def test_teardown_errors_follow_as_one_line_each(tmp_path: Path) -> None:
    done = run(tmp_path, "--fail-close")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        ONE_LINE,
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
    assert done.stderr.rstrip().splitlines()[-1 - fail_close] == ONE_LINE
