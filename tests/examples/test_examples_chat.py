"""Smoke test of the chat example: rooms, JSON, its own close codes, and running as a script."""

from __future__ import annotations

import aiohttp
from pytest_aiohttp import AiohttpClient

from aiohttp_helpers.testing import assert_closed_with
from examples import chat
from tests.support.scripts import run_script


async def test_two_members_talk_in_a_room(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(chat.create_app())
    assert (await client.get("/")).status == 200
    async with (
        client.ws_connect("/ws/chat?room=r1&name=ann") as ann,
        client.ws_connect("/ws/chat?room=r2&name=other") as other,
    ):
        assert await ann.receive_json(timeout=5) == {"text": "ann joined r1"}
        assert await other.receive_json(timeout=5) == {"text": "other joined r2"}
        async with client.ws_connect("/ws/chat?room=r1&name=bob") as bob:
            assert await bob.receive_json(timeout=5) == {"text": "bob joined r1"}
            assert await ann.receive_json(timeout=5) == {"text": "bob joined r1"}
            await bob.send_json({"text": "héllo"})
            for ws in (ann, bob):
                assert await ws.receive_json(timeout=5) == {"from": "bob", "text": "héllo"}
        assert await ann.receive_json(timeout=5) == {"text": "bob left"}
        # Nothing from room r1 reached room r2.
        await other.send_json({"text": "anyone?"})
        assert await other.receive_json(timeout=5) == {"from": "other", "text": "anyone?"}


async def test_close_codes(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(chat.create_app())
    async with client.ws_connect("/ws/chat?name=ann") as ann:
        assert await ann.receive_json(timeout=5) == {"text": "ann joined lobby"}
        async with client.ws_connect("/ws/chat?name=ann") as twin:
            await assert_closed_with(twin, chat.ChatClose.NAME_TAKEN, "'ann' is already in 'lobby'")
        async with client.ws_connect("/ws/chat?name=" + "x" * 40) as long:
            await assert_closed_with(long, chat.ChatClose.BAD_NAME)
        await ann.send_json(["not", "a", "message"])
        await assert_closed_with(ann, 1008)
    async with client.ws_connect("/ws/chat") as guest:
        assert (await guest.receive_json(timeout=5))["text"].startswith("guest-")
        await guest.send_str("{broken")
        await assert_closed_with(guest, 1007, "message is not valid JSON")


async def test_chat_runs_as_a_script_and_closes_with_1001_on_sigterm() -> None:
    async with run_script("examples/chat.py") as script:
        assert f"{script.url}/" in await script.first_line()
        await script.serving("/")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{script.url}/ws/chat?name=z") as ws,
        ):
            assert await ws.receive_json(timeout=5) == {"text": "z joined lobby"}
            script.proc.terminate()
            await assert_closed_with(ws, 1001, "server shutting down")
        assert await script.exit_code() == 0
