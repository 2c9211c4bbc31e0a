"""Bulk actions on chosen devices (the console's devices list), on fakes: disclaim, delete and
move to a group take all the chosen devices or none; the group rules follow impCentral's."""

from __future__ import annotations

import pytest

from lineside.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from lineside.domain.events import EventType
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import GroupKind, Principal, Scope, group_refuses
from lineside.services import claims, devices, products
from lineside.services.lookups import MAX_SELECTION
from lineside.services.ports import DeviceFilter
from tests.services.conftest import Maker, World
from tests.services.helpers import blessed_unit, claim_code_of, static_batch


def units(maker: Maker, count: int) -> list[str]:
    batch = static_batch(maker, count=count)
    page = devices.list_devices(
        maker.services, maker.admin, filters=DeviceFilter(batch_id=batch.id), cursor=None, limit=count
    )
    return [device.id for device in page.items]


def test_a_bulk_delete_takes_every_chosen_device_or_none(maker: Maker, rival: Maker) -> None:
    mine, theirs = units(maker, 3), units(rival, 1)
    with pytest.raises(NotFound):
        claims.delete_devices(maker.services, maker.admin, [*mine, *theirs])
    assert all(devices.get_device(maker.services, maker.admin, unit) for unit in mine)  # none deleted
    assert claims.delete_devices(maker.services, maker.admin, mine[:2]) == 2
    with pytest.raises(NotFound):
        devices.get_device(maker.services, maker.admin, mine[0])
    assert devices.get_device(maker.services, maker.admin, mine[2]).id == mine[2]


def test_a_bulk_disclaim_refuses_an_unclaimed_device_and_changes_nothing(
    world: World, maker: Maker, owner: Principal
) -> None:
    first, second = units(maker, 2)
    claims.claim_device(world.services, owner, claim_code_of(maker, first), client_address="203.0.113.9")
    with pytest.raises(Conflict, match="not claimed"):
        claims.disclaim_devices(maker.services, maker.admin, [first, second])
    assert devices.get_device(maker.services, maker.admin, first).is_claimed
    (disclaimed,) = claims.disclaim_devices(maker.services, maker.admin, [first])
    assert not disclaimed.is_claimed
    assert world.database.tables.events[-1].type == EventType.DEVICE_DISCLAIMED


def test_a_selection_is_some_devices_each_once_and_not_too_many(maker: Maker) -> None:
    (unit,) = units(maker, 1)
    for chosen, reason in (
        ([], "at least one"),
        ([unit, unit], "twice"),
        ([unit] * (MAX_SELECTION + 1), "at most"),
    ):
        with pytest.raises(InvalidInput, match=reason):
            claims.delete_devices(maker.services, maker.admin, chosen)


def test_devices_move_into_a_development_group_of_their_product(world: World, maker: Maker) -> None:
    chosen = units(maker, 2)
    product_id = devices.get_device(maker.services, maker.admin, chosen[0]).product_id
    bench = products.create_group(
        maker.services, maker.admin, product_id, name="bench", kind=GroupKind.DEVELOPMENT
    )
    assert devices.move_to_group(maker.services, maker.admin, chosen, bench.id) == 2
    assert {devices.get_device(maker.services, maker.admin, unit).group_id for unit in chosen} == {bench.id}
    moved = [event for event in world.database.tables.events if event.type == EventType.DEVICE_MOVED]
    assert [(event.subject_id, event.data["to_group"]) for event in moved] == [
        (unit, bench.id) for unit in chosen
    ]


def test_moves_keep_production_and_development_apart_and_products_apart(maker: Maker) -> None:
    product = products.create_product(maker.services, maker.admin, name="Kettle", fields=[])
    other = products.create_product(maker.services, maker.admin, name="Lamp", fields=[])
    production = products.create_group(
        maker.services, maker.admin, product.id, name="fleet", kind=GroupKind.PRODUCTION
    )
    bench = products.create_group(
        maker.services, maker.admin, other.id, name="bench", kind=GroupKind.DEVELOPMENT
    )
    unit = blessed_unit(maker, product.id)
    defined = devices.define_device(maker.services, maker.admin, product_id=product.id, serial_number="SN-1")
    with pytest.raises(Conflict, match="Only blessed units"):
        devices.move_to_group(maker.services, maker.admin, [defined.id], production.id)
    with pytest.raises(Conflict, match="not of the group's product"):
        devices.move_to_group(maker.services, maker.admin, [unit.id], bench.id)
    assert devices.move_to_group(maker.services, maker.admin, [unit.id], production.id) == 1


def test_only_admins_act_in_bulk(maker: Maker) -> None:
    chosen = units(maker, 1)
    reader = maker.key(Scope.READ)
    with pytest.raises(PermissionDenied):
        claims.delete_devices(maker.services, reader, chosen)
    with pytest.raises(PermissionDenied):
        devices.move_to_group(maker.services, reader, chosen, chosen[0])


@pytest.mark.parametrize(
    ("kind", "state", "refused"),
    [
        (GroupKind.FACTORY, DeviceState.DEFINED, True),
        (GroupKind.DEVELOPMENT, DeviceState.DEFINED, False),
        (GroupKind.DEVELOPMENT, DeviceState.FAILED, False),
        (GroupKind.DEVELOPMENT, DeviceState.ACTIVATED, True),
        (GroupKind.PRODUCTION, DeviceState.BLESSED, False),
        (GroupKind.PRODUCTION, DeviceState.ACTIVATED, False),
        (GroupKind.PRODUCTION, DeviceState.UNDER_TEST, True),
        (GroupKind.PRODUCTION, DeviceState.REVOKED, True),
    ],
)
def test_which_groups_take_which_devices(kind: GroupKind, state: DeviceState, refused: bool) -> None:
    assert (group_refuses(kind, state) is not None) is refused
