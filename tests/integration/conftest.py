"""Integration tests: the real application and database behind a uvicorn server running in
a thread of the test process, so tests can also call services directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from lineside.bootstrap import Application
from tests.support.api import Tenant, new_tenant
from tests.support.server import http_client_for


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
