"""The presence flush's set-based statements (adapters.db.device_rows) on a window that mixes
everything a flush meets, on both databases: devices to activate (defined, blessed), devices
already activated or in states that only get presence, a revoked one, presence without a
connection, a stored presence newer than the window's, and flushes racing over overlapping
windows. Each device is checked in the table itself: state, its own activated_at, presence;
one ``device.activated`` event per activation; the device counters."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from lineside.adapters.db import tables as t
from lineside.bootstrap import Application
from lineside.domain.lifecycle import DeviceState
from lineside.services.presence import PresenceRecorder
from tests.integration.test_device_counts import agree, states
from tests.support.api import Tenant, ok, unique
from tests.support.factory import API, factory_token, line_unit

START = datetime(2026, 3, 4, 5, 6, 7, 100000, tzinfo=UTC)


def ticking(start: datetime) -> Callable[[], datetime]:
    """A clock that moves one millisecond per reading: every change gets a time of its own."""
    moments: Iterator[datetime] = (start + timedelta(milliseconds=step) for step in range(1_000_000))
    return lambda: next(moments)


def stored(application: Application, device_ids: list[str]) -> dict[str, dict[str, Any]]:
    d = t.devices.c
    query = select(d.id, d.state, d.activated_at, d.online, d.last_seen_at).where(d.id.in_(device_ids))
    with application.engine.connect() as connection:
        return {row.id: dict(row._mapping) for row in connection.execute(query)}


def activation_events(application: Application, device_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    e = t.events.c
    query = select(e.subject_id, e.data, e.actor).where(
        e.type == "device.activated", e.subject_id.in_(device_ids)
    )
    found: dict[str, list[dict[str, Any]]] = {device_id: [] for device_id in device_ids}
    with application.engine.connect() as connection:
        for subject_id, data, actor in connection.execute(query):
            found[subject_id].append({**data, "actor": actor})
    return found


def connection_times(recorder: PresenceRecorder) -> dict[str, datetime]:
    """The first connection per device, as the next flush will read it."""
    window = recorder.take()
    recorder.put_back(window)
    return dict(window.connected)


def test_a_window_mixing_every_kind_of_device(application: Application, tenant: Tenant) -> None:
    free = tenant.product()["id"]
    strict = tenant.created(f"{API}/products", {"name": unique("product"), "requires_blessing": True})["id"]
    first, second, gone, seen_only, already, late = (tenant.device(free)["id"] for _ in range(6))
    blessed = line_unit(tenant, factory_token(tenant, strict))["device"]["id"]
    failed = line_unit(tenant, factory_token(tenant, free), passed=False)["device"]["id"]
    waiting = tenant.device(strict)["id"]  # defined, and its product requires blessing
    revoked = tenant.device(free)["id"]
    assert ok(tenant.post(f"{API}/devices/{revoked}/revoke"))["state"] == "revoked"
    earlier = PresenceRecorder(clock=ticking(START - timedelta(hours=1)))
    earlier.connected(already)
    assert earlier.flush(application.services).activated_ids == (already,)
    # Another process already wrote a newer presence of ``late`` (seen: no activation).
    newer = PresenceRecorder(clock=ticking(START + timedelta(hours=1)))
    newer.disconnected(late)
    assert newer.flush(application.services).activated == 0
    before = stored(application, [already, late])
    counts_before = states(agree(application, tenant))

    recorder = PresenceRecorder(clock=ticking(START))
    for device_id in (second, blessed, "provision", waiting, failed, revoked, already, late, first, gone):
        recorder.connected(device_id)
    recorder.disconnected(gone)
    recorder.seen(seen_only)
    connected_at = connection_times(recorder)
    flushed = recorder.flush(application.services)

    activated = {first, second, blessed, gone, late}
    assert (flushed.activated, set(flushed.activated_ids)) == (len(activated), activated)
    # Every device with a presence row to write, but the revoked one and the one stored newer.
    assert flushed.updated == 8
    everyone = [first, second, gone, seen_only, already, late, blessed, failed, waiting, revoked]
    rows = stored(application, everyone)
    for device_id in activated:
        assert rows[device_id]["state"] == "activated"
        assert rows[device_id]["activated_at"] == connected_at[device_id]
    for device_id, state in ((seen_only, "defined"), (failed, "failed"), (waiting, "defined")):
        assert (rows[device_id]["state"], rows[device_id]["activated_at"]) == (state, None)
    assert rows[already]["activated_at"] == before[already]["activated_at"]
    for device_id in (first, second, blessed, already, failed, waiting):
        assert (rows[device_id]["online"], rows[device_id]["last_seen_at"]) == (True, connected_at[device_id])
    assert rows[gone]["online"] is False and rows[gone]["last_seen_at"] > connected_at[gone]
    assert rows[seen_only]["online"] is True and rows[seen_only]["last_seen_at"] > START
    assert (rows[late]["online"], rows[late]["last_seen_at"]) == (False, before[late]["last_seen_at"])
    assert before[late]["last_seen_at"] > connected_at[late]
    assert (rows[revoked]["state"], rows[revoked]["online"], rows[revoked]["last_seen_at"]) == (
        "revoked",
        False,
        None,
    )

    events = activation_events(application, everyone)
    came_from = {first: "defined", second: "defined", gone: "defined", late: "defined", blessed: "blessed"}
    for device_id, previous in came_from.items():
        [event] = events[device_id]
        assert (event["from"], event["to"], event["via"], event["actor"]) == (
            previous,
            "activated",
            "mqtt",
            "mqtt",
        )
    assert len(events[already]) == 1
    assert all(events[device_id] == [] for device_id in (seen_only, failed, waiting, revoked))

    counts_after = states(agree(application, tenant))
    assert counts_after - counts_before == Counter({"activated": 5})
    assert counts_before - counts_after == Counter({"defined": 4, "blessed": 1})


def test_flushes_racing_over_overlapping_windows_activate_each_device_once(
    application: Application, tenant: Tenant
) -> None:
    product = tenant.product()["id"]
    serials = [unique("SN") for _ in range(300)]
    batch = tenant.created(f"{API}/device-batches", {"product_id": product, "serial_numbers": serials})
    ids = [device["id"] for device in batch["devices"]]
    rng = random.Random(7)
    recorders = []
    for _ in range(4):  # as if four broker processes saw overlapping crowds, each in its own order
        recorder = PresenceRecorder()
        for device_id in rng.sample(ids, 200):
            recorder.connected(device_id)
        recorders.append(recorder)
    seen = {device_id for recorder in recorders for device_id in connection_times(recorder)}

    with ThreadPoolExecutor(len(recorders)) as pool:
        results = list(pool.map(lambda recorder: recorder.flush(application.services), recorders))

    won = Counter(device_id for result in results for device_id in result.activated_ids)
    assert set(won) == seen and set(won.values()) == {1}
    assert sum(result.activated for result in results) == len(seen)
    events = activation_events(application, ids)
    assert all(len(events[device_id]) == (1 if device_id in seen else 0) for device_id in ids)
    rows = stored(application, ids)
    assert Counter(row["state"] for row in rows.values()) == Counter(
        {"activated": len(seen), "defined": len(ids) - len(seen)}
    )
    assert states(agree(application, tenant))["activated"] == len(seen)
    with application.engine.connect() as connection:
        online = connection.execute(
            select(func.count()).where(t.devices.c.id.in_(ids), t.devices.c.online.is_(True))
        ).scalar_one()
    assert online == len(seen)


def test_activation_only_takes_devices_still_in_the_state_they_were_read_in(
    application: Application, tenant: Tenant
) -> None:
    """What decides a race: a flush that read a device in a state it has left since (another
    flush activated it, a blessing moved it) activates nothing of it."""
    product = tenant.product()["id"]
    defined, stale = tenant.device(product)["id"], tenant.device(product)["id"]
    blessed = line_unit(tenant, factory_token(tenant, product))["device"]["id"]
    counts_before = states(agree(application, tenant))

    with application.services.unit_of_work() as uow:
        won = uow.devices.activate_if_still(
            [
                (defined, DeviceState.DEFINED, START),
                (blessed, DeviceState.DEFINED, START + timedelta(seconds=1)),  # read before its blessing
                (stale, DeviceState.BLESSED, START + timedelta(seconds=2)),
            ]
        )
        uow.commit()

    assert won == {defined}
    rows = stored(application, [defined, stale, blessed])
    assert (rows[defined]["state"], rows[defined]["activated_at"]) == ("activated", START)
    assert (rows[blessed]["state"], rows[stale]["state"]) == ("blessed", "defined")
    assert rows[blessed]["activated_at"] is None and rows[stale]["activated_at"] is None
    counts_after = states(agree(application, tenant))
    assert (counts_after - counts_before, counts_before - counts_after) == (
        Counter({"activated": 1}),
        Counter({"defined": 1}),
    )
