"""Products (device templates) and their device groups."""

from __future__ import annotations

from dataclasses import replace

from lineside.domain.errors import AlreadyExists, InvalidInput
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.identifiers import new_id
from lineside.domain.metadata import MetadataField, check_field_definitions
from lineside.domain.models import DeviceGroup, EnrollmentPolicy, GroupKind, Principal, Product, Scope
from lineside.domain.text import clean_name
from lineside.services.context import ServiceContext, page_size, require
from lineside.services.lookups import load_product
from lineside.services.ports import Page

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
    if len(fields) > MAX_FIELDS:
        raise InvalidInput(f"A product has at most {MAX_FIELDS} metadata fields.")
    check_field_definitions(fields)
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
        if uow.products.name_taken(product.organization_id, product.name):
            raise AlreadyExists(f"Your organization already has a product named '{product.name}'.")
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
    ctx: ServiceContext, principal: Principal, product_id: str, *, requires_blessing: bool | None = None
) -> Product:
    """Change what may change after creation. ``requires_blessing``: whether a defined
    (never blessed) device of the product may still activate at its first connection."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        if requires_blessing is not None and requires_blessing != product.requires_blessing:
            uow.products.set_requires_blessing(product.id, requires_blessing)
            product = replace(product, requires_blessing=requires_blessing)
            uow.events.add(
                new_event(
                    EventType.PRODUCT_UPDATED,
                    product,
                    actor=principal.actor,
                    at=ctx.clock(),
                    requires_blessing=requires_blessing,
                )
            )
        uow.commit()
    return product


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
