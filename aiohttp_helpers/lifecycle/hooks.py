"""Registering lifecycle hooks: what a hook is, the checks, and the decorators."""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast, overload

from aiohttp import web

from .. import _validate
from .errors import FrozenSignalError

if TYPE_CHECKING:
    from .core import Lifecycle

__all__ = [
    "AppHook",
    "ContextDecorator",
    "ContextHook",
    "Hook",
    "HookDecorator",
    "Kind",
    "Phase",
    "Registration",
    "check_seconds",
    "hook_name",
]

#: ``async def hook(app) -> None``: what ``on_startup``, ``on_shutdown`` and ``on_cleanup`` take.
AppHook = Callable[[web.Application], Awaitable[object]]
#: An async generator function of the app (one ``yield``), or a callable returning an async
#: context manager: what ``context`` takes, as aiohttp's ``cleanup_ctx`` does.
ContextHook = Callable[[web.Application], AsyncIterator[Any] | AbstractAsyncContextManager[Any]]

_H = TypeVar("_H", bound=AppHook)
_C = TypeVar("_C", bound=ContextHook)
_D = TypeVar("_D")

Kind = Literal["startup", "shutdown", "cleanup", "context"]
Phase = Literal["startup", "shutdown", "cleanup"]


@dataclass(eq=False, slots=True)
class Hook:
    """One registered hook (or stop step) of one app."""

    kind: Kind
    name: str
    func: Callable[..., Any]
    after: tuple[str, ...]
    timeout: float | None
    owner: Lifecycle
    seq: int


def hook_name(func: Callable[..., Any]) -> str:
    """The name a hook gets when ``name=`` is not given: its function's."""
    while isinstance(func, functools.partial):
        func = func.func
    name = getattr(func, "__name__", None)
    return name if isinstance(name, str) else repr(func)


def _is_async_callable(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 (an object with an async __call__)
    )


def check_seconds(what: str, value: object, *, positive: bool = False) -> float:
    """``value`` as seconds: a number of zero or more (above zero when ``positive``).

    Raises:
        TypeError: not a number (booleans included).
        ValueError: negative (zero too, when ``positive``), or NaN.
    """
    if positive:
        _validate.positive(what, value, noun="a number of seconds", show="value")
    else:
        _validate.non_negative(what, value, noun="a number of seconds", show="value")
    return float(value)  # type: ignore[arg-type]  # checked to be a number just above


def _check_options(name: object, after: object, timeout: object) -> tuple[str, ...]:
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if isinstance(after, str):
        after = (after,)
    if not isinstance(after, Iterable):
        raise TypeError(f"after= takes a hook name or an iterable of names, got {after!r}")
    names = tuple(after)
    for dep in names:
        if not isinstance(dep, str) or not dep:
            raise TypeError(f"after= takes hook names (non-empty str), got {dep!r}")
    if timeout is not None:
        check_seconds("timeout", timeout, positive=True)
    return names


def _register(
    lifecycle: Lifecycle,
    kind: Kind,
    func: Any,
    name: str | None,
    after: tuple[str, ...],
    timeout: float | None,
) -> None:
    if lifecycle._root is not None:
        raise FrozenSignalError(
            f"cannot register {kind} hook {name or hook_name(func)!r}: the application "
            "has already started (register hooks before it starts: right after "
            "aiohttp_helpers.setup(app), before web.run_app() or add_subapp())"
        )
    if not callable(func):
        raise TypeError(f"a {kind} hook must be callable, got {type(func).__name__}")
    label = "lifecycle.context" if kind == "context" else f"lifecycle.on_{kind}"
    if kind == "context":
        if _is_async_callable(func):
            raise TypeError(
                f"{label} takes an async generator function or a function returning an "
                f"async context manager; {hook_name(func)!r} is a coroutine function "
                "(use lifecycle.on_startup / on_cleanup)"
            )
    elif inspect.isasyncgenfunction(func):
        raise TypeError(
            f"{label} takes an async function; {hook_name(func)!r} is an async "
            "generator function (use lifecycle.context)"
        )
    elif not _is_async_callable(func):
        raise TypeError(f"{label} takes an async function, got {func!r}")
    name = name or hook_name(func)
    hooks = lifecycle._hooks
    if name in hooks:
        raise ValueError(
            f"a lifecycle hook named {name!r} is already registered on this app; "
            "give this one another name with name="
        )
    hooks[name] = Hook(kind, name, func, after, timeout, lifecycle, len(hooks))


def _decorate(
    lifecycle: Lifecycle,
    kind: Kind,
    func: Any,
    name: str | None,
    after: str | Iterable[str],
    timeout: float | None,
) -> Any:
    deps = _check_options(name, after, timeout)

    def register(func: Any) -> Any:
        _register(lifecycle, kind, func, name, deps, timeout)
        return func

    return register if func is None else register(func)


class HookDecorator(Protocol):
    """``on_startup``, ``on_shutdown`` and ``on_cleanup``: bare, or called with options."""

    @overload
    def __call__(
        self, func: _H, /, *, name: str | None = ..., after: str | Iterable[str] = ...,
        timeout: float | None = ...,
    ) -> _H: ...  # fmt: skip
    @overload
    def __call__(
        self, func: None = None, /, *, name: str | None = ...,
        after: str | Iterable[str] = ..., timeout: float | None = ...,
    ) -> Callable[[_H], _H]: ...  # fmt: skip


class ContextDecorator(Protocol):
    """``context``: bare, or called with options."""

    @overload
    def __call__(
        self, func: _C, /, *, name: str | None = ..., after: str | Iterable[str] = ...,
        timeout: float | None = ...,
    ) -> _C: ...  # fmt: skip
    @overload
    def __call__(
        self, func: None = None, /, *, name: str | None = ...,
        after: str | Iterable[str] = ..., timeout: float | None = ...,
    ) -> Callable[[_C], _C]: ...  # fmt: skip


class Registration(Generic[_D]):
    """A decorator method of :class:`Lifecycle` that registers hooks of one kind.

    One implementation serves the four decorators; ``_D`` (a :class:`HookDecorator` or
    :class:`ContextDecorator`) gives each its overloads. Read on the class, it is a plain
    function with the decorator's docstring and signature, for ``help()`` and autodoc.
    """

    def __init__(self, kind: Kind, doc: str) -> None:
        def method(
            self: Lifecycle,
            func: Any = None,
            /,
            *,
            name: str | None = None,
            after: str | Iterable[str] = (),
            timeout: float | None = None,
        ) -> Any:
            return _decorate(self, kind, func, name, after, timeout)

        method.__doc__ = doc
        self._method = method

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._method.__name__ = name
        self._method.__qualname__ = f"{owner.__qualname__}.{name}"
        self._method.__module__ = owner.__module__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Callable[..., Any]: ...
    @overload
    def __get__(self, obj: Lifecycle, owner: type[Any]) -> _D: ...
    def __get__(self, obj: Lifecycle | None, owner: type[Any]) -> Callable[..., Any] | _D:
        if obj is None:
            return self._method
        return cast(_D, types.MethodType(self._method, obj))
