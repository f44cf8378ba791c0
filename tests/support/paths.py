"""Where things are: the repository root that processes started by the tests run from."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ROOT", "SUPPORT"]

#: The repository root (``tests/support/paths.py`` → three levels up).
ROOT = Path(__file__).resolve().parent.parent.parent
#: This package: the apps that tests start as processes by file path live here.
SUPPORT = Path(__file__).resolve().parent
