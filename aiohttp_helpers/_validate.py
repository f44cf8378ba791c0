"""The checks of numeric options: one place for ``TypeError`` / ``ValueError`` at start-up."""

from __future__ import annotations

from typing import Literal, TypedDict, Unpack

__all__ = ["Kind", "non_negative", "number", "positive"]

#: What a ``TypeError`` shows of the value it refuses: its type, its repr, or nothing.
Shown = Literal["type", "value", "none"]


class Kind(TypedDict, total=False):
    """What a value must be, and how a ``TypeError`` says so."""

    #: An ``int`` (not a ``float``) is required.
    integer: bool
    #: What the message says the value must be ("a number" or "an int" unless given).
    noun: str
    #: What follows ``"{name} must be {noun}"``: ``", got {type}"`` by default.
    show: Shown


def number(name: str, value: object, **kind: Unpack[Kind]) -> int | float:
    """``value`` if it is a number (an ``int`` when ``integer``), never a ``bool``.

    Raises:
        TypeError: ``"{name} must be {noun}, got {type}"`` (``show`` says what follows
            the comma, if anything).
    """
    integer = kind.get("integer", False)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        expected = kind.get("noun") or ("an int" if integer else "a number")
        shown = {"type": f", got {type(value).__name__}", "value": f", got {value!r}"}
        raise TypeError(f"{name} must be {expected}{shown.get(kind.get('show', 'type'), '')}")
    return value


def positive(
    name: str, value: object, *, optional: bool = False, got: bool = True, **kind: Unpack[Kind]
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
    if not number(name, value, **kind) > 0:
        raise ValueError(f"{name} must be positive" + (f", got {value!r}" if got else ""))


def non_negative(
    name: str,
    value: object,
    *,
    rule: str = "must not be negative",
    got: bool = True,
    **kind: Unpack[Kind],
) -> None:
    """Check that ``value`` is a number of zero or more (NaN is not).

    Raises:
        TypeError: not a number (see :func:`number`).
        ValueError: ``"{name} {rule}, got {value}"`` (without the value when ``got`` is
            false).
    """
    if not number(name, value, **kind) >= 0:
        raise ValueError(f"{name} {rule}" + (f", got {value!r}" if got else ""))
