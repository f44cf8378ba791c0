"""Adding a receiver or a hook after the application started says what to do instead."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

import aiohttp_helpers as ah

WHAT_TO_DO = r"add receivers before it starts \(right after aiohttp_helpers\.setup\(app\)"


async def started() -> tuple[ah.Helpers, web.AppRunner]:
    app = web.Application()
    helpers = ah.setup(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    return helpers, runner


async def receiver(*args: Any) -> None: ...


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda signal: signal.append(receiver), id="append"),
        pytest.param(lambda signal: signal.insert(0, receiver), id="insert"),
        pytest.param(lambda signal: signal.extend([receiver]), id="extend"),
        pytest.param(lambda signal: signal.clear(), id="clear"),
        pytest.param(lambda signal: signal.remove(receiver), id="remove"),
        pytest.param(lambda signal: signal.pop(), id="pop"),
        pytest.param(lambda signal: signal.reverse(), id="reverse"),
        pytest.param(lambda signal: signal.__setitem__(0, receiver), id="setitem"),
        pytest.param(lambda signal: signal.__delitem__(0), id="delitem"),
        pytest.param(lambda signal: signal.__iadd__([receiver]), id="iadd"),
    ],
)
async def test_request_signals_refuse_changes_once_started(
    change: Callable[[Any], object],
) -> None:
    helpers, runner = await started()
    signal = helpers.signals.on_upload
    try:
        with pytest.raises(ah.FrozenSignalError, match=f"receivers of on_upload: .*{WHAT_TO_DO}"):
            change(signal)
    finally:
        await runner.cleanup()


async def test_the_lifecycle_state_signal_refuses_a_late_receiver() -> None:
    helpers, runner = await started()
    try:
        with pytest.raises(ah.FrozenSignalError, match=f"on_state_change: .*{WHAT_TO_DO}"):
            helpers.lifecycle.on_state_change.append(receiver)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("kind", ["on_startup", "on_shutdown", "on_cleanup", "context"])
async def test_a_late_hook_is_refused_saying_when_to_register(kind: str) -> None:
    helpers, runner = await started()

    async def hook(app: web.Application) -> AsyncIterator[None]:
        yield

    async def plain(app: web.Application) -> None: ...

    register = getattr(helpers.lifecycle, kind)
    try:
        with pytest.raises(
            ah.FrozenSignalError,
            match=r"has already started \(register hooks before it starts: right after "
            r"aiohttp_helpers\.setup\(app\), before web\.run_app\(\) or add_subapp\(\)\)",
        ):
            register(hook if kind == "context" else plain, name="late")
    finally:
        await runner.cleanup()


def test_frozen_signal_error_is_a_runtime_error_everywhere_it_is_named() -> None:
    assert issubclass(ah.FrozenSignalError, RuntimeError)
    assert ah.FrozenSignalError is ah.lifecycle.FrozenSignalError
    assert ah.FrozenSignalError is ah.signals.FrozenSignalError
    assert "FrozenSignalError" in ah.__all__


def test_before_startup_changes_are_allowed() -> None:
    helpers = ah.setup(web.Application())
    signal = helpers.signals.on_upload
    signal.append(receiver)
    signal.insert(0, receiver)
    del signal[0]
    signal.remove(receiver)
    assert list(signal) == []
