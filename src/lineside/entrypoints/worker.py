"""The webhook worker: the dispatch-and-deliver loop, run inside ``lineside serve`` (a thread
with its own event loop, started and stopped with the app) or alone as ``lineside worker``.
Beside it, at start and then hourly, it announces makers' CAs that expire within 30 days
(``certificate_authority.expiring``, once per CA), so the announcement reaches webhooks.

Any number of workers may run against one database: leases keep them from sending one
delivery at the same time (see ``services.webhook_delivery``), and a CA being announced by
one is skipped by the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from lineside.adapters.metrics import PrometheusMetrics
from lineside.bootstrap import Application
from lineside.entrypoints.loops import LoopThread, run_every
from lineside.services import authorities
from lineside.services.context import ServiceContext
from lineside.services.webhook_delivery import run_once

log = logging.getLogger("lineside.worker")
STOP_DEADLINE_SECONDS = 60.0
MAX_PAUSE_SECONDS = 30.0
EXPIRY_CHECK_SECONDS = 3600.0  # a CA's expiry is announced 30 days ahead: hourly is plenty


class WebhookWorker:
    def __init__(
        self, services: ServiceContext, *, poll_seconds: float, metrics: PrometheusMetrics | None = None
    ) -> None:
        self._services = services
        self._poll_seconds = poll_seconds
        self._metrics = metrics

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; an attempt in flight is finished, not abandoned."""
        failures = 0
        while not stop.is_set():
            try:
                # Only a round that filled a batch goes again at once: under steady traffic
                # a round that handled a few events would otherwise follow the last without
                # a pause, in every server worker, and take CPU from the requests.
                done = await run_once(self._services)
                again = done.full
                failures = 0
                if self._metrics is not None:
                    for outcome in done.outcomes:
                        self._metrics.webhook_attempted(outcome.value)
            except Exception:
                # A database that went away must not end the loop: log, wait longer each
                # time (up to half a minute), try again.
                failures += 1
                log.exception("webhook worker: a round failed (%d in a row); trying again", failures)
                again = False
            if not again:
                pause = min(self._poll_seconds * 2 ** min(failures, 10), MAX_PAUSE_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(pause, self._poll_seconds))


async def warn_of_expiring_authorities(
    services: ServiceContext, stop: asyncio.Event, seconds: float = EXPIRY_CHECK_SECONDS
) -> None:
    """Now, then every ``seconds`` until ``stop``: each CA expiring soon is announced once."""

    async def step() -> None:
        announced = await asyncio.to_thread(authorities.warn_expiring, services)
        if announced:
            log.info("worker: %d certificate authorities expire within 30 days (announced)", announced)

    await run_every(stop, seconds, step, what="the CA expiry check")


class BackgroundWorker(LoopThread):
    """A WebhookWorker (and the CA expiry check) on a thread of its own, so a slow receiver
    or a busy database never holds up the server's event loop."""

    def __init__(
        self,
        services: ServiceContext,
        *,
        poll_seconds: float,
        metrics: PrometheusMetrics | None = None,
        expiry_check_seconds: float = EXPIRY_CHECK_SECONDS,
    ) -> None:
        super().__init__("lineside-webhooks")
        self._services = services
        self._worker = WebhookWorker(services, poll_seconds=poll_seconds, metrics=metrics)
        self._expiry_check_seconds = expiry_check_seconds

    def start(self) -> None:
        self.start_thread()

    def stop(self, timeout: float = STOP_DEADLINE_SECONDS) -> None:
        super().stop(timeout)

    async def serve(self, stop: asyncio.Event) -> None:
        self.started()
        await asyncio.gather(
            self._worker.run(stop),
            warn_of_expiring_authorities(self._services, stop, self._expiry_check_seconds),
        )


def worker_lifespan(application: Application) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the in-process worker, unless LINESIDE_WEBHOOK_WORKER=0."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        settings = application.settings
        worker = None
        if settings.webhook_worker:
            worker = BackgroundWorker(
                application.services, poll_seconds=settings.webhook_poll_seconds, metrics=application.metrics
            )
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                # Deliveries in flight are finished (their attempts recorded), within the
                # shutdown bound; past it the thread is left to die with the process.
                await asyncio.to_thread(worker.stop, settings.shutdown_seconds)

    return lifespan


def run_until_signalled(application: Application, on_ready: Callable[[], None] = lambda: None) -> None:
    """Work in the foreground until SIGTERM or SIGINT, then finish what is in flight.
    ``on_ready`` runs once the signals are handled (a signal before then would kill)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stop.set)
        on_ready()
        worker = WebhookWorker(
            application.services,
            poll_seconds=application.settings.webhook_poll_seconds,
            metrics=application.metrics,
        )
        await asyncio.gather(worker.run(stop), warn_of_expiring_authorities(application.services, stop))

    asyncio.run(main())
