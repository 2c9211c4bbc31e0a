"""The presence of devices connected to production brokers, as their hooks report it.

Each API app keeps one PresenceRecorder for its broker hooks, and its lifespan flushes it
every ``LINESIDE_PRESENCE_FLUSH_SECONDS`` on a worker thread (plus once at shutdown, so a
stopping server loses nothing it was told). Without a lifespan (a test serving the app with
``lifespan="off"``) nothing flushes by itself: call ``recorder_of(app).flush(ctx)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from starlette.applications import Starlette

from lineside.bootstrap import Application
from lineside.entrypoints.loops import run_every
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
    """Lifespan: flush the hooks' presence periodically while the app runs, and once more at
    shutdown."""
    application: Application = app.state.lineside
    recorder = recorder_of(app)

    async def flush() -> None:
        # The recorder keeps a window it could not write: the next round writes it.
        if recorder.pending():
            await to_thread.run_sync(recorder.flush, application.services)

    stop = asyncio.Event()
    seconds = application.settings.presence_flush_seconds
    flushing = asyncio.create_task(run_every(stop, seconds, flush, what="broker hooks: writing presence"))
    try:
        yield
    finally:
        stop.set()
        await flushing
        try:
            await flush()
        except Exception:
            log.exception("broker hooks: the last presence flush failed")
