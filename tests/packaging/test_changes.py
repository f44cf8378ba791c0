"""The changelog: every fragment in CHANGES/ is one towncrier knows; a draft renders them."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp_helpers

ROOT = Path(__file__).resolve().parents[2]
CHANGES = ROOT / "CHANGES"
FRAGMENT = re.compile(r"(?P<issue>\d+)\.(?P<type>[a-z]+)(?:\.\d+)?\.rst")


def _types() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["towncrier"]
    return {kind["directory"] for kind in config["type"]}


def _fragments() -> list[Path]:
    return sorted(p for p in CHANGES.iterdir() if p.name != "README.rst")


def test_every_fragment_is_named_for_an_issue_and_a_known_type() -> None:
    types = _types()
    for path in _fragments():
        match = FRAGMENT.fullmatch(path.name)
        assert match, f"{path.name}: not <issue>.<type>[.<n>].rst"
        assert match["type"] in types, f"{path.name}: type not one of {sorted(types)}"
        assert path.read_text("utf-8").strip(), f"{path.name} is empty"


def test_the_changelog_keeps_towncrier_start_marker() -> None:
    assert ".. towncrier release notes start\n" in (ROOT / "CHANGES.rst").read_text("utf-8")


def test_a_draft_release_renders_every_fragment() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "towncrier", "build", "--draft",
         "--version", aiohttp_helpers.__version__],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fragments = _fragments()
    if fragments:  # none right after a release
        assert f"{aiohttp_helpers.__version__} (" in done.stdout
    for path in fragments:
        issue = path.name.split(".", 1)[0]
        assert f"(#{issue})" in done.stdout
