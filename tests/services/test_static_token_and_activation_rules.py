"""Static-token batches and activation with a production token, on fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lineside.domain.errors import (
    BatchRejected,
    Conflict,
    Gone,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from lineside.domain.lifecycle import DeviceState
from lineside.domain.metadata import FieldType, MetadataField
from lineside.domain.models import Scope
from lineside.services import activation, credentials, static_tokens
from lineside.services.activation import IssuedProductionToken
from tests.services.conftest import Maker, World
from tests.services.helpers import blessed_unit, exported, static_batch


def test_a_batch_is_exported_once_with_one_working_token_per_unit(maker: Maker, world: World) -> None:
    batch = static_batch(maker, count=3)
    rows = exported(maker, batch)
    assert len({row["token"] for row in rows}) == 3 and len({row["claim_url"] for row in rows}) == 3
    for row in rows:
        assert credentials.authenticate_device(world.services, str(row["token"])).id == row["device_id"]
    with pytest.raises(Gone, match="shown only once"):
        exported(maker, batch)


def test_an_export_that_fails_while_building_changes_nothing(maker: Maker, world: World) -> None:
    batch = static_batch(maker, count=2)

    def broken(contents: static_tokens.BatchContents) -> None:
        next(contents.rows)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        static_tokens.export_batch(maker.services, maker.admin, batch.id, broken)
    assert static_tokens.get_batch(maker.services, maker.admin, batch.id).exported_at is None
    assert all(row.token_hash is None for row in world.database.tables.devices.values())
    assert len(exported(maker, batch)) == 2  # still exportable


def test_an_export_that_skips_units_is_refused(maker: Maker) -> None:
    batch = static_batch(maker, count=2)
    with pytest.raises(RuntimeError, match="without reading every unit"):
        static_tokens.export_batch(
            maker.services, maker.admin, batch.id, lambda contents: next(contents.rows)
        )
    assert static_tokens.get_batch(maker.services, maker.admin, batch.id).exported_at is None


def test_regenerating_voids_the_old_tokens_and_allows_one_more_export(maker: Maker, world: World) -> None:
    batch = static_batch(maker, count=2)
    old = exported(maker, batch)
    static_tokens.regenerate_batch(maker.services, maker.admin, batch.id)
    with pytest.raises(Unauthenticated):
        credentials.authenticate_device(world.services, str(old[0]["token"]))
    new = exported(maker, batch)
    assert {row["device_id"] for row in new} == {row["device_id"] for row in old}
    assert credentials.authenticate_device(world.services, str(new[0]["token"])).id == new[0]["device_id"]


def test_a_csv_batch_is_all_or_nothing_and_names_every_bad_row(maker: Maker, world: World) -> None:
    product = maker.product(fields=[MetadataField(name="colour", type=FieldType.STRING, required=True)])
    csv_text = "Serial,Colour\nSN-1,red\nSN-2,\nSN-1,blue\n"
    with pytest.raises(BatchRejected) as rejected:
        static_tokens.create_static_tokens(
            maker.services,
            maker.admin,
            product.id,
            csv_text=csv_text,
            mapping={"Serial": "serial_number", "Colour": "colour"},
        )
    assert [error.row for error in rejected.value.errors] == [3, 4]
    assert world.database.tables.devices == {} and world.database.tables.static_batches == {}


def test_a_count_batch_cannot_fill_required_fields(maker: Maker) -> None:
    product = maker.product(fields=[MetadataField(name="colour", type=FieldType.STRING, required=True)])
    with pytest.raises(InvalidInput):
        static_tokens.create_static_tokens(maker.services, maker.admin, product.id, count=2)
    with pytest.raises(InvalidInput, match="either a count or a CSV"):
        static_tokens.create_static_tokens(maker.services, maker.admin, product.id)


def test_batches_need_the_factory_scope_and_stay_in_their_organization(maker: Maker, rival: Maker) -> None:
    batch = static_batch(maker, count=1)
    with pytest.raises(PermissionDenied):
        static_tokens.create_static_tokens(maker.services, maker.key(Scope.READ), batch.product_id, count=1)
    for step in (static_tokens.get_batch, static_tokens.regenerate_batch, static_tokens.batch_labels):
        with pytest.raises(NotFound):
            step(rival.services, rival.admin, batch.id)


# -- activation ------------------------------------------------------------------------------


def production_token(maker: Maker, product_id: str | None = None) -> IssuedProductionToken:
    return activation.issue_production_token(maker.services, maker.admin, product_id=product_id)


def activate(maker: Maker, issued: IssuedProductionToken, device_id: str) -> activation.Activation:
    return activation.activate_device(
        maker.services, plan_id=issued.token.plan_id, token_id=issued.token_id, device_id=device_id
    )


def test_a_blessed_unit_activates_once_and_gets_a_new_token(maker: Maker, world: World) -> None:
    device = blessed_unit(maker, maker.product().id)
    issued = production_token(maker)
    activated = activate(maker, issued, device.id)
    assert activated.device.state is DeviceState.ACTIVATED
    assert credentials.authenticate_device(world.services, activated.device_token).id == device.id
    with pytest.raises(Conflict, match="already been used"):
        activate(maker, issued, device.id)


def test_a_production_token_expires(maker: Maker, world: World) -> None:
    device = blessed_unit(maker, maker.product().id)
    issued = production_token(maker)
    world.clock.advance(world.services.config.production_token_lifetime + timedelta(seconds=1))
    with pytest.raises(Gone, match="expired"):
        activate(maker, issued, device.id)


def test_a_wrong_plan_id_or_token_id_is_unauthenticated(maker: Maker) -> None:
    device = blessed_unit(maker, maker.product().id)
    issued = production_token(maker)
    for plan_id, token_id in (("0" * 32, issued.token_id), (issued.token.plan_id, "f" * 64), ("x", "short")):
        with pytest.raises(Unauthenticated):
            activation.activate_device(
                maker.services, plan_id=plan_id, token_id=token_id, device_id=device.id
            )


def test_only_blessed_units_of_the_tokens_product_and_organization_activate(
    maker: Maker, rival: Maker
) -> None:
    product, other = maker.product(), maker.product("Other")
    device = blessed_unit(maker, product.id)
    with pytest.raises(NotFound):
        activate(maker, production_token(maker, other.id), device.id)
    with pytest.raises(NotFound):
        activate(rival, production_token(rival), device.id)
    unblessed = static_batch(maker, count=1)
    defined = next(iter(static_tokens.batch_labels(maker.services, maker.admin, unblessed.id).rows))
    with pytest.raises(Conflict, match="Only blessed devices activate"):
        activate(maker, production_token(maker), defined.device_id)
