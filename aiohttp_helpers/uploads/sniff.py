"""Content types recognised from a file's leading bytes, and matching types against patterns."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SNIFF_BYTES", "sniff", "type_allowed"]

#: How many leading bytes :func:`sniff` looks at.
SNIFF_BYTES = 16

_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"ID3", "audio/mpeg"),
    (b"\x1aE\xdf\xa3", "video/webm"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x00asm", "application/wasm"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_FTYP = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"qt  ": "video/quicktime",
}
# Types that are zip archives inside: a sniffed application/zip is consistent with them.
_ZIP_BASED = (
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
    "application/epub+zip",
    "application/java-archive",
    "application/vnd.android.package-archive",
)


def sniff(head: bytes) -> str | None:
    """The media type ``head`` (a file's first :data:`SNIFF_BYTES` bytes) starts like, if known."""
    for prefix, media_type in _PREFIXES:
        if head.startswith(prefix):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        return _FTYP.get(head[8:12], "video/mp4")
    if head[:1] == b"\xff" and len(head) > 1 and head[1] & 0xE0 == 0xE0:
        return "audio/mpeg"  # an MPEG audio frame sync without an ID3 tag
    return None


def _matches(media_type: str, pattern: str) -> bool:
    if pattern in ("*/*", media_type):
        return True
    if pattern.endswith("/*"):
        return media_type.startswith(pattern[:-1])
    return False


def type_allowed(media_type: str, patterns: Iterable[str]) -> bool:
    """Whether ``media_type`` matches one of ``patterns`` (``image/png``, ``image/*``, ``*/*``)."""
    return any(_matches(media_type, p) for p in patterns)


def sniffed_allowed(sniffed: str, declared: str, patterns: tuple[str, ...]) -> bool:
    """Whether content that looks like ``sniffed`` may be accepted as ``declared``."""
    if type_allowed(sniffed, patterns):
        return True
    return (
        sniffed == "application/zip"
        and declared.startswith(_ZIP_BASED)
        and type_allowed(declared, patterns)
    )
