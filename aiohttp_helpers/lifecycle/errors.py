"""The lifecycle's errors: a hook failed, ran too long, or was ordered impossibly.

They are programming and operating errors, never HTTP answers (the ``RuntimeError``
family, outside the :class:`~aiohttp_helpers.HelpersError` tree)::

    RuntimeError
     +-- HookError               a hook failed (its exception is __cause__)
     |    +-- HookTimeout        a hook ran past its timeout
     +-- FrozenSignalError       a receiver or hook added after the app started
    ValueError
     +-- HookOrderError          after= names an unknown hook, or a cycle
    ExceptionGroup
     +-- TeardownError           shutdown or cleanup hooks failed (all still ran)
"""

from __future__ import annotations

from ..signals import FrozenSignalError

__all__ = ["FrozenSignalError", "HookError", "HookOrderError", "HookTimeout", "TeardownError"]


class HookError(RuntimeError):
    """A lifecycle hook failed; the message names the hook, its phase and its app.

    The hook's own exception is ``__cause__``. When a startup hook fails, the errors of
    tearing down what had started are in ``teardown_errors`` (and in the notes).
    """

    def __init__(self, phase: str, hook: str, where: str, detail: str) -> None:
        super().__init__(f"{phase} hook {hook!r}{where} {detail}")
        self.phase = phase
        self.hook = hook
        self.teardown_errors: list[HookError] = []


class HookTimeout(HookError):
    """A lifecycle hook ran past its ``timeout``."""

    def __init__(self, phase: str, hook: str, where: str, timeout: float) -> None:
        super().__init__(phase, hook, where, f"did not finish within {timeout:g} seconds")
        self.timeout = timeout


class HookOrderError(ValueError):
    """Hooks name an unknown hook in ``after=``, or depend on each other in a cycle.

    Raised when the application starts, before any hook runs.
    """


class TeardownError(ExceptionGroup[HookError]):
    """Shutdown or cleanup hooks failed; every other hook still ran."""

    @property
    def errors(self) -> list[HookError]:
        """The hooks' errors, in the order the hooks ran."""
        return [error for error in self.exceptions if isinstance(error, HookError)]
