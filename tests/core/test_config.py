"""``UploadLimits`` and ``WebSocketSettings`` validate themselves when made."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import aiohttp_helpers as ah


@pytest.mark.parametrize(
    "name",
    [
        "max_body_size",
        "max_file_size",
        "max_files",
        "max_field_size",
        "max_fields",
        "max_parts",
        "max_part_headers",
        "max_header_size",
        "max_preamble_size",
        "max_depth",
        "max_decoded_size",
        "idle_timeout",
        "chunk_size",
    ],
)
@pytest.mark.parametrize("value", [pytest.param(0, id="zero"), pytest.param(-1, id="negative")])
def test_upload_limits_refuse_non_positive(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"{name} must be positive"):
        ah.UploadLimits(**{name: value})  # type: ignore[arg-type]


def test_upload_limits_refuse_wrong_types() -> None:
    with pytest.raises(TypeError, match="max_files must be a number"):
        ah.UploadLimits(max_files="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a number"):
        ah.UploadLimits(max_files=True)
    with pytest.raises(TypeError, match="spool_max_size must be an int"):
        ah.UploadLimits(spool_max_size=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spool_max_size must not be negative"):
        ah.UploadLimits(spool_max_size=-1)
    with pytest.raises(ValueError, match="chunk_size must be at least 1024"):
        ah.UploadLimits(chunk_size=100)
    with pytest.raises(ValueError, match="max_body_size must be set"):
        ah.UploadLimits(max_body_size=None)  # type: ignore[arg-type]


def test_upload_limits_allowed_types_are_normalised_and_frozen() -> None:
    limits = ah.UploadLimits(allowed_types={"avatar": ["Image/PNG", " image/jpeg "]})
    assert limits.allowed_types is not None
    assert limits.allowed_types["avatar"] == ("image/png", "image/jpeg")
    with pytest.raises(TypeError):
        limits.allowed_types["x"] = ("a/b",)  # type: ignore[index]
    with pytest.raises(TypeError, match="not a string"):
        ah.UploadLimits(allowed_types={"a": "image/png"})
    with pytest.raises(ValueError, match="is not a media type"):
        ah.UploadLimits(allowed_types={"a": ["png"]})


def test_upload_limits_are_frozen_and_replaceable(tmp_path: Path) -> None:
    limits = ah.UploadLimits(tmp_dir=tmp_path)
    assert limits.tmp_dir == str(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_files = 3  # type: ignore[misc]
    smaller = limits.replace(max_files=3)
    assert smaller.max_files == 3
    assert smaller.tmp_dir == str(tmp_path)
    with pytest.raises(ValueError, match="max_files must be positive"):
        limits.replace(max_files=0)


def test_decoded_limit_defaults_to_a_multiple_of_the_body_limit() -> None:
    assert ah.UploadLimits(max_body_size=10).decoded_limit == 40
    assert ah.UploadLimits(max_body_size=10, max_decoded_size=15).decoded_limit == 15


def test_upload_limits_keyword_only() -> None:
    with pytest.raises(TypeError):
        ah.UploadLimits(10)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"heartbeat": 0}, "heartbeat must be positive", id="heartbeat"),
        pytest.param({"max_msg_size": 0}, "max_msg_size must be positive", id="max-msg-size"),
        pytest.param({"max_connections": -1}, "max_connections must be positive", id="cap"),
        pytest.param({"send_timeout": 0}, "send_timeout must be positive", id="send-timeout"),
        pytest.param({"close_timeout": 0}, "close_timeout must be positive", id="close-timeout"),
    ],
)
def test_websocket_settings_validate(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ah.WebSocketSettings(**kwargs)  # type: ignore[arg-type]


def test_websocket_settings_replace() -> None:
    settings = ah.WebSocketSettings(protocols=["chat"])  # type: ignore[arg-type]
    assert settings.protocols == ("chat",)
    assert settings.replace(heartbeat=None).heartbeat is None
