"""What an owner sees of the devices in their account: the list, and one device."""

from __future__ import annotations

from dataclasses import dataclass

from lineside.domain.models import Device, Principal, Scope
from lineside.domain.transfers import DeviceTransfer
from lineside.services.context import MAX_PAGE_SIZE, ServiceContext, not_found, require
from lineside.services.ports import DeviceFilter, UnitOfWork


@dataclass(frozen=True)
class OwnedDevice:
    device: Device
    product_name: str
    maker_name: str
    open_transfer: DeviceTransfer | None = None


def owned_devices(ctx: ServiceContext, principal: Principal) -> list[OwnedDevice]:
    """The devices claimed into the caller's organization, newest first."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        page = uow.devices.list(
            within=principal.organization.path, filters=DeviceFilter(), cursor=None, limit=MAX_PAGE_SIZE
        )
        owned = [d for d in page.items if d.owner_organization_id == principal.organization.id]
        described = [_described(uow, device) for device in owned]
    return sorted(described, key=lambda item: item.device.claimed_at or item.device.created_at, reverse=True)


def owned_device(ctx: ServiceContext, principal: Principal, device_id: str) -> OwnedDevice:
    """One device of the caller's, with its open transfer offer if there is one."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        device = uow.devices.get(device_id, within=principal.organization.path, include_owned=True)
        if device is None or device.owner_organization_id != principal.organization.id:
            raise not_found("device of yours", device_id)
        offers = uow.transfers.open_for_device(device.id, ctx.clock())
        described = _described(uow, device)
    return OwnedDevice(
        described.device, described.product_name, described.maker_name, offers[-1] if offers else None
    )


def _described(uow: UnitOfWork, device: Device) -> OwnedDevice:
    product = uow.products.get(device.product_id, within="/")
    maker = uow.organizations.get(device.organization_id, within="/")
    return OwnedDevice(device, product.name if product else "Device", maker.name if maker else "")
