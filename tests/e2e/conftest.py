"""End-to-end tests: a real ``lineside serve`` process, spoken to over a TCP socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from lineside.bootstrap import Application
from lineside.settings import Settings
from tests.support.api import Tenant, new_tenant
from tests.support.server import free_port, lineside_serve


@pytest.fixture(scope="session")
def mqtt_port() -> int:
    """The embedded broker's port in the served process (1883 may be taken on this machine)."""
    return free_port()


@pytest.fixture(scope="session")
def server_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory, mqtt_port: int) -> Iterator[str]:
    log = tmp_path_factory.mktemp("server") / "serve.log"
    # The tests' webhook receivers listen on the loopback, which a real deployment refuses
    # (tests/integration/test_webhooks.py checks that refusal).
    environment = {"LINESIDE_MQTT_PORT": str(mqtt_port), "LINESIDE_WEBHOOK_ALLOW_PRIVATE": "1"}
    with lineside_serve(settings, free_port(), log, **environment) as url:
        yield url


@pytest.fixture(scope="session")
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def make_tenant(application: Application, http: httpx.Client) -> Callable[[], Tenant]:
    return lambda: new_tenant(application, http)


@pytest.fixture
def tenant(make_tenant: Callable[[], Tenant]) -> Tenant:
    return make_tenant()
