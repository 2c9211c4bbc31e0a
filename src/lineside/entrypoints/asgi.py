"""The ASGI application for ``uvicorn --factory`` (used with several worker processes)."""

from __future__ import annotations

from fastapi import FastAPI

from lineside.bootstrap import bootstrap
from lineside.entrypoints.api.app import create_app


def create_app_from_environment() -> FastAPI:
    return create_app(bootstrap())
