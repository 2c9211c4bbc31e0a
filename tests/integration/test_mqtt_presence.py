"""Presence and activation on first connection, written by the recorder's batched flush.

The brokers (embedded, or production ones through their HTTP hooks) call the recorder; here
the tests call it as they do, then flush into the real database of each backend.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from lineside.bootstrap import Application, bootstrap
from lineside.services.presence import Flushed, PresenceRecorder
from lineside.settings import Settings
from tests.support.api import Tenant, ok, unique
from tests.support.factory import API, enrolled, factory_token, line_unit
from tests.support.server import free_port
from tests.support.webhooks import events_of


def product(tenant: Tenant, *, requires_blessing: bool = False) -> dict[str, Any]:
    return tenant.created(
        f"{API}/products", {"name": unique("product"), "requires_blessing": requires_blessing}
    )


def device_view(tenant: Tenant, device_id: str) -> dict[str, Any]:
    view: dict[str, Any] = ok(tenant.get(f"{API}/devices/{device_id}"))
    return view


def activations(tenant: Tenant, device_id: str) -> list[dict[str, Any]]:
    return events_of(tenant, subject_id=device_id, type="device.activated")


def connect_and_flush(application: Application, *device_ids: str) -> Flushed:
    recorder = PresenceRecorder()
    for device_id in device_ids:
        recorder.connected(device_id)
    return recorder.flush(application.services)


def blessed_device(tenant: Tenant, *, requires_blessing: bool = False) -> dict[str, Any]:
    token = factory_token(tenant, product(tenant, requires_blessing=requires_blessing)["id"])
    device: dict[str, Any] = line_unit(tenant, token)["device"]
    assert device["state"] == "blessed"
    return device


# -- activation -------------------------------------------------------------------------------


def test_a_device_activates_once_with_one_event_however_often_it_reconnects(
    application: Application, tenant: Tenant
) -> None:
    device = tenant.device(product(tenant)["id"])
    recorder = PresenceRecorder()

    recorder.connected(device["id"])
    recorder.disconnected(device["id"])
    recorder.connected(device["id"])
    first = recorder.flush(application.services)
    recorder.disconnected(device["id"])
    recorder.connected(device["id"])
    second = recorder.flush(application.services)

    assert (first.activated, first.activated_ids, second.activated) == (1, (device["id"],), 0)
    view = device_view(tenant, device["id"])
    assert view["state"] == "activated"
    assert view["lifecycle"]["activated_at"] is not None
    [event] = activations(tenant, device["id"])
    assert (event["actor"], event["data"]["from"], event["data"]["via"]) == ("mqtt", "defined", "mqtt")


def test_a_connection_that_ended_before_the_flush_still_activates(
    application: Application, tenant: Tenant
) -> None:
    device = blessed_device(tenant)
    recorder = PresenceRecorder()
    recorder.connected(device["id"])
    recorder.disconnected(device["id"])

    flushed = recorder.flush(application.services)

    assert flushed.activated == 1
    view = device_view(tenant, device["id"])
    assert (view["state"], view["online"]) == ("activated", False)


def test_two_flushes_racing_for_one_device_activate_it_once(application: Application, tenant: Tenant) -> None:
    device = blessed_device(tenant)
    recorders = [PresenceRecorder() for _ in range(4)]
    for recorder in recorders:  # as if four broker processes saw it connect
        recorder.connected(device["id"])

    with ThreadPoolExecutor(len(recorders)) as pool:
        results = list(pool.map(lambda r: r.flush(application.services), recorders))

    assert sum(result.activated for result in results) == 1
    assert len(activations(tenant, device["id"])) == 1


def test_each_device_activates_at_its_own_first_connection_and_its_event_says_from_where(
    application: Application, tenant: Tenant
) -> None:
    defined = tenant.created(
        f"{API}/devices", {"product_id": product(tenant)["id"], "serial_number": unique("SN")}
    )
    blessed = blessed_device(tenant)
    times = iter(
        [datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)]
    )
    recorder = PresenceRecorder(clock=lambda: next(times))
    recorder.connected(defined["id"])
    recorder.connected(blessed["id"])

    assert recorder.flush(application.services).activated == 2

    for device, at, came_from in (
        (defined, "2026-01-02T03:04:05.123456", "defined"),
        (blessed, "2026-01-02T03:04:06", "blessed"),
    ):
        view = device_view(tenant, device["id"])
        assert view["state"] == "activated"
        assert view["lifecycle"]["activated_at"].startswith(at)
        (event,) = activations(tenant, device["id"])
        assert event["data"]["from"] == came_from


def test_a_blessed_device_activates_even_when_its_product_requires_blessing(
    application: Application, tenant: Tenant
) -> None:
    device = blessed_device(tenant, requires_blessing=True)

    assert connect_and_flush(application, device["id"]).activated == 1
    assert device_view(tenant, device["id"])["state"] == "activated"
    [event] = activations(tenant, device["id"])
    assert event["data"]["from"] == "blessed"


def test_a_defined_device_of_a_product_that_requires_blessing_only_gets_presence(
    application: Application, tenant: Tenant
) -> None:
    device = tenant.device(product(tenant, requires_blessing=True)["id"])

    flushed = connect_and_flush(application, device["id"])

    assert (flushed.activated, flushed.updated) == (0, 1)
    view = device_view(tenant, device["id"])
    assert (view["state"], view["online"]) == ("defined", True)
    assert activations(tenant, device["id"]) == []


def test_devices_on_the_line_or_failed_only_get_presence(application: Application, tenant: Tenant) -> None:
    token = factory_token(tenant, product(tenant)["id"])
    under_test = enrolled(tenant.http, token)["device"]
    failed = line_unit(tenant, token, passed=False)["device"]
    assert (under_test["state"], failed["state"]) == ("under_test", "failed")

    flushed = connect_and_flush(application, under_test["id"], failed["id"])

    assert (flushed.activated, flushed.updated) == (0, 2)
    for device, state in ((under_test, "under_test"), (failed, "failed")):
        view = device_view(tenant, device["id"])
        assert (view["state"], view["online"]) == (state, True)
        assert view["last_seen_at"] is not None


def test_a_revoked_device_is_not_touched(application: Application, tenant: Tenant) -> None:
    device = tenant.device(product(tenant)["id"])
    assert ok(tenant.post(f"{API}/devices/{device['id']}/revoke"))["state"] == "revoked"

    flushed = connect_and_flush(application, device["id"])

    assert (flushed.activated, flushed.updated) == (0, 0)
    view = device_view(tenant, device["id"])
    assert (view["state"], view["online"], view["last_seen_at"]) == ("revoked", False, None)


# -- presence -----------------------------------------------------------------------------------


def test_online_and_last_seen_follow_the_latest_change(application: Application, tenant: Tenant) -> None:
    first, second = (tenant.device(product(tenant, requires_blessing=True)["id"]) for _ in range(2))
    recorder = PresenceRecorder()
    recorder.connected(first["id"])
    recorder.connected(second["id"])
    recorder.flush(application.services)
    connected_view = device_view(tenant, first["id"])

    recorder.disconnected(first["id"])
    recorder.seen(second["id"])
    flushed = recorder.flush(application.services)

    assert flushed.updated == 2
    first_view, second_view = device_view(tenant, first["id"]), device_view(tenant, second["id"])
    assert (connected_view["online"], first_view["online"], second_view["online"]) == (True, False, True)
    assert first_view["last_seen_at"] > connected_view["last_seen_at"]


def test_a_late_flush_does_not_undo_a_newer_one(application: Application, tenant: Tenant) -> None:
    device = tenant.device(product(tenant, requires_blessing=True)["id"])
    slow, fast = PresenceRecorder(), PresenceRecorder()
    slow.connected(device["id"])  # recorded first, flushed last
    fast.connected(device["id"])
    fast.disconnected(device["id"])

    fast.flush(application.services)
    late = slow.flush(application.services)

    assert late.updated == 0
    assert device_view(tenant, device["id"])["online"] is False


def test_a_thousand_devices_flush_in_one_call(application: Application, tenant: Tenant) -> None:
    product_id = product(tenant)["id"]
    serials = [unique("SN") for _ in range(1000)]
    batch = tenant.created(f"{API}/device-batches", {"product_id": product_id, "serial_numbers": serials})
    ids = [device["id"] for device in batch["devices"]]
    recorder = PresenceRecorder()
    for device_id in ids:
        recorder.connected(device_id)

    flushed = recorder.flush(application.services)

    assert (flushed.activated, flushed.updated, recorder.pending()) == (1000, 1000, 0)
    listed = ok(
        tenant.get(
            f"{API}/devices",
            params={"batch_id": batch["batch_id"], "state": "activated", "limit": "1000"},
        )
    )["items"]
    assert len(listed) == 1000
    assert all(item["online"] for item in listed)
    assert len(events_of(tenant, type="device.activated")) == 1000


def test_identities_that_are_not_devices_are_ignored(application: Application, tenant: Tenant) -> None:
    device = tenant.device(product(tenant)["id"])

    flushed = connect_and_flush(application, "provision", device["id"])

    assert (flushed.activated, flushed.updated) == (1, 1)


def test_changes_of_a_flush_that_failed_are_written_by_the_next_one(
    application: Application, tenant: Tenant, tmp_path: Path
) -> None:
    device = tenant.device(product(tenant)["id"])
    recorder = PresenceRecorder()
    recorder.connected(device["id"])
    # A database server that is down: nothing listens on the port.
    down = bootstrap(
        Settings(
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/lineside",
            data_dir=tmp_path,
            _env_file=None,
        )
    )
    try:
        with pytest.raises(OperationalError):
            recorder.flush(replace(application.services, unit_of_work=down.services.unit_of_work))
    finally:
        down.close()
    assert recorder.pending() == 1
    assert device_view(tenant, device["id"])["state"] == "defined"

    flushed = recorder.flush(application.services)

    assert (flushed.activated, flushed.updated, recorder.pending()) == (1, 1, 0)
    view = device_view(tenant, device["id"])
    assert (view["state"], view["online"]) == ("activated", True)
