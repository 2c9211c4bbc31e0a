"""One contract, three implementations: the fakes of tests/fakes.py, SQLite and PostgreSQL.

The service tier trusts the fakes; these assertions are what earns that trust. Each runs on
all three, through the unit-of-work port alone, so a rule the SQL adapters keep and the fakes
do not (or the other way round) fails here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from lineside.domain.errors import Conflict
from lineside.domain.events import DomainEvent, EventType, SubjectRef, new_event
from lineside.domain.factory import FactoryToken, ProductionToken, TestRun
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import STATE_TIMESTAMP_FIELD, DeviceState
from lineside.domain.metadata import FieldType, MetadataField
from lineside.domain.models import (
    Device,
    DeviceGroup,
    GroupKind,
    Organization,
    Product,
    Role,
    StaticTokenBatch,
    User,
)
from lineside.services.ports import DeviceFilter, NewDevice, UnitOfWorkFactory
from tests.fakes import FakeDatabase

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class _Hashes(dict[str, str]):
    """A fresh 64-hex-digit value per name and per test (the databases are shared, and the
    hash columns are unique)."""

    def __missing__(self, name: str) -> str:
        self[name] = unique_hash()
        return self[name]


def unique_hash() -> str:
    return secrets.token_hex(32)


HASH = _Hashes()


@pytest.fixture(autouse=True)
def fresh_hashes() -> None:
    HASH.clear()


IMPLEMENTATIONS = ["fake", "sqlite", "postgres"]


@pytest.fixture(params=IMPLEMENTATIONS)
def units(request: pytest.FixtureRequest) -> Iterator[UnitOfWorkFactory]:
    if request.param == "fake":
        yield FakeDatabase().units()
        return
    engine = create_database_engine(request.getfixturevalue(f"{request.param}_database"))
    try:
        yield SqlUnitOfWorkFactory(engine)
    finally:
        engine.dispose()


@dataclass
class Seeded:
    parent: Organization
    child: Organization
    sibling: Organization
    product: Product


def organization(parent: Organization | None = None, name: str = "org") -> Organization:
    organization_id = new_id()
    path = f"{parent.path if parent else '/'}{organization_id}/"
    return Organization(organization_id, name, parent.id if parent else None, path, T0)


@pytest.fixture
def seeded(units: UnitOfWorkFactory) -> Seeded:
    parent = organization()
    child, sibling = organization(parent, "child"), organization()
    product = Product(new_id(), child.id, f"Sensor {child.id[-6:]}", [], T0)
    with units() as uow:
        for org in (parent, child, sibling):
            uow.organizations.add(org)
        uow.products.add(product)
        uow.commit()
    return Seeded(parent, child, sibling, product)


def device(seeded: Seeded, serial: str, **changes: object) -> Device:
    made = Device(
        id=new_id(),
        organization_id=seeded.child.id,
        product_id=seeded.product.id,
        serial_number=serial,
        state=DeviceState.DEFINED,
        created_at=T0,
        timeline={"defined_at": T0},
    )
    for name, value in changes.items():
        setattr(made, name, value)
    return made


def add(units: UnitOfWorkFactory, *new: NewDevice) -> None:
    with units() as uow:
        uow.devices.add_many(list(new))
        uow.commit()


# -- organizations ---------------------------------------------------------------------------


def test_a_subtree_sees_itself_and_below_never_above_or_beside(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    with units(write=False) as uow:
        assert uow.organizations.get(seeded.child.id, within=seeded.parent.path) == seeded.child
        assert uow.organizations.get(seeded.parent.id, within=seeded.child.path) is None
        assert uow.organizations.get(seeded.child.id, within=seeded.sibling.path) is None
        listed = uow.organizations.list(within=seeded.parent.path)
        assert [org.id for org in listed] == [seeded.parent.id, seeded.child.id]
        assert uow.products.get(seeded.product.id, within=seeded.parent.path) == seeded.product
        assert uow.products.get(seeded.product.id, within=seeded.sibling.path) is None


def test_a_product_is_renamed_and_redefined_within_its_organizations_names(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    other = Product(new_id(), seeded.child.id, f"Lamp {seeded.child.id[-6:]}", [], T0)
    fields = [
        MetadataField("batch", FieldType.INTEGER, required=True),
        MetadataField("note", FieldType.STRING),
    ]
    with units() as uow:
        uow.products.add(other)
        uow.products.set_definition(seeded.product.id, "Kettle", fields)
        uow.commit()
    with units(write=False) as uow:
        assert uow.products.get(seeded.product.id, within="/") == replace(
            seeded.product, name="Kettle", metadata_fields=fields
        )
        assert uow.products.name_taken(seeded.child.id, "Kettle")
        assert not uow.products.name_taken(seeded.child.id, seeded.product.name)
    with pytest.raises(Conflict), units() as uow:
        uow.products.set_definition(other.id, "Kettle", [])
        uow.commit()
    with units(write=False) as uow:
        assert uow.products.get(other.id, within="/") == other


def test_a_products_devices_are_counted_from_its_counters(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    with units(write=False) as uow:
        assert uow.device_counts.of_product(seeded.child.id, seeded.product.id) == 0
    add(
        units, NewDevice(device(seeded, "SN-1")), NewDevice(device(seeded, "SN-2", state=DeviceState.BLESSED))
    )
    with units(write=False) as uow:
        assert uow.device_counts.of_product(seeded.child.id, seeded.product.id) == 2
        assert uow.device_counts.of_product(seeded.child.id, new_id()) == 0
        assert uow.device_counts.of_product(seeded.sibling.id, seeded.product.id) == 0


# -- devices ---------------------------------------------------------------------------------


def test_a_device_reads_back_as_written(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    written = device(seeded, "SN-1", mac="aa:bb:cc:dd:ee:ff", metadata={"colour": "red"})
    add(units, NewDevice(written, token_hash=HASH["t"], claim_code_hash=HASH["c"]))
    with units(write=False) as uow:
        read = uow.devices.get(written.id, within=seeded.parent.path)
    assert read is not None
    assert (read.serial_number, read.mac, read.metadata, read.state) == (
        "SN-1",
        "aa:bb:cc:dd:ee:ff",
        {"colour": "red"},
        DeviceState.DEFINED,
    )
    assert read.timeline == {
        name: (T0 if name == "defined_at" else None) for name in STATE_TIMESTAMP_FIELD.values()
    }
    assert read.has_claim_code and read.owner_organization_id is None


def test_nothing_is_kept_without_commit(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    unit = device(seeded, "SN-1")
    with units() as uow:
        uow.devices.add(unit)
    with units(write=False) as uow:
        assert uow.devices.get(unit.id, within="/") is None


def test_serial_numbers_and_secret_hashes_are_unique(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    add(units, NewDevice(device(seeded, "SN-1"), token_hash=HASH["t"], claim_code_hash=HASH["c"]))
    for clash in (
        NewDevice(device(seeded, "SN-1")),
        NewDevice(device(seeded, "SN-2"), token_hash=HASH["t"]),
        NewDevice(device(seeded, "SN-3"), claim_code_hash=HASH["c"]),
    ):
        with pytest.raises(Conflict), units() as uow:
            uow.devices.add_many([clash])
            uow.commit()
    with units(write=False) as uow:
        assert uow.devices.existing_serial_numbers(seeded.product.id, ["SN-1", "SN-2"]) == {"SN-1"}
        assert uow.device_counts.made_by(seeded.child.id) == 1


def test_of_two_state_changes_from_one_state_one_wins(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    unit = device(seeded, "SN-1")
    add(units, NewDevice(unit))
    tested = device(seeded, "ignored")
    tested.id, tested.state = unit.id, DeviceState.UNDER_TEST
    tested.timeline = {"defined_at": T0, "under_test_at": T0 + timedelta(seconds=1)}
    with units() as uow:
        assert uow.devices.save_state_if(tested, DeviceState.DEFINED)
        assert not uow.devices.save_state_if(tested, DeviceState.DEFINED)
        uow.commit()
    with units(write=False) as uow:
        read = uow.devices.get(unit.id, within="/")
        by_state = {count.state: count.devices for count in uow.device_counts.within(seeded.child.path)}
    assert read is not None and read.state is DeviceState.UNDER_TEST
    assert read.timeline["under_test_at"] == T0 + timedelta(seconds=1)
    assert by_state == {"under_test": 1}


def test_one_claim_wins_and_the_owner_sees_the_device(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    unit = device(seeded, "SN-1")
    add(units, NewDevice(unit, claim_code_hash=HASH["c"]))
    with units() as uow:
        found = uow.devices.find_by_claim_hash(HASH["c"])
        assert found is not None and found.id == unit.id
        assert uow.devices.claim_if_unclaimed(unit.id, seeded.sibling.id, T0, "user:a")
        assert not uow.devices.claim_if_unclaimed(unit.id, seeded.parent.id, T0, "user:b")
        uow.commit()
    with units(write=False) as uow:
        assert uow.devices.get(unit.id, within=seeded.sibling.path) is None  # made elsewhere
        owned = uow.devices.get(unit.id, within=seeded.sibling.path, include_owned=True)
        page = uow.devices.list(within=seeded.sibling.path, filters=DeviceFilter(), cursor=None, limit=10)
    assert owned is not None and owned.owner_organization_id == seeded.sibling.id
    assert [item.id for item in page.items] == [unit.id]
    with units() as uow:
        assert not uow.devices.move_owner(unit.id, seeded.parent.id, seeded.child.id, T0, "x")
        assert uow.devices.move_owner(unit.id, seeded.sibling.id, seeded.parent.id, T0, "x")
        uow.devices.release_claim(unit.id)
        uow.commit()
    with units(write=False) as uow:
        released = uow.devices.get(unit.id, within="/")
    assert released is not None and released.owner_organization_id is None


def test_lists_page_in_id_order_with_filters(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    units_made = [device(seeded, f"SN-{n}") for n in range(5)]
    units_made[2].state = DeviceState.REVOKED
    add(units, *(NewDevice(unit) for unit in units_made))
    ids, cursor = [], None
    with units(write=False) as uow:
        while True:
            page = uow.devices.list(within=seeded.parent.path, filters=DeviceFilter(), cursor=cursor, limit=2)
            ids += [item.id for item in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        revoked = uow.devices.list(
            within=seeded.parent.path, filters=DeviceFilter(state=DeviceState.REVOKED), cursor=None, limit=10
        )
        elsewhere = uow.devices.list(
            within=seeded.sibling.path, filters=DeviceFilter(), cursor=None, limit=10
        )
    assert ids == sorted(unit.id for unit in units_made)
    assert [item.id for item in revoked.items] == [units_made[2].id]
    assert elsewhere.items == []


def test_a_batch_pages_and_its_tokens_change_together(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    batch_id = new_id()
    made = [device(seeded, f"B-{n}", batch_id=batch_id) for n in range(3)]
    add(units, *(NewDevice(unit) for unit in made))
    with units() as uow:
        first = uow.devices.batch_page(batch_id, None, 2)
        rest = uow.devices.batch_page(batch_id, first[-1].device_id, 2)
        uow.devices.set_tokens([(unit.id, unique_hash()) for n, unit in enumerate(made)], T0)
        uow.devices.set_claim_codes([(made[0].id, HASH["d"])], generation=1)
        assert not uow.devices.any_activated_in_batch(batch_id)
        uow.commit()
    assert [unit.device_id for unit in [*first, *rest]] == sorted(unit.id for unit in made)
    with units(write=False) as uow:
        claimed = uow.devices.find_by_claim_hash(HASH["d"])
    assert claimed is not None and claimed.claim_generation == 1
    with units() as uow:
        uow.devices.clear_tokens_of_batch(batch_id)
        uow.commit()
    with units(write=False) as uow:
        tokens_left = [uow.devices.batch_page(batch_id, None, 10)]
    assert len(tokens_left[0]) == 3


def test_hardware_ids_and_serial_numbers_find_their_device(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    unit = device(seeded, "SN-1")
    add(units, NewDevice(unit))
    with units() as uow:
        uow.devices.set_hardware_id(unit.id, "chip-1")
        uow.commit()
    with units(write=False) as uow:
        by_chip = uow.devices.find_by_hardware_id(seeded.product.id, "chip-1")
        by_serial = uow.devices.find_by_serial_number(seeded.product.id, "SN-1")
    assert by_chip is not None and by_serial is not None and by_chip.id == by_serial.id == unit.id


# -- the factory line ------------------------------------------------------------------------


def test_factory_tokens_runs_and_production_tokens(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    unit = device(seeded, "SN-1")
    add(units, NewDevice(unit))
    token = FactoryToken(new_id(), seeded.child.id, seeded.product.id, "line 1", "lsf_abc", "test", T0)
    production = ProductionToken(
        new_id(), seeded.child.id, None, "p" * 32, "test", T0, T0 + timedelta(minutes=10)
    )
    runs = [
        TestRun(new_id(), unit.id, seeded.child.id, passed, {}, None, None, "test", T0 + timedelta(seconds=n))
        for n, passed in enumerate([False, True])
    ]
    with units() as uow:
        uow.factory_tokens.add(token, HASH["f"])
        uow.production_tokens.add(production, HASH["q"])
        for run in runs:
            uow.test_runs.add(run)
        uow.commit()
    with units() as uow:
        found = uow.factory_tokens.find_active_by_hash(HASH["f"])
        assert found is not None and found[1].id == seeded.product.id
        assert uow.test_runs.latest_for_device(unit.id, since=None) == runs[1]
        assert uow.test_runs.latest_for_device(unit.id, since=T0 + timedelta(seconds=5)) is None
        assert [run.id for run in uow.test_runs.list_for_device(unit.id)] == [runs[1].id, runs[0].id]
        assert uow.production_tokens.find_by_hash(HASH["q"], within=seeded.sibling.path) is None
        assert uow.production_tokens.use_if_unused(production.id, unit.id, T0)
        assert not uow.production_tokens.use_if_unused(production.id, unit.id, T0)
        uow.factory_tokens.revoke(token.id, T0)
        uow.commit()
    with units(write=False) as uow:
        assert uow.factory_tokens.find_active_by_hash(HASH["f"]) is None
        used = uow.production_tokens.find_by_hash(HASH["q"], within="/")
    assert used is not None and used.device_id == unit.id


def test_a_groups_name_is_taken_once_per_product(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    def group(name: str) -> DeviceGroup:
        return DeviceGroup(new_id(), seeded.child.id, seeded.product.id, name, GroupKind.PRODUCTION, T0)

    with units() as uow:
        assert uow.groups.add_unless_name_taken(group("Production"))
        assert not uow.groups.add_unless_name_taken(group("Production"))
        uow.groups.add(group("Line 2"))
        uow.commit()
    with units(write=False) as uow:
        names = [g.name for g in uow.groups.list_for_product(seeded.product.id)]
        assert uow.groups.name_taken(seeded.product.id, "Line 2")
    assert sorted(names) == ["Line 2", "Production"]


# -- batches, tombstones, people -------------------------------------------------------------


def test_a_batch_is_marked_exported_once(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    batch = StaticTokenBatch(new_id(), seeded.child.id, seeded.product.id, 0, [], T0)
    with units() as uow:
        uow.static_batches.add(batch)
        uow.tombstones.add(HASH["e"], new_id(), seeded.child.id, "SN-9", T0)
        assert uow.static_batches.mark_exported(batch.id, T0)
        assert not uow.static_batches.mark_exported(batch.id, T0)
        uow.commit()
    with units() as uow:
        assert uow.static_batches.get(batch.id, within=seeded.sibling.path) is None
        uow.static_batches.clear_exported(batch.id)
        again = uow.static_batches.get(batch.id, within=seeded.parent.path)
        assert uow.tombstones.find(HASH["e"]) == ("SN-9", T0)
    assert again is not None and again.exported_at is None


def test_sessions_expire_and_invitations_are_accepted_once(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    user = User(new_id(), f"{new_id()}@example.com", seeded.sibling.id, T0)
    invitation_id = new_id()
    with units() as uow:
        uow.users.add(user, "hash")
        uow.users.add_membership(user.id, seeded.sibling.id, T0, Role.OPERATOR)
        uow.users.add_membership(user.id, seeded.sibling.id, T0, Role.OWNER)  # twice: still one, as it was
        uow.users.add_session(new_id(), user.id, f"s{user.id}", T0, T0 + timedelta(days=1))
        uow.users.add_invitation(
            invitation_id, seeded.child.id, user.email, f"i{user.id}", T0, T0 + timedelta(days=7), Role.VIEWER
        )
        uow.commit()
    with units() as uow:
        assert uow.users.find_session_user(f"s{user.id}", T0) == user
        assert uow.users.find_session_user(f"s{user.id}", T0 + timedelta(days=2)) is None
        assert [org.id for org in uow.users.organizations_of(user.id)] == [seeded.sibling.id]
        assert [(org.id, role) for org, role in uow.users.memberships_of(user.id)] == [
            (seeded.sibling.id, Role.OPERATOR)
        ]
        assert uow.users.members_of(seeded.sibling.id, 10) == [(user, Role.OPERATOR)]
        assert uow.users.members_of(seeded.child.id, 10) == []
        assert uow.users.open_invitation(f"i{user.id}", T0) == (
            invitation_id,
            seeded.child.id,
            user.email,
            Role.VIEWER,
        )
        assert uow.users.accept_invitation(invitation_id, T0)
        assert not uow.users.accept_invitation(invitation_id, T0)
        assert uow.users.open_invitation(f"i{user.id}", T0) is None
        uow.users.revoke_session(f"s{user.id}", T0)
        assert uow.users.find_session_user(f"s{user.id}", T0) is None


def test_a_members_role_changes_in_one_organization_only(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    boss, pat = (User(new_id(), f"{new_id()}@example.com", seeded.sibling.id, T0) for _ in range(2))
    with units() as uow:
        for user in (boss, pat):
            uow.users.add(user, "hash")
        uow.users.add_membership(boss.id, seeded.child.id, T0, Role.OWNER)
        uow.users.add_membership(pat.id, seeded.child.id, T0, Role.OPERATOR)
        uow.users.add_membership(pat.id, seeded.sibling.id, T0, Role.OPERATOR)
        uow.commit()
    with units() as uow:
        assert uow.users.owners_of(seeded.child.id, lock=True) == [boss.id]
        assert uow.users.role_in(pat.id, seeded.child.id, lock=True) is Role.OPERATOR
        assert uow.users.set_role(pat.id, seeded.child.id, Role.OWNER)
        assert not uow.users.set_role(pat.id, seeded.parent.id, Role.VIEWER)  # not a member there
        assert not uow.users.set_role(new_id(), seeded.child.id, Role.VIEWER)
        uow.commit()
    with units(write=False) as uow:
        assert uow.users.owners_of(seeded.child.id) == sorted([boss.id, pat.id])
        assert uow.users.role_in(pat.id, seeded.child.id) is Role.OWNER
        assert uow.users.role_in(pat.id, seeded.sibling.id) is Role.OPERATOR  # the other membership
        assert uow.users.role_in(pat.id, seeded.parent.id) is None
        assert uow.users.role_in(boss.id, seeded.sibling.id) is None
        assert uow.users.owners_of(seeded.sibling.id) == []
        members = {user.id: role for user, role in uow.users.members_of(seeded.child.id, 10)}
        assert members == {boss.id: Role.OWNER, pat.id: Role.OWNER}


def test_the_latest_events_of_a_subtree_come_newest_first(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    def event(org: Organization, n: int) -> DomainEvent:
        return new_event(EventType.PRODUCT_CREATED, SubjectRef(new_id(), org.id), actor="test", at=T0, n=n)

    made = [event(org, n) for n, org in enumerate([seeded.parent, seeded.sibling, seeded.child] * 3)]
    with units() as uow:
        for one in made:  # one at a time: the sequence is the order they were added in
            uow.events.add(one)
        uow.commit()
    with units(write=False) as uow:
        latest = uow.events.latest(within=seeded.parent.path, limit=4)
        of_sibling = uow.events.latest(within=seeded.sibling.path, limit=10)
    mine = [one.id for one in made if one.organization_id != seeded.sibling.id]
    assert [one.id for one in latest] == mine[::-1][:4]
    assert [one.id for one in of_sibling] == [
        one.id for one in made if one.organization_id == seeded.sibling.id
    ][::-1]


def test_the_latest_batches_of_a_subtree_come_newest_first(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    made = [
        StaticTokenBatch(new_id(), org.id, seeded.product.id, 0, [], T0)
        for org in (seeded.child, seeded.sibling, seeded.parent, seeded.child)
    ]
    with units() as uow:
        for batch in made:
            uow.static_batches.add(batch)
        uow.commit()
    with units(write=False) as uow:
        latest = uow.static_batches.latest(within=seeded.parent.path, limit=2)
    mine = sorted((b.id for b in made if b.organization_id != seeded.sibling.id), reverse=True)
    assert [batch.id for batch in latest] == mine[:2]
