"""Issue 17 end to end: a shift of 2,000 units made at a station with no route to the server,
the station SIGKILLed mid-line and restarted, the sync SIGKILLed mid-upload and run again, and
every unit, test run and blessing on the real ``lineside serve`` exactly once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text
from standardwebhooks import Webhook

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
from tests.support.webhooks import Receiver, create_endpoint, wait_until

UNITS = 2_000
DEADLINE_SECONDS = 120.0


def _wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling for a condition, with a deadline


def _station_rows(delegation: Delegation) -> tuple[int, int, int, int]:
    with sqlite3.connect(delegation.data_dir / "station.db") as db:
        devices = db.execute("SELECT count(*) FROM devices").fetchone()[0]
        runs = db.execute("SELECT count(*) FROM test_runs").fetchone()[0]
        entries = db.execute("SELECT count(*) FROM station_ledger").fetchone()[0]
        done = db.execute("SELECT count(*) FROM devices WHERE state IN ('blessed', 'failed')").fetchone()[0]
    return devices, runs, entries, done


def _failed_event_ids(application: Application, product_id: str) -> set[str]:
    query = text(
        "SELECT e.id FROM events e JOIN devices d ON d.id = e.subject_id "
        "WHERE e.type = 'device.failed' AND d.product_id = :product"
    )
    with application.engine.connect() as connection:
        return {str(row[0]) for row in connection.execute(query, {"product": product_id})}


def _delivered(receiver: Receiver, secret: str) -> list[str]:
    """The event ids the receiver took, each signature checked (a list: a repeat would show)."""
    return [Webhook(secret).verify(r.body, r.headers)["data"]["event_id"] for r in receiver.answered(200)]


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

    devices, runs, entries, done = _station_rows(delegation)
    assert devices >= UNITS + 100
    with Receiver() as receiver:
        # The failed units' events (a few percent): each webhook is one POST, and 2,000 would make
        # this test about the worker's pace rather than the replay.
        endpoint = create_endpoint(tenant, receiver.url(), ["device.failed"])
        sync = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lineside",
                "station",
                "sync",
                str(delegation.path),
                "--server",
                server_url,
            ],
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
        assert (view.devices, view.distinct_serials, view.blessed_or_failed) == (devices, devices, done)
        assert (view.test_runs, view.distinct_runs) == (runs, runs)
        assert view.enrolled_events == devices
        assert view.blessing_events == done >= UNITS
        assert server_head(tenant, delegation.station_id) == entries
        # Every replayed failure reaches the maker's endpoint, signed, as an online one would.
        failed = _failed_event_ids(application, delegation.product_id)
        assert failed
        wait_until(
            lambda: len(receiver.answered(200)) >= len(failed), "every failure's webhook", deadline=120
        )
        assert set(_delivered(receiver, endpoint["secret"])) == failed

    again = station_sync(delegation, server_url)
    assert again.returncode == 0 and "Nothing to sync" in again.stdout
    assert server_view(application, delegation.product_id) == view
