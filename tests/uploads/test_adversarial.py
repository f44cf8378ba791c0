"""An adversarial corpus: hostile multipart requests from published advisories, each answered right.

Every case is a request that hurt some multipart parser (named in ``source``: the advisory,
or the class of bug when no single advisory fits), sent over a real socket to a real
server, byte for byte as written here. Each gets its expected answer: a status and a
problem type, or a 200 with what a careful handler should see. While the request is in
flight, and after it, the same server must keep answering ``GET /ping`` promptly; when it
is over, no temporary file is left and nothing was logged at warning or above (tornado's
CVE-2025-47287 was a log flood from malformed multipart bodies).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from aiohttp.http_exceptions import HttpProcessingError

from tests.support.apps import Serve
from tests.support.corpus import (
    CORPUS,
    LIMITS,
    PROMPT,
    Case,
    Route,
    corpus_app,
    exchange,
    ping_until,
    wire_body,
)
from tests.support.net import until
from tests.support.uploads import listing, open_files


@pytest.mark.parametrize(
    ("case", "route"),
    [pytest.param(c, r, id=f"{c.id}-{r}") for c in CORPUS for r in c.routes],
)
async def test_corpus(
    case: Case, route: Route, serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spool = tmp_path / "spool"
    dest = tmp_path / "dest"
    spool.mkdir()
    dest.mkdir()
    url = await serve(corpus_app(LIMITS.replace(tmp_dir=spool, **case.limits), dest))
    body = wire_body(case, case.body())

    stop = asyncio.Event()
    pinging = asyncio.create_task(ping_until(url, stop))
    try:
        answers = await exchange(url, case, f"/{route}", body)
    finally:
        stop.set()
        pings = await pinging

    answer = answers[0]
    assert answer.status == case.expected(route), answer.body[:300]
    assert answer.status != 500
    doc = json.loads(answer.body) if answer.body.startswith(b"{") else None
    if answer.status == 200:
        assert case.check is not None
        case.check(doc, dest)
    elif case.problem is not None:
        assert doc is not None, answer.body[:300]
        assert doc["status"] == answer.status
        assert doc["type"].endswith(case.problem), doc
    for extra in answers[1:]:
        assert extra.status == 200
        assert extra.body == b"pong"
    # The server kept answering others, and nothing of the request is left behind.
    assert max(pings) < PROMPT, f"GET /ping took {max(pings):.2f} s"
    await until(lambda: listing(spool) == [], 3.0, what="the spool emptied")
    assert open_files(spool) == []
    loud = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING
        # aiohttp's HTTP parser refusing a request before any handler runs logs it itself.
        and not (r.exc_info and isinstance(r.exc_info[1], HttpProcessingError))
    ]
    assert not loud, [r.getMessage() for r in loud]


def test_every_case_is_documented() -> None:
    ids = [c.id for c in CORPUS]
    assert len(ids) == len(set(ids))
    for case in CORPUS:
        assert len(case.source) > 20, case.id
        for route in case.routes:
            status = case.expected(route)
            assert status in (200, 400, 408, 413, 415), case.id
            assert (status == 200) == (case.check is not None) or isinstance(case.status, dict)
