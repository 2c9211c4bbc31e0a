"""Products (device templates) and their device groups."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lineside.domain.errors import AlreadyExists, Conflict, InvalidInput
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.identifiers import new_id
from lineside.domain.metadata import (
    MetadataField,
    check_field_definitions,
    field_changes,
    fields_change_refused,
)
from lineside.domain.models import DeviceGroup, EnrollmentPolicy, GroupKind, Principal, Product, Scope
from lineside.domain.text import clean_name
from lineside.services.context import ServiceContext, page_size, require
from lineside.services.lookups import load_product
from lineside.services.ports import Page, UnitOfWork

MAX_FIELDS = 100


def create_product(
    ctx: ServiceContext,
    principal: Principal,
    *,
    name: str,
    fields: list[MetadataField],
    enrollment_policy: EnrollmentPolicy = EnrollmentPolicy.CREATE,
    requires_blessing: bool = False,
) -> Product:
    require(principal, Scope.ADMIN)
    _check_fields(fields)
    product = Product(
        id=new_id(),
        organization_id=principal.organization.id,
        name=clean_name(name, "product"),
        metadata_fields=fields,
        created_at=ctx.clock(),
        enrollment_policy=enrollment_policy,
        requires_blessing=requires_blessing,
    )
    with ctx.unit_of_work() as uow:
        _refuse_taken_name(uow, product.organization_id, product.name)
        uow.products.add(product)
        uow.events.add(
            new_event(
                EventType.PRODUCT_CREATED,
                product,
                actor=principal.actor,
                at=product.created_at,
                name=product.name,
                enrollment_policy=product.enrollment_policy.value,
                requires_blessing=product.requires_blessing,
            )
        )
        uow.commit()
    return product


def get_product(ctx: ServiceContext, principal: Principal, product_id: str) -> Product:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return load_product(uow, principal, product_id)


def update_product(
    ctx: ServiceContext,
    principal: Principal,
    product_id: str,
    *,
    name: str | None = None,
    fields: list[MetadataField] | None = None,
    requires_blessing: bool | None = None,
) -> Product:
    """Change what may change after creation; None leaves a setting as it is. ``name``: unique
    in the organization, as at creation. ``fields``: the whole new list of metadata fields;
    while the product has devices, ``domain.metadata.fields_change_refused`` says which changes
    are refused (Conflict). ``requires_blessing``: whether a defined (never blessed) device may
    still activate at its first connection. One ``product.updated`` event says what changed."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)  # another's product: 404 before 422
        updated = _redefined(uow, product, name, fields)
        if requires_blessing is not None and requires_blessing != product.requires_blessing:
            uow.products.set_requires_blessing(product.id, requires_blessing)
            updated = replace(updated, requires_blessing=requires_blessing)
        changed = _what_changed(product, updated)
        if changed:
            event = new_event(
                EventType.PRODUCT_UPDATED, updated, actor=principal.actor, at=ctx.clock(), **changed
            )
            uow.events.add(event)
        uow.commit()
    return updated


def _check_fields(fields: list[MetadataField]) -> None:
    if len(fields) > MAX_FIELDS:
        raise InvalidInput(f"A product has at most {MAX_FIELDS} metadata fields.")
    check_field_definitions(fields)


def _refuse_taken_name(uow: UnitOfWork, organization_id: str, name: str) -> None:
    if uow.products.name_taken(organization_id, name):
        raise AlreadyExists(f"Your organization already has a product named '{name}'.")


def _redefined(
    uow: UnitOfWork, product: Product, name: str | None, fields: list[MetadataField] | None
) -> Product:
    """``product`` with its new name and fields, written; refused if another product has the
    name or the product's devices forbid the new fields."""
    name = product.name if name is None else clean_name(name, "product")
    if fields is None:
        fields = product.metadata_fields
    else:
        _check_fields(fields)
    if (name, fields) == (product.name, product.metadata_fields):
        return product
    if name != product.name:
        _refuse_taken_name(uow, product.organization_id, name)
    if fields != product.metadata_fields:
        devices = uow.device_counts.of_product(product.organization_id, product.id)
        refused = fields_change_refused(product.metadata_fields, fields, devices)
        if refused:
            raise Conflict(refused)
    uow.products.set_definition(product.id, name, fields)
    return replace(product, name=name, metadata_fields=fields)


def _what_changed(before: Product, after: Product) -> dict[str, Any]:
    """The data of a product.updated event: each setting that changed, with its new value."""
    changed: dict[str, Any] = {}
    if after.name != before.name:
        changed |= {"name": after.name, "previous_name": before.name}
    if after.metadata_fields != before.metadata_fields:
        fields = field_changes(before.metadata_fields, after.metadata_fields)
        changed |= {
            "metadata_fields": [definition.as_dict() for definition in after.metadata_fields],
            "fields_added": [definition.name for definition in fields.added],
            "fields_removed": [definition.name for definition in fields.removed],
            "fields_changed": [definition.name for _, definition in fields.changed],
        }
    if after.requires_blessing != before.requires_blessing:
        changed["requires_blessing"] = after.requires_blessing
    return changed


def list_products(
    ctx: ServiceContext, principal: Principal, *, cursor: str | None, limit: int
) -> Page[Product]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.products.list(within=principal.organization.path, cursor=cursor, limit=page_size(limit))


def create_group(
    ctx: ServiceContext, principal: Principal, product_id: str, *, name: str, kind: GroupKind
) -> DeviceGroup:
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        group = DeviceGroup(
            id=new_id(),
            organization_id=product.organization_id,
            product_id=product.id,
            name=clean_name(name, "device group"),
            kind=kind,
            created_at=ctx.clock(),
        )
        if uow.groups.name_taken(product.id, group.name):
            raise AlreadyExists(f"The product already has a device group named '{group.name}'.")
        uow.groups.add(group)
        uow.events.add(group_created_event(group, principal.actor))
        uow.commit()
    return group


def group_created_event(group: DeviceGroup, actor: str) -> DomainEvent:
    return new_event(
        EventType.DEVICE_GROUP_CREATED,
        group,
        actor=actor,
        at=group.created_at,
        name=group.name,
        kind=group.kind.value,
        product_id=group.product_id,
    )


def list_groups(ctx: ServiceContext, principal: Principal, product_id: str) -> list[DeviceGroup]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        product = load_product(uow, principal, product_id)
        return uow.groups.list_for_product(product.id)
