"""The dialects (tus 1.0, the draft) and the module layout of ``aiohttp_helpers.resumable``."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import aiohttp_helpers as ah
from aiohttp_helpers.resumable import handlers, registration
from aiohttp_helpers.resumable.draft import DRAFTS
from aiohttp_helpers.resumable.errors import InvalidMetadata, TooManyUploads, UploadLocked
from aiohttp_helpers.resumable.protocol import DRAFT_INTEROP_VERSIONS, parse_metadata
from aiohttp_helpers.resumable.storage import Store, UploadState, client_tag
from aiohttp_helpers.resumable.tus import TUS, Tus


def _headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


def _state(*, complete: bool) -> UploadState:
    return UploadState(
        id="a" * 32,
        length=3,
        metadata={},
        client="c",
        created=0.0,
        updated=0.0,
        offset=3 if complete else 1,
        complete=complete,
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Tus_Resumable": "1.0.0"}, TUS, id="tus"),
        pytest.param({"Upload_Draft_Interop_Version": "3"}, DRAFTS[3], id="draft-3"),
        pytest.param({"Upload_Draft_Interop_Version": "6"}, DRAFTS[6], id="draft-6"),
    ],
)
def test_dialect_of(headers: dict[str, str], expected: object) -> None:
    assert handlers.dialect_of(_headers(**headers)) is expected


def test_one_draft_dialect_per_interop_version() -> None:
    assert set(DRAFTS) == DRAFT_INTEROP_VERSIONS
    assert all(d.interop == v for v, d in DRAFTS.items())
    assert repr(DRAFTS[5]) == "<Draft interop 5>"
    assert isinstance(TUS, Tus)
    assert repr(TUS) == "<Tus 1.0.0>"


@pytest.mark.parametrize(
    ("interop", "complete", "name", "value"),
    [
        pytest.param(3, True, "Upload-Incomplete", "?0", id="3-complete"),
        pytest.param(3, False, "Upload-Incomplete", "?1", id="3-partial"),
        pytest.param(5, True, "Upload-Complete", "?1", id="5-complete"),
        pytest.param(6, False, "Upload-Complete", "?0", id="6-partial"),
    ],
)
def test_draft_state_headers(interop: int, complete: bool, name: str, value: str) -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    DRAFTS[interop].state_headers(
        headers, _state(complete=complete), upload_limit="max-size=3", expires_at=0.0
    )
    assert headers[name] == value
    assert headers["Upload-Limit"] == "max-size=3"
    assert "Upload-Expires" not in headers


def test_tus_state_headers_say_when_an_unfinished_upload_expires() -> None:
    partial: CIMultiDict[str] = CIMultiDict()
    TUS.state_headers(partial, _state(complete=False), upload_limit="-", expires_at=0.0)
    assert partial["Upload-Expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    done: CIMultiDict[str] = CIMultiDict()
    TUS.state_headers(done, _state(complete=True), upload_limit="-", expires_at=0.0)
    assert not done


def test_resumable_uploads_still_importable_from_handlers() -> None:
    # bench/resumable.py imports it from there (it moved to registration.py).
    assert handlers.ResumableUploads is registration.ResumableUploads is ah.ResumableUploads
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        handlers.nothing  # noqa: B018


def test_no_module_reads_the_helpers_key() -> None:
    package = Path(importlib.import_module("aiohttp_helpers.resumable").__file__ or "").parent
    for module in package.glob("*.py"):
        assert "HELPERS_KEY" not in module.read_text(), module.name


def test_too_many_uploads_counts_them() -> None:
    assert TooManyUploads(1).detail.startswith("this client has 1 unfinished upload; finish")
    assert TooManyUploads(2).detail.startswith("this client has 2 unfinished uploads; finish")


@pytest.mark.parametrize(
    ("value", "max_size", "max_pairs", "match"),
    [
        pytest.param("a,b", 100, 1, "more than 1 key$", id="one-key"),
        pytest.param("ab", 1, 10, "longer than 1 byte$", id="one-byte"),
    ],
)
def test_metadata_limits_count_their_nouns(
    value: str, max_size: int, max_pairs: int, match: str
) -> None:
    with pytest.raises(InvalidMetadata, match=match):
        parse_metadata(value, max_size=max_size, max_pairs=max_pairs)


def test_store_lock_and_writing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ensure()
    state = _state(complete=False)
    state.client = client_tag("127.0.0.1")
    assert len(state.client) == 24
    assert client_tag(None) == client_tag("unknown")
    assert store.lock(state.id) is None
    assert not store.writing(state.id)
    store.create(state)
    assert not store.writing(state.id)
    fd = store.lock(state.id)
    assert fd is not None
    try:
        assert store.writing(state.id)
        with pytest.raises(UploadLocked):
            store.lock(state.id)
    finally:
        store.unlock(fd)
    assert not store.writing(state.id)
