"""The presence of devices connected to production brokers, as their hooks report it.

Each API app keeps one PresenceRecorder for its broker hooks, and its lifespan flushes it
every ``LINESIDE_PRESENCE_FLUSH_SECONDS`` on a worker thread (plus once at shutdown, so a
stopping server loses nothing it was told). Without a lifespan (a test serving the app with
``lifespan="off"``) nothing flushes by itself: call ``recorder_of(app).flush(ctx)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from starlette.applications import Starlette

from lineside.bootstrap import Application
from lineside.services.presence import PresenceRecorder

log = logging.getLogger("lineside.broker_hooks")
_STATE_ATTRIBUTE = "broker_hook_presence"


def recorder_of(app: Starlette) -> PresenceRecorder:
    """The app's recorder, made on first use. Only the event loop calls this (routes are
    async, and so is the lifespan), so two callers never race to make it."""
    recorder: PresenceRecorder | None = getattr(app.state, _STATE_ATTRIBUTE, None)
    if recorder is None:
        recorder = PresenceRecorder()
        setattr(app.state, _STATE_ATTRIBUTE, recorder)
    return recorder


@asynccontextmanager
async def flushing_presence(app: Starlette) -> AsyncIterator[None]:
    """Lifespan: flush the hooks' presence periodically while the app runs."""
    application: Application = app.state.lineside
    recorder = recorder_of(app)
    stop = asyncio.Event()
    loop = asyncio.create_task(_flush_until(stop, recorder, application))
    try:
        yield
    finally:
        stop.set()
        await loop


async def _flush_until(stop: asyncio.Event, recorder: PresenceRecorder, application: Application) -> None:
    seconds = application.settings.presence_flush_seconds
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        await _flush_once(recorder, application)
        if stop.is_set():
            return


async def _flush_once(recorder: PresenceRecorder, application: Application) -> None:
    if not recorder.pending():
        return
    try:
        await to_thread.run_sync(recorder.flush, application.services)
    except Exception:
        # The recorder kept the window: the next round writes it. A database that went away
        # must not end the loop.
        log.exception("broker hooks: writing presence failed; trying again next round")
