"""``tmp_dir`` is checked when the limits are made, and a spool directory lost later is a 507."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.uploads import form_app, post_file


def test_a_missing_tmp_dir_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"tmp_dir '.*/missing' does not exist"):
        ah.UploadLimits(tmp_dir=tmp_path / "missing")
    with pytest.raises(ValueError, match="does not exist"):
        ah.UploadLimits().replace(tmp_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="does not exist"):

        @ah.upload_limits(tmp_dir=tmp_path / "missing")
        async def handler(request: web.Request) -> web.Response:
            raise AssertionError


def test_a_file_is_not_a_tmp_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ValueError, match=r"tmp_dir '.*/file' is not a directory"):
        ah.UploadLimits(tmp_dir=tmp_path / "file")


def test_a_usable_tmp_dir_is_kept(tmp_path: Path) -> None:
    assert ah.UploadLimits(tmp_dir=tmp_path).tmp_dir == str(tmp_path)


@pytest.mark.parametrize("kind", [pytest.param("removed"), pytest.param("replaced-by-a-file")])
async def test_a_spool_directory_lost_after_start_is_507(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    client = await aiohttp_client(form_app(ah.UploadLimits(spool_max_size=16, tmp_dir=spool)))
    resp = await post_file(client, b"x" * 1000, "a.bin", "/form")
    assert resp.status == 200
    shutil.rmtree(spool)
    if kind == "replaced-by-a-file":
        spool.write_bytes(b"")
    with caplog.at_level(logging.ERROR, logger="aiohttp_helpers"):
        resp = await post_file(client, b"x" * 1000, "a.bin", "/form")
        assert resp.status == 507
        doc = await resp.json(content_type="application/problem+json")
    assert doc["type"] == "urn:aiohttp-helpers:problem:insufficient-storage"
    assert doc["detail"] == "the server cannot store the upload now"
    assert str(spool) not in str(doc)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"cannot create a temporary file in {str(spool)!r}"
    ]
    # Small files never reach the disk, and still work.
    small = multipart_body(FormPart(name="f", data=b"x", filename="a.bin"))
    resp = await client.post("/form", data=small.data, headers=small.headers)
    assert resp.status == 200
