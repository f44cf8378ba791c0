"""Lifecycle hooks on real runners: order, dependencies, timeouts, failures, state, draining."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType, web

import aiohttp_helpers as ah
from tests.support.apps import Serve, helped_app, record_stop

Events = list[str]
T = TypeVar("T")


def state(of: ah.Lifecycle | ah.Helpers) -> ah.AppState:
    return of.state


async def start(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    return runner


def recorder(events: Events, label: str, *, fail: BaseException | None = None) -> Any:
    async def hook(app: web.Application) -> None:
        events.append(label)
        if fail is not None:
            raise fail

    return hook


def context(events: Events, label: str, *, fail_exit: BaseException | None = None) -> Any:
    async def hook(app: web.Application) -> AsyncIterator[None]:
        events.append(f"{label}+")
        yield
        events.append(f"{label}-")
        if fail_exit is not None:
            raise fail_exit

    return hook


def blocks(entered: asyncio.Event) -> Any:
    """A hook that says it has started, then hangs."""

    async def hook(app: web.Application) -> None:
        entered.set()
        await asyncio.sleep(10)

    return hook


async def cancel_once_entered(entered: asyncio.Event, step: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(step)
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def fail_plain_startup(app: web.Application) -> None:
    """Add a plain aiohttp startup hook (not the package's) that fails."""

    async def plain_fails(app: web.Application) -> None:
        raise RuntimeError("plain")

    app.on_startup.append(plain_fails)


async def start_and_fail_plainly(app: web.Application) -> None:
    """Start app with a failing plain startup hook; nobody cleans up after it."""
    fail_plain_startup(app)
    with contextlib.suppress(RuntimeError):
        await web.AppRunner(app, handle_signals=False).setup()


async def run_and_fail_plain_shutdown(app: web.Application, *, first: bool) -> None:
    """Start app, then stop it with a failing plain shutdown hook: first, or after ours."""

    async def plain_shutdown(app: web.Application) -> None:
        raise RuntimeError("plain shutdown")

    app.on_shutdown.insert(0 if first else len(app.on_shutdown), plain_shutdown)
    runner = await start(app)
    with contextlib.suppress(RuntimeError):
        await runner.cleanup()


async def in_own_loop(
    main: Callable[[web.Application, ah.Lifecycle], Coroutine[Any, Any, T]],
) -> T:
    """Run main(app, lifecycle) on a fresh set-up app in a loop of its own, closed the way
    asyncio.run() closes one."""

    async def run() -> T:
        app = web.Application()
        return await main(app, ah.setup(app).lifecycle)

    return await asyncio.to_thread(lambda: asyncio.run(run()))


# -- registering ---------------------------------------------------------------------------


def test_decorator_forms_return_the_function() -> None:
    lifecycle = ah.setup(web.Application()).lifecycle

    async def bare(app: web.Application) -> None: ...

    async def configured(app: web.Application) -> None: ...

    async def direct(app: web.Application) -> None: ...

    assert lifecycle.on_startup(bare) is bare
    assert lifecycle.on_shutdown(name="c", after=["bare"], timeout=1)(configured) is configured
    assert lifecycle.on_cleanup(direct, name="d", after="c") is direct


async def _agen(app: web.Application) -> AsyncIterator[None]:
    yield


async def _coro(app: web.Application) -> None: ...


def _sync(app: web.Application) -> None: ...


@pytest.mark.parametrize(
    ("kind", "func", "kwargs", "exc", "match"),
    [
        pytest.param(
            "on_startup", _coro, {"name": ""}, TypeError, "non-empty str", id="name-empty"
        ),
        pytest.param("on_startup", _coro, {"name": 3}, TypeError, "non-empty str", id="name-type"),
        pytest.param("on_startup", _coro, {"after": [1]}, TypeError, "hook names", id="after-item"),
        pytest.param("on_startup", _coro, {"after": 5}, TypeError, "iterable", id="after-type"),
        pytest.param("on_startup", _coro, {"timeout": 0}, ValueError, "positive", id="timeout-0"),
        pytest.param(
            "on_startup", _coro, {"timeout": -1}, ValueError, "positive", id="timeout-neg"
        ),
        pytest.param(
            "on_startup", _coro, {"timeout": True}, TypeError, "seconds", id="timeout-bool"
        ),
        pytest.param("on_startup", _coro, {"timeout": "1"}, TypeError, "seconds", id="timeout-str"),
        pytest.param("on_startup", _sync, {}, TypeError, "takes an async function", id="sync"),
        pytest.param("on_cleanup", _agen, {}, TypeError, "use lifecycle.context", id="agen"),
        pytest.param("context", _coro, {}, TypeError, "coroutine function", id="ctx-coro"),
        pytest.param("on_shutdown", 42, {}, TypeError, "must be callable", id="not-callable"),
    ],
)
def test_registration_is_validated(
    kind: str, func: object, kwargs: dict[str, Any], exc: type[Exception], match: str
) -> None:
    lifecycle = ah.setup(web.Application()).lifecycle
    with pytest.raises(exc, match=match):
        getattr(lifecycle, kind)(func, **kwargs)


def test_names_are_unique_per_app() -> None:
    lifecycle = ah.setup(web.Application()).lifecycle
    lifecycle.on_startup(_coro)
    with pytest.raises(ValueError, match=r"named '_coro' is already registered.*name="):
        lifecycle.on_cleanup(_coro)
    lifecycle.on_cleanup(_coro, name="other")


def test_default_names() -> None:
    lifecycle = ah.setup(web.Application()).lifecycle

    class Hook:
        async def __call__(self, app: web.Application) -> None: ...

    lifecycle.on_startup(functools.partial(_coro))
    lifecycle.on_startup(Hook())  # an object has no __name__: its repr names it
    with pytest.raises(ValueError, match="'_coro' is already registered"):
        lifecycle.on_cleanup(_coro)


async def test_registering_after_start_is_refused() -> None:
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    runner = await start(app)
    with pytest.raises(RuntimeError, match="already started"):
        lifecycle.on_startup(_coro)
    await runner.cleanup()


# -- order ---------------------------------------------------------------------------------


async def test_dependency_order_and_exact_reverse_teardown() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.on_startup(recorder(events, "warm"), name="warm", after=["cache", "db"])
    lifecycle.context(context(events, "cache"), name="cache", after="db")
    lifecycle.on_cleanup(recorder(events, "close-files"), name="files")
    lifecycle.on_shutdown(recorder(events, "flush"), name="flush", after="cache")
    lifecycle.context(context(events, "db"), name="db")
    lifecycle.on_shutdown(recorder(events, "notify"), name="notify")

    runner = await start(app)
    assert events == ["db+", "cache+", "warm"]
    await runner.cleanup()
    # start order: files, db, cache, warm, flush, notify -> shutdown hooks newest first,
    # then cleanups newest first.
    assert events == ["db+", "cache+", "warm", "notify", "flush", "cache-", "db-", "close-files"]


async def test_hooks_get_their_own_app() -> None:
    seen: list[web.Application] = []
    parent, sub = web.Application(), web.Application()
    parent_lc, sub_lc = ah.setup(parent).lifecycle, ah.setup(sub).lifecycle

    async def note(app: web.Application) -> None:
        seen.append(app)

    parent_lc.on_startup(note, name="p")
    sub_lc.on_startup(note, name="s")
    parent.add_subapp("/sub", sub)
    runner = await start(parent)
    await runner.cleanup()
    assert seen == [parent, sub]


async def test_parent_and_sub_apps_start_in_one_order_and_stop_in_reverse() -> None:
    events: Events = []
    parent, api, admin, nested = (web.Application() for _ in range(4))
    apps = {"parent": parent, "api": api, "admin": admin, "nested": nested}
    lifecycles = {name: ah.setup(app).lifecycle for name, app in apps.items()}
    lifecycles["parent"].context(context(events, "db"), name="db")
    lifecycles["parent"].on_cleanup(recorder(events, "parent-cleanup"), name="parent-cleanup")
    # A sub-app may depend on its parent's hooks (and sees them first)...
    lifecycles["api"].context(context(events, "api-pool"), name="pool", after="db")
    lifecycles["api"].on_shutdown(recorder(events, "api-shutdown"), name="api-shutdown")
    # ...and the parent's hooks may wait for nothing of the sub-app's: tree order rules.
    lifecycles["admin"].context(context(events, "admin-pool"), name="pool")
    lifecycles["nested"].on_startup(recorder(events, "nested"), name="nested", after="pool")
    lifecycles["nested"].context(context(events, "nested-ctx"), name="ctx", after="db")

    # Plain aiohttp hooks on the sub-apps run after every package hook, and stop before.
    async def plain(app: web.Application) -> AsyncIterator[None]:
        events.append("plain+")
        yield
        events.append("plain-")

    api.cleanup_ctx.append(plain)
    admin.add_subapp("/nested", nested)
    parent.add_subapp("/api", api)
    parent.add_subapp("/admin", admin)

    runner = await start(parent)
    started = ["db+", "api-pool+", "admin-pool+", "nested", "nested-ctx+", "plain+"]
    assert events == started
    assert {lc.state for lc in lifecycles.values()} == {ah.AppState.READY}
    await runner.cleanup()
    assert events[len(started) :] == [
        "api-shutdown",
        "plain-",
        "nested-ctx-",
        "admin-pool-",
        "api-pool-",
        "parent-cleanup",
        "db-",
    ]
    assert {lc.state for lc in lifecycles.values()} == {ah.AppState.STOPPED}


async def test_sibling_sub_apps_do_not_see_each_others_hooks() -> None:
    events: Events = []
    parent, one, two = web.Application(), web.Application(), web.Application()
    ah.setup(parent)
    ah.setup(one).lifecycle.on_startup(recorder(events, "one"), name="one")
    ah.setup(two).lifecycle.on_startup(recorder(events, "two"), name="two", after="one")
    parent.add_subapp("/one", one)
    parent.add_subapp("/two", two)
    with pytest.raises(ah.HookOrderError, match=r"'two' \(sub-app /two\) runs after 'one'"):
        await start(parent)
    assert events == []


async def test_domain_sub_app_is_named_by_its_domain() -> None:
    parent, sub = web.Application(), web.Application()
    ah.setup(parent)
    ah.setup(sub).lifecycle.on_startup(_coro, after="missing")
    parent.add_domain("api.example.com", sub)
    with pytest.raises(ah.HookOrderError, match=r"\(sub-app api.example.com\)"):
        await start(parent)


async def test_sub_app_without_parent_setup_drives_itself() -> None:
    events: Events = []
    parent, sub = web.Application(), web.Application()
    lifecycle = ah.setup(sub, drain_delay=0.0).lifecycle
    lifecycle.context(context(events, "ctx"), name="ctx")
    lifecycle.on_shutdown(recorder(events, "shutdown"), name="shutdown")
    parent.add_subapp("/sub", sub)
    runner = await start(parent)
    assert state(lifecycle) is ah.AppState.READY
    await runner.cleanup()
    assert events == ["ctx+", "shutdown", "ctx-"]
    assert state(lifecycle) is ah.AppState.STOPPED


@pytest.mark.parametrize(
    ("after", "match"),
    [
        pytest.param(
            {"a": "missing"}, r"'a' runs after 'missing', which is not a hook", id="unknown"
        ),
        pytest.param({"a": "a"}, r"cycle: 'a' runs after 'a'$", id="self"),
        pytest.param({"a": "b", "b": "a"}, r"cycle: 'a' runs after 'b' runs after 'a'$", id="two"),
        pytest.param(
            {"a": "b", "b": "c", "c": "b"}, r"cycle: 'b' runs after 'c' runs after 'b'$", id="tail"
        ),
    ],
)
async def test_order_errors_come_before_anything_starts(after: dict[str, str], match: str) -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.context(context(events, "first"), name="first")
    for name in ("a", "b", "c"):
        lifecycle.on_startup(recorder(events, name), name=name, after=after.get(name, ()))
    with pytest.raises(ah.HookOrderError, match=match):
        await start(app)
    assert events == []
    assert state(lifecycle) is ah.AppState.STARTING


async def test_unknown_name_error_lists_the_known_ones() -> None:
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.on_startup(_coro, name="db")
    lifecycle.on_startup(_coro, name="cache", after="bd")
    with pytest.raises(ah.HookOrderError, match=r"known: 'cache', 'db'"):
        await start(app)


# -- failures ------------------------------------------------------------------------------


async def test_startup_failure_tears_down_what_started_in_reverse() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    states: list[ah.AppState] = []

    async def on_change(old: ah.AppState, new: ah.AppState) -> None:
        states.append(new)

    lifecycle.on_state_change.append(on_change)
    lifecycle.context(context(events, "db"), name="db")
    lifecycle.on_cleanup(recorder(events, "files-cleanup"), name="files")
    lifecycle.on_shutdown(recorder(events, "shutdown"), name="shutdown")
    lifecycle.context(context(events, "cache"), name="cache")
    lifecycle.on_startup(recorder(events, "migrate", fail=RuntimeError("no schema")), name="m")
    lifecycle.context(context(events, "never"), name="never")
    lifecycle.on_cleanup(recorder(events, "late-cleanup"), name="late")

    with pytest.raises(ah.HookError, match=r"^startup hook 'm' failed: RuntimeError: no schema$"):
        await start(app)
    # Shutdown hooks need a started app; the late cleanup never took its place.
    assert events == ["db+", "cache+", "migrate", "cache-", "files-cleanup", "db-"]
    assert states == [ah.AppState.STOPPING, ah.AppState.STOPPED]


async def test_startup_failure_reports_teardown_failures_too() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.context(context(events, "db", fail_exit=OSError("socket gone")), name="db")
    lifecycle.on_startup(recorder(events, "boom", fail=KeyError("x")), name="boom")
    with pytest.raises(ah.HookError, match="'boom' failed: KeyError") as info:
        await start(app)
    assert events == ["db+", "boom", "db-"]
    assert [str(e) for e in info.value.teardown_errors] == [
        "cleanup hook 'db' failed: OSError: socket gone"
    ]
    assert info.value.__notes__ == [
        "while tearing down after it: cleanup hook 'db' failed: OSError: socket gone"
    ]
    assert isinstance(info.value.__cause__, KeyError)


async def test_failing_shutdown_and_cleanup_hooks_never_stop_the_others() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.context(context(events, "db", fail_exit=RuntimeError("db")), name="db")
    lifecycle.on_cleanup(recorder(events, "c1"), name="c1")
    lifecycle.on_cleanup(recorder(events, "c2", fail=ValueError("c2")), name="c2")
    lifecycle.on_shutdown(recorder(events, "s1"), name="s1")
    lifecycle.on_shutdown(recorder(events, "s2", fail=RuntimeError("s2")), name="s2")

    async def plain_cleanup(app: web.Application) -> None:
        events.append("plain-cleanup")

    app.on_cleanup.append(plain_cleanup)  # after setup(): still runs before the package's
    runner = await start(app)
    with pytest.raises(ah.TeardownError, match="3 lifecycle hooks failed while stopping") as info:
        await runner.cleanup()
    assert events == ["db+", "s2", "s1", "plain-cleanup", "c2", "c1", "db-"]
    assert [(e.phase, e.hook) for e in info.value.errors] == [
        ("shutdown", "s2"),
        ("cleanup", "c2"),
        ("cleanup", "db"),
    ]
    assert str(info.value).startswith("3 lifecycle hooks failed while stopping: 's2', 'c2', 'db'")
    assert state(lifecycle) is ah.AppState.STOPPED


async def test_one_failing_hook_is_reported_alone() -> None:
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.on_cleanup(recorder([], "c", fail=RuntimeError("c")), name="c")
    runner = await start(app)
    with pytest.raises(ah.TeardownError, match=r"^1 lifecycle hook failed while stopping: 'c'"):
        await runner.cleanup()


async def test_context_forms() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle

    class Pool:
        def __init__(self, app: web.Application) -> None:
            self.app = app

        async def __aenter__(self) -> Pool:
            events.append("pool+")
            return self

        async def __aexit__(self, *exc: object) -> None:
            events.append("pool-")

    lifecycle.context(Pool, name="pool")
    lifecycle.context(functools.partial(context(events, "partial")), name="partial")
    gen_fn = context(events, "gen-object")
    lifecycle.context(lambda app: gen_fn(app), name="gen-object")
    runner = await start(app)
    await runner.cleanup()
    assert events == ["pool+", "partial+", "gen-object+", "gen-object-", "partial-", "pool-"]


async def test_context_returning_something_else_fails_naming_it() -> None:
    app = web.Application()
    ah.setup(app).lifecycle.context(lambda app: 42, name="odd")  # type: ignore[type-var]
    with pytest.raises(
        ah.HookError, match=r"'odd' failed: TypeError: .*returned int, not an async"
    ):
        await start(app)


async def test_context_yielding_twice_fails_at_exit() -> None:
    app = web.Application()

    async def twice(app: web.Application) -> AsyncIterator[None]:
        yield
        yield

    ah.setup(app).lifecycle.context(twice)
    runner = await start(app)
    with pytest.raises(ah.TeardownError) as info:
        await runner.cleanup()
    assert "cleanup hook 'twice' failed: RuntimeError: generator didn't stop" in str(
        info.value.errors[0]
    )


# -- timeouts and durations ----------------------------------------------------------------


async def test_startup_timeout_names_the_hook() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.context(context(events, "db"), name="db")

    @lifecycle.on_startup(name="slow", timeout=0.05)
    async def slow(app: web.Application) -> None:
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(ah.HookTimeout, match=r"^startup hook 'slow' did not finish within 0.05 s"):
        await start(app)
    assert time.monotonic() - started < 2
    assert events == ["db+", "db-"]


async def test_a_hooks_own_timeout_error_is_not_a_hook_timeout() -> None:
    app = web.Application()

    @ah.setup(app).lifecycle.on_startup(timeout=5)
    async def upstream(app: web.Application) -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(ah.HookError, match="failed: TimeoutError: upstream timed out") as info:
        await start(app)
    assert not isinstance(info.value, ah.HookTimeout)


async def test_teardown_timeouts_are_collected() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle

    @lifecycle.context(name="stuck", timeout=0.05)
    async def stuck(app: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.sleep(10)

    @lifecycle.on_shutdown(timeout=0.05)
    async def hanging(app: web.Application) -> None:
        await asyncio.sleep(10)

    lifecycle.on_cleanup(recorder(events, "after"), name="after")
    runner = await start(app)
    with pytest.raises(ah.TeardownError) as info:
        await runner.cleanup()
    assert events == ["after"]
    assert [type(e) for e in info.value.errors] == [ah.HookTimeout, ah.HookTimeout]
    assert [e.timeout for e in info.value.errors if isinstance(e, ah.HookTimeout)] == [
        0.05,
        0.05,
    ]


async def test_each_duration_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.on_startup(_coro, name="warm")
    lifecycle.on_cleanup(_coro, name="close")
    with caplog.at_level(logging.INFO, logger="aiohttp_helpers.lifecycle"):
        runner = await start(app)
        await runner.cleanup()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("startup hook 'warm' finished in 0.0") for m in messages)
    assert any(m.startswith("cleanup hook 'close' finished in 0.0") for m in messages)
    assert any(m.startswith("started 2 lifecycle hooks in") for m in messages)


# -- cancellation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        pytest.param("startup", ["db+", "db-"], id="startup-tears-down-and-stays-cancelled"),
        pytest.param("cleanup", ["first"], id="cleanup-still-runs-every-hook-then-says-so"),
    ],
)
async def test_cancelled_phase(phase: str, expected: Events) -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    entered = asyncio.Event()
    step: Awaitable[Any]
    if phase == "startup":
        lifecycle.context(context(events, "db"), name="db")
        lifecycle.on_startup(blocks(entered), name="waits")
        step = start(app)
    else:
        lifecycle.on_cleanup(recorder(events, "first"), name="first")
        lifecycle.on_cleanup(blocks(entered), name="slow")
        step = (await start(app)).cleanup()
    await cancel_once_entered(entered, step)
    assert events == expected
    assert state(lifecycle) is ah.AppState.STOPPED


# -- state and draining --------------------------------------------------------------------


async def test_state_changes_are_signalled() -> None:
    app, helpers = helped_app(drain_delay=0.0)
    changes: list[tuple[ah.AppState, ah.AppState]] = []

    async def on_change(old: ah.AppState, new: ah.AppState) -> None:
        changes.append((old, new))

    async def broken(old: ah.AppState, new: ah.AppState) -> None:
        raise RuntimeError("receiver bug")

    helpers.lifecycle.on_state_change.append(broken)
    helpers.lifecycle.on_state_change.append(on_change)
    assert state(helpers) is ah.AppState.STARTING
    runner = await start(app)
    assert state(helpers) is ah.AppState.READY
    await runner.cleanup()
    S = ah.AppState
    assert changes == [
        (S.STARTING, S.READY),
        (S.READY, S.DRAINING),
        (S.DRAINING, S.STOPPING),
        (S.STOPPING, S.STOPPED),
    ]


async def test_runner_cleanup_drains_before_shutdown_hooks() -> None:
    app, helpers = helped_app(drain_delay=0.3)
    seen: list[tuple[str, float]] = []
    record_stop(helpers, seen, "hook")
    runner = await start(app)
    await runner.cleanup()
    assert [name for name, _ in seen] == ["ready", "draining", "stopping", "hook", "stopped"]
    times = dict(seen)
    assert times["stopping"] - times["draining"] >= 0.29


async def test_drain_while_serving(serve: Serve) -> None:
    app, helpers = helped_app(health="/health", drain_delay=5.0)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app.router.add_get("/", hello)
    url = await serve(app)
    async with aiohttp.ClientSession() as session:
        async with session.get(url / "health/ready") as resp:
            assert (resp.status, await resp.text()) == (200, "ready\n")
        draining = asyncio.create_task(helpers.lifecycle.drain(delay=0.4))
        await asyncio.sleep(0.05)
        assert state(helpers) is ah.AppState.DRAINING
        async with session.get(url / "health/ready") as resp:
            assert (resp.status, await resp.text()) == (503, "draining\n")
        async with session.get(url / "health/live") as resp:
            assert (resp.status, await resp.text()) == (200, "draining\n")
        async with session.get(url) as resp:
            assert (resp.status, await resp.text()) == (200, "hello")
        # A second call joins the drain in progress.
        await asyncio.wait_for(helpers.lifecycle.drain(), 2)
        assert draining.done()
    # The fixture's runner.cleanup(): already drained, so no second 5 s wait.


async def test_drain_validation_and_states() -> None:
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    with pytest.raises(RuntimeError, match="has not started"):
        await lifecycle.drain()
    with pytest.raises(ValueError, match="negative"):
        await lifecycle.drain(-1)
    with pytest.raises(TypeError, match="seconds"):
        await lifecycle.drain("1")  # type: ignore[arg-type]
    runner = await start(app)
    await lifecycle.drain(0)
    assert state(lifecycle) is ah.AppState.DRAINING
    await runner.cleanup()
    await lifecycle.drain()  # stopped: nothing to drain
    assert state(lifecycle) is ah.AppState.STOPPED


async def test_sub_app_drain_drains_the_whole_tree() -> None:
    parent, sub = web.Application(), web.Application()
    parent_lc = ah.setup(parent, drain_delay=0.0).lifecycle
    sub_lc = ah.setup(sub).lifecycle
    parent.add_subapp("/sub", sub)
    runner = await start(parent)
    await sub_lc.drain()
    assert (parent_lc.state, sub_lc.state) == (ah.AppState.DRAINING, ah.AppState.DRAINING)
    await runner.cleanup()


async def test_an_app_runs_once(app: web.Application) -> None:
    runner = await start(app)
    await runner.cleanup()
    with pytest.raises(RuntimeError, match="already run and stopped"):
        await start(app)


# -- WebSockets are closed after the drain, before the shutdown hooks ----------------------


@pytest.mark.parametrize(
    ("restarting", "code"),
    [
        pytest.param(False, WSCloseCode.GOING_AWAY, id="going-away"),
        pytest.param(True, WSCloseCode.SERVICE_RESTART, id="restart"),
    ],
)
async def test_websockets_close_between_drain_and_shutdown_hooks(
    restarting: bool, code: int
) -> None:
    app, helpers = helped_app(drain_delay=0.2)
    events: Events = []

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws: web.WebSocketResponse = web.WebSocketResponse()
        await ws.prepare(request)
        helpers.websockets.add(ws)
        async for _ in ws:
            pass
        return ws

    app.router.add_get("/ws", ws_handler)

    @helpers.lifecycle.on_shutdown
    async def hook(app: web.Application) -> None:
        events.append(f"shutdown-hook:{helpers.state.value}")

    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    helpers.lifecycle.restarting = restarting
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws,
    ):
        stopping = asyncio.create_task(runner.cleanup())
        msg = await asyncio.wait_for(ws.receive(), 5)
        events.append(f"client-close:{helpers.state.value}")
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == code
        await asyncio.wait_for(stopping, 5)
    assert events == ["client-close:stopping", "shutdown-hook:stopping"]


async def test_a_failing_websocket_registry_is_reported_with_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # setup() hands the lifecycle the registry's shutdown() as its "close WebSockets" stop
    # step: the lifecycle's part of the contract is to call it, at its step, and to carry
    # on if it fails.
    async def broken(self: ah.WebSocketRegistry) -> int:
        raise RuntimeError("registry broke")

    monkeypatch.setattr(ah.WebSocketRegistry, "shutdown", broken)
    events: Events = []
    app, helpers = helped_app()
    helpers.lifecycle.on_shutdown(recorder(events, "hook"), name="hook")
    runner = await start(app)
    with pytest.raises(ah.TeardownError, match="'close WebSockets'") as info:
        await runner.cleanup()
    assert events == ["hook"]
    assert info.value.errors[0].phase == "shutdown"


# -- aiohttp's own fallbacks ---------------------------------------------------------------


async def test_plain_startup_failure_then_runner_cleanup_tears_down_once() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.context(context(events, "db"), name="db")
    lifecycle.on_shutdown(recorder(events, "shutdown"), name="shutdown")
    app.cleanup_ctx.append(context(events, "plain"))
    fail_plain_startup(app)
    runner = web.AppRunner(app, handle_signals=False)
    with pytest.raises(RuntimeError, match="plain"):
        await runner.setup()
    assert state(lifecycle) is ah.AppState.READY
    # aiohttp then only exits cleanup contexts: the package's teardown runs from there.
    await runner.cleanup()
    assert events == ["db+", "plain+", "plain-", "db-"]
    assert state(lifecycle) is ah.AppState.STOPPED


async def test_guard_tears_down_when_nobody_cleans_up() -> None:
    events: Events = []

    # asyncio.run() ends by cancelling what is left: the package's guard among it.
    async def main(app: web.Application, lifecycle: ah.Lifecycle) -> None:
        lifecycle.context(context(events, "db"), name="db")
        app.cleanup_ctx.append(context(events, "plain"))
        await start_and_fail_plainly(app)

    await in_own_loop(main)
    assert events == ["db+", "plain+", "plain-", "db-"]


async def test_on_shutdown_failure_elsewhere_still_cleans_up_at_loop_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: Events = []

    async def main(app: web.Application, lifecycle: ah.Lifecycle) -> None:
        lifecycle.context(context(events, "db"), name="db")
        await run_and_fail_plain_shutdown(app, first=False)  # aiohttp stops at it
        events.append(f"after-cleanup:{lifecycle.state.value}")

    with caplog.at_level(logging.WARNING, logger="aiohttp_helpers.lifecycle"):
        await in_own_loop(main)
    assert events == ["db+", "after-cleanup:stopping", "db-"]
    assert any("without cleaning up" in r.getMessage() for r in caplog.records)


async def test_guard_logs_teardown_errors(caplog: pytest.LogCaptureFixture) -> None:
    async def main(app: web.Application, lifecycle: ah.Lifecycle) -> None:
        lifecycle.context(context([], "db", fail_exit=RuntimeError("exit")), name="db")
        await start_and_fail_plainly(app)

    with caplog.at_level(logging.ERROR, logger="aiohttp_helpers.lifecycle"):
        await in_own_loop(main)
    assert any(r.getMessage() == "tearing down the application failed" for r in caplog.records)


# -- odd trees and odd hooks ---------------------------------------------------------------


async def test_a_sub_app_mounted_twice_starts_once() -> None:
    events: Events = []
    parent, sub = web.Application(), web.Application()
    ah.setup(parent)
    ah.setup(sub).lifecycle.context(context(events, "pool"), name="pool")
    parent.add_subapp("/v1", sub)
    parent.add_subapp("/v2", sub)
    runner = await start(parent)
    await runner.cleanup()
    assert events == ["pool+", "pool-"]


async def test_a_sub_app_shared_by_two_running_apps_is_refused() -> None:
    one, two, sub = web.Application(), web.Application(), web.Application()
    ah.setup(one)
    ah.setup(two)
    ah.setup(sub)
    one.add_subapp("/sub", sub)
    two.add_subapp("/sub", sub)
    runner = await start(one)
    with pytest.raises(RuntimeError, match=r"sub-app \(sub-app /sub\) already started as part"):
        await start(two)
    await runner.cleanup()


async def test_a_hook_raising_cancelled_error_itself_is_just_a_failure() -> None:
    events: Events = []
    app = web.Application()
    lifecycle = ah.setup(app).lifecycle
    lifecycle.on_cleanup(recorder(events, "first"), name="first")

    @lifecycle.on_cleanup
    async def awaits_a_cancelled_future(app: web.Application) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    runner = await start(app)
    with pytest.raises(ah.TeardownError) as info:
        await runner.cleanup()
    assert events == ["first"]
    assert str(info.value.errors[0]) == "cleanup hook 'awaits_a_cancelled_future' was cancelled"


async def test_forced_signal_handling_off_the_main_thread_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main(app: web.Application, lifecycle: ah.Lifecycle) -> ah.AppState:
        lifecycle.handle_signals = True
        runner = await start(app)
        ready = state(lifecycle)
        await runner.cleanup()
        return ready

    with caplog.at_level(logging.WARNING, logger="aiohttp_helpers.lifecycle"):
        assert await in_own_loop(main) is ah.AppState.READY
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("cannot drain on SIGTERM here") for m in messages)


async def test_shutdown_hooks_still_run_when_aiohttp_never_reached_ours() -> None:
    events: Events = []

    async def main(app: web.Application, lifecycle: ah.Lifecycle) -> None:
        lifecycle.on_shutdown(recorder(events, "shutdown"), name="shutdown")
        lifecycle.on_cleanup(recorder(events, "cleanup"), name="cleanup")
        await run_and_fail_plain_shutdown(app, first=True)
        events.append("runner-cleanup-failed")

    await in_own_loop(main)  # the loop's end cancels the package's guard: it tears down
    assert events == ["runner-cleanup-failed", "shutdown", "cleanup"]


async def test_a_plain_app_between_two_set_up_apps_is_walked_through() -> None:
    events: Events = []
    top, middle, leaf = web.Application(), web.Application(), web.Application()
    ah.setup(top).lifecycle.context(context(events, "db"), name="db")
    ah.setup(leaf).lifecycle.on_startup(recorder(events, "leaf"), name="leaf", after="db")
    middle.add_subapp("/leaf", leaf)  # middle never went through setup()
    top.add_subapp("/middle", middle)
    runner = await start(top)
    await runner.cleanup()
    assert events == ["db+", "leaf", "db-"]
