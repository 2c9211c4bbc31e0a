"""How ``lineside serve`` runs uvicorn: one process, or several workers behind a supervisor."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from lineside.bootstrap import Application
from lineside.entrypoints.api.app import create_app
from lineside.settings import Settings

log = logging.getLogger("lineside.serve")


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How every Lineside server runs uvicorn.

    ``log_config=None``: uvicorn's records go through the one redacting handler
    (``entrypoints.logs``) instead of handlers of its own. ``proxy_headers=False``: the app
    itself believes X-Forwarded-For only from LINESIDE_TRUSTED_PROXIES; uvicorn's default
    would believe any client on loopback.
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.shutdown_seconds,
    }


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM it stopped for is not raised again after, and
    that ``before_stop`` (if any) runs before it stops serving.

    uvicorn finishes in-flight requests and deliveries on SIGTERM, then raises the signal once
    more for whatever handled it before; with Python's default that kills the process right
    there, before the broker closes its sessions and writes presence one last time
    (tests/e2e/test_operations.py checks both, and the exit status).

    ``before_stop`` stops Mosquitto while HTTP still answers, so its plugin can report the
    connections that end with it. It runs on a thread of its own: the event loop keeps
    serving meanwhile, and uvicorn starts stopping when it returns."""

    def __init__(self, config: uvicorn.Config, before_stop: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._before_stop = before_stop
        self._stopping: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._before_stop is None or self._stopping is not None:
            super().handle_exit(sig, frame)  # no hook, or a second signal: uvicorn's own way
            return
        self._stopping = threading.Thread(
            target=self._stop_then_exit, args=(self._before_stop, sig, frame), name="lineside-before-stop"
        )
        self._stopping.start()

    def _stop_then_exit(self, before_stop: Callable[[], None], sig: int, frame: FrameType | None) -> None:
        _run_before_stop(before_stop)
        super().handle_exit(sig, frame)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()  # stopping gracefully was the whole answer


class Supervisor(Multiprocess):
    """uvicorn's supervisor of several workers, running ``before_stop`` (while the workers
    still serve) when SIGTERM or Ctrl-C arrives, before it stops them."""

    def __init__(self, config: uvicorn.Config, before_stop: Callable[[], None] | None) -> None:
        super().__init__(config, sockets=[config.bind_socket()])
        self._before_stop = before_stop

    def handle_term(self) -> None:
        self._stop_first()
        super().handle_term()

    def handle_int(self) -> None:
        self._stop_first()
        super().handle_int()

    def _stop_first(self) -> None:
        before_stop, self._before_stop = self._before_stop, None  # once, whichever signal
        if before_stop is not None:
            _run_before_stop(before_stop)


def _run_before_stop(before_stop: Callable[[], None]) -> None:
    """Runs it; a failure is logged, and HTTP stops all the same."""
    try:
        before_stop()
    except Exception:
        log.exception("stopping the broker before the HTTP server failed")


def serve_http(
    settings: Settings, application: Application, before_stop: Callable[[], None] | None = None
) -> None:
    """Until SIGTERM or Ctrl-C; ``before_stop`` runs first, while HTTP still answers. With
    several workers uvicorn's supervisor runs them, each building its own application
    (``entrypoints.asgi``); its signals end in a return too."""
    if settings.workers > 1:
        config = uvicorn.Config(
            "lineside.entrypoints.asgi:create_app_from_environment",
            factory=True,
            workers=settings.workers,
            **uvicorn_options(settings),
        )
        Supervisor(config, before_stop).run()
        return
    config = uvicorn.Config(create_app(application), **uvicorn_options(settings))
    GracefulServer(config, before_stop).run()
