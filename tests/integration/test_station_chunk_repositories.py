"""The repository methods a station ledger's chunk is replayed with (services.station_chunk),
on SQLite and PostgreSQL: one query or statement each for the whole chunk, and the device
counters told of every device they add or move, as ``add`` and ``save_state_if`` tell them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from lineside.domain.factory import TestRun
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.services.ports import NewDevice, UnitOfWorkFactory
from tests.integration.test_repository_contracts import T0, Seeded, add, device, seeded

__all__ = ["seeded"]  # the fixture, used by name


@pytest.fixture(params=["sqlite", "postgres"])
def units(request: pytest.FixtureRequest) -> Iterator[UnitOfWorkFactory]:
    engine = create_database_engine(request.getfixturevalue(f"{request.param}_database"))
    try:
        yield SqlUnitOfWorkFactory(engine)
    finally:
        engine.dispose()


def _by_state(units: UnitOfWorkFactory, seeded: Seeded) -> dict[str, int]:
    with units(write=False) as uow:
        return {c.state: c.devices for c in uow.device_counts.within(seeded.child.path) if c.devices}


def test_devices_are_found_by_ids_hardware_ids_and_serials_at_once(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    one, two = device(seeded, "SN-1", hardware_id="HW-1"), device(seeded, "SN-2")
    add(units, NewDevice(one), NewDevice(two))
    with units(write=False) as uow:
        assert {d.id for d in uow.devices.find_by_ids([one.id, two.id, new_id()])} == {one.id, two.id}
        assert [d.id for d in uow.devices.find_by_hardware_ids(seeded.product.id, ["HW-1", "HW-9"])] == [
            one.id
        ]
        assert uow.devices.find_by_hardware_ids(new_id(), ["HW-1"]) == []
        found = uow.devices.find_by_serial_numbers(seeded.product.id, ["SN-2", "SN-2", "SN-9"])
        assert [d.id for d in found] == [two.id]
        assert uow.devices.find_by_ids([]) == []


def test_units_added_at_once_read_back_and_are_counted(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    made = [
        device(seeded, f"SN-{n}", hardware_id=f"HW-{n}", state=DeviceState.UNDER_TEST, factory_token_id=None)
        for n in range(3)
    ]
    with units() as uow:
        uow.devices.add_units(made)
        uow.devices.add_units([])
        uow.commit()
    with units(write=False) as uow:
        read = uow.devices.find_by_ids([d.id for d in made])
    assert sorted(d.hardware_id or "" for d in read) == ["HW-0", "HW-1", "HW-2"]
    assert _by_state(units, seeded) == {"under_test": 3}


def test_state_changes_at_once_chain_in_order_and_are_counted(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    unit, other = device(seeded, "SN-1"), device(seeded, "SN-2")
    add(units, NewDevice(unit), NewDevice(other))
    tested = device(seeded, "SN-1", state=DeviceState.UNDER_TEST)
    tested.id = unit.id
    tested.timeline = {"defined_at": T0, "under_test_at": T0 + timedelta(seconds=1)}
    failed = device(seeded, "SN-1", state=DeviceState.FAILED)
    failed.id, failed.timeline = unit.id, {**tested.timeline, "failed_at": T0 + timedelta(seconds=2)}
    with units() as uow:  # one device moved twice: each change sees the one before it
        assert uow.devices.save_states_if([(tested, DeviceState.DEFINED), (failed, DeviceState.UNDER_TEST)])
        assert uow.devices.save_states_if([])
        uow.commit()
    with units(write=False) as uow:
        read = uow.devices.find_by_ids([unit.id])[0]
    assert read.state is DeviceState.FAILED and read.timeline["failed_at"] == T0 + timedelta(seconds=2)
    assert _by_state(units, seeded) == {"defined": 1, "failed": 1}
    moved = device(seeded, "SN-2", state=DeviceState.UNDER_TEST)
    moved.id = other.id
    with units() as uow:  # one change of two does not match: False, nothing counted
        assert not uow.devices.save_states_if([(moved, DeviceState.DEFINED), (tested, DeviceState.DEFINED)])
    assert _by_state(units, seeded) == {"defined": 1, "failed": 1}


def test_test_runs_added_at_once_their_ids_and_each_devices_latest(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    one, two = device(seeded, "SN-1"), device(seeded, "SN-2")
    add(units, NewDevice(one), NewDevice(two))
    runs = [
        TestRun(
            new_id(), d.id, seeded.child.id, passed, {"v": n}, "f1", None, "test", T0 + timedelta(seconds=n)
        )
        for n, (d, passed) in enumerate([(one, False), (one, True), (two, False)])
    ]
    with units() as uow:
        uow.test_runs.add_many(runs)
        uow.test_runs.add_many([])
        uow.commit()
    with units(write=False) as uow:
        assert uow.test_runs.ids_existing([runs[0].id, new_id()]) == {runs[0].id}
        assert uow.test_runs.ids_existing([]) == set()
        latest = uow.test_runs.latest_for_devices([one.id, two.id, new_id()])
        assert uow.test_runs.latest_for_device(one.id, since=None) == runs[1]
    assert latest == {one.id: runs[1], two.id: runs[2]}
