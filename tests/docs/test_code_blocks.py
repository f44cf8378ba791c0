"""Every Python block of README.md and docs/ runs, and answers as the text shows.

The convention is in tests/support/docs_blocks.py and docs/development.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from tests.support.apps import serving
from tests.support.docs_blocks import (
    ROOT,
    Block,
    command_for,
    documents,
    expected_for,
    extract,
    output_matches,
    parse_console,
    python_blocks,
    undefined_names,
)

BLOCKS = python_blocks()

# Python blocks that deliberately do not run, each marked in its page with the reason.
# Keep this near zero: a new exception must be argued for in review.
EXPECTED_NOT_RUN = 0


def test_documents_have_python_blocks() -> None:
    assert (ROOT / "README.md") in documents()
    assert len(BLOCKS) >= 10, [b.id for b in BLOCKS]


def test_not_run_blocks_are_counted() -> None:
    not_run = [f"{b.id}: {b.not_run}" for b in BLOCKS if b.not_run]
    assert len(not_run) == EXPECTED_NOT_RUN, not_run


def test_every_session_belongs_to_an_app() -> None:
    """A console session that shows requests follows a block that serves an app."""
    orphans = [
        f"{after.id} (after {block.id})"
        for block in BLOCKS
        for after in block.after
        if after.lang != "text" and parse_console(after.code) and "def create_app" not in block.code
    ]
    for path in documents():
        for block in extract(path):
            if block.lang in ("python", "py", "python3"):
                break
            if block.lang in ("console", "shell-session") and parse_console(block.code):
                orphans.append(f"{block.id} (before any Python block)")
    assert orphans == []


async def _run_command(command: str, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return out.decode()


def _load(block: Block, path: Path) -> types.ModuleType:
    path.write_text(block.code, encoding="utf-8")
    module = types.ModuleType("docs_example")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    exec(compile(block.code, str(path), "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
async def test_block_runs_as_shown(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    assert undefined_names(block.code, tmp_path) == ""
    compile(block.code, block.id, "exec")
    if block.not_run:
        return
    monkeypatch.chdir(tmp_path)
    if "REDIS_URL" in block.code:
        # The example reads its Redis from the environment: give it a real one.
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_server").url)
    example = tmp_path / "test_example.py"
    try:
        module = _load(block, example)
        names: dict[str, Any] = vars(module)
        if any(name.startswith("test_") and inspect.isfunction(f) for name, f in names.items()):
            result = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-o",
                    "asyncio_mode=auto",
                    "-o",
                    "asyncio_default_fixture_loop_scope=function",
                    "-W",
                    "error",
                    str(example),
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            assert result.returncode == 0, result.stdout + result.stderr
        url: URL | None = None
        async with serving() as serve:
            if "create_app" in names:
                app = names["create_app"]()
                if inspect.isawaitable(app):
                    app = await app
                url = await serve(app)
            port = 0 if url is None or url.port is None else url.port
            if "main" in names:
                main = names["main"]
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    if inspect.signature(main).parameters:
                        await main(f"http://127.0.0.1:{port}")
                    else:
                        await main()
                shown = [b for b in block.after if b.lang == "text"]
                if shown:
                    assert output_matches(shown[0].code.split("\n"), printed.getvalue()), (
                        printed.getvalue()
                    )
            for session in block.after:
                if session.lang == "text":
                    continue
                if not parse_console(session.code):
                    continue
                assert url is not None, f"{session.id}: a session after a block that serves no app"
                assert shutil.which("curl"), "curl is needed: `make sysdeps` installs it"
                for command in parse_console(session.code):
                    out = await _run_command(command_for(command.command, port), tmp_path)
                    assert output_matches(expected_for(command.expected, port), out), (
                        f"{session.id}: $ {command.command}\nexpected:\n"
                        + "\n".join(command.expected)
                        + f"\ngot:\n{out}"
                    )
    finally:
        sys.modules.pop("docs_example", None)
