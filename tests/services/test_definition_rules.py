"""Defining devices, on fakes: uniqueness, metadata, quotas, scopes and tenants."""

from __future__ import annotations

import pytest

from lineside.domain.device_specs import FIRST_DATA_ROW, DeviceSpec
from lineside.domain.errors import (
    AlreadyExists,
    BatchRejected,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    Unauthenticated,
)
from lineside.domain.lifecycle import DeviceState
from lineside.domain.metadata import FieldType, MetadataField
from lineside.domain.models import CredentialType, Scope
from lineside.services import credentials, devices, factory_line, factory_tokens, quotas, static_tokens
from lineside.services.ports import DeviceFilter
from lineside.services.quotas import set_device_quota
from tests.services.conftest import Maker, World


def define(
    maker: Maker,
    product_id: str,
    serial: str,
    *,
    hardware_id: str | None = None,
    metadata: dict[str, object] | None = None,
    mac: str | None = None,
) -> str:
    return devices.define_device(
        maker.services,
        maker.admin,
        product_id=product_id,
        serial_number=serial,
        hardware_id=hardware_id,
        metadata=metadata,
        mac=mac,
    ).id


def specs(*serials: str) -> list[DeviceSpec]:
    return [
        DeviceSpec(serial_number=serial, row=row) for row, serial in enumerate(serials, start=FIRST_DATA_ROW)
    ]


def test_a_serial_number_or_hardware_id_is_defined_once_per_product(maker: Maker) -> None:
    product, other = maker.product(), maker.product("Other")
    define(maker, product.id, "SN-1", hardware_id="chip-1")
    with pytest.raises(AlreadyExists, match="Serial number 'SN-1'"):
        define(maker, product.id, "SN-1")
    with pytest.raises(AlreadyExists, match="Hardware id 'chip-1'"):
        define(maker, product.id, "SN-2", hardware_id="chip-1")
    define(maker, other.id, "SN-1")  # another product's serial numbers are its own


def test_metadata_is_checked_against_the_products_fields(maker: Maker) -> None:
    product = maker.product(fields=[MetadataField(name="batch", type=FieldType.INTEGER, required=True)])
    with pytest.raises(InvalidInput, match="batch"):
        define(maker, product.id, "SN-1", metadata={"batch": "seven"})
    with pytest.raises(InvalidInput, match="batch"):
        define(maker, product.id, "SN-2")
    assert define(maker, product.id, "SN-3", metadata={"batch": 7})


def test_a_batch_is_all_or_nothing_and_reports_every_bad_row(maker: Maker, world: World) -> None:
    product = maker.product()
    define(maker, product.id, "SN-2")
    with pytest.raises(BatchRejected) as rejected:
        devices.define_batch(
            maker.services, maker.admin, product_id=product.id, specs=specs("SN-1", "SN-2", "SN-1")
        )
    reasons = {(error.row, error.reason) for error in rejected.value.errors}
    assert reasons == {(3, "'SN-2' is already defined"), (4, "'SN-1' repeats row 2")}
    assert len(world.database.tables.devices) == 1


def test_a_batch_with_tokens_shows_each_once_and_keeps_only_hashes(maker: Maker, world: World) -> None:
    product = maker.product()
    batch = devices.define_batch(
        maker.services,
        maker.admin,
        product_id=product.id,
        specs=specs("A", "B"),
        issue_credentials=CredentialType.TOKEN,
    )
    for item in batch.devices:
        assert item.credential is not None and item.credential.secret is not None
        assert credentials.authenticate_device(world.services, item.credential.secret).id == item.device.id
        stored = world.database.tables.devices[item.device.id]
        assert stored.token_hash != item.credential.secret and stored.token_hash is not None


def test_the_quota_refuses_before_anything_is_written(maker: Maker, world: World) -> None:
    product = maker.product()
    set_device_quota(world.services, maker.admin.organization.id, 3)
    define(maker, product.id, "SN-1")
    with pytest.raises(QuotaExceeded, match="quota is 3"):
        devices.define_batch(maker.services, maker.admin, product_id=product.id, specs=specs("A", "B", "C"))
    with pytest.raises(QuotaExceeded):
        static_tokens.create_static_tokens(maker.services, maker.admin, product.id, count=3)
    devices.define_batch(maker.services, maker.admin, product_id=product.id, specs=specs("A", "B"))
    token = factory_tokens.create_factory_token(maker.services, maker.admin, product_id=product.id).secret
    with pytest.raises(QuotaExceeded):
        factory_line.enroll_dut(maker.services, token, hardware_id="new-unit")
    assert len(world.database.tables.devices) == 3


def test_defining_needs_the_factory_scope_and_revoking_the_admin_scope(maker: Maker) -> None:
    product = maker.product()
    reader, fixture = maker.key(Scope.READ), maker.key(Scope.FACTORY)
    with pytest.raises(PermissionDenied):
        devices.define_device(maker.services, reader, product_id=product.id, serial_number="SN-1")
    device = devices.define_device(maker.services, fixture, product_id=product.id, serial_number="SN-1")
    with pytest.raises(PermissionDenied):
        devices.revoke_device(maker.services, fixture, device.id)
    assert devices.get_device(maker.services, reader, device.id).id == device.id


def test_a_revoked_device_is_terminal_and_its_token_stops_working(maker: Maker, world: World) -> None:
    product = maker.product()
    batch = devices.define_batch(
        maker.services,
        maker.admin,
        product_id=product.id,
        specs=specs("A"),
        issue_credentials=CredentialType.TOKEN,
    )
    device, secret = batch.devices[0].device, batch.devices[0].credential
    assert secret is not None and secret.secret is not None
    assert devices.revoke_device(maker.services, maker.admin, device.id).state is DeviceState.REVOKED
    with pytest.raises(Unauthenticated):
        credentials.authenticate_device(world.services, secret.secret)


def test_another_organization_sees_none_of_the_makers_devices(maker: Maker, rival: Maker) -> None:
    product = maker.product()
    device_id = define(maker, product.id, "SN-1")
    with pytest.raises(NotFound):
        devices.get_device(rival.services, rival.admin, device_id)
    with pytest.raises(NotFound):
        devices.define_device(rival.services, rival.admin, product_id=product.id, serial_number="SN-2")
    with pytest.raises(NotFound):
        devices.list_devices(
            rival.services, rival.admin, filters=DeviceFilter(product_id=product.id), cursor=None, limit=10
        )
    page = devices.list_devices(rival.services, rival.admin, filters=DeviceFilter(), cursor=None, limit=10)
    assert page.items == []


def test_device_lists_come_a_page_at_a_time(maker: Maker) -> None:
    product = maker.product()
    made = [define(maker, product.id, f"SN-{n}") for n in range(5)]
    seen, cursor = [], None
    while True:
        page = devices.list_devices(
            maker.services, maker.admin, filters=DeviceFilter(), cursor=cursor, limit=2
        )
        seen += [device.id for device in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(made)


def test_usage_counts_the_organizations_own_devices_against_its_quota(maker: Maker, world: World) -> None:
    product = maker.product()
    assert quotas.usage(world.services, maker.admin) == quotas.Usage(
        0, world.services.config.default_device_quota
    )
    set_device_quota(world.services, maker.admin.organization.id, 5)
    define(maker, product.id, "SN-1")
    assert quotas.usage(world.services, maker.key(Scope.READ)) == quotas.Usage(1, 5)
