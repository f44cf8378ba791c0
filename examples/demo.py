"""The demo app: ``make demo`` serves it on http://127.0.0.1:8080/."""

from __future__ import annotations

import argparse

from aiohttp import web

import aiohttp_helpers as ah

INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>aiohttp-helpers demo</title></head>
<body>
<h1>aiohttp-helpers demo</h1>
<p>Health: <a href="/health/live">/health/live</a>, <a href="/health/ready">/health/ready</a></p>
</body>
</html>
"""


async def index(request: web.Request) -> web.Response:
    return web.Response(text=INDEX, content_type="text/html")


def create_app() -> web.Application:
    """The demo application, with the package set up."""
    app = web.Application()
    ah.setup(app, health="/health")
    app.router.add_get("/", index)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    print(f"aiohttp-helpers demo on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    web.run_app(create_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
