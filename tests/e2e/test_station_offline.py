"""Issue 17 end to end: a shift of 2,000 units made at a station with no route to the server,
the station SIGKILLed mid-line and restarted, the sync SIGKILLed mid-upload and run again, and
every unit, test run and blessing on the real ``lineside serve`` exactly once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from lineside.bootstrap import Application
from tests.support.api import Tenant
from tests.support.station_process import (
    Delegation,
    delegate,
    server_head,
    server_view,
    simulate,
    simulate_arguments,
    station_running,
    station_sync,
)

UNITS = 2_000
DEADLINE_SECONDS = 120.0


def _wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling for a condition, with a deadline


def _station_rows(delegation: Delegation) -> tuple[int, int, int]:
    with sqlite3.connect(delegation.data_dir / "station.db") as db:
        devices = db.execute("SELECT count(*) FROM devices").fetchone()[0]
        runs = db.execute("SELECT count(*) FROM test_runs").fetchone()[0]
        entries = db.execute("SELECT count(*) FROM station_ledger").fetchone()[0]
    return devices, runs, entries


def test_a_shift_made_offline_survives_kills_of_the_station_and_of_the_sync_with_nothing_lost_or_doubled(
    tenant: Tenant, application: Application, server_url: str, tmp_path: Path
) -> None:
    delegation = delegate(tenant, tmp_path, budget=10_000)
    log = tmp_path / "station.log"
    with station_running(delegation, log) as station:
        line = subprocess.Popen(
            [sys.executable, "-m", "lineside", *simulate_arguments(station, delegation, UNITS, fixtures=16)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(lambda: station.status()["ledger_head"] >= 300, "the line to get going")
        station.kill()
        assert line.wait(timeout=60) == 1
    with station_running(delegation, log) as station:
        report = simulate(station, delegation, UNITS)
        assert report["blessed"] + report["failed"] == UNITS
        assert server_view(application, delegation.product_id).devices == 0  # nothing reached it yet

    devices, runs, entries = _station_rows(delegation)
    assert devices >= UNITS + 100
    sync = subprocess.Popen(
        [sys.executable, "-m", "lineside", "station", "sync", str(delegation.path), "--server", server_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: server_head(tenant, delegation.station_id) > 0, "the sync to deliver a chunk")
    sync.kill()
    sync.wait(timeout=10)
    assert server_head(tenant, delegation.station_id) < entries  # killed mid-upload

    finished = station_sync(delegation, server_url)
    assert finished.returncode == 0, finished.stderr
    view = server_view(application, delegation.product_id)
    assert (view.devices, view.distinct_serials, view.blessed_or_failed) == (
        devices,
        devices,
        view.blessed_or_failed,
    )
    assert (view.test_runs, view.distinct_runs) == (runs, runs)
    assert view.enrolled_events == devices
    assert view.blessing_events == view.blessed_or_failed >= UNITS
    assert server_head(tenant, delegation.station_id) == entries

    again = station_sync(delegation, server_url)
    assert again.returncode == 0 and "Nothing to sync" in again.stdout
    assert server_view(application, delegation.product_id) == view
