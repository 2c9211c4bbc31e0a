"""How ``lineside serve`` runs uvicorn: one process, or several workers behind a supervisor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from lineside.bootstrap import Application
from lineside.entrypoints.api.app import create_app
from lineside.settings import Settings


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
    """uvicorn's server, except that a SIGTERM it stopped for is not raised again after.

    uvicorn finishes in-flight requests and deliveries on SIGTERM, then raises the signal once
    more for whatever handled it before; with Python's default that kills the process right
    there, before the broker closes its sessions and writes presence one last time
    (tests/e2e/test_operations.py checks both, and the exit status)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()  # stopping gracefully was the whole answer


def serve_http(settings: Settings, application: Application) -> None:
    """Until SIGTERM or Ctrl-C. With several workers uvicorn's supervisor runs them, each
    building its own application (``entrypoints.asgi``); its signals end in a return too."""
    if settings.workers > 1:
        uvicorn.run(
            "lineside.entrypoints.asgi:create_app_from_environment",
            factory=True,
            workers=settings.workers,
            **uvicorn_options(settings),
        )
        return
    GracefulServer(uvicorn.Config(create_app(application), **uvicorn_options(settings))).run()
