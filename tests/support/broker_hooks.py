"""The broker hooks under test: an app with a hook secret on a real socket, a device with a
token, and what the presence recorder wrote for it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from lineside.bootstrap import Application, bootstrap
from lineside.domain.models import Device
from lineside.entrypoints.api.app import create_app
from lineside.entrypoints.api.routes.broker_hooks.presence import recorder_of
from lineside.settings import Settings
from tests.support.api import Tenant, new_tenant
from tests.support.server import serving


@dataclass
class Hooks:
    """A running app whose broker hooks use ``secret``."""

    application: Application
    app: FastAPI
    http: httpx.Client
    secret: str

    def tenant(self) -> Tenant:
        return new_tenant(self.application, self.http)

    def device(self, tenant: Tenant, *, product_id: str | None = None) -> tuple[str, str]:
        """A new device's id and device token."""
        device = tenant.device(product_id or tenant.product()["id"])
        return device["id"], tenant.token(device["id"])

    def flush(self) -> None:
        recorder_of(self.app).flush(self.application.services)

    def stored(self, device_id: str) -> Device:
        with self.application.services.unit_of_work(write=False) as uow:
            device = uow.devices.get(device_id, within="/")
        assert device is not None
        return device

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@contextmanager
def running_hooks(settings: Settings) -> Iterator[Hooks]:
    """An application on the test database whose broker hooks want a secret of their own."""
    secret = secrets.token_urlsafe(32)
    application = bootstrap(settings.model_copy(update={"broker_hook_secret": SecretStr(secret)}))
    app = create_app(application)
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=30.0) as http:
            yield Hooks(application, app, http, secret)
    finally:
        application.close()
