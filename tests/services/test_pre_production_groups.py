"""The pre-production kind of device group, on fakes: it holds blessed units as a production
group does (impCentral's lines), and may keep them on factory firmware until they activate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lineside.domain.errors import Conflict
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import (
    ApplicationFirmwareAfter,
    FirmwareKind,
    FirmwareRelease,
    GroupKind,
    group_refuses,
)
from lineside.services import devices, products
from lineside.services.firmware import assigned_release
from tests.services.conftest import Maker, World
from tests.services.helpers import blessed_unit


@pytest.mark.parametrize(
    ("state", "refused"),
    [
        (DeviceState.BLESSED, False),
        (DeviceState.ACTIVATED, False),
        (DeviceState.DEFINED, True),
        (DeviceState.UNDER_TEST, True),
        (DeviceState.FAILED, True),
        (DeviceState.REVOKED, True),
    ],
)
def test_a_pre_production_group_takes_blessed_units_only(state: DeviceState, refused: bool) -> None:
    assert (group_refuses(GroupKind.PRE_PRODUCTION, state) is not None) is refused


def test_blessed_units_move_between_production_and_pre_production_groups(maker: Maker) -> None:
    product = maker.product()
    trial = products.create_group(
        maker.services, maker.admin, product.id, name="trial", kind=GroupKind.PRE_PRODUCTION
    )
    bench = products.create_group(
        maker.services, maker.admin, product.id, name="bench", kind=GroupKind.DEVELOPMENT
    )
    unit = blessed_unit(maker, product.id)
    defined = devices.define_device(maker.services, maker.admin, product_id=product.id, serial_number="SN-1")
    assert devices.move_to_group(maker.services, maker.admin, [unit.id], trial.id) == 1
    with pytest.raises(Conflict, match="production or pre-production"):
        devices.move_to_group(maker.services, maker.admin, [defined.id], trial.id)
    with pytest.raises(Conflict, match="Only blessed units"):
        devices.move_to_group(maker.services, maker.admin, [unit.id], bench.id)
    assert unit.group_id is not None  # blessing put it in the production group it may go back to
    assert devices.move_to_group(maker.services, maker.admin, [unit.id], unit.group_id) == 1


def test_a_pre_production_group_that_waits_for_activation_keeps_units_on_factory_firmware(
    world: World, maker: Maker
) -> None:
    product = maker.product()
    releases = {
        kind: FirmwareRelease(
            new_id(), product.organization_id, product.id, kind, kind.value, "0" * 64, 1, world.clock(), "cli"
        )
        for kind in FirmwareKind
    }
    world.database.tables.releases.update({release.id: release for release in releases.values()})
    line = products.create_group(maker.services, maker.admin, product.id, name="line", kind=GroupKind.FACTORY)
    trial = products.create_group(
        maker.services, maker.admin, product.id, name="trial", kind=GroupKind.PRE_PRODUCTION
    )
    groups = world.database.tables.groups
    groups[line.id] = replace(groups[line.id], release_id=releases[FirmwareKind.FACTORY].id)
    groups[trial.id] = replace(
        groups[trial.id],
        release_id=releases[FirmwareKind.APPLICATION].id,
        application_firmware_after=ApplicationFirmwareAfter.ACTIVATION,
    )
    unit = blessed_unit(maker, product.id)
    devices.move_to_group(maker.services, maker.admin, [unit.id], trial.id)
    with maker.services.unit_of_work(write=False) as uow:
        device = uow.devices.get(unit.id, within="/")
        assert device is not None
        assert assigned_release(uow, device) == releases[FirmwareKind.FACTORY]
        device.state = DeviceState.ACTIVATED
        assert assigned_release(uow, device) == releases[FirmwareKind.APPLICATION]
