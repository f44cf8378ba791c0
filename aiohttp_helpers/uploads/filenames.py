"""``safe_filename()``: a client's filename made safe to join to a directory path."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["safe_filename"]

MAX_NAME_BYTES = 255
# Device names Windows reserves whatever the extension (CON, CON.txt, com1.tar.gz ...).
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{p}{d}" for p in ("COM", "LPT") for d in [*"0123456789", "\u00b9", "\u00b2", "\u00b3"]]
)
# C0 and C1 controls, DEL, the characters Windows refuses in a name, and the bidirectional
# controls that make "gpj.exe" display as "exe.jpg".
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"|?*\u200e\u200f\u202a-\u202e\u2066-\u2069]')
_SPACES = re.compile(r"\s+")
# Slashes that NFKC leaves alone but that a person, a shell script or another program may
# still read as one: division slash, fraction slash, the mathematical and box-drawing
# solidi. Treated as separators, like "/" and "\\".
_SEPARATORS = re.compile("[\\\\\u2044\u2215\u2571\u2572\u29f5\u29f8\u29f9]")


def _cut(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    encoded = name.encode("utf-8")
    if len(encoded) <= limit:
        return name
    return encoded[:limit].decode("utf-8", "ignore")


def safe_filename(raw: str | None, *, default: str = "upload", max_bytes: int = 255) -> str:
    """A version of ``raw`` that is safe to use as one path component.

    Normalises to NFKC first, so that full-width and compatibility forms of ``.``, ``/``
    and ``\\`` (U+FF0E, U+FF0F, U+2025, U+FF3C) are the characters they look like. Keeps the
    last path component (``/``, ``\\`` and the slashes NFKC keeps, such as U+2215 and
    U+2044, all separate directories), removes
    NUL, control characters, bidirectional controls and the characters Windows refuses
    (``<>:"|?*``), collapses
    runs of whitespace, strips leading dots and spaces (no hidden files, no ``..``) and
    trailing dots and spaces (Windows drops them), prefixes a Windows device name
    (``CON``, ``nul.txt``, ``COM1``...) with ``_`` and cuts the name to
    ``max_bytes`` UTF-8 bytes while keeping its extension. Returns ``default`` when
    nothing usable is left.

    Raises:
        ValueError: ``default`` is not itself a safe name, or ``max_bytes`` is too small.
    """
    if max_bytes < 16 or max_bytes > MAX_NAME_BYTES:
        raise ValueError(f"max_bytes must be between 16 and {MAX_NAME_BYTES}, got {max_bytes}")
    if raw is None:
        raw = ""
    # NFKC first: full-width and compatibility forms (U+FF0E, U+FF0F, U+FF3C, U+2025...)
    # become the dots and slashes they look like before anything is stripped.
    name = unicodedata.normalize("NFKC", raw)
    name = _SEPARATORS.sub("/", name).rsplit("/", 1)[-1]
    name = _UNSAFE.sub("", name)
    if not name.isascii():
        # What was removed may have kept two characters from composing.
        name = unicodedata.normalize("NFKC", name)
    name = _SPACES.sub(" ", name)
    name = name.lstrip(". ").rstrip(". ")
    if not name:
        if default != safe_filename(default, default="upload", max_bytes=max_bytes):
            raise ValueError(f"default {default!r} is not a safe filename")
        return default
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if stem.split(".", 1)[0].upper().rstrip(" ") in _RESERVED:
        name = "_" + name
        stem = "_" + stem
    if len(name.encode("utf-8")) > max_bytes:
        suffix = "." + ext if dot else ""
        if len(suffix.encode("utf-8")) > max_bytes // 2:
            # An "extension" this long is part of the name, not a type.
            stem, suffix = name, ""
        name = _cut(stem, max_bytes - len(suffix.encode("utf-8"))).rstrip(". ") + suffix
    return name
