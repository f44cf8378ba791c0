"""Liveness and readiness routes for load balancers and orchestrators (Kubernetes probes)."""

from __future__ import annotations

from aiohttp import web

from .serving import AppState, ServingState

__all__ = ["add_health_routes"]

_HEADERS = {"Cache-Control": "no-store"}


def add_health_routes(app: web.Application, prefix: str, lifecycle: ServingState) -> None:
    """Answer ``GET <prefix>/live`` and ``GET <prefix>/ready`` (and ``HEAD``) on ``app``.

    ``live`` answers 200 for as long as the process serves requests, whatever the state.
    ``ready`` answers 200 in READY only, else 503; both bodies name the state.
    """

    async def live(request: web.Request) -> web.Response:
        return web.Response(text=f"{lifecycle.state.value}\n", headers=_HEADERS)

    async def ready(request: web.Request) -> web.Response:
        state = lifecycle.state
        return web.Response(
            status=200 if state is AppState.READY else 503,
            text=f"{state.value}\n",
            headers=_HEADERS,
        )

    app.router.add_get(f"{prefix}/live", live)
    app.router.add_get(f"{prefix}/ready", ready)
