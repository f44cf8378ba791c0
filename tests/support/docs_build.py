"""Build the documentation once per test process, the way ``make docs`` does."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .docs_blocks import ROOT, run_tool

__all__ = ["build_docs"]

_built: Path | None = None


def build_docs() -> Path:
    """The HTML build of docs/, made with warnings as errors and nitpicky references.

    ``AH_DOCS_BUILD`` names a build to use instead (``make docs`` output, say). The build
    runs once per process; a failing build (any warning) fails the calling test with
    Sphinx's output.
    """
    global _built
    given = os.environ.get("AH_DOCS_BUILD")
    if given:
        return Path(given)
    if _built is None:
        out = Path(tempfile.mkdtemp(prefix="ah-docs-"))
        result = run_tool(
            "sphinx-build",
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(ROOT / "docs"),
            str(out / "html"),
            timeout=600,
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            raise AssertionError(f"the documentation build failed:\n{output}")
        _built = out / "html"
    return _built
