"""``lineside station run`` as a real process with no route to the server, a simulated line
pointed at it, and ``lineside station sync`` once the server is there (the in-process server
of this session, on both databases)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lineside.bootstrap import Application
from tests.support.api import Tenant, assert_problem
from tests.support.factory import hardware_id
from tests.support.station_process import (
    Delegation,
    delegate,
    lineside,
    server_head,
    server_view,
    simulate,
    simulate_arguments,
    station_running,
    station_sync,
    write_private,
)

DEADLINE_SECONDS = 60.0


def station_counts(delegation: Delegation) -> tuple[int, int, int]:
    """Devices, test runs and ledger entries in the station's own database."""
    with sqlite3.connect(delegation.data_dir / "station.db") as db:
        devices = db.execute("SELECT count(*) FROM devices").fetchone()[0]
        runs = db.execute("SELECT count(*) FROM test_runs").fetchone()[0]
        entries = db.execute("SELECT count(*) FROM station_ledger").fetchone()[0]
    return devices, runs, entries


def test_a_line_run_offline_reaches_the_server_once_by_a_sync_and_a_second_sync_changes_nothing(
    tenant: Tenant, application: Application, client: httpx.Client, tmp_path: Path
) -> None:
    delegation = delegate(tenant, tmp_path)
    with station_running(delegation, tmp_path / "station.log") as station:
        report = simulate(station, delegation, 40)
        assert report["blessed"] + report["failed"] == 40
        status = station.status()
        assert status["devices_made"] == 40
        assert status["entries_waiting"] == 120  # enroll, test, bless per unit
        assert status["last_sync_at"] is None
        assert server_view(application, delegation.product_id).devices == 0

        synced = station_sync(delegation, str(client.base_url))
        assert synced.returncode == 0, synced.stderr
        assert "Synced 120 ledger entries" in synced.stdout
        assert station.status()["entries_waiting"] == 0

    view = server_view(application, delegation.product_id)
    assert (view.devices, view.distinct_serials, view.test_runs, view.blessed_or_failed) == (40, 40, 40, 40)
    assert (view.enrolled_events, view.blessing_events) == (40, 40)
    assert server_head(tenant, delegation.station_id) == 120

    again = station_sync(delegation, str(client.base_url))
    assert again.returncode == 0, again.stderr
    assert "Nothing to sync" in again.stdout
    assert server_view(application, delegation.product_id) == view


def test_a_station_killed_mid_line_and_restarted_loses_and_doubles_nothing(
    tenant: Tenant, application: Application, client: httpx.Client, tmp_path: Path
) -> None:
    delegation = delegate(tenant, tmp_path)
    log = tmp_path / "station.log"
    with station_running(delegation, log) as station:
        line = subprocess.Popen(
            [sys.executable, "-m", "lineside", *simulate_arguments(station, delegation, 400)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + DEADLINE_SECONDS
        while station.status()["ledger_head"] < 60:
            assert time.monotonic() < deadline, "the line made no progress"
            time.sleep(0.02)  # polling for a condition, with a deadline
        station.kill()
        assert line.wait(timeout=60) == 1  # the fixtures saw the station go
    with station_running(delegation, log) as station:
        simulate(station, delegation, 20)
    synced = station_sync(delegation, str(client.base_url))
    assert synced.returncode == 0, synced.stderr

    devices, runs, entries = station_counts(delegation)
    view = server_view(application, delegation.product_id)
    assert (view.devices, view.distinct_serials) == (devices, devices)
    assert (view.test_runs, view.distinct_runs) == (runs, runs)
    assert server_head(tenant, delegation.station_id) == entries


def test_a_hand_edited_ledger_row_stops_the_sync_there_and_the_server_keeps_what_came_before(
    tenant: Tenant, application: Application, client: httpx.Client, tmp_path: Path
) -> None:
    delegation = delegate(tenant, tmp_path)
    with station_running(delegation, tmp_path / "station.log") as station:
        simulate(station, delegation, 10)
    with sqlite3.connect(delegation.data_dir / "station.db") as db:
        data = json.loads(db.execute("SELECT data FROM station_ledger WHERE sequence = 7").fetchone()[0])
        data["passed"] = not data.get("passed", False)
        db.execute("UPDATE station_ledger SET data = ? WHERE sequence = 7", (json.dumps(data),))
        query = "SELECT count(*) FROM station_ledger WHERE sequence < 7 AND kind = 'enroll'"
        enrolled_before = db.execute(query).fetchone()[0]

    synced = station_sync(delegation, str(client.base_url))

    assert synced.returncode == 1
    assert "stopped at entry 7" in synced.stderr
    assert len(synced.stderr.strip().splitlines()) == 1
    assert server_head(tenant, delegation.station_id) == 6
    assert server_view(application, delegation.product_id).devices == enrolled_before


def test_the_budget_and_the_window_refusals_reach_the_fixture_as_problems(
    tenant: Tenant, tmp_path: Path
) -> None:
    small = delegate(tenant, tmp_path, budget=2)
    closed = delegate(tenant, tmp_path)
    closed.bundle["station"]["not_after"] = "2001-01-01T00:00:00+00:00"
    write_private(closed.path, closed.bundle)
    with station_running(small, tmp_path / "small.log") as station:
        for _ in range(2):
            enrolled = _enroll(station.url, small.enrollment_token)
            assert enrolled.status_code == 201, enrolled.text
        refused = assert_problem(_enroll(station.url, small.enrollment_token), 409)
        assert refused["title"] == "Station limit reached"
        assert "budget of 2 devices is spent" in refused["detail"]
        assert "budget" in " ".join(station.status()["warnings"])
    with station_running(closed, tmp_path / "closed.log") as station:
        refused = assert_problem(_enroll(station.url, closed.enrollment_token), 409)
        assert refused["title"] == "Station limit reached"
        assert "window closed" in refused["detail"]


def _enroll(url: str, token: str) -> httpx.Response:
    body = {"enrollment_token": token, "hardware_id": hardware_id()}
    return httpx.post(f"{url}/api/v1/factory/duts", json=body, timeout=10)


def test_production_tokens_are_forwarded_to_the_server_and_refused_while_it_is_unreachable(
    tenant: Tenant, client: httpx.Client, tmp_path: Path
) -> None:
    delegation = delegate(tenant, tmp_path)
    key = {"Authorization": f"Bearer {delegation.fixture_api_key}"}
    with station_running(delegation, tmp_path / "offline.log") as station:
        offline = httpx.post(f"{station.url}/api/v1/enrollment-tokens", headers=key, json={}, timeout=10)
        assert "reconnect the station's link" in assert_problem(offline, 503)["detail"]
        password = httpx.post(
            f"{station.url}/api/v1/devices/x/credentials", headers=key, json={"type": "mqtt_password"}
        )
        assert "MQTT passwords need the server" in assert_problem(password, 409)["detail"]
    with station_running(delegation, tmp_path / "online.log", server=str(client.base_url)) as station:
        issued = httpx.post(f"{station.url}/api/v1/enrollment-tokens", headers=key, json={}, timeout=10)
        assert issued.status_code == 201, issued.text
        claim = httpx.get(f"{station.url}/api/v1/enrollment-tokens/{issued.json()['token_id']}", headers=key)
        assert claim.status_code == 200, claim.text
        assert claim.json()["status"] == "pending"


def test_a_pool_station_hands_a_unit_its_token_offline_and_the_server_knows_it_before_the_sync(
    tenant: Tenant, client: httpx.Client, tmp_path: Path
) -> None:
    delegation = delegate(tenant, tmp_path, budget=3, token_pool=True)
    (first_id, first_token), *_ = delegation.bundle["secrets"]["pool"]
    key = {"Authorization": f"Bearer {delegation.fixture_api_key}"}
    with station_running(delegation, tmp_path / "station.log") as station:
        enrolled = _enroll(station.url, delegation.enrollment_token)
        assert enrolled.status_code == 201, enrolled.text
        device_id = enrolled.json()["device"]["id"]
        assert device_id == first_id
        asked = [
            httpx.post(
                f"{station.url}/api/v1/devices/{device_id}/credentials",
                headers=key,
                json={"type": "token"},
                timeout=10,
            )
            for _ in range(2)
        ]
        for issued in asked:
            assert issued.status_code == 201, issued.text
            assert (issued.json()["type"], issued.json()["secret"]) == ("token", first_token)
        assert station.status()["entries_waiting"] == 3  # enroll, token, token
    me = client.get("/device/v1/me", headers={"Authorization": f"Bearer {first_token}"})
    assert me.status_code == 200, me.text
    assert (me.json()["id"], me.json()["serial_number"]) == (device_id, device_id)


def test_the_status_page_metrics_and_status_command_say_the_same(tenant: Tenant, tmp_path: Path) -> None:
    delegation = delegate(tenant, tmp_path, budget=100)
    with station_running(delegation, tmp_path / "station.log") as station:
        simulate(station, delegation, 5)
        page = httpx.get(station.url, timeout=10).text
        metrics = httpx.get(f"{station.url}/metrics", timeout=10).text
    assert "Budget: 5 of 100 devices (5%)" in page
    assert "lineside_station_devices_made 5" in metrics
    assert "lineside_station_ledger_entries_waiting 15" in metrics
    assert "lineside_station_last_sync_timestamp_seconds 0.0" in metrics
    shown = lineside("station", "status", str(delegation.path), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["entries_waiting"] == 15


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_bundle_others_may_read_is_refused_with_the_chmod_to_run(
    tenant: Tenant, tmp_path: Path, mode: int
) -> None:
    delegation = delegate(tenant, tmp_path)
    delegation.path.chmod(mode)
    refused = lineside("station", "run", str(delegation.path))
    assert refused.returncode == 2
    assert f"chmod 600 {delegation.path}" in refused.stderr
    assert not delegation.data_dir.exists()


def test_a_missing_or_foreign_bundle_is_refused_in_one_line(tmp_path: Path) -> None:
    missing = lineside("station", "sync", str(tmp_path / "nowhere.json"))
    foreign = tmp_path / "foreign.json"
    write_private(foreign, {"format": "something-else/1"})
    other = lineside("station", "run", str(foreign))
    assert (missing.returncode, other.returncode) == (2, 2)
    assert "cannot be read" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert "is not a station bundle" in other.stderr


def test_a_running_station_syncs_by_itself_once_the_server_answers(
    tenant: Tenant, application: Application, client: httpx.Client, tmp_path: Path
) -> None:
    delegation = delegate(tenant, tmp_path)
    log = tmp_path / "station.log"
    with station_running(delegation, log, server=str(client.base_url), sync_every=0.2) as station:
        simulate(station, delegation, 10)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while (status := station.status())["entries_waiting"] or status["ledger_head"] < 30:
            assert time.monotonic() < deadline, f"the station did not sync: {status}"
            time.sleep(0.05)  # polling for a condition, with a deadline
        assert status["server_reachable"] is True
        assert status["last_sync_at"] is not None
    assert server_view(application, delegation.product_id).devices == 10
    assert server_head(tenant, delegation.station_id) == 30


def test_a_manual_sync_beside_the_running_stations_own_sync_doubles_nothing(
    tenant: Tenant, application: Application, client: httpx.Client, tmp_path: Path
) -> None:
    delegation = delegate(tenant, tmp_path)
    log = tmp_path / "station.log"
    with station_running(delegation, log, server=str(client.base_url), sync_every=0.05) as station:
        simulate(station, delegation, 40)
        # Both take the station's database and upload from the server's head at once: the
        # server skips what it replayed already, so overlapping uploads change nothing twice.
        manual = [station_sync(delegation, str(client.base_url)) for _ in range(3)]
        assert all(done.returncode == 0 for done in manual), [done.stderr for done in manual]
        deadline = time.monotonic() + DEADLINE_SECONDS
        while station.status()["entries_waiting"]:
            assert time.monotonic() < deadline, "the station did not finish syncing"
            time.sleep(0.05)  # polling for a condition, with a deadline
    view = server_view(application, delegation.product_id)
    assert (view.devices, view.distinct_serials, view.test_runs, view.distinct_runs) == (40, 40, 40, 40)
    assert view.enrolled_events == 40 and view.blessing_events == 40
    assert server_head(tenant, delegation.station_id) == 120
