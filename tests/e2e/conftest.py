"""End-to-end tests: a real ``lineside serve`` process, spoken to over a TCP socket."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest

from lineside.bootstrap import Application
from lineside.settings import Settings
from tests.conftest import SHARED_DEPLOYMENT_ENVIRONMENT
from tests.support.api import Tenant, new_tenant
from tests.support.server import free_port, wait_until_healthy


@pytest.fixture(scope="session")
def mqtt_port() -> int:
    """The embedded broker's port in the served process (1883 may be taken on this machine)."""
    return free_port()


@pytest.fixture(scope="session")
def server_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory, mqtt_port: int) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {
        **os.environ,
        "LINESIDE_DATABASE_URL": settings.database_url,
        "LINESIDE_DATA_DIR": str(settings.data_dir),
        **SHARED_DEPLOYMENT_ENVIRONMENT,
        "LINESIDE_PORT": str(port),
        "LINESIDE_MQTT_PORT": str(mqtt_port),
        "LINESIDE_LOG_LEVEL": "warning",
        # The tests' webhook receivers listen on the loopback, which a real deployment refuses
        # (tests/integration/test_webhooks.py checks that refusal).
        "LINESIDE_WEBHOOK_ALLOW_PRIVATE": "1",
    }
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "lineside", "serve", "--no-migrate"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


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
