"""A chat server: rooms over WebSocket groups, JSON messages, close codes that say why.

Run it with ``python examples/chat.py`` and open http://127.0.0.1:8081/ in two tabs.
Clients connect to ``/ws/chat?room=lobby&name=alice``, send ``{"text": "..."}`` and receive
``{"from": "alice", "text": "..."}`` (``from`` is absent on the room's own notices).
"""

from __future__ import annotations

import argparse
import enum
import itertools
import json

from aiohttp import web

import aiohttp_helpers as ah

MAX_TEXT = 2000
NAMES = web.AppKey("chat_names", dict[str, set[str]])


class ChatClose(enum.IntEnum):
    """The chat's own close codes (4000-4999 are the application's)."""

    NAME_TAKEN = 4001
    BAD_NAME = 4002


_guests = itertools.count(1)

INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>chat</title></head>
<body>
<ul id="log"></ul>
<form id="f"><input id="t" autocomplete="off" maxlength="2000"><button>send</button></form>
<p id="status">connecting</p>
<script>
const log = document.getElementById("log"), status = document.getElementById("status");
const ws = new WebSocket(`ws://${location.host}/ws/chat${location.search}`);
ws.onmessage = (e) => {
  const m = JSON.parse(e.data), li = document.createElement("li");
  li.textContent = m.from ? `${m.from}: ${m.text}` : m.text;
  log.append(li);
};
ws.onopen = () => { status.textContent = "connected"; };
ws.onclose = (e) => { status.textContent = `closed ${e.code} ${e.reason}`; };
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const t = document.getElementById("t");
  if (t.value) { ws.send(JSON.stringify({text: t.value})); t.value = ""; }
};
</script>
</body>
</html>
"""


async def index(request: web.Request) -> web.Response:
    return web.Response(text=INDEX, content_type="text/html")


def _notice(text: str) -> str:
    return json.dumps({"text": text}, ensure_ascii=False)


@ah.websocket_handler(messages="json", max_msg_size=16 * 1024)
async def chat(request: web.Request, ws: ah.ServerWebSocket) -> None:
    """One chat member: joins a room, relays its messages to the room, leaves."""
    room = request.query.get("room", "lobby")
    name = request.query.get("name") or f"guest-{next(_guests)}"
    if not name.isprintable() or len(name) > 32 or len(room) > 32:
        raise ah.WSClose(ChatClose.BAD_NAME, "names and rooms are 1-32 printable characters")
    names = request.app[NAMES].setdefault(room, set())
    if name in names:
        raise ah.WSClose(ChatClose.NAME_TAKEN, f"{name!r} is already in {room!r}")
    websockets = ah.get_helpers(request.app).websockets
    names.add(name)
    websockets.join(ws, room)
    try:
        await websockets.broadcast(_notice(f"{name} joined {room}"), group=room)
        async for message in ws.messages():
            text = message.get("text") if isinstance(message, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise ah.WSClose(1008, 'send {"text": "..."} with some text')
            reply = {"from": name, "text": text[:MAX_TEXT]}
            await websockets.broadcast(json.dumps(reply, ensure_ascii=False), group=room)
    finally:
        names.discard(name)
        websockets.leave(ws, room)
        await websockets.broadcast(_notice(f"{name} left"), group=room)


def create_app() -> web.Application:
    """The chat application."""
    app = web.Application()
    ah.setup(app, websockets=ah.WebSocketSettings(heartbeat=20.0, max_connections_per_client=20))
    app[NAMES] = {}
    app.router.add_get("/", index)
    app.router.add_get("/ws/chat", chat)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8081, help="port to listen on (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    print(f"chat on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    web.run_app(create_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
