"""Find the code blocks of README.md and docs/, and run them as the text says.

The convention the documents follow (docs/development.md describes it for writers):

- Every ``python`` block is a complete module: it defines every name it uses and has no
  ``await`` or ``async with`` outside a function. It is checked with ruff's undefined-name
  rule, then executed on its own, in an empty temporary directory.
- A block that defines ``create_app()`` is served on 127.0.0.1, on a free port. The
  ``console`` blocks after it (up to the next ``python`` block) are the session the text
  shows: each ``$ command`` line (``\\`` continues it) is run with bash in the same
  directory, any ``127.0.0.1:<port>`` in it pointing at the served app, and what it
  prints must be the lines shown below it (``...`` stands for any text; JSON is compared
  as JSON). Commands that create files, such as ``truncate``, run the same way.
- A block that defines ``async def main()`` has it awaited (with the served app's base
  URL when it takes a parameter); a ``text`` block right after it is what it prints.
- A block that defines ``test_*`` functions is run by pytest as a test module.
- A block that cannot run (a YAML manifest is not Python; a snippet of another program)
  is not a ``python`` block. A ``python`` block that deliberately does not run is preceded
  by ``<!-- docs: not run: why -->`` (Markdown) or ``.. docs: not run: why`` (reST), and
  counted: the test keeps the number of such exceptions pinned.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ROOT",
    "Block",
    "Command",
    "command_for",
    "documents",
    "expected_for",
    "extract",
    "output_matches",
    "parse_console",
    "python_blocks",
    "run_tool",
    "undefined_names",
]

ROOT = Path(__file__).resolve().parents[2]

NOT_RUN = re.compile(
    r"^(?:<!--\s*docs:\s*not run:\s*(?P<md>.+?)\s*-->|\.\. docs: not run: (?P<rst>.+))$"
)
# A fence, or a MyST directive fence: ```{code-block} python, ```{eval-rst}.
_FENCE = re.compile(
    r"^(?P<fence>```+|~~~+)\s*(?:\{(?P<directive>[\w-]+)\}\s*)?(?P<lang>[\w+-]*)\s*$"
)
_RST_BLOCK = re.compile(r"^\.\. (?:code-block|code|sourcecode):: *(?P<lang>[\w+-]+)\s*$")


@dataclass
class Block:
    """One fenced (Markdown) or ``code-block`` (reST) block of a document."""

    path: Path
    line: int
    lang: str
    code: str
    not_run: str | None = None
    # The console / text blocks that follow it, up to the next python block.
    after: list[Block] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    """README.md and every page of docs/ (not the build output)."""
    docs = ROOT / "docs"
    pages = sorted(
        p for p in docs.rglob("*") if p.suffix in (".md", ".rst") and "_build" not in p.parts
    )
    return [ROOT / "README.md", *pages]


def extract(path: Path) -> list[Block]:
    """Every code block of ``path``, in order, with its language and any not-run mark."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    pending: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        mark = NOT_RUN.match(line.strip())
        if mark:
            pending = mark.group("md") or mark.group("rst")
            i += 1
            continue
        fence = _FENCE.match(line)
        rst = _RST_BLOCK.match(line.strip()) if path.suffix == ".rst" else None
        if fence:
            end = i + 1
            while end < len(lines) and not lines[end].startswith(fence.group("fence")):
                end += 1
            code = "\n".join(lines[i + 1 : end])
            directive = fence.group("directive")
            lang = fence.group("lang") or ("" if directive == "code-block" else directive or "")
            blocks.append(Block(path, i + 1, lang.lower(), code + "\n", pending))
            pending = None
            i = end + 1
            continue
        if rst:
            indent_of = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith(":"):
                j += 1
            body: list[str] = []
            while j < len(lines) and (
                not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent_of
            ):
                body.append(lines[j])
                j += 1
            while body and not body[-1].strip():
                body.pop()
            while body and not body[0].strip():
                body.pop(0)
            margin = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
            code = "\n".join(b[margin:] for b in body)
            blocks.append(Block(path, i + 1, rst.group("lang").lower(), code + "\n", pending))
            pending = None
            i = j
            continue
        if line.strip():
            pending = None
        i += 1
    return blocks


def python_blocks(paths: list[Path] | None = None) -> list[Block]:
    """The python blocks of ``paths``, each with the console/text blocks that follow it."""
    found: list[Block] = []
    for path in paths if paths is not None else documents():
        current: Block | None = None
        for block in extract(path):
            if block.lang in ("python", "py", "python3"):
                current = block
                found.append(block)
            elif current is not None and block.lang in ("console", "text", "shell-session"):
                current.after.append(block)
    return found


def run_tool(
    name: str, *args: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """The command ``name`` of this interpreter's environment (``.venv/bin``), run with
    ``args``; its output captured as text, its exit status left to the caller."""
    tool = Path(sys.executable).with_name(name)
    return subprocess.run(
        [str(tool), *args], capture_output=True, text=True, check=False, timeout=timeout
    )


def undefined_names(code: str, workdir: Path) -> str:
    """Ruff's report of undefined names and misplaced ``await`` in ``code`` ('' if none)."""
    source = workdir / "_block_check.py"
    source.write_text(code, encoding="utf-8")
    result = run_tool(
        "ruff",
        "check",
        "--no-cache",
        "--isolated",
        "--select",
        "F821,F704,PLE1142",
        "--output-format",
        "concise",
        str(source),
    )
    source.unlink()
    return "" if result.returncode == 0 else result.stdout + result.stderr


@dataclass
class Command:
    """One ``$ command`` of a console block and the output the text shows for it."""

    command: str
    expected: list[str]


def parse_console(text: str) -> list[Command]:
    """The commands of a console block, each with the lines shown below it."""
    commands: list[Command] = []
    lines = text.rstrip("\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if commands:
                commands[-1].expected.append(line)
            i += 1
            continue
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        commands.append(Command(command, []))
        i += 1
    return commands


def _strip_comment(command: str) -> str:
    # "truncate -s 200M big.iso      # over the limit": the comment is for the reader.
    return re.sub(r"\s{2,}#.*$", "", command)


def command_for(command: str, port: int) -> str:
    """``command`` with its comment removed and 127.0.0.1:<port> pointed at ``port``."""
    return re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", _strip_comment(command))


def expected_for(lines: list[str], port: int) -> list[str]:
    """The output the text shows, with 127.0.0.1:<port> meaning the served app."""
    return [re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", line) for line in lines]


def output_matches(expected: list[str], actual: str) -> bool:
    """Whether ``actual`` is what the text shows: JSON as JSON, ``...`` as any text."""
    shown = "\n".join(expected).strip()
    got = actual.replace("\r\n", "\n").strip()
    try:
        return bool(json.loads(shown) == json.loads(got))
    except ValueError:
        pass
    pattern = ".*?".join(re.escape(part) for part in shown.split("..."))
    return re.fullmatch(pattern, got, flags=re.DOTALL) is not None
