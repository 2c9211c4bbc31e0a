"""Credentials unique to each device: a bearer token, an MQTT password, or an X.509
certificate.

Issuing a credential replaces the previous one of the same type at once (Xively's
regenerate semantics): the old token or MQTT password stops authenticating and old
certificates go on the product's CRL. The token and the MQTT password are independent: a
device may connect to MQTT with either (the password suits firmware that keeps its HTTP
token out of its MQTT stack, or a broker configuration that wants distinct secrets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from lineside.domain.errors import Conflict, Unauthenticated
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Certificate, CredentialType, Device, Principal, Product, Scope
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.services.context import ServiceContext, require
from lineside.services.lookups import load_device, load_product
from lineside.services.ports import DeviceIdentity, RevokedSerial, UnitOfWork
from lineside.services.station_pool import devices_from_pools


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """What the caller sees once. Nothing here is stored in clear."""

    type: CredentialType
    secret: str | None = None
    certificate_id: str | None = None
    certificate_pem: str | None = None
    private_key_pem: str | None = None
    serial_hex: str | None = None


# The credentials that are secrets Lineside generates (certificates are signed instead).
SECRET_KINDS = {
    CredentialType.TOKEN: SecretKind.DEVICE_TOKEN,
    CredentialType.MQTT_PASSWORD: SecretKind.MQTT_PASSWORD,
}


def _credential_event(
    device: Device, actor: str, at: datetime, kind: CredentialType, rotated: bool, **data: str
) -> DomainEvent:
    event_type = EventType.CREDENTIALS_ROTATED if rotated else EventType.CREDENTIALS_ISSUED
    return new_event(event_type, device, actor=actor, at=at, type=kind.value, **data)


def issue_certificate_in(
    ctx: ServiceContext,
    uow: UnitOfWork,
    product: Product,
    device: Device,
    csr_pem: str | None,
    now: datetime,
) -> IssuedCredential:
    authority = ctx.certificate_authority
    if csr_pem is None:
        issued = authority.issue_with_new_key(
            product.id, product.name, device_id=device.id, serial_number=device.serial_number
        )
    else:
        issued = authority.sign_csr(
            product.id,
            product.name,
            csr_pem,
            device_id=device.id,
            serial_number=device.serial_number,
        )
    certificate = Certificate(
        id=new_id(),
        device_id=device.id,
        organization_id=device.organization_id,
        product_id=product.id,
        serial_hex=issued.serial_hex,
        fingerprint_sha256=issued.fingerprint_sha256,
        subject=issued.subject,
        not_before=issued.not_before,
        not_after=issued.not_after,
        created_at=now,
    )
    uow.certificates.add(certificate)
    return IssuedCredential(
        CredentialType.X509,
        certificate_id=certificate.id,
        certificate_pem=issued.certificate_pem,
        private_key_pem=issued.private_key_pem,
        serial_hex=issued.serial_hex,
    )


def issue_credential(
    ctx: ServiceContext,
    principal: Principal,
    device_id: str,
    kind: CredentialType,
    csr_pem: str | None = None,
) -> IssuedCredential:
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        if device.state is DeviceState.REVOKED:
            raise Conflict("The device is revoked; it can get no new credentials.")
        now = ctx.clock()
        if kind in SECRET_KINDS:
            issued, event = _issue_secret(ctx, uow, principal, device, kind, now)
        else:
            product = load_product(uow, principal, device.product_id)
            replaced = uow.certificates.revoke_active(device.id, now)
            issued = issue_certificate_in(ctx, uow, product, device, csr_pem, now)
            event = _credential_event(
                device, principal.actor, now, kind, bool(replaced), serial=issued.serial_hex or ""
            )
        uow.events.add(event)
        uow.commit()
    return issued


def _issue_secret(
    ctx: ServiceContext,
    uow: UnitOfWork,
    principal: Principal,
    device: Device,
    kind: CredentialType,
    now: datetime,
) -> tuple[IssuedCredential, DomainEvent]:
    """A new token or MQTT password in place of the device's previous one of that type."""
    secret = generate_secret(SECRET_KINDS[kind])
    secret_hash = ctx.hasher.hash(secret)
    if kind is CredentialType.TOKEN:
        issued_before = device.token_issued_at
        uow.devices.set_token(device.id, secret_hash, now)
    else:
        issued_before = device.mqtt_password_issued_at
        uow.devices.set_mqtt_password(device.id, secret_hash, now)
    # Rotated when one was ever issued: a cleared one (revocation) cannot come back.
    rotated = issued_before is not None
    return IssuedCredential(kind, secret=secret), _credential_event(
        device, principal.actor, now, kind, rotated
    )


def revoke_credentials(ctx: ServiceContext, principal: Principal, device_id: str) -> Device:
    """Stop the device's token, MQTT password and certificates at once; the device stays (new
    credentials can be issued to it)."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        revoke_all_in(uow, principal, device, ctx.clock())
        uow.commit()
    return device


def revoke_all_in(uow: UnitOfWork, principal: Principal, device: Device, now: datetime) -> None:
    """Stop every credential of ``device`` inside the caller's unit of work."""
    uow.devices.clear_token(device.id)
    uow.devices.clear_mqtt_password(device.id)
    revoked = uow.certificates.revoke_active(device.id, now)
    serials = [certificate.serial_hex for certificate in revoked]
    uow.events.add(
        new_event(EventType.CREDENTIALS_REVOKED, device, actor=principal.actor, at=now, certificates=serials)
    )


def list_certificates(ctx: ServiceContext, principal: Principal, device_id: str) -> list[Certificate]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        device = load_device(uow, principal, device_id)
        return uow.certificates.list_for_device(device.id)


def product_ca_pem(ctx: ServiceContext, principal: Principal, product_id: str) -> str:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        product = load_product(uow, principal, product_id)
    return ctx.certificate_authority.ca_certificate_pem(product.id, product.name)


def product_crl_pem(ctx: ServiceContext, principal: Principal, product_id: str) -> str:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        product = load_product(uow, principal, product_id)
        revoked = [
            RevokedSerial(c.serial_hex, c.revoked_at)
            for c in uow.certificates.list_revoked(product.id)
            if c.revoked_at is not None
        ]
    return ctx.certificate_authority.crl_pem(product.id, product.name, revoked)


def authenticate_device(ctx: ServiceContext, token: str) -> Device:
    """The one way a device proves who it is over HTTP."""
    token_hash = _token_hash(ctx, token)
    device = ctx.device_tokens.find_by_token_hash(token_hash)
    if device is None:  # perhaps a unit an offline station made, not synced yet
        device = devices_from_pools(ctx, [token_hash]).get(token_hash)
    return _usable(device)


def identify_device(ctx: ServiceContext, token: str) -> DeviceIdentity:
    """``authenticate_device`` for a device asking who it is: the same refusals, and only
    the few columns the answer holds (it is the most frequent request there is)."""
    token_hash = _token_hash(ctx, token)
    identity = ctx.device_tokens.identity_by_token_hash(token_hash)
    if identity is None and devices_from_pools(ctx, [token_hash]):
        identity = ctx.device_tokens.identity_by_token_hash(token_hash)
    return _usable(identity)


def _token_hash(ctx: ServiceContext, token: str) -> str:
    if not token.startswith(SecretKind.DEVICE_TOKEN.value):
        raise Unauthenticated("The bearer token is not a Lineside device token.")
    return ctx.hasher.hash(token)


_Found = TypeVar("_Found", Device, DeviceIdentity)


def _usable(found: _Found | None) -> _Found:
    if found is None or found.state is DeviceState.REVOKED:
        raise Unauthenticated("The device token is unknown, revoked or replaced.")
    return found
