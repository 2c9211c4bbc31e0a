"""What the server runs beside its requests: a coroutine on a thread with an event loop of
its own (the webhook worker, the embedded MQTT broker), and a step repeated every few seconds
until told to stop (presence flushes, revocation checks, firmware notices)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

log = logging.getLogger("lineside.loops")


async def run_every(
    stop: asyncio.Event, seconds: float, step: Callable[[], Awaitable[None]], *, what: str
) -> None:
    """``step`` now and then every ``seconds`` until ``stop`` is set, counted from the start
    of each step: one that took longer (a presence flush behind a fleet coming online) is
    followed at once, so the work it left waits no extra round. A step that fails is logged
    and tried again next round: a database that went away must not end the loop."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            await step()
        except Exception:
            log.exception("%s failed; trying again", what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, started + seconds - loop.time()))


class LoopThread:
    """A daemon thread running ``serve(stop)`` on its own event loop. ``serve`` calls
    ``self.started()`` once it is ready; ``stop()`` sets ``stop`` from any thread and joins."""

    def __init__(self, name: str) -> None:
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    async def serve(self, stop: asyncio.Event) -> None:
        raise NotImplementedError

    def started(self) -> None:
        self._started.set()

    def start_thread(self, deadline_seconds: float | None = None) -> bool:
        """Start the thread; whether ``serve`` said it started within the deadline."""
        self._thread.start()
        return self._started.wait(deadline_seconds)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.serve(self._stop)
