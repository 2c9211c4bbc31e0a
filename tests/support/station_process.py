"""The station process for tests: a bundle made through the server's API, ``lineside station
run`` as a real subprocess on a free port, ``lineside factory simulate`` pointed at it, and
``lineside station sync``; and what the server holds of a station's units afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from lineside.bootstrap import Application
from tests.support.api import Tenant, unique
from tests.support.factory import factory_token, keyed
from tests.support.server import free_port, wait_until_healthy

STARTUP_DEADLINE_SECONDS = 30.0
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers HTTP there


@dataclass(frozen=True)
class Delegation:
    """A station the server made: its bundle on disk, and what the line's fixtures send."""

    path: Path
    bundle: dict[str, Any]
    enrollment_token: str
    fixture_api_key: str

    @property
    def station_id(self) -> str:
        return str(self.bundle["station"]["id"])

    @property
    def product_id(self) -> str:
        return str(self.bundle["product"]["id"])

    @property
    def data_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".station")


def delegate(
    tenant: Tenant, directory: Path, *, budget: int = 10_000, valid_days: float = 14, token_pool: bool = False
) -> Delegation:
    product = tenant.product()
    token = factory_token(tenant, product["id"])
    fixtures = keyed(tenant, "factory")
    body = {
        "name": unique("station"),
        "budget": budget,
        "valid_days": valid_days,
        "enrollment_token": token,
        "fixture_api_key": fixtures.api_key,
        "token_pool": token_pool,
    }
    bundle: dict[str, Any] = tenant.created(f"/api/v1/products/{product['id']}/stations", body)["bundle"]
    path = directory / f"{unique('bundle')}.json"
    write_private(path, bundle)
    return Delegation(path, bundle, token, fixtures.api_key)


def write_private(path: Path, bundle: dict[str, Any]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(bundle, handle)


def lineside(*arguments: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineside", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_environment(),
        check=False,
    )


def _environment() -> dict[str, str]:
    # The station and the CLI take everything from their arguments and the bundle; the test
    # session's own LINESIDE_* settings must not reach them.
    return {name: value for name, value in os.environ.items() if not name.startswith("LINESIDE_")}


@dataclass
class StationProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a pulled plug."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.url}/status", timeout=10).json()
        return answer


@contextmanager
def station_running(
    delegation: Delegation, log: Path, *, server: str = UNREACHABLE, sync_every: float = 0
) -> Iterator[StationProcess]:
    port = free_port()
    arguments = [
        str(delegation.path),
        "--port",
        str(port),
        "--server",
        server,
        "--sync-every",
        str(sync_every),
    ]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "lineside", "station", "run", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_environment(),
        )
    station = StationProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_healthy(station.url, process, log)
        yield station
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def simulate_arguments(
    station: StationProcess, delegation: Delegation, count: int, fixtures: int = 8
) -> list[str]:
    return [
        "factory",
        "simulate",
        "--server",
        station.url,
        "--api-key",
        delegation.fixture_api_key,
        "--enrollment-token",
        delegation.enrollment_token,
        "--count",
        str(count),
        "--fixtures",
        str(fixtures),
        "--seed",
        "17",
        "--json",
    ]


def simulate(station: StationProcess, delegation: Delegation, count: int) -> dict[str, Any]:
    done = lineside(*simulate_arguments(station, delegation, count))
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def station_sync(delegation: Delegation, server: str) -> subprocess.CompletedProcess[str]:
    return lineside("station", "sync", str(delegation.path), "--server", server)


@dataclass(frozen=True)
class ServerView:
    """What the server holds of a product's units (read from its database)."""

    devices: int
    distinct_serials: int
    test_runs: int
    distinct_runs: int
    blessed_or_failed: int
    enrolled_events: int
    blessing_events: int


def server_view(application: Application, product_id: str) -> ServerView:
    with application.engine.connect() as connection:

        def one(query: str) -> int:
            return int(connection.execute(text(query), {"product": product_id}).scalar_one())

        devices = "SELECT id FROM devices WHERE product_id = :product"
        return ServerView(
            devices=one("SELECT count(*) FROM devices WHERE product_id = :product"),
            distinct_serials=one(
                "SELECT count(DISTINCT serial_number) FROM devices WHERE product_id = :product"
            ),
            test_runs=one(f"SELECT count(*) FROM test_runs WHERE device_id IN ({devices})"),
            distinct_runs=one(f"SELECT count(DISTINCT id) FROM test_runs WHERE device_id IN ({devices})"),
            blessed_or_failed=one(
                "SELECT count(*) FROM devices WHERE product_id = :product AND state IN ('blessed', 'failed')"
            ),
            enrolled_events=one(
                f"SELECT count(*) FROM events WHERE type = 'device.enrolled' AND subject_id IN ({devices})"
            ),
            blessing_events=one(
                "SELECT count(*) FROM events WHERE type IN ('device.blessed', 'device.failed') "
                f"AND subject_id IN ({devices})"
            ),
        )


def server_head(tenant: Tenant, station_id: str) -> int:
    response = tenant.get(f"/api/v1/stations/{station_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["head_sequence"])
