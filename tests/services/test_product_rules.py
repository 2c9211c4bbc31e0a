"""Changing a product after creation, on fakes: its name (unique in the organization, as at
creation) and its metadata fields, which a product with devices may only widen (add optional
fields, remove fields, make fields optional)."""

from __future__ import annotations

import pytest

from lineside.domain.errors import AlreadyExists, Conflict, InvalidInput, NotFound, PermissionDenied
from lineside.domain.events import EventType
from lineside.domain.identifiers import new_id
from lineside.domain.metadata import FieldType, MetadataField, fields_change_refused
from lineside.domain.models import Product, Scope
from lineside.services import devices, products
from lineside.services.ports import DeviceFilter
from tests.services.conftest import Maker, World

COLOUR = MetadataField("colour", FieldType.STRING)
BATCH = MetadataField("batch", FieldType.INTEGER, required=True)


def with_device(maker: Maker, fields: list[MetadataField], **metadata: object) -> Product:
    product = maker.product(f"Kettle {len(maker.world.database.tables.products)}", fields=fields)
    devices.define_device(
        maker.services, maker.admin, product_id=product.id, serial_number=new_id(), metadata=metadata
    )
    return product


def updates_of(world: World, product: Product) -> list[dict[str, object]]:
    return [
        event.data
        for event in world.database.tables.events
        if event.type == EventType.PRODUCT_UPDATED and event.subject_id == product.id
    ]


# -- the rule, as a pure function ------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "refusal"),
    [
        ([COLOUR, BATCH, MetadataField("note", FieldType.STRING)], None),  # a new optional field
        ([BATCH], None),  # colour removed
        ([COLOUR, MetadataField("batch", FieldType.INTEGER)], None),  # batch made optional
        ([MetadataField("batch", FieldType.INTEGER, required=True), COLOUR], None),  # reordered
        ([COLOUR, BATCH, MetadataField("size", FieldType.NUMBER, required=True)], "a new field 'size'"),
        (
            [MetadataField("colour", FieldType.STRING, required=True), BATCH],
            "'colour' cannot become required",
        ),
        (
            [COLOUR, MetadataField("batch", FieldType.STRING, required=True)],
            "keeps its type (integer, not string)",
        ),
    ],
)
def test_a_product_with_devices_may_only_widen_its_fields(
    after: list[MetadataField], refusal: str | None
) -> None:
    refused = fields_change_refused([COLOUR, BATCH], after, devices=3)
    assert (refused is None) is (refusal is None)
    if refusal:
        assert refused is not None and refusal in refused and "has 3 devices" in refused
    assert fields_change_refused([COLOUR, BATCH], after, devices=0) is None


def test_every_reason_is_said_at_once() -> None:
    after = [
        MetadataField("colour", FieldType.INTEGER),
        BATCH,
        MetadataField("size", FieldType.NUMBER, required=True),
    ]
    refused = fields_change_refused([COLOUR, BATCH], after, devices=1)
    assert refused is not None
    assert "has 1 device," in refused and "'colour' keeps its type" in refused and "'size'" in refused


# -- names -------------------------------------------------------------------------------------


def test_a_product_is_renamed_and_the_event_says_from_what(world: World, maker: Maker) -> None:
    product = maker.product("Kettle")
    renamed = products.update_product(maker.services, maker.admin, product.id, name="  Kettle 2 ")
    assert renamed.name == "Kettle 2"
    assert products.get_product(maker.services, maker.admin, product.id).name == "Kettle 2"
    assert updates_of(world, product) == [{"name": "Kettle 2", "previous_name": "Kettle"}]


def test_a_new_name_is_checked_as_at_creation(world: World, maker: Maker, rival: Maker) -> None:
    product, other = maker.product("Kettle"), maker.product("Lamp")
    rival.product("Toaster")
    with pytest.raises(AlreadyExists, match="already has a product named 'Lamp'"):
        products.update_product(maker.services, maker.admin, product.id, name="Lamp")
    with pytest.raises(InvalidInput):
        products.update_product(maker.services, maker.admin, product.id, name="   ")
    assert products.update_product(maker.services, maker.admin, product.id, name="Toaster").name == "Toaster"
    assert products.update_product(maker.services, maker.admin, other.id, name="Lamp").name == "Lamp"
    assert updates_of(world, other) == []  # its own name again: nothing changed


# -- fields ------------------------------------------------------------------------------------


def test_a_product_without_devices_changes_its_fields_as_it_likes(world: World, maker: Maker) -> None:
    product = maker.product(fields=[COLOUR])
    fields = [MetadataField("colour", FieldType.INTEGER, required=True), BATCH]
    changed = products.update_product(maker.services, maker.admin, product.id, fields=fields)
    assert changed.metadata_fields == fields
    [data] = updates_of(world, product)
    assert data == {
        "metadata_fields": [field.as_dict() for field in fields],
        "fields_added": ["batch"],
        "fields_removed": [],
        "fields_changed": ["colour"],
    }


def test_a_product_with_devices_refuses_a_new_required_field_and_keeps_its_fields(
    world: World, maker: Maker
) -> None:
    product = with_device(maker, [COLOUR], colour="red")
    with pytest.raises(Conflict, match=r"The product has 1 device.*a new field .batch. must be optional"):
        products.update_product(
            maker.services, maker.admin, product.id, name="Renamed", fields=[COLOUR, BATCH]
        )
    kept = products.get_product(maker.services, maker.admin, product.id)
    assert (kept.name, kept.metadata_fields) == (product.name, [COLOUR])  # all or nothing
    assert updates_of(world, product) == []


def test_removed_fields_stay_on_devices_and_are_refused_on_new_ones(maker: Maker) -> None:
    product = with_device(maker, [COLOUR, BATCH], colour="red", batch=7)
    note = MetadataField("note", FieldType.STRING)
    products.update_product(maker.services, maker.admin, product.id, fields=[BATCH, note])
    [kept] = devices.list_devices(
        maker.services, maker.admin, filters=DeviceFilter(product_id=product.id), cursor=None, limit=10
    ).items
    assert kept.metadata == {"colour": "red", "batch": 7}
    with pytest.raises(InvalidInput, match="colour is not a field of this product"):
        devices.define_device(
            maker.services,
            maker.admin,
            product_id=product.id,
            serial_number="SN-2",
            metadata={"colour": "red", "batch": 8},
        )
    made = devices.define_device(
        maker.services,
        maker.admin,
        product_id=product.id,
        serial_number="SN-3",
        metadata={"batch": 8, "note": "x"},
    )
    assert made.metadata == {"batch": 8, "note": "x"}


def test_another_products_devices_do_not_hold_a_product_back(maker: Maker) -> None:
    with_device(maker, [COLOUR], colour="red")
    empty = maker.product("Empty", fields=[COLOUR])
    changed = products.update_product(
        maker.services,
        maker.admin,
        empty.id,
        fields=[MetadataField("colour", FieldType.BOOLEAN, required=True)],
    )
    assert changed.metadata_fields[0].type is FieldType.BOOLEAN


def test_fields_are_checked_as_at_creation(maker: Maker) -> None:
    product = maker.product()
    for fields, reason in (
        ([COLOUR, COLOUR], "defined twice"),
        ([MetadataField("serial_number", FieldType.STRING)], "reserved"),
        ([MetadataField(f"f{n}", FieldType.STRING) for n in range(101)], "at most 100"),
    ):
        with pytest.raises(InvalidInput, match=reason):
            products.update_product(maker.services, maker.admin, product.id, fields=fields)


def test_only_an_admin_changes_a_product_of_their_own(maker: Maker, rival: Maker) -> None:
    product = maker.product()
    for scope in (Scope.READ, Scope.FACTORY):
        with pytest.raises(PermissionDenied):
            products.update_product(maker.services, maker.key(scope), product.id, name="Mine now")
    with pytest.raises(NotFound):
        products.update_product(rival.services, rival.admin, product.id, name="Mine now")
    assert products.get_product(maker.services, maker.admin, product.id).name == product.name


def test_one_event_says_every_change_of_one_update(world: World, maker: Maker) -> None:
    product = maker.product("Kettle", fields=[COLOUR])
    products.update_product(
        maker.services, maker.admin, product.id, name="Kettle 2", fields=[], requires_blessing=True
    )
    assert updates_of(world, product) == [
        {
            "name": "Kettle 2",
            "previous_name": "Kettle",
            "metadata_fields": [],
            "fields_added": [],
            "fields_removed": ["colour"],
            "fields_changed": [],
            "requires_blessing": True,
        }
    ]
