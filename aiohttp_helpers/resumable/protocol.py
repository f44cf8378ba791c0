"""tus 1.0 and IETF resumable-upload draft headers: which protocol a request speaks, parsing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy

from .._words import counted
from .errors import (
    InvalidMetadata,
    InvalidUploadHeader,
    UnsupportedChecksum,
    VersionNotSupported,
)

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DRAFT_INTEROP_VERSIONS",
    "PARTIAL_UPLOAD",
    "TUS_EXTENSIONS",
    "TUS_OFFSET_STREAM",
    "TUS_VERSION",
    "Checksum",
    "encode_metadata",
    "parse_checksum",
    "parse_metadata",
    "parse_offset",
    "parse_sf_boolean",
    "protocol_of",
]

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "expiration",
    "checksum",
)
#: The PATCH body type of tus 1.0, and of the draft from interop version 6 on.
TUS_OFFSET_STREAM = "application/offset+octet-stream"
PARTIAL_UPLOAD = "application/partial-upload"
#: Upload-Draft-Interop-Version values served: 3 is draft-ietf-httpbis-resumable-upload-01
#: (``Upload-Incomplete``; Apple's iOS 17), 5 is -03 and 6 is -05 (``Upload-Complete``;
#: tus-js-client 4's "ietf-draft-03" and "ietf-draft-05" protocols, Apple's iOS 18).
DRAFT_INTEROP_VERSIONS = frozenset({3, 5, 6})
#: Upload-Checksum algorithms (tus checksum extension), by their tus names.
CHECKSUM_ALGORITHMS: Mapping[str, str] = {
    "sha1": "sha1",
    "md5": "md5",
    "sha256": "sha256",
    "sha512": "sha512",
}
# RFC 9110 integers, no sign, no leading "+": at most 18 digits (fits every real file).
_DIGITS = re.compile(r"[0-9]{1,18}")
# A metadata key: tus says no spaces and no commas; we also keep it printable ASCII.
_KEY = re.compile(r"[!-+\--~]{1,128}")


def protocol_of(headers: CIMultiDictProxy[str]) -> int | None:
    """The protocol ``headers`` speak: the draft's interop version, or ``None`` for tus 1.0.

    Raises:
        VersionNotSupported: the request speaks no protocol (or version) served (412).
    """
    interop = headers.get("Upload-Draft-Interop-Version")
    if interop is not None:
        value = interop.strip()
        if value.isdigit() and len(value) < 4 and int(value) in DRAFT_INTEROP_VERSIONS:
            return int(value)
        served = ", ".join(str(v) for v in sorted(DRAFT_INTEROP_VERSIONS))
        raise VersionNotSupported(
            f"Upload-Draft-Interop-Version {value[:20]!r} is not served (served: {served})"
        )
    tus = headers.get("Tus-Resumable")
    if tus is None:
        raise VersionNotSupported(
            "the request carries neither Tus-Resumable nor Upload-Draft-Interop-Version"
        )
    if tus.strip() != TUS_VERSION:
        raise VersionNotSupported(f"Tus-Resumable {tus[:20]!r} is not served (served: 1.0.0)")
    return None


def parse_offset(headers: CIMultiDictProxy[str], name: str, *, required: bool) -> int | None:
    """A non-negative integer header (``Upload-Offset``, ``Upload-Length``)."""
    values = headers.getall(name, [])
    if not values:
        if required:
            raise InvalidUploadHeader(name, "missing")
        return None
    if len(values) > 1:
        raise InvalidUploadHeader(name, "given more than once")
    value = values[0].strip()
    if not _DIGITS.fullmatch(value):
        raise InvalidUploadHeader(name, f"{value[:30]!r} is not a non-negative integer")
    return int(value)


def parse_sf_boolean(headers: CIMultiDictProxy[str], name: str) -> bool | None:
    """A structured-field boolean (RFC 8941: ``?0`` / ``?1``), or ``None`` when absent."""
    values = headers.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise InvalidUploadHeader(name, "given more than once")
    value = values[0].strip()
    if value == "?1":
        return True
    if value == "?0":
        return False
    raise InvalidUploadHeader(name, f"{value[:20]!r} is not ?0 or ?1")


def parse_metadata(value: str | None, *, max_size: int, max_pairs: int) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (value optional).

    Values must be strict base64 of UTF-8 text; keys printable ASCII without spaces or
    commas, each at most once.
    """
    if value is None:
        return {}
    if len(value) > max_size:
        raise InvalidMetadata(
            f"Upload-Metadata is longer than {counted(max_size, 'byte')}", limit=max_size
        )
    out: dict[str, str] = {}
    if not value.strip():
        return out
    for item in value.split(","):
        fields = item.strip().split(" ")
        if len(fields) > 2 or not fields[0]:
            raise InvalidMetadata("Upload-Metadata pairs are 'key base64value', comma-separated")
        key = fields[0]
        if not _KEY.fullmatch(key):
            raise InvalidMetadata(f"Upload-Metadata key {key[:40]!r} is not allowed")
        if key in out:
            raise InvalidMetadata(f"Upload-Metadata key {key!r} is given twice")
        if len(out) >= max_pairs:
            raise InvalidMetadata(
                f"Upload-Metadata has more than {counted(max_pairs, 'key')}", limit=max_pairs
            )
        text = ""
        if len(fields) == 2:
            try:
                raw = base64.b64decode(fields[1], validate=True)
                text = raw.decode("utf-8")
            except (binascii.Error, ValueError):
                raise InvalidMetadata(
                    f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text"
                ) from None
        out[key] = text
    return out


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """``metadata`` as an ``Upload-Metadata`` value."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in metadata.items()
    )


@dataclass(frozen=True, slots=True)
class Checksum:
    """An ``Upload-Checksum``: the algorithm and the digest the body must have."""

    algorithm: str
    digest: bytes

    def new(self) -> Any:
        """A fresh hash object of this algorithm."""
        return hashlib.new(CHECKSUM_ALGORITHMS[self.algorithm])


def parse_checksum(value: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise UnsupportedChecksum(
            f"checksum algorithm {algorithm[:20]!r} is not supported"
            f" (supported: {', '.join(CHECKSUM_ALGORITHMS)})"
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidUploadHeader("Upload-Checksum", "the digest is not base64") from None
    if len(digest) != hashlib.new(CHECKSUM_ALGORITHMS[algorithm]).digest_size:
        raise InvalidUploadHeader("Upload-Checksum", f"not a {algorithm} digest")
    return Checksum(algorithm, digest)
