"""The benchmarks run as ``python -m bench.<name>`` and share one harness (none runs here)."""

from __future__ import annotations

import ast

import pytest

from tests.support.paths import ROOT
from tests.support.scripts import run_help

BENCH = ROOT / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if not p.name.startswith("_"))
#: What only bench/_harness.py defines.
SHARED = {
    "free_port",
    "wait_port",
    "Server",
    "table",
    "rss",
    "fds",
    "cpu_seconds",
    "pin",
    "write_body",
}


def test_there_are_benchmarks_and_none_is_named_like_a_library() -> None:
    assert {"overhead", "uploads", "resumable", "echo", "broadcast", "soak"} <= set(SCRIPTS)
    assert "websockets" not in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS, ids=SCRIPTS)
def test_each_uses_the_harness_instead_of_its_own_copies(name: str) -> None:
    tree = ast.parse((BENCH / f"{name}.py").read_text("utf-8"))
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    assert not defined & SHARED
    imports = [
        n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "bench._harness"
    ]
    assert imports, f"bench/{name}.py does not use bench._harness"
    assert "__file__" not in (BENCH / f"{name}.py").read_text("utf-8")


@pytest.mark.parametrize("name", SCRIPTS, ids=SCRIPTS)
def test_each_answers_help_as_a_module(name: str) -> None:
    done = run_help("-m", f"bench.{name}", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m bench.{name}")
