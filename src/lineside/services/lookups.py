"""Loading an entity the caller is allowed to see, or the NotFound that hides the rest.

Another organization's resource and a missing one look the same from outside.
"""

from __future__ import annotations

from collections.abc import Sequence

from lineside.domain.errors import InvalidInput
from lineside.domain.identifiers import is_uuid
from lineside.domain.models import CertificateAuthorityRecord, Device, DeviceGroup, Principal, Product
from lineside.services.context import not_found
from lineside.services.ports import UnitOfWork


def load_product(uow: UnitOfWork, principal: Principal, product_id: str) -> Product:
    # Checked before querying: PostgreSQL refuses some strings (a NUL) outright.
    product = (
        uow.products.get(product_id, within=principal.organization.path) if is_uuid(product_id) else None
    )
    if product is None:
        raise not_found("product", product_id)
    return product


def load_device(
    uow: UnitOfWork, principal: Principal, device_id: str, *, include_owned: bool = False
) -> Device:
    """A device the caller's organizations made; with ``include_owned``, also one they
    claimed (owners may read, but only the manufacturer manages credentials and lifecycle)."""
    within = principal.organization.path
    device = (
        uow.devices.get(device_id, within=within, include_owned=include_owned) if is_uuid(device_id) else None
    )
    if device is None:
        raise not_found("device", device_id)
    return device


def load_authority(uow: UnitOfWork, principal: Principal, authority_id: str) -> CertificateAuthorityRecord:
    """A maker's CA (factory PKI) registered by the caller's organizations."""
    found = (
        uow.authorities.get(authority_id, within=principal.organization.path)
        if is_uuid(authority_id)
        else None
    )
    if found is None:
        raise not_found("certificate authority", authority_id)
    return found


def load_group(uow: UnitOfWork, principal: Principal, group_id: str) -> DeviceGroup:
    group = (
        uow.firmware.get_group(group_id, within=principal.organization.path) if is_uuid(group_id) else None
    )
    if group is None:
        raise not_found("device group", group_id)
    return group


MAX_SELECTION = 500  # devices one bulk action takes, in one transaction


def check_selection(device_ids: Sequence[str]) -> None:
    """A person's choice of devices for one bulk action: some, not too many, each once."""
    if not device_ids:
        raise InvalidInput("Choose at least one device.")
    if len(device_ids) > MAX_SELECTION:
        raise InvalidInput(f"Choose at most {MAX_SELECTION} devices at a time.")
    if len(set(device_ids)) != len(device_ids):
        raise InvalidInput("A device is chosen twice.")
