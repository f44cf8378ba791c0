"""The demo page in a real Chromium (Debian's), driven by Playwright: uploads and close codes.

These tests never skip: a browser that cannot start is a failure (``make test`` installs
Chromium through ``.ci/sysdeps``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, FilePayload, Page

from examples import demo
from tests.support.apps import Serve
from tests.support.paths import ROOT
from tests.support.scripts import run_script

pytestmark = pytest.mark.browser

MiB = 2**20


async def _open(browser: Browser, url: str) -> Page:
    page = await browser.new_page(viewport={"width": 1100, "height": 760})
    await page.goto(url)
    return page


async def _connected(page: Page) -> None:
    await page.wait_for_function(
        "document.getElementById('ws-status').textContent === 'connected'", timeout=10_000
    )


async def _close_event(page: Page, index: int = 0) -> dict[str, Any]:
    await page.wait_for_function(
        f"window.demo.closeEvents.length > {index}", timeout=10_000, polling=50
    )
    event: dict[str, Any] = await page.evaluate(f"window.demo.closeEvents[{index}]")
    return event


async def _chat(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


async def _upload_result(page: Page, index: int = 0) -> dict[str, Any]:
    await page.wait_for_function(
        f"window.demo.uploads.length > {index}", timeout=60_000, polling=100
    )
    result: dict[str, Any] = await page.evaluate(f"window.demo.uploads[{index}]")
    return result


DROP_FILES = """(files) => {
  const dt = new DataTransfer();
  for (const [name, text] of files) dt.items.add(new File([text], name, {type: "text/plain"}));
  const drop = document.getElementById("drop");
  drop.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
}"""

AWKWARD_NAMES = [
    'quote "q".txt',
    "naïve café ☕.txt",
    "with  spaces .txt",
    "../../etc/passwd",
    "dir\\windows\\boot.ini",
    "CON.txt",
    ".hidden",
]


async def test_drag_and_drop_awkward_filenames(
    browser: Browser, serve: Serve, tmp_path: Path
) -> None:
    url = await serve(demo.create_app(tmp_dir=str(tmp_path)))
    page = await _open(browser, str(url))
    contents = [f"content of file {i}: {name}" for i, name in enumerate(AWKWARD_NAMES)]
    await page.evaluate(DROP_FILES, [[n, c] for n, c in zip(AWKWARD_NAMES, contents, strict=True)])
    await page.fill("#title", 'Résumé "final" v2')
    await page.click("#send")
    result = await _upload_result(page)
    assert result["status"] == 200, result
    body = result["body"]
    assert body["fields"] == {"title": 'Résumé "final" v2'}
    files = body["files"]
    assert [f["raw_filename"] for f in files] == AWKWARD_NAMES
    for f, content in zip(files, contents, strict=True):
        data = content.encode()
        assert f["size"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest()
        safe = f["filename"]
        assert safe
        assert "/" not in safe
        assert "\\" not in safe
        assert not safe.startswith(".")
        assert "\x00" not in safe
    assert files[1]["filename"] == "naïve café ☕.txt"
    assert files[3]["filename"] == "passwd"
    assert files[5]["filename"] != "CON.txt"
    shown = await page.inner_text("#upload-result")
    assert "naïve café ☕.txt" in shown
    assert files[0]["sha256"] in shown
    assert os.listdir(tmp_path) == []

    await _connected(page)
    await _chat(page, "hello from Chromium")
    await page.wait_for_function(
        "document.getElementById('messages').textContent.includes('hello from Chromium')"
    )
    shot = await page.screenshot()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("AH_UPDATE_SCREENSHOTS"):
        (ROOT / "docs" / "demo.png").write_bytes(shot)


async def test_50_mb_upload_progress_reaches_100(
    browser: Browser, serve: Serve, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    url = await serve(demo.create_app(tmp_dir=str(spool)))
    big = tmp_path / "big file.bin"
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with big.open("wb") as out:
        for i in range(50):
            chunk = block[i:] + block[:i]
            out.write(chunk)
            digest.update(chunk)
    page = await _open(browser, str(url))
    await page.set_input_files("#file", str(big))
    await page.click("#send")
    result = await _upload_result(page)
    assert result["status"] == 200, result
    (uploaded,) = result["body"]["files"]
    assert uploaded["size"] == 50 * MiB
    assert uploaded["sha256"] == digest.hexdigest()
    assert uploaded["filename"] == "big file.bin"
    assert await page.eval_on_selector("#progress", "el => el.value") == 100
    assert await page.inner_text("#percent") == "100 %"
    assert os.listdir(spool) == []


@pytest.mark.parametrize(
    ("size", "title"),
    [
        pytest.param(MiB + 1, "File too large", id="file-limit"),
        pytest.param(6 * MiB, "Request body too large", id="body-limit"),
    ],
)
async def test_over_the_limit_shows_413(
    browser: Browser, serve: Serve, tmp_path: Path, size: int, title: str
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    app = demo.create_app(max_file_size=MiB, max_body_size=2 * MiB, tmp_dir=str(spool))
    url = await serve(app)
    page = await _open(browser, str(url))
    payload: FilePayload = {
        "name": "too big.bin",
        "mimeType": "application/octet-stream",
        "buffer": b"\x00" * size,
    }
    await page.set_input_files("#file", files=[payload])
    await page.click("#send")
    result = await _upload_result(page)
    assert result["status"] == 413, result
    assert result["body"]["title"] == title
    shown = await page.inner_text("#upload-result")
    assert shown.startswith(f"413 {title}:")
    assert os.listdir(spool) == []


PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


@pytest.mark.parametrize(
    ("name", "mime", "data", "status"),
    [
        pytest.param("me.png", "image/png", PNG_1X1, 200, id="real-png"),
        pytest.param("me.png", "image/png", b"<script>alert(1)</script>", 415, id="html-as-png"),
        pytest.param("notes.txt", "text/plain", b"just text", 415, id="text"),
    ],
)
async def test_avatar_type_is_checked(
    browser: Browser, serve: Serve, tmp_path: Path, name: str, mime: str, data: bytes, status: int
) -> None:
    url = await serve(demo.create_app(tmp_dir=str(tmp_path)))
    page = await _open(browser, str(url))
    payload: FilePayload = {"name": name, "mimeType": mime, "buffer": data}
    await page.set_input_files("#avatar", files=[payload])
    await page.click("#send")
    result = await _upload_result(page)
    assert result["status"] == status, result
    shown = await page.inner_text("#upload-result")
    if status == 200:
        (avatar,) = result["body"]["files"]
        assert avatar["field"] == "avatar"
        assert avatar["sha256"] == hashlib.sha256(data).hexdigest()
    else:
        assert result["body"]["field"] == "avatar"
        assert shown.startswith("415 ")
        assert "avatar" in shown
    assert os.listdir(tmp_path) == []


async def _close_after_command(
    browser: Browser, serve: Serve, command: str
) -> tuple[Page, dict[str, Any]]:
    """The demo in a connected page that sends ``command`` to the chat; the close event."""
    url = await serve(demo.create_app())
    page = await _open(browser, str(url))
    await _connected(page)
    await _chat(page, command)
    return page, await _close_event(page)


async def test_close_code_from_wsclose_is_seen_by_the_browser(
    browser: Browser, serve: Serve
) -> None:
    page, event = await _close_after_command(browser, serve, "/kick")
    assert event["code"] == demo.KICKED
    assert event["reason"] == "kicked: you asked for it"
    assert event["wasClean"] is True
    assert "code 4000" in await page.inner_text("#ws-close")
    # An application code: the page does not reconnect on its own.
    assert await page.evaluate("window.demo.reconnects") == 0
    assert await page.is_visible("#reconnect")


async def test_unhandled_error_is_1011_and_the_page_reconnects(
    browser: Browser, serve: Serve
) -> None:
    page, event = await _close_after_command(browser, serve, "/crash")
    assert event["code"] == 1011
    assert "the demo handler crashed" not in event["reason"]
    await page.wait_for_function("window.demo.reconnects === 1")
    await _connected(page)


async def test_overload_is_1013_and_the_page_waits_for_the_user(
    browser: Browser, serve: Serve
) -> None:
    url = await serve(demo.create_app(max_ws_connections=1))
    first = await _open(browser, str(url))
    await _connected(first)
    second = await _open(browser, str(url))
    event = await _close_event(second)
    assert event["code"] == 1013
    assert event["reason"]
    await asyncio.sleep(0.5)
    assert await second.evaluate("window.demo.reconnects") == 0
    assert await second.is_visible("#reconnect")
    await first.close()
    await second.click("#reconnect")
    await _connected(second)


async def test_ctrl_c_shows_1001_in_the_open_page(browser: Browser) -> None:
    async with run_script("examples/demo.py") as script:
        await script.serving("/")
        page = await _open(browser, f"{script.url}/")
        await _connected(page)
        loop = asyncio.get_running_loop()
        started = loop.time()
        script.proc.send_signal(signal.SIGINT)
        event = await _close_event(page)
        assert event["code"] == 1001
        assert loop.time() - started < 5
        # 1001: the page schedules a reconnect with backoff (its tries then fail with 1006
        # while the demo is down, which is why the page's text is not checked here).
        await page.wait_for_function("window.demo.reconnects >= 1")
        assert await script.exit_code() == 0


# -- resumable uploads (tus-js-client) ------------------------------------------------

PAUSE_AT = """([limit, button]) => {
  const listener = (event) => {
    if (event.detail.accepted >= limit) {
      window.removeEventListener("resumable-chunk", listener);
      document.getElementById(button).click();
    }
  };
  window.addEventListener("resumable-chunk", listener);
}"""


def _random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


async def _completed(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate(
        "fetch('/resumable/done').then((r) => r.json())"
    )
    return result


async def _resumable_done(page: Page, count: int = 1) -> None:
    await page.wait_for_function(
        f"window.demo.resumable.results.length >= {count}"
        " || window.demo.resumable.errors.length > 0",
        timeout=60_000,
        polling=100,
    )
    errors = await page.evaluate("window.demo.resumable.errors")
    assert errors == []


async def _paused(page: Page) -> None:
    await page.wait_for_function("window.demo.resumable.paused === true", timeout=30_000)


@pytest.mark.parametrize(
    ("protocol", "interop"),
    [
        pytest.param("tus-v1", None, id="tus"),
        pytest.param("ietf-draft-03", "5", id="draft-03"),
        pytest.param("ietf-draft-05", "6", id="draft-05"),
    ],
)
async def test_resumable_pause_resume_reload(
    browser: Browser, serve: Serve, tmp_path: Path, protocol: str, interop: str | None
) -> None:
    source = tmp_path / "holiday video.bin"
    digest = _random_file(source, 6 * MiB)
    url = str(await serve(demo.create_app(resumable_dir=str(tmp_path / "partial"))))
    page = await _open(browser, url)
    sent: list[dict[str, str]] = []
    page.on("request", lambda r: sent.append({**r.headers, "method": r.method, "url": r.url}))
    await page.select_option("#r-protocol", protocol)
    await page.select_option("#r-chunk", "262144")
    await page.set_input_files("#r-file", str(source))
    # Pause with the button once 1.5 MiB are in, resume with the other, pause again at 3 MiB.
    await page.evaluate(PAUSE_AT, [int(1.5 * MiB), "r-pause"])
    await page.click("#r-start")
    await _paused(page)
    first = await page.eval_on_selector("#r-progress", "el => el.value")
    assert 20 <= first < 100
    await page.evaluate(PAUSE_AT, [3 * MiB, "r-pause"])
    await page.click("#r-resume")
    await page.wait_for_function("window.demo.resumable.paused === false")
    await _paused(page)
    # A reload forgets everything but what tus-js-client stored; the same file resumes.
    await page.reload()
    await page.select_option("#r-protocol", protocol)
    await page.select_option("#r-chunk", "262144")
    await page.set_input_files("#r-file", str(source))
    await page.click("#r-start")
    await _resumable_done(page)
    resumed_at: list[int] = await page.evaluate("window.demo.resumable.resumedAt")
    assert len(resumed_at) == 1
    assert 3 * MiB <= resumed_at[0] < 6 * MiB
    assert await page.eval_on_selector("#r-progress", "el => el.value") == 100
    [done] = await _completed(page)
    assert done["sha256"] == digest
    assert done["size"] == 6 * MiB
    assert done["filename"] == "holiday video.bin"
    uploads = [r for r in sent if "/files" in r["url"]]
    assert {r["method"] for r in uploads} == {"POST", "PATCH", "HEAD"}
    for request in uploads:
        if interop is None:
            assert request.get("tus-resumable") == "1.0.0"
        else:
            assert request.get("upload-draft-interop-version") == interop
            assert "tus-resumable" not in request
    offsets = sorted({int(r["upload-offset"]) for r in sent if "upload-offset" in r})
    assert resumed_at[0] in offsets


async def test_resumable_offline_then_back(browser: Browser, serve: Serve, tmp_path: Path) -> None:
    source = tmp_path / "field notes.bin"
    digest = _random_file(source, 4 * MiB)
    url = str(await serve(demo.create_app(resumable_dir=str(tmp_path / "partial"))))
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(url)
    patches: list[str] = []
    back_online: list[asyncio.Task[None]] = []

    async def online_later() -> None:
        await asyncio.sleep(1.0)
        await context.set_offline(False)

    async def route(r: Any) -> None:
        request = r.request
        if request.method == "PATCH":
            patches.append(request.headers.get("upload-offset", ""))
            if len(patches) == 4:
                # The network goes away under the fourth chunk.
                await context.set_offline(True)
                await r.abort("internetdisconnected")
                back_online.append(asyncio.ensure_future(online_later()))
                return
        await r.continue_()

    await page.route("**/files/*", route)
    await page.select_option("#r-chunk", "262144")
    await page.set_input_files("#r-file", str(source))
    await page.click("#r-start")
    await page.wait_for_function("window.demo.resumable.offline === true", timeout=30_000)
    await _resumable_done(page)
    await asyncio.wait(back_online)
    # After the cut, tus-js-client asked the server for the offset and went on from there.
    assert patches[3] == str(3 * 256 * 1024)
    assert patches[4] == patches[3]
    assert await page.evaluate("window.demo.resumable.resumedAt") == [3 * 256 * 1024]
    [done] = await _completed(page)
    assert done["sha256"] == digest
    await context.close()
