"""Shared fixtures: one migrated database per backend per session, applications on it.

Every test makes its own organizations, and tenants never see each other, so tests share a
database without cleaning up after each other. PostgreSQL runs when a server answers at
LINESIDE_TEST_POSTGRES_URL (default: the local trust-auth server); without one the
PostgreSQL half skips with the reason, unless LINESIDE_REQUIRE_POSTGRES=1 (set by .ci/run)
turns that skip into a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.migrate import upgrade_database
from lineside.bootstrap import Application, bootstrap
from lineside.settings import Settings

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# `lineside serve` picks Mosquitto by itself where it is installed (LINESIDE_MQTT_BROKER=auto):
# the suite names its broker instead, so a test runs the same broker on every machine. The
# embedded one unless a test asks for Mosquitto (tests/support/mosquitto.py) or the default.
os.environ.setdefault("LINESIDE_MQTT_BROKER", "embedded")
BACKENDS = ["sqlite", "postgres"]


def postgres_admin_url() -> str:
    return os.environ.get("LINESIDE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("LINESIDE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (LINESIDE_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL server: {reason}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    admin_url = postgres_admin_url()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"lineside_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        _postgres_unavailable(f"{make_url(admin_url).render_as_string()}: {error.__class__.__name__}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = create_database_engine(url)
    upgrade_database(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "lineside.db"
    url = f"sqlite:///{path}"
    engine = create_database_engine(url)
    upgrade_database(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_database")
    return url


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("data")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# The suite's clients all connect from the loopback, as the many users behind one reverse
# proxy would: the proxy is trusted to say who they are (X-Forwarded-For), and the per-address
# limits are wide. The tests of those limits build applications with strict ones.
class SharedDeployment(TypedDict):
    trusted_proxies: str
    sign_ups_per_address_per_window: int
    sign_in_address_attempts_per_window: int
    claim_address_attempts_per_window: int


SHARED_DEPLOYMENT: SharedDeployment = {
    "trusted_proxies": "127.0.0.1",
    "sign_ups_per_address_per_window": 1_000_000,
    "sign_in_address_attempts_per_window": 1_000_000,
    "claim_address_attempts_per_window": 1_000_000,
}
SHARED_DEPLOYMENT_ENVIRONMENT = {
    f"LINESIDE_{name.upper()}": str(value) for name, value in SHARED_DEPLOYMENT.items()
}


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, _env_file=None, **SHARED_DEPLOYMENT)


@pytest.fixture(scope="session")
def application(settings: Settings) -> Iterator[Application]:
    app = bootstrap(settings)
    yield app
    app.close()


# The tiers, by folder: `pytest -m "unit or service"` is the fast loop (no database, no
# server), `-m integration` the adapters and routes on both databases, `-m e2e` whole processes.
TIER_OF_FOLDER = {"unit": "unit", "services": "service", "integration": "integration", "e2e": "e2e"}
TESTS_ROOT = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(TESTS_ROOT).parts[0]
        tier = TIER_OF_FOLDER.get(folder)
        if tier is not None:
            item.add_marker(tier)
