"""The checks of numeric options: one place for ``TypeError`` / ``ValueError`` at start-up."""

from __future__ import annotations

from typing import Literal

__all__ = ["non_negative", "number", "positive"]

#: What a ``TypeError`` shows of the value it refuses: its type, its repr, or nothing.
Shown = Literal["type", "value", "none"]


def number(
    name: str,
    value: object,
    *,
    integer: bool = False,
    noun: str | None = None,
    show: Shown = "type",
) -> int | float:
    """``value`` if it is a number (an ``int`` when ``integer``), never a ``bool``.

    Raises:
        TypeError: ``"{name} must be {noun}, got {type}"`` (``show`` says what follows
            the comma, if anything); ``noun`` is "a number" or "an int" unless given.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        expected = noun or ("an int" if integer else "a number")
        shown = {"type": f", got {type(value).__name__}", "value": f", got {value!r}"}
        raise TypeError(f"{name} must be {expected}{shown.get(show, '')}")
    return value


def positive(
    name: str,
    value: object,
    *,
    optional: bool = False,
    integer: bool = False,
    noun: str | None = None,
    show: Shown = "type",
    got: bool = True,
) -> None:
    """Check that ``value`` is a number above zero (or ``None``, when ``optional``).

    NaN is not above zero, so it is refused too.

    Raises:
        TypeError: not a number (see :func:`number`).
        ValueError: ``"{name} must be positive, got {value}"`` (without the value when
            ``got`` is false), or ``"{name} must be set"`` for ``None``.
    """
    if value is None:
        if optional:
            return
        raise ValueError(f"{name} must be set")
    checked = number(name, value, integer=integer, noun=noun, show=show)
    if not checked > 0:
        raise ValueError(f"{name} must be positive" + (f", got {value!r}" if got else ""))


def non_negative(
    name: str,
    value: object,
    *,
    integer: bool = False,
    noun: str | None = None,
    show: Shown = "type",
    rule: str = "must not be negative",
    got: bool = True,
) -> None:
    """Check that ``value`` is a number of zero or more (NaN is not).

    Raises:
        TypeError: not a number (see :func:`number`).
        ValueError: ``"{name} {rule}, got {value}"`` (without the value when ``got`` is
            false).
    """
    checked = number(name, value, integer=integer, noun=noun, show=show)
    if not checked >= 0:
        raise ValueError(f"{name} {rule}" + (f", got {value!r}" if got else ""))
