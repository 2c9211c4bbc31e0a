"""Claiming: the QR code on the box moves a device into its owner's organization.

Ownership is separate from the manufacturing stage: a device can be claimed before it ever
connects, and claiming changes no lifecycle state. Lookups are rate-limited per client
address and per account, charged before they happen and refunded when the code was real
(``charge_lookup`` states the bound), so a stranger's wrong guesses never lock the rightful
owner (who scans a correct code) out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lineside.domain.errors import AlreadyExists, Conflict, Gone, NotFound, TooManyAttempts
from lineside.domain.events import EventType, new_event
from lineside.domain.models import Device, Principal, Product, Scope
from lineside.domain.secret_tokens import SecretKind
from lineside.services.attempts import Charge
from lineside.services.context import ServiceContext, not_found, require
from lineside.services.lookups import check_selection, load_device
from lineside.services.people import acting_organization
from lineside.services.ports import UnitOfWork

MAX_CODE_LENGTH = 100


class ClaimStatus(StrEnum):
    UNCLAIMED = "unclaimed"
    CLAIMED = "claimed"
    UNKNOWN = "unknown"
    DELETED = "deleted"


@dataclass(frozen=True)
class ClaimView:
    """What a claim page may show to anyone holding the code: never a secret."""

    status: ClaimStatus
    product_name: str | None = None
    serial_number: str | None = None
    device_id: str | None = None
    owner_organization_id: str | None = None
    maker_name: str | None = None  # the organization that made it, so people know whose it is


def claim_url(ctx: ServiceContext, device_id: str, generation: int) -> str:
    return f"{ctx.config.public_url}/claim/{ctx.hasher.claim_code(device_id, generation)}"


def claim_code_hash(ctx: ServiceContext, device_id: str, generation: int) -> str:
    return ctx.hasher.hash(ctx.hasher.claim_code(device_id, generation))


def _find(uow: UnitOfWork, ctx: ServiceContext, code: str) -> tuple[Device | None, ClaimStatus]:
    code_hash = ctx.hasher.hash(code)
    device = uow.devices.find_by_claim_hash(code_hash)
    if device is not None:
        return device, ClaimStatus.CLAIMED if device.is_claimed else ClaimStatus.UNCLAIMED
    if uow.tombstones.find(code_hash) is not None:
        return None, ClaimStatus.DELETED
    return None, ClaimStatus.UNKNOWN


def describe_claim(
    ctx: ServiceContext, code: str, *, client_address: str, actor: str | None = None
) -> ClaimView:
    """What the claim page shows for ``code``; a lookup charged like a claim (see
    ``charge_lookup``), so the page is no cheaper an oracle than the API."""
    if not _well_formed(code):
        return ClaimView(ClaimStatus.UNKNOWN)  # not looked up, so not charged
    charge = charge_lookup(ctx, client_address, actor)
    with ctx.unit_of_work(write=False) as uow:
        device, status = _find(uow, ctx, code)
        product = _product_of(uow, device)
        maker = uow.organizations.get(device.organization_id, within="/") if device else None
    if device is None:
        return ClaimView(status)
    charge.refund()  # a real code: the rightful owner's look costs nothing
    return ClaimView(
        status,
        product_name=product.name if product else None,
        serial_number=device.serial_number,
        device_id=device.id,
        owner_organization_id=device.owner_organization_id,
        maker_name=maker.name if maker else None,
    )


def _well_formed(code: str) -> bool:
    return code.startswith(SecretKind.CLAIM_CODE.value) and len(code) <= MAX_CODE_LENGTH


def _product_of(uow: UnitOfWork, device: Device | None) -> Product | None:
    return uow.products.get(device.product_id, within="/") if device else None


def charge_lookup(ctx: ServiceContext, client_address: str, actor: str | None) -> Charge:
    """Slots for one claim-code lookup, taken before it happens.

    The bound: from one address, in one window, at most ``claim_address_attempts`` wrong
    codes are looked up, plus at most ``claim_grace`` more by accounts making their first
    attempt of the window there. New accounts add nothing past that (sign-ups are limited
    per address too), and concurrent requests cannot overshoot (slots are taken atomically).

    Why the grace: many people share one address (a NAT, a carrier's gateway, an office).
    When a stranger has spent the address's slots, the owner, signed in and scanning the
    right code for the first time, still gets a lookup, and a right code costs nothing.
    """
    config = ctx.config
    charge = Charge(ctx, config.claim_window, "claim attempts")
    first_of_account = False
    if actor is not None:
        first_of_account = charge.take(f"claim:actor:{actor}", config.claim_attempts_per_window).count == 1
    try:
        charge.take(f"claim:address:{client_address}", config.claim_address_attempts_per_window)
    except TooManyAttempts:
        if not first_of_account:
            raise
        charge = Charge(ctx, config.claim_window, "claim attempts")
        charge.take(f"claim:actor:{actor}", config.claim_attempts_per_window)
        charge.take(f"claim:grace:{client_address}", config.claim_grace_per_window)
    return charge


def claim_device(
    ctx: ServiceContext,
    principal: Principal,
    code: str,
    *,
    client_address: str,
    organization_id: str | None = None,
) -> Device:
    """Move the device behind ``code`` into the caller's organization; exactly one of
    concurrent claims of one code succeeds.

    Every lookup is charged to the account and the client address first (``charge_lookup``)
    and refunded when the code was real, so only wrong codes count: a stranger's guesses
    never cost the owner, whose code is right.
    """
    require(principal, Scope.ADMIN)
    if not _well_formed(code):
        raise NotFound("No device has this claim code.")
    charge = charge_lookup(ctx, client_address, principal.actor)
    try:
        device = _claim(ctx, principal, code, organization_id)
    except (NotFound, Gone):
        raise  # a wrong code: its slots stay taken
    except BaseException:
        charge.refund()  # a real code (already claimed), or a failure of ours
        raise
    charge.refund()
    return device


def _claim(ctx: ServiceContext, principal: Principal, code: str, organization_id: str | None) -> Device:
    with ctx.unit_of_work() as uow:
        owner = acting_organization(uow, principal, organization_id)
        device, status = _find(uow, ctx, code)
        if status is ClaimStatus.DELETED:
            raise Gone("The device behind this code was deleted by its manufacturer.")
        if device is None:
            raise NotFound("No device has this claim code.")
        if device.owner_organization_id == owner.id:
            return device  # claiming one's own device again changes nothing
        now = ctx.clock()
        if not uow.devices.claim_if_unclaimed(device.id, owner.id, now, principal.actor):
            raise AlreadyExists("This device has already been claimed by someone else.")
        _record(uow, EventType.DEVICE_CLAIMED, device, principal.actor, now, owner_organization_id=owner.id)
        uow.commit()
    device.owner_organization_id, device.claimed_at = owner.id, now
    return device


def _record(
    uow: UnitOfWork, event_type: EventType, device: Device, actor: str, at: datetime, **data: str | None
) -> None:
    uow.events.add(
        new_event(event_type, device, actor=actor, at=at, serial_number=device.serial_number, **data)
    )


def unclaim_device(ctx: ServiceContext, principal: Principal, device_id: str) -> Device:
    """The owner gives the device up: it returns to its manufacturer, and the same QR code
    can claim it again."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        device = uow.devices.get(device_id, within=principal.organization.path, include_owned=True)
        owner_path = _owner_path(uow, device)
        if device is None or owner_path is None or not owner_path.startswith(principal.organization.path):
            raise not_found("claimed device", device_id)
        now = ctx.clock()
        uow.devices.release_claim(device.id)
        uow.transfers.cancel_open(device.id, now)
        _record(uow, EventType.DEVICE_UNCLAIMED, device, principal.actor, now, owner_organization_id=None)
        uow.commit()
    device.owner_organization_id = device.claimed_at = None
    return device


def _owner_path(uow: UnitOfWork, device: Device | None) -> str | None:
    if device is None or device.owner_organization_id is None:
        return None
    owner = uow.organizations.get(device.owner_organization_id, within="/")
    return owner.path if owner else None


def disclaim_device(ctx: ServiceContext, principal: Principal, device_id: str) -> Device:
    """The manufacturer takes a claimed device back from its owner."""
    return disclaim_devices(ctx, principal, [device_id])[0]


def disclaim_devices(ctx: ServiceContext, principal: Principal, device_ids: Sequence[str]) -> list[Device]:
    """Take several claimed devices back at once: all of them, or (if one cannot be) none."""
    require(principal, Scope.ADMIN)
    check_selection(device_ids)
    with ctx.unit_of_work() as uow:
        now = ctx.clock()
        disclaimed = [_disclaim_in(uow, principal, device_id, now) for device_id in device_ids]
        uow.commit()
    return disclaimed


def _disclaim_in(uow: UnitOfWork, principal: Principal, device_id: str, now: datetime) -> Device:
    device = load_device(uow, principal, device_id)
    if not device.is_claimed:
        raise Conflict(f"The device {device.serial_number} is not claimed; there is nothing to disclaim.")
    previous_owner = device.owner_organization_id
    uow.devices.release_claim(device.id)
    uow.transfers.cancel_open(device.id, now)
    _record(uow, EventType.DEVICE_DISCLAIMED, device, principal.actor, now, previous_owner=previous_owner)
    device.owner_organization_id = device.claimed_at = None
    return device


def delete_device(ctx: ServiceContext, principal: Principal, device_id: str) -> None:
    """Gone at once: its token stops authenticating, and it leaves its owner's account.
    Its claim code is remembered so the QR label can say "deleted"."""
    delete_devices(ctx, principal, [device_id])


def delete_devices(ctx: ServiceContext, principal: Principal, device_ids: Sequence[str]) -> int:
    """Delete several devices at once (as ``delete_device``): all of them, or none."""
    require(principal, Scope.ADMIN)
    check_selection(device_ids)
    with ctx.unit_of_work() as uow:
        now = ctx.clock()
        for device_id in device_ids:
            _delete_in(uow, ctx, principal, device_id, now)
        uow.commit()
    return len(device_ids)


def _delete_in(
    uow: UnitOfWork, ctx: ServiceContext, principal: Principal, device_id: str, now: datetime
) -> None:
    device = load_device(uow, principal, device_id)
    if device.has_claim_code:
        code_hash = claim_code_hash(ctx, device.id, device.claim_generation)
        uow.tombstones.add(code_hash, device.id, device.organization_id, device.serial_number, now)
    uow.certificates.revoke_active(device.id, now)
    uow.transfers.cancel_open(device.id, now)
    uow.devices.delete(device.id)
    _record(
        uow,
        EventType.DEVICE_DELETED,
        device,
        principal.actor,
        now,
        owner_organization_id=device.owner_organization_id,
    )
