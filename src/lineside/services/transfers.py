"""An owner hands a device to another person (Blynk's device transfer): offer, accept, cancel.

The giver offers and gets a one-time link (its code is shown once, stored as a keyed hash);
the receiver opens it, signs in and accepts; the device moves from the giver's organization
to the receiver's in one step, with one ``device.transferred`` event. Opening a link is a
lookup of a secret, charged like a claim-code lookup (``claims.charge_lookup``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lineside.domain.errors import Conflict, Gone, NotFound
from lineside.domain.events import EventType, new_event
from lineside.domain.identifiers import is_uuid, new_id
from lineside.domain.models import Device, Principal, Scope
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.domain.transfers import TRANSFER_LIFETIME, DeviceTransfer, TransferStatus
from lineside.services.claims import charge_lookup
from lineside.services.context import ServiceContext, not_found, require
from lineside.services.people import acting_organization
from lineside.services.ports import UnitOfWork

MAX_CODE_LENGTH = 100


@dataclass(frozen=True)
class OfferedTransfer:
    transfer: DeviceTransfer
    code: str  # shown once
    url: str  # the link the receiver opens


@dataclass(frozen=True)
class TransferView:
    """What the receiver's page may show: the device, who made it, until when."""

    status: TransferStatus
    device_id: str
    serial_number: str
    product_name: str
    maker_name: str
    expires_at: datetime


def transfer_url(ctx: ServiceContext, code: str) -> str:
    return f"{ctx.config.public_url}/transfer/{code}"


def _owned(uow: UnitOfWork, principal: Principal, device_id: str) -> Device:
    """A device claimed into the caller's own organization (not one it made)."""
    device = (
        uow.devices.get(device_id, within=principal.organization.path, include_owned=True)
        if is_uuid(device_id)
        else None
    )
    if device is None or device.owner_organization_id != principal.organization.id:
        raise not_found("device of yours", device_id)
    return device


def offer_transfer(ctx: ServiceContext, principal: Principal, device_id: str) -> OfferedTransfer:
    """Offer one of the caller's devices to whoever opens the link; an earlier offer of the
    same device ends."""
    require(principal, Scope.ADMIN)
    code = generate_secret(SecretKind.TRANSFER_CODE)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        device = _owned(uow, principal, device_id)
        uow.transfers.cancel_open(device.id, now)
        transfer = DeviceTransfer(
            id=new_id(),
            device_id=device.id,
            from_organization_id=principal.organization.id,
            offered_by=principal.actor,
            created_at=now,
            expires_at=now + TRANSFER_LIFETIME,
        )
        uow.transfers.add(transfer, ctx.hasher.hash(code))
        uow.events.add(
            new_event(
                EventType.DEVICE_TRANSFER_OFFERED,
                device,
                actor=principal.actor,
                at=now,
                transfer_id=transfer.id,
                expires_at=transfer.expires_at.isoformat(),
            )
        )
        uow.commit()
    return OfferedTransfer(transfer, code, transfer_url(ctx, code))


def cancel_transfers(ctx: ServiceContext, principal: Principal, device_id: str) -> int:
    """End the open offers of one of the caller's devices; how many there were."""
    require(principal, Scope.ADMIN)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        device = _owned(uow, principal, device_id)
        cancelled = uow.transfers.cancel_open(device.id, now)
        if cancelled:
            uow.events.add(
                new_event(EventType.DEVICE_TRANSFER_CANCELLED, device, actor=principal.actor, at=now)
            )
        uow.commit()
    return cancelled


def open_transfer(ctx: ServiceContext, principal: Principal, device_id: str) -> DeviceTransfer | None:
    """The open offer of one of the caller's devices, if any."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        device = _owned(uow, principal, device_id)
        found = uow.transfers.open_for_device(device.id, ctx.clock())
    return found[-1] if found else None


def describe_transfer(
    ctx: ServiceContext, code: str, *, client_address: str, actor: str | None = None
) -> TransferView:
    """What the receiver's page shows; NotFound for a code that is not an offer's."""
    if not _well_formed(code):
        raise NotFound("This transfer link is not one we know.")
    charge = charge_lookup(ctx, client_address, actor)
    with ctx.unit_of_work(write=False) as uow:
        transfer = uow.transfers.find_by_code_hash(ctx.hasher.hash(code))
        view = _view(uow, transfer, ctx.clock()) if transfer else None
    if transfer is None:
        raise NotFound("This transfer link is not one we know.")  # its slots stay taken
    charge.refund()  # a real link costs nothing (refunded outside the read: SQLite has one writer)
    if view is None:
        raise Gone("The device of this transfer was deleted by its manufacturer.")
    return view


def _view(uow: UnitOfWork, transfer: DeviceTransfer, now: datetime) -> TransferView | None:
    device = uow.devices.get(transfer.device_id, within="/", include_owned=True)
    if device is None:
        return None
    product = uow.products.get(device.product_id, within="/")
    maker = uow.organizations.get(device.organization_id, within="/")
    return TransferView(
        status=transfer.status(now),
        device_id=device.id,
        serial_number=device.serial_number,
        product_name=product.name if product else "Device",
        maker_name=maker.name if maker else "",
        expires_at=transfer.expires_at,
    )


def _well_formed(code: str) -> bool:
    return code.startswith(SecretKind.TRANSFER_CODE.value) and len(code) <= MAX_CODE_LENGTH


def accept_transfer(
    ctx: ServiceContext,
    principal: Principal,
    code: str,
    *,
    client_address: str,
    organization_id: str | None = None,
) -> Device:
    """Take the device behind the link into the caller's organization, in one step."""
    require(principal, Scope.ADMIN)
    if not _well_formed(code):
        raise NotFound("This transfer link is not one we know.")
    charge = charge_lookup(ctx, client_address, principal.actor)
    try:
        device = _accept(ctx, principal, code, organization_id)
    except NotFound:
        raise  # a wrong code: its slots stay taken
    except BaseException:
        charge.refund()  # a real code (no longer open), or a failure of ours
        raise
    charge.refund()
    return device


def _accept(ctx: ServiceContext, principal: Principal, code: str, organization_id: str | None) -> Device:
    with ctx.unit_of_work() as uow:
        transfer = uow.transfers.find_by_code_hash(ctx.hasher.hash(code))
        if transfer is None:
            raise NotFound("This transfer link is not one we know.")
        device = _take(ctx, uow, principal, transfer, organization_id)
        uow.commit()
    return device


def _take(
    ctx: ServiceContext,
    uow: UnitOfWork,
    principal: Principal,
    transfer: DeviceTransfer,
    organization_id: str | None,
) -> Device:
    now = ctx.clock()
    status = transfer.status(now)
    if status is not TransferStatus.OPEN:
        raise Gone(f"This transfer link is {status.value}; ask the owner for a new one.")
    receiver = acting_organization(uow, principal, organization_id)
    if receiver.id == transfer.from_organization_id:
        raise Conflict("This device is already yours.")
    device = uow.devices.get(transfer.device_id, within="/", include_owned=True)
    moved = device is not None and uow.devices.move_owner(
        transfer.device_id, transfer.from_organization_id, receiver.id, now, principal.actor
    )
    if device is None or not moved or not uow.transfers.accept(transfer.id, receiver.id, now):
        raise Gone("The owner no longer offers this device; ask them for a new link.")
    uow.transfers.cancel_open(device.id, now)
    uow.events.add(
        new_event(
            EventType.DEVICE_TRANSFERRED,
            device,
            actor=principal.actor,
            at=now,
            transfer_id=transfer.id,
            from_organization_id=transfer.from_organization_id,
            owner_organization_id=receiver.id,
        )
    )
    device.owner_organization_id, device.claimed_at = receiver.id, now
    return device
