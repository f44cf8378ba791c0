"""Request-level signals: start, end, error, upload, WebSocket open and close."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVarTuple

from aiohttp import web
from aiosignal import Signal

if TYPE_CHECKING:
    from .uploads import UploadedFile

__all__ = ["FrozenSignalError", "RequestSignals", "SafeSignal"]

log = logging.getLogger("aiohttp_helpers.signals")

_Ts = TypeVarTuple("_Ts")


class FrozenSignalError(RuntimeError):
    """A receiver or a lifecycle hook was added after the application started.

    The package's signals (and the lifecycle's hooks) are frozen when the application
    starts, as aiohttp freezes its own; the message names the signal and says what to do
    instead.
    """


def _too_late(name: str) -> FrozenSignalError:
    return FrozenSignalError(
        f"cannot change the receivers of {name}: the application has started and its "
        "signals are frozen; add receivers before it starts (right after "
        "aiohttp_helpers.setup(app), before web.run_app() or add_subapp())"
    )


class SafeSignal(Signal[*_Ts]):
    """An :class:`aiosignal.Signal` whose failing receivers do not stop the others.

    Receivers run in the order they were added. A receiver that raises is logged with
    its traceback and the next one runs; in ``strict`` mode the first error is re-raised
    after every receiver has run (meant for tests).
    """

    __slots__ = ("_name", "_strict")

    def __init__(self, owner: object, name: str, *, strict: bool = False) -> None:
        super().__init__(owner)
        self._name = name
        self._strict = strict

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<SafeSignal {self._name} frozen={self.frozen} receivers={list(self)!r}>"

    # aiosignal's frozen list says only "Cannot modify frozen list": say what to do instead.
    def _check_open(self) -> None:
        if self.frozen:
            raise _too_late(self._name)

    async def send(self, *args: *_Ts, **kwargs: Any) -> None:
        if not self.frozen:
            raise RuntimeError(f"cannot send non-frozen signal {self._name}")
        first: BaseException | None = None
        for receiver in self:
            try:
                await receiver(*args, **kwargs)
            except Exception as exc:
                log.exception("receiver %r of %s failed", receiver, self._name)
                if first is None:
                    first = exc
        if first is not None and self._strict:
            raise first


def _guarded(name: str) -> Callable[..., Any]:
    change = getattr(Signal, name)

    def guarded(self: SafeSignal[*tuple[Any, ...]], *args: Any) -> Any:
        self._check_open()
        return change(self, *args)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__doc__ = change.__doc__
    return guarded


# Every way of changing the list of receivers checks first, so that a late receiver is
# told what to do instead (aiosignal's frozen list implements each of them on its own).
for _name in (
    "append", "insert", "extend", "__iadd__", "__setitem__", "__delitem__", "remove", "pop",
    "clear", "reverse",
):  # fmt: skip
    setattr(SafeSignal, _name, _guarded(_name))


class RequestSignals:
    """The request-level signals of one application.

    Each is an :class:`aiosignal.Signal` (append async receivers to it) and is frozen
    with the app. Receivers get:

    - ``on_request_start(request)``
    - ``on_request_end(request, response, seconds)``: every answered request, including
      an ``HTTPException`` raised by the handler (``response`` is that exception, with its
      status) and a package error answered with its problem document
    - ``on_request_error(request, exc)``: an exception that is not an ``HTTPException``
      (aiohttp answers it with a 500), or the handler's cancellation
      (``asyncio.CancelledError``); each request gets ``on_request_end`` or this, not both
    - ``on_upload(request, uploaded_file)``: each file ``read_form()`` has finished
    - ``on_ws_open(request, ws)`` / ``on_ws_close(request, ws, code, reason)``
    """

    __slots__ = (
        "on_request_end",
        "on_request_error",
        "on_request_start",
        "on_upload",
        "on_ws_close",
        "on_ws_open",
        "strict",
    )

    def __init__(self, owner: object, *, strict: bool = False) -> None:
        self.strict = strict
        self.on_request_start: SafeSignal[web.Request] = SafeSignal(
            owner, "on_request_start", strict=strict
        )
        self.on_request_end: SafeSignal[web.Request, web.StreamResponse, float] = SafeSignal(
            owner, "on_request_end", strict=strict
        )
        self.on_request_error: SafeSignal[web.Request, BaseException] = SafeSignal(
            owner, "on_request_error", strict=strict
        )
        self.on_upload: SafeSignal[web.Request, UploadedFile] = SafeSignal(
            owner, "on_upload", strict=strict
        )
        self.on_ws_open: SafeSignal[web.Request, web.WebSocketResponse] = SafeSignal(
            owner, "on_ws_open", strict=strict
        )
        self.on_ws_close: SafeSignal[web.Request, web.WebSocketResponse, int, str] = SafeSignal(
            owner, "on_ws_close", strict=strict
        )

    def __iter__(self) -> Iterator[SafeSignal[*tuple[Any, ...]]]:
        yield self.on_request_start
        yield self.on_request_end
        yield self.on_request_error
        yield self.on_upload
        yield self.on_ws_open
        yield self.on_ws_close

    @property
    def frozen(self) -> bool:
        return self.on_request_start.frozen

    def freeze(self) -> None:
        """Freeze every signal: no receiver can be added after this."""
        for signal in self:
            signal.freeze()

    @property
    def wants_request_events(self) -> bool:
        """Whether any receiver listens to the per-request signals."""
        return bool(self.on_request_start or self.on_request_end or self.on_request_error)
