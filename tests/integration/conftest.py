"""Integration tests: the real application and database behind a uvicorn server running in
a thread of the test process, so tests can also call services directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lineside.bootstrap import Application
from lineside.entrypoints.mqtt import EmbeddedBroker
from tests.support.api import Tenant, new_tenant
from tests.support.server import free_port, http_client_for
from tests.support.webhooks import isolated_application


@pytest.fixture(scope="session")
def client(application: Application) -> Iterator[httpx.Client]:
    with http_client_for(application) as http:
        yield http


@pytest.fixture
def make_tenant(application: Application, client: httpx.Client) -> Callable[[], Tenant]:
    return lambda: new_tenant(application, client)


@pytest.fixture
def tenant(make_tenant: Callable[[], Tenant]) -> Tenant:
    return make_tenant()


# Webhook tests: a database and application of the test module's own, so one module's
# deliveries, endpoints and worker never meet another's.


@pytest.fixture(scope="module")
def hooks_app(
    database_url: str,
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Application]:
    scratch = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with isolated_application(database_url, data_dir, scratch) as application:
        yield application


@pytest.fixture(scope="module")
def hooks_client(hooks_app: Application) -> Iterator[httpx.Client]:
    with http_client_for(hooks_app) as http:
        yield http


@pytest.fixture(scope="module")
def tls_broker(application: Application) -> Iterator[EmbeddedBroker]:
    """The embedded broker with its TLS listener, checking credentials every 0.2 s."""
    broker = EmbeddedBroker(
        application, host="127.0.0.1", port=free_port(), tls_port=free_port(), recheck_seconds=0.2
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
