"""``add_resumable_uploads()``: the ResumableUploads of one path, its routes, its lifetime."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._validate import positive
from .._words import counted
from ..config import UploadLimits
from ..keys import LIFECYCLE_KEY, SIGNALS_KEY
from ..uploads.filenames import safe_filename
from ..uploads.limits import limits_for
from . import handlers
from .errors import UploadGone, UploadNotFound
from .storage import Store, UploadState, valid_id

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle
    from ..signals import RequestSignals

__all__ = ["ResumableUploads", "add_resumable_uploads"]

log = logging.getLogger("aiohttp_helpers.resumable")


class ResumableUploads:
    """Resumable uploads (tus 1.0 and the IETF draft) under one path of one app.

    Made by :func:`add_resumable_uploads`. ``path`` is the creation URL; each upload
    lives at ``path/<id>``. A completed upload reaches ``on_upload`` receivers as an
    :class:`~aiohttp_helpers.UploadedFile` and is removed after the request that completed
    it, unless a receiver saved it.
    """

    def __init__(
        self,
        path: str,
        *,
        signals: RequestSignals,
        directory: str | os.PathLike[str],
        limits: UploadLimits | None,
        expires: float,
        field: str,
        max_uploads_per_client: int | None,
        max_metadata_size: int,
        max_metadata_pairs: int,
        sweep_interval: float,
        interim_responses: bool = True,
    ) -> None:
        self.signals = signals
        self.interim_responses = interim_responses
        self.path = path
        self.store = Store(directory)
        self.limits = limits
        self.expires = float(expires)
        self.field = field
        self.max_uploads_per_client = max_uploads_per_client
        self.max_metadata_size = max_metadata_size
        self.max_metadata_pairs = max_metadata_pairs
        self.sweep_interval = float(sweep_interval)
        # Running SHA-256 states by upload id, with the offset each covers (append.py).
        self._running: collections.OrderedDict[str, tuple[int, Any]] = collections.OrderedDict()
        self._item: web.Resource | None = None

    @property
    def directory(self) -> Path:
        """Where partial uploads and their state live."""
        return self.store.directory

    def __repr__(self) -> str:
        return f"<ResumableUploads {self.path!r} in {str(self.directory)!r}>"

    # -- public operations --------------------------------------------------------------

    async def sweep(self) -> int:
        """Remove the uploads idle for ``expires`` seconds; return how many were removed."""
        removed = await asyncio.to_thread(self.store.sweep, self.expires)
        if removed:
            log.info("removed %s from %s", counted(removed, "expired upload"), self.directory)
        return removed

    async def get(self, upload_id: str) -> UploadState | None:
        """The stored state of an upload, or ``None``."""
        if not valid_id(upload_id):
            return None
        return await asyncio.to_thread(self.store.read, upload_id)

    async def remove(self, upload_id: str) -> bool:
        """Terminate an upload now; ``False`` if there was none.

        Raises:
            UploadLocked: a request is writing to it.
        """
        if not valid_id(upload_id):
            return False
        return await asyncio.to_thread(self._terminate, upload_id)

    def url_for(self, upload_id: str) -> str:
        """The path of an upload (the ``Location`` a creation answers with)."""
        assert self._item is not None
        return str(self._item.url_for(upload_id=upload_id))

    # -- for the handlers ---------------------------------------------------------------

    def _terminate(self, upload_id: str) -> bool:
        fd = self.store.lock(upload_id)  # UploadLocked while a PATCH writes
        try:
            state = self.store.read(upload_id)
            if state is None:
                return False
            self._running.pop(upload_id, None)
            self.store.remove(upload_id, state.client)
            return True
        finally:
            if fd is not None:
                self.store.unlock(fd)

    async def _current(self, upload_id: str) -> UploadState:
        """The upload's state; refused when there is none (404) or it expired (410)."""
        if not valid_id(upload_id):
            raise UploadNotFound()
        state = await asyncio.to_thread(self.store.read, upload_id)
        if state is None:
            raise UploadNotFound()
        if state.expires_at(self.expires) < time.time():
            raise UploadGone()
        return state

    def _running_hash(self, state: UploadState) -> Any:
        """The running SHA-256 of the upload's bytes so far, if this process has it.

        A fresh one for an empty upload; ``None`` when another process (or a restart)
        wrote some of the bytes: the digest is then read from the file at the end.
        """
        entry = self._running.pop(state.id, None)
        if entry is not None and entry[0] == state.offset:
            return entry[1]
        return hashlib.sha256() if state.offset == 0 else None

    def _limits(self, request: web.Request) -> UploadLimits:
        return self.limits if self.limits is not None else limits_for(request)

    def _upload_limit(self, limits: UploadLimits) -> str:
        """The draft's ``Upload-Limit`` value."""
        return f"max-size={limits.max_file_size}, expires={int(self.expires)}"

    # -- wiring -------------------------------------------------------------------------

    def _install(self, app: web.Application, lifecycle: Lifecycle) -> None:
        router = app.router
        base = router.add_resource(self.path)
        base.add_route("POST", handlers.answering(self, handlers.create))
        base.add_route("OPTIONS", handlers.options_of(self))
        item = router.add_resource(self.path.rstrip("/") + "/{upload_id}")
        item.add_route("HEAD", handlers.answering(self, handlers.head))
        item.add_route("PATCH", handlers.answering(self, handlers.patch))
        item.add_route("DELETE", handlers.answering(self, handlers.delete))
        item.add_route("POST", handlers.answering(self, handlers.override))
        item.add_route("OPTIONS", handlers.options_of(self))
        self._item = item
        lifecycle.context(self._lifetime, name=f"resumable uploads {self.path}")

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except OSError:
                log.exception("sweeping %s failed", self.directory)

    @contextlib.asynccontextmanager
    async def _lifetime_cm(self) -> AsyncIterator[None]:
        await asyncio.to_thread(self.store.ensure)
        await self.sweep()
        task = asyncio.create_task(self._sweeper(), name=f"resumable sweeper {self.path}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])

    def _lifetime(self, app: web.Application) -> contextlib.AbstractAsyncContextManager[None]:
        return self._lifetime_cm()


def add_resumable_uploads(
    app: web.Application,
    path: str,
    *,
    directory: str | os.PathLike[str],
    limits: UploadLimits | None = None,
    expires: float = 24 * 3600,
    field: str = "file",
    max_uploads_per_client: int | None = 20,
    max_metadata_size: int = 4096,
    max_metadata_pairs: int = 32,
    sweep_interval: float | None = None,
    interim_responses: bool = True,
) -> ResumableUploads:
    """Serve resumable uploads (tus 1.0 and the IETF draft) at ``path`` of ``app``.

    Call it after :func:`~aiohttp_helpers.setup` on the same app and before the app (or
    its parent) is frozen. ``directory`` keeps the partial uploads and their state (it
    is created if needed); use a directory of its own, on a local filesystem shared by
    every worker process. ``limits`` (default: the app's) apply to each upload as to a
    file of a form, its ``allowed_types`` / ``sniff_types`` looked up under ``field``.
    ``expires`` seconds after its last byte, an unfinished upload is removed (swept at
    startup and every ``sweep_interval`` seconds, by default ``min(expires, 600)``).
    ``interim_responses``: answer a draft client's creation with ``104 Upload Resumption
    Supported`` (its upload's ``Location``) before reading the body, as the draft asks.

    Raises:
        RuntimeError: ``setup()`` was not called on ``app``, or ``app`` is frozen.
        TypeError: an option of the wrong type (a count that is not an ``int``, say).
        ValueError: an option out of range (a size, count or interval not positive).
    """
    if not isinstance(app, web.Application):
        raise TypeError(
            f"add_resumable_uploads() needs a web.Application, got {type(app).__name__}"
        )
    if app.frozen or app.pre_frozen:
        raise RuntimeError(
            "add_resumable_uploads() must be called before the application is frozen "
            "(before add_subapp() or before it starts)"
        )
    lifecycle, signals = app.get(LIFECYCLE_KEY), app.get(SIGNALS_KEY)
    if lifecycle is None or signals is None:
        raise RuntimeError(
            "add_resumable_uploads() needs aiohttp_helpers.setup(app) first: its middleware, "
            "signals and lifecycle serve the uploads"
        )
    if not path.startswith("/") or (path.endswith("/") and path != "/") or "{" in path:
        raise ValueError(f"path must be a plain path such as '/files', got {path!r}")
    if limits is not None and not isinstance(limits, UploadLimits):
        raise TypeError(f"limits must be an UploadLimits, got {type(limits).__name__}")
    positive("expires", expires)
    positive("max_metadata_size", max_metadata_size, integer=True)
    positive("max_metadata_pairs", max_metadata_pairs, integer=True)
    positive("max_uploads_per_client", max_uploads_per_client, optional=True, integer=True)
    positive("sweep_interval", sweep_interval, optional=True)
    interval = min(float(expires), 600.0) if sweep_interval is None else float(sweep_interval)
    if not field or safe_filename(field, default="file") != field:
        raise ValueError(f"field must be a plain name, got {field!r}")
    uploads = ResumableUploads(
        path,
        signals=signals,
        directory=directory,
        limits=limits,
        expires=expires,
        field=field,
        max_uploads_per_client=max_uploads_per_client,
        max_metadata_size=max_metadata_size,
        max_metadata_pairs=max_metadata_pairs,
        sweep_interval=interval,
        interim_responses=bool(interim_responses),
    )
    Path(directory).mkdir(parents=True, exist_ok=True)
    uploads._install(app, lifecycle)
    return uploads
