"""The ASGI application for ``uvicorn --factory`` (used with several worker processes)."""

from __future__ import annotations

from fastapi import FastAPI

from lineside.bootstrap import bootstrap
from lineside.entrypoints.api.app import create_app
from lineside.entrypoints.logs import configure_logging
from lineside.settings import Settings


def create_app_from_environment() -> FastAPI:
    # A worker process is a fresh interpreter: it sets up logging as `lineside serve` did.
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(bootstrap(settings))
