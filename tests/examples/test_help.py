"""Every example answers ``--help`` at once, starts nothing, and has a default port of its own."""

from __future__ import annotations

import pytest

from tests.support.paths import ROOT
from tests.support.scripts import run_help

EXAMPLES = ROOT / "examples"

#: The port each example serves on when none is given (the README and docs use these).
PORTS = {
    "demo": 8080,
    "chat": 8081,
    "lifecycle": 8082,
    "uploads": 8083,
    "gunicorn_app": 8084,
}


def _examples() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_every_example_has_a_port_of_its_own() -> None:
    assert _examples() == sorted(PORTS)
    assert len(set(PORTS.values())) == len(PORTS)


@pytest.mark.parametrize("name", sorted(PORTS), ids=sorted(PORTS))
def test_help_describes_the_example_and_starts_nothing(name: str) -> None:
    # A server that started would not exit: the timeout would fail the test.
    done = run_help(str(EXAMPLES / f"{name}.py"), timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {name}.py")
    assert "--host" in done.stdout
    assert f"port to listen on (default: {PORTS[name]})" in done.stdout
    assert "Ctrl-C to stop" not in done.stdout
    assert done.stderr == ""
