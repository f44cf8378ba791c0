"""Upload messages count correctly, and read_form()'s 415 names both forms it reads (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, multipart_body
from tests.support.uploads import upload_app


@pytest.mark.parametrize(
    ("error", "one", "two"),
    [
        pytest.param(ah.TooManyFiles, "more than 1 file in the form", "2 files", id="files"),
        pytest.param(
            ah.TooManyFields, "more than 1 text field in the form", "2 text fields", id="fields"
        ),
        pytest.param(ah.TooManyParts, "more than 1 part in the body", "2 parts", id="parts"),
        pytest.param(
            ah.NestingTooDeep,
            "multipart parts are nested deeper than 1 level",
            "2 levels",
            id="depth",
        ),
        pytest.param(ah.BodyTooLarge, "request body is larger than 1 byte", "2 bytes", id="body"),
        pytest.param(
            ah.FieldsMemoryExceeded,
            "the form's text fields hold more than 1 byte together",
            "2 bytes",
            id="fields-memory",
        ),
        pytest.param(
            ah.PreambleTooLarge,
            "more than 1 byte outside the multipart boundaries",
            "2 bytes",
            id="preamble",
        ),
    ],
)
def test_limit_messages_count(error: Any, one: str, two: str) -> None:
    assert error(1).detail == one
    assert two in error(2).detail
    assert error(1).limit == 1


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(ah.FileTooLarge, "file in field 'f' is larger than 1 byte", id="file"),
        pytest.param(ah.FieldTooLarge, "field 'f' is larger than 1 byte", id="field"),
        pytest.param(
            ah.DecodedTooLarge, "decoded data of field 'f' is larger than 1 byte", id="decoded"
        ),
    ],
)
def test_field_limit_messages_count(error: Any, message: str) -> None:
    assert error("f", 1).detail == message
    assert error("f", 1024).detail == message.replace("1 byte", "1024 bytes")


@pytest.mark.parametrize(
    ("value", "idle", "slow"),
    [
        pytest.param(1, "for 1 second", "than 1 byte per second", id="one"),
        pytest.param(1.0, "for 1 second", "than 1 byte per second", id="one-float"),
        pytest.param(30.0, "for 30 seconds", "than 30 bytes per second", id="thirty"),
        pytest.param(0.5, "for 0.5 seconds", "than 0.5 bytes per second", id="half"),
    ],
)
def test_timeout_messages_count(value: float, idle: str, slow: str) -> None:
    assert ah.UploadIdleTimeout(value).detail.endswith(idle)
    assert ah.UploadTooSlow(value).detail.endswith(slow)


async def _form(request: web.Request) -> web.Response:
    form = await ah.read_form(request)
    return web.json_response(len(form.fields) + len(form.files))


async def _parts(request: web.Request) -> web.Response:
    n = 0
    async for part in ah.iter_parts(request):
        await part.release()
        n += 1
    return web.json_response(n)


@pytest.mark.parametrize(
    ("limits", "body", "detail"),
    [
        pytest.param(
            {"max_files": 1},
            multipart_body(
                FormPart(name="a", data=b"1", filename="a.txt"),
                FormPart(name="b", data=b"2", filename="b.txt"),
            ),
            "more than 1 file in the form",
            id="files",
        ),
        pytest.param(
            {"max_part_headers": 1},
            multipart_body(FormPart(name="a", data=b"1", headers=[("X-A", "1")])),
            "a part has more than 1 header line",
            id="header-lines",
        ),
    ],
)
async def test_counted_message_round_trip(
    aiohttp_client: AiohttpClient, limits: dict[str, Any], body: Any, detail: str
) -> None:
    client = await aiohttp_client(upload_app(_form, ah.UploadLimits(**limits)))
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 413
    assert (await resp.json(content_type=None))["detail"] == detail


async def test_read_form_415_names_urlencoded(aiohttp_client: AiohttpClient) -> None:
    app = web.Application()
    ah.setup(app)
    app.router.add_post("/form", _form)
    app.router.add_post("/parts", _parts)
    client = await aiohttp_client(app)
    headers = {"Content-Type": "application/json"}
    resp = await client.post("/form", data=b"{}", headers=headers)
    assert resp.status == 415
    doc = await resp.json(content_type=None)
    assert doc["type"].endswith(":not-multipart")
    assert doc["detail"] == (
        "expected a multipart/* or application/x-www-form-urlencoded body, "
        "got Content-Type 'application/json'"
    )
    # iter_parts() reads multipart bodies only, and says just that.
    resp = await client.post("/parts", data=b"{}", headers=headers)
    assert resp.status == 415
    assert (await resp.json(content_type=None))["detail"] == (
        "expected a multipart/* body, got Content-Type 'application/json'"
    )


def test_not_multipart_keeps_the_content_type() -> None:
    error = ah.NotMultipart("text/csv", urlencoded=True)
    assert error.content_type == "text/csv"
    assert "application/x-www-form-urlencoded" in error.detail
    assert "urlencoded" not in ah.NotMultipart("text/csv").detail
