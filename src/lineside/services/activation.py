"""Production enrollment tokens, activation, and the claim a fixture polls for.

Electric Imp's activation, in the field or in the factory::

    app / DUT's agent:  POST /v5/enroll (Basic <API key>)  -> plan id + token id (10 min, once)
    blessed device:     POST /device/v1/activate (plan id, token id, device id)
                          -> activated, its device token, its configuration and firmware
    app / fixture:      GET /api/v1/enrollment-tokens/{token id}  pending -> claimed (device id)

The token id is the credential: 32 random bytes, shown once as hex, stored as a keyed hash.
The plan id (16 random bytes) travels with it and must match. A token activates one device:
marking it used is one conditional update, so of concurrent activations exactly one wins.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from lineside.domain.errors import Conflict, Gone, NotFound, Unauthenticated
from lineside.domain.events import EventType, SubjectRef, new_event
from lineside.domain.factory import ClaimStatus, ProductionToken
from lineside.domain.identifiers import is_uuid, new_id
from lineside.domain.lifecycle import DeviceState, Transition, apply_transition
from lineside.domain.models import Device, FirmwareRelease, Principal, Scope
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.services.context import ServiceContext, require
from lineside.services.firmware import assigned_release
from lineside.services.lookups import load_product
from lineside.services.ports import UnitOfWork

TOKEN_ID_BYTES = 32
PLAN_ID_BYTES = 16
_TOKEN_ID = re.compile(rf"^[0-9a-f]{{{TOKEN_ID_BYTES * 2}}}\Z")


@dataclass(frozen=True)
class IssuedProductionToken:
    token: ProductionToken
    token_id: str  # the secret, as hex: shown once, never stored


def latest_production_tokens(
    ctx: ServiceContext, principal: Principal, *, limit: int = 20
) -> list[ProductionToken]:
    """The newest production tokens of the caller's organizations: which were used, by which
    device, and which expired unused."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.production_tokens.latest(within=principal.organization.path, limit=limit)


def issue_production_token(
    ctx: ServiceContext, principal: Principal, *, product_id: str | None = None
) -> IssuedProductionToken:
    """A short-lived, single-use token for one device of the caller's organizations (of one
    product when ``product_id`` is given) to activate with."""
    require(principal, Scope.FACTORY)
    token_id = secrets.token_hex(TOKEN_ID_BYTES)
    with ctx.unit_of_work() as uow:
        organization_id = principal.organization.id
        if product_id is not None:
            product = load_product(uow, principal, product_id)
            organization_id = product.organization_id
        now = ctx.clock()
        token = ProductionToken(
            id=new_id(),
            organization_id=organization_id,
            product_id=product_id,
            plan_id=secrets.token_hex(PLAN_ID_BYTES),
            created_by=principal.actor,
            created_at=now,
            expires_at=now + ctx.config.production_token_lifetime,
        )
        uow.production_tokens.add(token, ctx.hasher.hash(token_id))
        uow.events.add(
            new_event(
                EventType.PRODUCTION_TOKEN_CREATED,
                SubjectRef(token.id, organization_id),
                actor=principal.actor,
                at=now,
                product_id=product_id,
                expires_at=token.expires_at.isoformat(),
            )
        )
        uow.commit()
    return IssuedProductionToken(token, token_id)


# -- activation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    device: Device
    device_token: str  # the device's new bearer token (lsd_...): shown once
    firmware: FirmwareRelease | None


def activate_device(ctx: ServiceContext, *, plan_id: str, token_id: str, device_id: str) -> Activation:
    """Activate a blessed device with a production token; give it a new device token.

    Refusals: unknown token or wrong plan id 401, used 409, expired 410, a device the token's
    organization (and product, if the token names one) does not hold 404, a device not
    blessed 409. The token is spent, the device activated and its token rotated together.
    """
    with ctx.unit_of_work() as uow:
        token = _usable_token(ctx, uow, plan_id, token_id)
        device = _device_for(uow, token, device_id)
        if device.state is not DeviceState.BLESSED:
            raise Conflict(
                f"Only blessed devices activate with a production token; this one is {device.state.value}."
            )
        now = ctx.clock()
        # First, so that of concurrent activations with one token the losers stop here.
        if not uow.production_tokens.use_if_unused(token.id, device.id, now):
            raise _used()
        actor = f"production_token:{token.id}"
        event = apply_transition(
            device, Transition.ACTIVATE, at=now, actor=actor, data={"production_token_id": token.id}
        )
        if not uow.devices.save_state_if(device, DeviceState.BLESSED):
            raise Conflict("The device was activated at the same time with another token.")
        uow.events.add(event)
        secret = _issue_device_token(ctx, uow, device, actor, now)
        firmware = assigned_release(uow, device)
        uow.commit()
    return Activation(device, secret, firmware)


def _used() -> Conflict:
    return Conflict("The production enrollment token has already been used: fetch a new one.")


def _usable_token(ctx: ServiceContext, uow: UnitOfWork, plan_id: str, token_id: str) -> ProductionToken:
    unknown = Unauthenticated("The plan id and token id are not a production enrollment token.")
    token_id = token_id.lower()
    if not _TOKEN_ID.match(token_id):
        raise unknown
    token = uow.production_tokens.find_by_hash(ctx.hasher.hash(token_id), within="/")
    if token is None or not hmac.compare_digest(token.plan_id.encode(), plan_id.lower().encode()):
        raise unknown
    if token.used_at is not None:
        raise _used()
    if token.is_expired(ctx.clock()):
        raise Gone("The production enrollment token has expired (they last minutes): fetch a new one.")
    return token


def _device_for(uow: UnitOfWork, token: ProductionToken, device_id: str) -> Device:
    organization = uow.organizations.get(token.organization_id, within="/")
    device = (
        uow.devices.get(device_id, within=organization.path) if organization and is_uuid(device_id) else None
    )
    if device is None or (token.product_id is not None and device.product_id != token.product_id):
        raise NotFound(f"No device with id '{device_id}' may activate with this production token.")
    return device


def _issue_device_token(
    ctx: ServiceContext, uow: UnitOfWork, device: Device, actor: str, now: datetime
) -> str:
    """A fresh device token; any previous one stops working at once."""
    secret = generate_secret(SecretKind.DEVICE_TOKEN)
    rotated = device.token_issued_at is not None
    uow.devices.set_token(device.id, ctx.hasher.hash(secret), now)
    event_type = EventType.CREDENTIALS_ROTATED if rotated else EventType.CREDENTIALS_ISSUED
    uow.events.add(new_event(event_type, device, actor=actor, at=now, type="token"))
    device.token_issued_at = now
    return secret


# -- claim polling ------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaim:
    status: ClaimStatus
    device_id: str | None
    expires_at: datetime


def claim_of_token(ctx: ServiceContext, principal: Principal, token_id: str) -> TokenClaim:
    """What became of a production token the caller's organizations issued."""
    require(principal, Scope.READ)
    token_id = token_id.lower()
    token = None
    if _TOKEN_ID.match(token_id):
        with ctx.unit_of_work(write=False, snapshot=False) as uow:
            token = uow.production_tokens.find_by_hash(
                ctx.hasher.hash(token_id), within=principal.organization.path
            )
    if token is None:
        # Never echo the id: it is a credential until used.
        raise NotFound("No production enrollment token with this id was found.")
    return TokenClaim(token.claim_status(ctx.clock()), token.device_id, token.expires_at)
