"""curl as an independent HTTP client for the upload tests."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

__all__ = ["CURL", "curl"]

#: The curl binary, or ``None`` when it is not installed (``make sysdeps`` installs it).
CURL = shutil.which("curl")


async def curl(*args: str) -> tuple[int, Any]:
    """Run curl; the HTTP status and the parsed JSON answer."""
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "-sS",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--max-time",
        "30",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    body, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(body) if body else None
