"""The example Grafana dashboard queries exactly the metrics a real ``/metrics`` scrape exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.apps import Serve
from tests.support.metrics import Demo, post
from tests.support.net import until
from tests.support.paths import ROOT

DASHBOARD = ROOT / "examples" / "grafana-dashboard.json"
#: Counters the WebSocket registry may or may not keep (issue 13): read only when present.
REGISTRY_COUNTERS = {
    "aiohttp_helpers_websocket_broadcasts_total": "broadcasts",
    "aiohttp_helpers_websocket_deliveries_total": "deliveries",
    "aiohttp_helpers_websocket_slow_closes_total": "slow_closes",
}
_NOT_METRICS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "bool", "offset", "inf", "nan"}
)  # fmt: skip
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = _GROUPING.sub("", expr)  # label lists of aggregations and vector matching
    expr = re.sub(r"\boffset\s+-?\w+", "", expr)  # offset durations
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        token = match.group()
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation operator
        if token.lower() in _NOT_METRICS:
            continue
        found.add(token)
    return found


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        pytest.param(
            'sum by (route) (rate(a_total{route=~"/x|by(y)"}[5m]))', {"a_total"}, id="rate"
        ),
        pytest.param(
            "histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))",
            {"h_bucket"},
            id="quantile",
        ),
        pytest.param("a / on (job) group_left b offset 5m", {"a", "b"}, id="binary"),
    ],
)
def test_metric_names_parser(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def exposed(text: str) -> set[str]:
    """Every series name the exposition declares, with or without samples yet."""
    out: set[str] = set()
    for family in text_string_to_metric_families(text):
        out.update(sample.name for sample in family.samples)
        if family.type == "counter":
            out.add(family.name + "_total")
        elif family.type == "histogram":
            out.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            out.add(family.name)
    return out


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.extend(panels(panel) if panel["type"] == "row" else [panel])
    return found


async def test_every_panel_queries_exported_metrics(serve: Serve, tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    demo = Demo(tmp_path, max_connections=1)
    base = await serve(demo.app)
    async with aiohttp.ClientSession() as session:
        # Some traffic, so that the labelled series have samples too.
        async with session.get(base / "items" / "1") as resp:
            assert resp.status == 200
        assert await post(session, base / "upload", ("title", "x")) == 200
        async with session.ws_connect(base.with_scheme("ws") / "ws") as ws:
            await until(lambda: len(demo.helpers.websockets) == 1)
            await demo.helpers.websockets.broadcast("hello")
            assert (await ws.receive()).data == "hello"
            async with session.ws_connect(base.with_scheme("ws") / "ws") as refused:
                await refused.receive()
        async with session.get(base / "metrics") as resp:
            text = await resp.text()
    names = exposed(text)
    registry = demo.helpers.websockets

    queried: set[str] = set()
    for panel in panels(dashboard):
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            selected = metric_names(target["expr"])
            assert selected, f"{panel['title']!r}: {target['expr']!r} selects no metric"
            queried |= selected
    for name in sorted(queried):
        if name in REGISTRY_COUNTERS and not hasattr(registry, REGISTRY_COUNTERS[name]):
            continue  # the registry of this tree does not count it (yet): nothing exported
        assert name in names, f"the dashboard queries {name}, which /metrics does not export"
    # And the dashboard shows every family the package exports.
    families = {n for n in names if n.startswith("aiohttp_helpers_")}
    unshown = {n for n in families if not n.endswith(("_count", "_sum"))} - queried
    assert not unshown, f"no panel shows {sorted(unshown)}"
