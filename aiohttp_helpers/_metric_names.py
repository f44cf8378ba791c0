"""The package's labelled counters, as the Prometheus and OpenTelemetry sides name them."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["COUNTERS", "Counter"]


class Counter(NamedTuple):
    """One of the package's labelled counters, as each exporter names and describes it."""

    #: The Prometheus name (after ``aiohttp_helpers_``) and its label names.
    prometheus: str
    labels: tuple[str, ...]
    #: Prometheus' HELP text.
    help: str
    #: The OpenTelemetry name (after ``aiohttp_helpers.``), unit and description.
    otel: str
    unit: str
    description: str


#: The counters both exporters keep, by the key their counts are kept under.
COUNTERS: dict[str, Counter] = {
    "refusals": Counter(
        "refusals",
        ("route", "problem", "status"),
        "Requests the package refused with a problem document, by problem type.",
        "refusals",
        "{request}",
        "Requests the package refused with a problem document.",
    ),
    "files": Counter(
        "upload_files",
        ("route",),
        "Files read_form() finished reading.",
        "upload.files",
        "{file}",
        "Files read_form() finished reading.",
    ),
    "file_bytes": Counter(
        "upload_file_bytes",
        ("route",),
        "Bytes of the files read_form() finished reading.",
        "upload.bytes",
        "By",
        "Bytes of the files read_form() read.",
    ),
    "ws_opened": Counter(
        "websocket_opened",
        ("route",),
        "WebSockets admitted.",
        "websocket.opened",
        "{connection}",
        "WebSockets admitted.",
    ),
    "ws_closed": Counter(
        "websocket_closed",
        ("route", "code", "closed_by"),
        "WebSockets closed, by close code and by who sent the first close frame.",
        "websocket.closed",
        "{connection}",
        "WebSockets closed, by close code and by who closed first.",
    ),
    "ws_refusals": Counter(
        "websocket_refusals",
        ("route", "reason", "code"),
        "WebSockets refused: connection caps and stopping (close code), or a problem "
        "before the upgrade (HTTP status).",
        "websocket.refusals",
        "{connection}",
        "WebSockets refused (caps, stopping, or a problem before the upgrade).",
    ),
    "hook_failures": Counter(
        "lifecycle_hook_failures",
        ("phase", "hook"),
        "Lifecycle hooks that failed or timed out (a startup one stops the start).",
        "lifecycle.hook.failures",
        "{hook}",
        "Lifecycle hooks that failed or timed out.",
    ),
}
