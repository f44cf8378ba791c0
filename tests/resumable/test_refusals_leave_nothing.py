"""A refused creation leaves nothing on disk; a completion that cannot be recorded is undone."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from aiohttp_helpers.resumable.storage import Store, UploadState
from tests.support.resumable_app import create_app

TUS = {"Tus-Resumable": "1.0.0"}


def _left(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param(
            {
                **TUS,
                "Upload-Length": "3",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": "sha1 !!!!",
            },
            b"abc",
            id="tus-creation-with-upload",
        ),
        pytest.param(
            {**TUS, "Upload-Length": "0", "Upload-Checksum": "crc99 AAAA"},
            None,
            id="tus-empty-upload",
        ),
        pytest.param(
            {
                "Upload-Draft-Interop-Version": "6",
                "Upload-Complete": "?1",
                "Content-Type": "application/partial-upload",
                "Upload-Checksum": "sha1 !!!!",
            },
            b"abc",
            id="draft-6",
        ),
    ],
)
async def test_a_bad_checksum_on_creation_leaves_no_upload_behind(
    aiohttp_client: AiohttpClient, tmp_path: Path, headers: dict[str, str], body: bytes | None
) -> None:
    partial = tmp_path / "partial"
    client = await aiohttp_client(create_app(partial, tmp_path / "saved"))
    async with client.post("/files", headers=headers, data=body) as resp:
        assert resp.status == 400, await resp.text()
        assert "Location" not in resp.headers
    assert _left(partial) == []


def test_a_completion_whose_state_cannot_be_written_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    store.ensure()
    now = time.time()
    state = UploadState(
        id="ab" * 16, length=3, metadata={}, client="c", created=now, updated=now, offset=3
    )
    store.create(state)
    store.data_path(state.id).write_bytes(b"abc")

    def full(_: UploadState) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "write", full)  # the disk fills between the move and the write
    with pytest.raises(OSError, match="No space"):
        store.complete(state)
    assert not state.complete
    assert store.data_path(state.id).read_bytes() == b"abc"  # where the state expects it
    assert not store.done_path(state.id).exists()
    monkeypatch.undo()
    done = store.complete(state)  # room again: the upload completes as it should have
    assert done.read_bytes() == b"abc"
    recorded = store.read(state.id)
    assert recorded is not None
    assert recorded.complete


def test_the_old_module_still_gives_both_names() -> None:
    from aiohttp_helpers.resumable import handlers, registration

    assert handlers.add_resumable_uploads is registration.add_resumable_uploads
    assert handlers.ResumableUploads is registration.ResumableUploads


@pytest.mark.parametrize(
    "option",
    [
        pytest.param({"max_uploads_per_client": 2.5}, id="max_uploads_per_client"),
        pytest.param({"max_metadata_pairs": 1.5}, id="max_metadata_pairs"),
        pytest.param({"max_metadata_size": 100.5}, id="max_metadata_size"),
    ],
)
def test_counts_must_be_whole_numbers(tmp_path: Path, option: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="must be an int"):
        create_app(tmp_path / "partial", tmp_path / "saved", limits=None, **option)
