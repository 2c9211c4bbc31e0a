"""The factory line's rules, on fakes: what a fixture may do to a unit in each state."""

from __future__ import annotations

import pytest

from lineside.domain.errors import Conflict, InvalidInput, PermissionDenied, Unauthenticated
from lineside.domain.events import EventType
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import EnrollmentPolicy, GroupKind, Scope
from lineside.services import devices, factory_line, factory_tokens
from lineside.services.factory_line import PRODUCTION_GROUP_NAME
from tests.services.conftest import Maker, World


def line_token(maker: Maker, product_id: str) -> str:
    return factory_tokens.create_factory_token(maker.services, maker.admin, product_id=product_id).secret


def enroll(maker: Maker, token: str, hardware_id: str, serial: str | None = None) -> str:
    return factory_line.enroll_dut(
        maker.services, token, hardware_id=hardware_id, serial_number=serial
    ).device.id


def state_of(maker: Maker, device_id: str) -> DeviceState:
    return devices.get_device(maker.services, maker.admin, device_id).state


def test_an_unknown_unit_is_defined_and_put_under_test(maker: Maker, world: World) -> None:
    product = maker.product()
    enrolled = factory_line.enroll_dut(
        maker.services, line_token(maker, product.id), hardware_id="AA:BB:CC:00:00:01"
    )
    assert enrolled.created
    assert enrolled.device.state is DeviceState.UNDER_TEST
    assert enrolled.device.serial_number == enrolled.device.hardware_id
    types = [event.type for event in world.database.tables.events if event.subject_id == enrolled.device.id]
    assert types == [EventType.DEVICE_DEFINED, EventType.DEVICE_ENROLLED]


def test_enrolling_a_unit_under_test_again_changes_nothing(maker: Maker, world: World) -> None:
    token = line_token(maker, maker.product().id)
    device_id = enroll(maker, token, "unit-1")
    events_before = len(world.database.tables.events)
    again = factory_line.enroll_dut(maker.services, token, hardware_id="unit-1")
    assert (again.device.id, again.created) == (device_id, False)
    assert len(world.database.tables.events) == events_before


def test_a_passing_unit_is_blessed_into_the_production_group(maker: Maker, world: World) -> None:
    product = maker.product()
    device_id = enroll(maker, line_token(maker, product.id), "unit-1")
    factory_line.record_test_run(maker.services, maker.admin, device_id, passed=True)
    blessing = factory_line.bless_device(maker.services, maker.admin, device_id)
    assert (blessing.led, blessing.device.state) == ("green", DeviceState.BLESSED)
    group = world.database.tables.groups[blessing.device.group_id or ""]
    assert (group.kind, group.name) == (GroupKind.PRODUCTION, PRODUCTION_GROUP_NAME)
    assert blessing.device.factory_token_id is None  # the enrollment is spent


def test_the_second_blessing_of_a_product_reuses_its_production_group(maker: Maker, world: World) -> None:
    token = line_token(maker, maker.product().id)
    groups = set()
    for unit in ("unit-1", "unit-2"):
        device_id = enroll(maker, token, unit)
        factory_line.record_test_run(maker.services, maker.admin, device_id, passed=True)
        groups.add(factory_line.bless_device(maker.services, maker.admin, device_id).device.group_id)
    assert len(groups) == 1 and len(world.database.tables.groups) == 1


def test_the_last_run_decides_and_a_failing_unit_is_failed(maker: Maker) -> None:
    device_id = enroll(maker, line_token(maker, maker.product().id), "unit-1")
    factory_line.record_test_run(maker.services, maker.admin, device_id, passed=True)
    factory_line.record_test_run(maker.services, maker.admin, device_id, passed=False)
    blessing = factory_line.bless_device(maker.services, maker.admin, device_id)
    assert (blessing.led, state_of(maker, device_id)) == ("red", DeviceState.FAILED)


def test_blessing_needs_a_test_run_since_the_unit_went_under_test(maker: Maker) -> None:
    token = line_token(maker, maker.product().id)
    device_id = enroll(maker, token, "unit-1")
    with pytest.raises(Conflict, match="no test run since it was enrolled"):
        factory_line.bless_device(maker.services, maker.admin, device_id)
    # A failed unit's old passing run does not count once it is retested.
    factory_line.record_test_run(maker.services, maker.admin, device_id, passed=False)
    factory_line.bless_device(maker.services, maker.admin, device_id)
    enroll(maker, token, "unit-1")
    assert state_of(maker, device_id) is DeviceState.UNDER_TEST
    with pytest.raises(Conflict, match="no test run since it was enrolled"):
        factory_line.bless_device(maker.services, maker.admin, device_id)


def test_a_failed_unit_is_told_to_enroll_again_before_a_test_run(maker: Maker) -> None:
    device_id = enroll(maker, line_token(maker, maker.product().id), "unit-1")
    factory_line.record_test_run(maker.services, maker.admin, device_id, passed=False)
    factory_line.bless_device(maker.services, maker.admin, device_id)
    with pytest.raises(Conflict, match="Enroll it again to retest it"):
        factory_line.record_test_run(maker.services, maker.admin, device_id, passed=True)


@pytest.mark.parametrize("blessed_then", ["blessed", "revoked"])
def test_a_unit_off_the_line_is_never_enrolled_or_blessed_again(maker: Maker, blessed_then: str) -> None:
    token = line_token(maker, maker.product().id)
    device_id = enroll(maker, token, "unit-1")
    factory_line.record_test_run(maker.services, maker.admin, device_id, passed=True)
    factory_line.bless_device(maker.services, maker.admin, device_id)
    if blessed_then == "revoked":
        devices.revoke_device(maker.services, maker.admin, device_id)
    with pytest.raises(Conflict, match="left the factory line"):
        enroll(maker, token, "unit-1")
    expected = "blessing is permanent" if blessed_then == "blessed" else "Only a device under test"
    with pytest.raises(Conflict, match=expected):
        factory_line.bless_device(maker.services, maker.admin, device_id)
    with pytest.raises(Conflict, match="Only a device under test can be tested"):
        factory_line.record_test_run(maker.services, maker.admin, device_id, passed=True)


def test_a_predefined_product_admits_only_units_defined_beforehand(maker: Maker) -> None:
    product = maker.product(policy=EnrollmentPolicy.PREDEFINED)
    token = line_token(maker, product.id)
    with pytest.raises(PermissionDenied, match="admits only devices defined beforehand"):
        enroll(maker, token, "stranger")
    defined = devices.define_device(maker.services, maker.admin, product_id=product.id, serial_number="SN-1")
    assert enroll(maker, token, "chip-1", serial="SN-1") == defined.id  # takes the hardware id
    assert devices.get_device(maker.services, maker.admin, defined.id).hardware_id == "chip-1"


def test_a_hardware_id_and_a_serial_number_must_name_the_same_unit(maker: Maker) -> None:
    product = maker.product()
    token = line_token(maker, product.id)
    enroll(maker, token, "chip-1", serial="SN-1")
    with pytest.raises(Conflict, match="belongs to the device with serial number 'SN-1'"):
        enroll(maker, token, "chip-1", serial="SN-2")
    with pytest.raises(Conflict, match="belongs to the device with hardware id"):
        enroll(maker, token, "chip-2", serial="SN-1")


def test_a_revoked_or_unknown_factory_token_enrolls_nothing(maker: Maker, world: World) -> None:
    product = maker.product()
    created = factory_tokens.create_factory_token(maker.services, maker.admin, product_id=product.id)
    factory_tokens.revoke_factory_token(maker.services, maker.admin, created.token.id)
    for token in (created.secret, "lsf_unknown", "not-a-token"):
        with pytest.raises(Unauthenticated):
            enroll(maker, token, "unit-1")
    assert world.database.tables.devices == {}


def test_the_line_needs_the_factory_scope(maker: Maker) -> None:
    device_id = enroll(maker, line_token(maker, maker.product().id), "unit-1")
    reader = maker.key(Scope.READ)
    with pytest.raises(PermissionDenied, match="'factory' scope"):
        factory_line.record_test_run(maker.services, reader, device_id, passed=True)
    with pytest.raises(PermissionDenied, match="'factory' scope"):
        factory_line.bless_device(maker.services, reader, device_id)
    factory_line.record_test_run(maker.services, maker.key(Scope.FACTORY), device_id, passed=True)
    assert factory_line.list_test_runs(maker.services, reader, device_id)[0].passed


def test_another_organization_cannot_test_or_bless_the_makers_units(maker: Maker, rival: Maker) -> None:
    device_id = enroll(maker, line_token(maker, maker.product().id), "unit-1")
    for step in (
        lambda: factory_line.record_test_run(rival.services, rival.admin, device_id, passed=True),
        lambda: factory_line.bless_device(rival.services, rival.admin, device_id),
        lambda: factory_line.list_test_runs(rival.services, rival.admin, device_id),
    ):
        with pytest.raises(Exception, match=f"No device with id '{device_id}' was found"):
            step()


def test_labels_and_measurements_are_checked(maker: Maker) -> None:
    device_id = enroll(maker, line_token(maker, maker.product().id), "unit-1")
    with pytest.raises(InvalidInput, match="fixture must be at most"):
        factory_line.record_test_run(maker.services, maker.admin, device_id, passed=True, fixture="a\nb")
    run = factory_line.record_test_run(
        maker.services, maker.admin, device_id, passed=True, fixture="  bench 3 ", measurements={"v": 3.3}
    )
    assert (run.fixture, run.measurements) == ("bench 3", {"v": 3.3})
