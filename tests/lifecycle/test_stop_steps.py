"""Stop steps: what setup() hands the lifecycle, run after the drain, before the shutdown hooks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

import aiohttp_helpers as ah

Events = list[str]


async def start(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    return runner


def watch_hooks(lifecycle: ah.Lifecycle, seen: list[tuple[str, str, bool]]) -> None:
    async def done(phase: str, name: str, seconds: float, error: BaseException | None) -> None:
        seen.append((phase, name, error is None))

    lifecycle.on_hook_done.append(done)


async def test_setup_registers_closing_websockets_and_ending_streams() -> None:
    app = web.Application()
    helpers = ah.setup(app)
    seen: list[tuple[str, str, bool]] = []
    watch_hooks(helpers.lifecycle, seen)
    runner = await start(app)
    await runner.cleanup()
    assert sorted(seen) == [
        ("shutdown", "close WebSockets", True),
        ("shutdown", "end streams", True),
    ]


async def test_steps_run_after_the_drain_concurrently_then_the_shutdown_hooks() -> None:
    events: Events = []
    app = web.Application()
    helpers = ah.setup(app, drain_delay=0.05)
    lifecycle = helpers.lifecycle
    both_running = asyncio.Event()
    running = 0

    def step(label: str) -> Any:
        async def run() -> None:
            nonlocal running
            events.append(f"{label}:{lifecycle.state.value}")
            running += 1
            if running == 2:
                both_running.set()
            # Each waits for the other: only a concurrent run gets past this.
            await asyncio.wait_for(both_running.wait(), 2)

        return run

    lifecycle.add_stop_step("first", step("first"))
    lifecycle.add_stop_step("second", step("second"))

    @lifecycle.on_shutdown(name="hook")
    async def hook(app: web.Application) -> None:
        events.append(f"hook:{lifecycle.state.value}")

    async def drained(old: ah.AppState, new: ah.AppState) -> None:
        events.append(f"state:{new.value}")

    lifecycle.on_state_change.append(drained)
    runner = await start(app)
    await runner.cleanup()
    assert events == [
        "state:ready",
        "state:draining",
        "state:stopping",
        "first:stopping",
        "second:stopping",
        "hook:stopping",
        "state:stopped",
    ]


async def test_a_failing_step_is_reported_and_the_others_still_run() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle

    async def broken() -> None:
        raise OSError("the feed's socket is gone")

    async def fine() -> None:
        events.append("fine")

    lifecycle.add_stop_step("end feed", broken)
    lifecycle.add_stop_step("flush", fine)

    @lifecycle.on_shutdown(name="hook")
    async def hook(app: web.Application) -> None:
        events.append("hook")

    runner = await start(app)
    message = r"^1 lifecycle hook failed while stopping: 'end feed'"
    with pytest.raises(ah.TeardownError, match=message):
        await runner.cleanup()
    assert events == ["fine", "hook"]


async def test_sub_apps_steps_run_with_the_roots() -> None:
    # The sub-app's steps run with the root's, in the same concurrent pass.
    events: Events = []
    app = web.Application()
    ah.setup(app)
    sub = web.Application()
    sub_lifecycle = ah.setup(sub).lifecycle

    async def sub_step() -> None:
        events.append("sub-step")

    sub_lifecycle.add_stop_step("sub step", sub_step)
    app.add_subapp("/sub", sub)
    runner = await start(app)
    await runner.cleanup()
    assert events == ["sub-step"]


@pytest.mark.parametrize(
    ("name", "step", "error", "match"),
    [
        pytest.param("", None, TypeError, "name must be a non-empty str", id="empty-name"),
        pytest.param(3, None, TypeError, "name must be a non-empty str", id="name-not-str"),
        pytest.param("x", 3, TypeError, "a stop step must be callable, got int", id="not-callable"),
    ],
)
def test_stop_step_arguments_are_checked(name: Any, step: Any, error: type, match: str) -> None:
    lifecycle = ah.setup(web.Application()).lifecycle

    async def ok() -> None: ...

    with pytest.raises(error, match=match):
        lifecycle.add_stop_step(name, ok if step is None else step)


async def test_a_stop_step_added_after_startup_is_refused() -> None:
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    runner = await start(app)

    async def late() -> None: ...

    try:
        with pytest.raises(ah.FrozenSignalError, match="cannot add the stop step 'late'"):
            lifecycle.add_stop_step("late", late)
    finally:
        await runner.cleanup()
