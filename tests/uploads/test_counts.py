"""One accounting path: every reader of a body counts, and fails, the same way (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

import aiohttp_helpers as ah
from aiohttp_helpers.testing import FormPart, MultipartBody, multipart_body
from aiohttp_helpers.uploads.counts import Counts, check_declared_length
from tests.support.uploads import upload_app

URLENCODED = "application/x-www-form-urlencoded"


def _app(handler: Any, limits: ah.UploadLimits) -> web.Application:
    app = upload_app(handler, limits)
    return app


async def _read_form(request: web.Request) -> web.Response:
    form = await ah.read_form(request)
    return web.json_response(sorted(form.fields.items()))


async def _part_forms(request: web.Request) -> web.Response:
    """Each part of the body parsed by ``BodyPart.form()``."""
    out = []
    async for part in ah.iter_parts(request):
        out.append(await part.form())
    return web.json_response(out)


async def _read_parts(request: web.Request) -> web.Response:
    out = []
    async for part in ah.iter_parts(request):
        out.append([part.name, len(await part.read())])
    return web.json_response(out)


async def _problem(resp: Any) -> dict[str, Any]:
    doc: dict[str, Any] = await resp.json(content_type=None)
    return doc


async def test_urlencoded_body_over_max_fields_is_413_too_many_fields(
    aiohttp_client: AiohttpClient,
) -> None:
    client = await aiohttp_client(_app(_read_form, ah.UploadLimits(max_fields=3)))
    ok = await client.post("/", data=b"a=1&b=2&c=3", headers={"Content-Type": URLENCODED})
    assert ok.status == 200
    assert await ok.json() == [["a", "1"], ["b", "2"], ["c", "3"]]
    resp = await client.post("/", data=b"a=1&b=2&c=3&d=4", headers={"Content-Type": URLENCODED})
    assert resp.status == 413
    doc = await _problem(resp)
    assert doc["type"].endswith(":too-many-fields")
    assert doc["detail"] == "more than 3 text fields in the form"
    assert doc["limit"] == 3


async def test_urlencoded_part_over_max_fields_is_413_too_many_fields(
    aiohttp_client: AiohttpClient,
) -> None:
    """``BodyPart.form()`` parses with the same parser, and says the same as ``read_form()``."""
    client = await aiohttp_client(_app(_part_forms, ah.UploadLimits(max_fields=3)))
    # The pairs of a part are counted on their own, not as fields of the body: two parts
    # of three pairs each are fine.
    fine = multipart_body(
        FormPart(name="q", data=b"a=1&b=2&c=3", content_type=URLENCODED),
        FormPart(name="r", data=b"x=1&y=2&z=3", content_type=URLENCODED),
    )
    ok = await client.post("/", data=fine.data, headers=fine.headers)
    assert ok.status == 200
    assert await ok.json() == [
        [["a", "1"], ["b", "2"], ["c", "3"]],
        [["x", "1"], ["y", "2"], ["z", "3"]],
    ]
    over = multipart_body(FormPart(name="q", data=b"a=1&b=2&c=3&d=4", content_type=URLENCODED))
    resp = await client.post("/", data=over.data, headers=over.headers)
    assert resp.status == 413
    doc = await _problem(resp)
    assert doc["type"].endswith(":too-many-fields")
    assert doc["detail"] == "more than 3 text fields in the form"
    assert doc["field"] == "q"


def _fields(n: int, size: int = 1) -> MultipartBody:
    return multipart_body(*[(f"f{i}", "v" * size) for i in range(n)])


#: Limits that the body below crosses, and the error each gives.
OVER: list[Any] = [
    pytest.param({"max_fields": 3}, _fields(4), "too-many-fields", "f3", id="fields"),
    pytest.param({"max_parts": 3}, _fields(4), "too-many-parts", None, id="parts"),
    pytest.param({"max_field_size": 4}, _fields(2, 5), "field-too-large", "f0", id="field-size"),
    pytest.param(
        {"max_fields_memory": 9}, _fields(2, 5), "fields-memory-exceeded", "f1", id="fields-memory"
    ),
    pytest.param(
        {"max_decoded_size": 9}, _fields(2, 5), "decoded-too-large", "f1", id="decoded-size"
    ),
]

#: The fast path of read_form() takes plain text fields when no type is checked; with
#: allowed_types set (for a field the body does not have) the general path reads them.
READERS = [
    pytest.param(_read_form, {}, id="read_form-fast"),
    pytest.param(_read_form, {"allowed_types": {"nothing": ["text/plain"]}}, id="read_form"),
    pytest.param(_read_parts, {}, id="iter_parts"),
]


@pytest.mark.parametrize(("handler", "extra"), READERS)
@pytest.mark.parametrize(("limits", "body", "problem", "field"), OVER)
async def test_every_reader_counts_the_same(
    aiohttp_client: AiohttpClient,
    handler: Any,
    extra: dict[str, Any],
    limits: dict[str, Any],
    body: MultipartBody,
    problem: str,
    field: str | None,
) -> None:
    client = await aiohttp_client(_app(handler, ah.UploadLimits(**limits, **extra)))
    resp = await client.post("/", data=body.data, headers=body.headers)
    assert resp.status == 413
    doc = await _problem(resp)
    assert doc["type"].endswith(f":{problem}")
    assert doc.get("field") == field


@pytest.mark.parametrize(
    ("length", "refused"),
    [
        pytest.param("10", False, id="at"),
        pytest.param("11", True, id="over"),
        pytest.param("-1", False, id="not-digits"),
        pytest.param(None, False, id="absent"),
        pytest.param(" 11 ", True, id="padded"),
        pytest.param("0" * 25 + "11", True, id="leading-zeros-over"),
        pytest.param("0" * 25 + "5", False, id="leading-zeros-under"),
        pytest.param("9" * 5000, True, id="5000-digits-no-int-conversion-error"),
        pytest.param("\u00b2\u00b2", False, id="unicode-digits-left-to-the-reader"),
        pytest.param("1e3", False, id="exponent-left-to-the-reader"),
    ],
)
def test_check_declared_length(length: str | None, refused: bool) -> None:
    headers = CIMultiDict[str]() if length is None else CIMultiDict({"Content-Length": length})
    if refused:
        with pytest.raises(ah.BodyTooLarge, match="request body is larger than 10 bytes"):
            check_declared_length(headers, 10)
    else:
        check_declared_length(headers, 10)


def test_counts_raise_at_the_first_one_over() -> None:
    counts = Counts(
        ah.UploadLimits(max_parts=2, max_files=1, max_fields=1, max_file_size=4, max_field_size=2)
    )
    counts.part()
    counts.part()
    with pytest.raises(ah.TooManyParts, match="more than 2 parts in the body"):
        counts.part()
    counts.file("a")
    with pytest.raises(ah.TooManyFiles, match="more than 1 file in the form") as files:
        counts.file("b")
    assert files.value.field == "b"
    counts.field("c")
    with pytest.raises(ah.TooManyFields, match="more than 1 text field in the form"):
        counts.field("d")
    counts.data(4, 4, "a", is_file=True)
    with pytest.raises(ah.FileTooLarge, match="larger than 4 bytes"):
        counts.data(1, 5, "a", is_file=True)
    counts.data(2, 2, "c", is_file=False)
    with pytest.raises(ah.FieldTooLarge, match="larger than 2 bytes"):
        counts.data(1, 3, "c", is_file=False)
