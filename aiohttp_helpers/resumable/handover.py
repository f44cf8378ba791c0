"""Finishing an upload: its bytes moved aside, handed to ``on_upload`` as an UploadedFile."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from ..scope import request_scope
from ..uploads.filenames import safe_filename
from ..uploads.uploaded import UploadedFile
from .storage import Store, UploadState

if TYPE_CHECKING:
    from ..signals import RequestSignals

__all__ = ["finish", "hand_over"]

log = logging.getLogger("aiohttp_helpers.resumable")


async def finish(store: Store, fd: int, state: UploadState, running: Any) -> Path:
    """Mark the locked, fully written upload complete; where its bytes now are.

    Its SHA-256 comes from the ``running`` hash when this process saw every byte, else
    from the file. The bytes move to the hand-over file (the state stays, marked complete).
    """
    if running is not None:
        state.sha256 = running.hexdigest()
    else:
        state.sha256 = await asyncio.to_thread(store.digest, fd, state.offset)
    path = await asyncio.to_thread(store.complete, state)
    log.debug("upload %s complete: %d bytes", state.id, state.offset)
    return path


async def hand_over(
    request: web.Request,
    state: UploadState,
    path: Path,
    *,
    field: str,
    signals: RequestSignals,
) -> None:
    """Send the completed upload at ``path`` to ``on_upload``; remove it unless saved.

    The file lives as long as the request when the request has a scope (the receivers
    may keep using it until the answer), else until the receivers are done.
    """
    raw = state.metadata.get("filename") or state.metadata.get("name")
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Content-Type"] = state.media_type
    uploaded = UploadedFile(
        name=field,
        filename=safe_filename(raw),
        raw_filename=raw,
        content_type=state.media_type,
        headers=CIMultiDictProxy(headers),
        size=state.offset,
        sha256=state.sha256 or "",
        path=os.fspath(path),
    )
    scope = request_scope(request)
    if scope is not None and not scope.closed:
        scope.push(uploaded.aclose)
    try:
        signal = signals.on_upload
        if signal and signal.frozen:
            await signal.send(request, uploaded)
    finally:
        if scope is None or scope.closed:
            await uploaded.aclose()
