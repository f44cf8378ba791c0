"""The lifecycle's messages count what they count: "1 hook", never "1 hooks"."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

import aiohttp_helpers as ah


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        pytest.param(1, "started 1 lifecycle hook in ", id="one"),
        pytest.param(2, "started 2 lifecycle hooks in ", id="two"),
    ],
)
async def test_the_start_is_counted(
    caplog: pytest.LogCaptureFixture, hooks: int, message: str
) -> None:
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    for n in range(hooks):

        async def hook(app: web.Application) -> None: ...

        lifecycle.on_startup(hook, name=f"hook-{n}")
    runner = web.AppRunner(app, handle_signals=False)
    with caplog.at_level(logging.INFO, logger="aiohttp_helpers.lifecycle"):
        await runner.setup()
    await runner.cleanup()
    assert any(r.getMessage().startswith(message) for r in caplog.records)


async def test_a_failed_start_counts_what_it_tore_down(caplog: pytest.LogCaptureFixture) -> None:
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle

    @lifecycle.on_cleanup(name="files")
    async def files(app: web.Application) -> None: ...

    @lifecycle.on_startup(name="connect", after="files")
    async def connect(app: web.Application) -> None:
        raise ConnectionRefusedError("no database")

    runner = web.AppRunner(app, handle_signals=False)
    with (
        caplog.at_level(logging.ERROR, logger="aiohttp_helpers.lifecycle"),
        pytest.raises(ah.HookError, match="startup hook 'connect' failed"),
    ):
        await runner.setup()
    assert (
        "startup hook 'connect' failed: ConnectionRefusedError: no database; "
        "tore down the 1 hook that had started"
    ) in [r.getMessage() for r in caplog.records]
