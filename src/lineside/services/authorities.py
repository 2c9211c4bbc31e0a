"""Makers' own certificate authorities (factory PKI): register one for a product, prove
possession of its key, disable or enable it, delete it, load its CRL, set the product's
registration policy.

A registered CA trusts nothing until verified: the maker signs a certificate whose subject CN
is the one-time challenge with the CA's key (AWS IoT's verification certificate). Only its
keyed hash is kept. A verified CA is unique across products (the key's holder proved it once),
so a device certificate always names one product.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lineside.domain.errors import AlreadyExists, CertificateRefused, Conflict
from lineside.domain.events import EventType, new_event
from lineside.domain.factory_pki import CHALLENGE_LIFETIME, EXPIRY_WARNING
from lineside.domain.identifiers import new_id
from lineside.domain.models import (
    AuthorityStatus,
    CertificateAuthorityRecord,
    Principal,
    Product,
    RegistrationIdentity,
    RegistrationPolicy,
    Scope,
)
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.services.context import ServiceContext, require
from lineside.services.lookups import load_authority, load_product
from lineside.services.ports import AuthorityFacts, UnitOfWork

log = logging.getLogger("lineside.pki")


@dataclass(frozen=True)
class RegisteredAuthority:
    authority: CertificateAuthorityRecord
    challenge: str  # shown once: the CN of the verification certificate to sign
    challenge_expires_at: datetime


def register_authority(
    ctx: ServiceContext, principal: Principal, product_id: str, certificate_pem: str
) -> RegisteredAuthority:
    require(principal, Scope.ADMIN)
    facts = ctx.x509.read_authority(certificate_pem)
    now = ctx.clock()
    if facts.not_after <= now:
        raise CertificateRefused("The CA certificate has expired.")
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        taken = [
            a
            for a in uow.authorities.list_for_product(product.id)
            if a.fingerprint_sha256 == facts.fingerprint_sha256
        ]
        if taken:
            raise AlreadyExists(f"This CA is registered for the product already, as {taken[0].id}.")
        authority = authority_record(product, facts, now, AuthorityStatus.PENDING)
        challenge = generate_secret(SecretKind.CA_CHALLENGE)
        expires = now + CHALLENGE_LIFETIME
        uow.authorities.add(authority, ctx.hasher.hash(challenge), expires)
        _record(uow, EventType.CERTIFICATE_AUTHORITY_REGISTERED, authority, principal.actor, now)
        uow.commit()
    return RegisteredAuthority(authority, challenge, expires)


def authority_record(
    product: Product,
    facts: AuthorityFacts,
    now: datetime,
    status: AuthorityStatus,
    *,
    station_id: str | None = None,
) -> CertificateAuthorityRecord:
    """A CA of ``product`` as its certificate says (verified now when ``status`` says so)."""
    return CertificateAuthorityRecord(
        id=new_id(),
        organization_id=product.organization_id,
        product_id=product.id,
        subject=facts.subject,
        key_id=facts.key_id,
        fingerprint_sha256=facts.fingerprint_sha256,
        certificate_pem=facts.certificate_pem,
        not_after=facts.not_after,
        status=status,
        created_at=now,
        verified_at=now if status is AuthorityStatus.VERIFIED else None,
        station_id=station_id,
    )


def verify_authority(
    ctx: ServiceContext, principal: Principal, authority_id: str, answer_pem: str
) -> CertificateAuthorityRecord:
    """Proof of possession: the answer must be signed by the CA's key and name the challenge."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work(write=False) as uow:
        authority = load_authority(uow, principal, authority_id)
        stored = uow.authorities.challenge_of(authority.id)
    if authority.status is not AuthorityStatus.PENDING:
        raise Conflict(f"The CA is {authority.status.value} already.")
    now = ctx.clock()
    if stored is None or stored[1] <= now:
        raise Conflict("The CA's challenge has expired: delete the CA and register it again.")
    try:
        answer = ctx.x509.possession_answer(authority.certificate_pem, answer_pem)
        if not hmac.compare_digest(ctx.hasher.hash(answer), stored[0]):
            raise CertificateRefused("The verification certificate's subject CN is not this CA's challenge.")
    except CertificateRefused as refused:
        refuse(ctx, authority, f"verification: {refused.detail}", principal.actor)
        raise
    with ctx.unit_of_work() as uow:
        authority = load_authority(uow, principal, authority_id)
        elsewhere = uow.authorities.verified_with_fingerprint(authority.fingerprint_sha256)
        if elsewhere is not None and elsewhere.id != authority.id:
            raise Conflict("This CA is verified for another product already: a CA serves one product.")
        uow.authorities.set_status(authority.id, AuthorityStatus.VERIFIED, now)
        _record(uow, EventType.CERTIFICATE_AUTHORITY_VERIFIED, authority, principal.actor, now)
        uow.commit()
    return _with_status(authority, AuthorityStatus.VERIFIED, verified_at=now)


def list_authorities(
    ctx: ServiceContext, principal: Principal, product_id: str
) -> list[CertificateAuthorityRecord]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        product = load_product(uow, principal, product_id)
        return uow.authorities.list_for_product(product.id)


def get_authority(ctx: ServiceContext, principal: Principal, authority_id: str) -> CertificateAuthorityRecord:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return load_authority(uow, principal, authority_id)


def disable_authority(
    ctx: ServiceContext, principal: Principal, authority_id: str
) -> CertificateAuthorityRecord:
    """Devices of a disabled CA are refused at once: live MQTT sessions are cut off at the
    broker's next credential check (LINESIDE_MQTT_RECHECK_SECONDS)."""
    return _switch(ctx, principal, authority_id, AuthorityStatus.VERIFIED, AuthorityStatus.DISABLED)


def enable_authority(
    ctx: ServiceContext, principal: Principal, authority_id: str
) -> CertificateAuthorityRecord:
    return _switch(ctx, principal, authority_id, AuthorityStatus.DISABLED, AuthorityStatus.VERIFIED)


def _switch(
    ctx: ServiceContext,
    principal: Principal,
    authority_id: str,
    before: AuthorityStatus,
    after: AuthorityStatus,
) -> CertificateAuthorityRecord:
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        authority = load_authority(uow, principal, authority_id)
        if authority.status is after:
            return authority  # already so: a retry changes nothing
        if authority.status is not before:
            raise Conflict(
                f"Only a {before.value} CA can be made {after.value}; this one is {authority.status.value}."
            )
        now = ctx.clock()
        uow.authorities.set_status(authority.id, after, now)
        event = (
            EventType.CERTIFICATE_AUTHORITY_DISABLED
            if after is AuthorityStatus.DISABLED
            else EventType.CERTIFICATE_AUTHORITY_ENABLED
        )
        _record(uow, event, authority, principal.actor, now)
        uow.commit()
    return _with_status(authority, after)


def delete_authority(ctx: ServiceContext, principal: Principal, authority_id: str) -> None:
    """Gone: the devices it registered keep their records but can no longer connect with
    the certificates it signed."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        authority = load_authority(uow, principal, authority_id)
        uow.authorities.delete(authority.id)
        _record(uow, EventType.CERTIFICATE_AUTHORITY_DELETED, authority, principal.actor, ctx.clock())
        uow.commit()


@dataclass(frozen=True)
class RevocationList:
    serials: int  # the CRL lists
    certificates_revoked: int  # certificates of registered devices revoked by it now


def load_revocation_list(
    ctx: ServiceContext, principal: Principal, authority_id: str, crl_pem: str
) -> RevocationList:
    """The CA's CRL replaces the last: its serials are refused from now on, and devices
    registered with one are cut off (at the broker's next check)."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work(write=False) as uow:
        authority = load_authority(uow, principal, authority_id)
    serials = ctx.x509.read_revocation_list(authority.certificate_pem, crl_pem)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        authority = load_authority(uow, principal, authority_id)
        uow.authorities.replace_revoked_serials(authority.id, serials, now)
        devices = uow.certificates.revoke_issued(authority.id, serials, now)
        _record(
            uow,
            EventType.CERTIFICATE_AUTHORITY_CRL_UPDATED,
            authority,
            principal.actor,
            now,
            serials=len(serials),
            devices_cut_off=devices[:100],
        )
        uow.commit()
    return RevocationList(len(serials), len(devices))


def set_registration(
    ctx: ServiceContext,
    principal: Principal,
    product_id: str,
    *,
    policy: RegistrationPolicy,
    identity: RegistrationIdentity,
    reregistration: bool,
) -> Product:
    """Which devices the product's CAs register, how their certificates name them, and
    whether one may come back with another certificate."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        uow.products.set_registration(product.id, policy, identity, reregistration)
        uow.events.add(
            new_event(
                EventType.PRODUCT_UPDATED,
                product,
                actor=principal.actor,
                at=ctx.clock(),
                registration_policy=policy.value,
                registration_identity=identity.value,
                reregistration=reregistration,
            )
        )
        uow.commit()
    return Product(
        **{
            **product.__dict__,
            "registration_policy": policy,
            "registration_identity": identity,
            "reregistration": reregistration,
        }
    )


def warn_expiring(ctx: ServiceContext) -> int:
    """Announce each verified CA that expires within EXPIRY_WARNING, once (the worker calls
    this now and then); how many were announced."""
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        expiring = uow.authorities.expiring_unwarned(now + EXPIRY_WARNING)
        for authority in expiring:
            uow.authorities.mark_warned(authority.id, now)
            _record(
                uow,
                EventType.CERTIFICATE_AUTHORITY_EXPIRING,
                authority,
                "lineside",
                now,
                not_after=authority.not_after.isoformat(),
            )
        uow.commit()
    return len(expiring)


def certificates_to_trust(ctx: ServiceContext) -> list[str]:
    """The registered CAs a TLS listener accepts chains to (the broker, not a person, asks)."""
    with ctx.unit_of_work(write=False) as uow:
        return uow.authorities.certificates_to_trust()


def refuse(ctx: ServiceContext, authority: CertificateAuthorityRecord, reason: str, actor: str) -> None:
    """A refusal the CA's organization should hear of: logged, and an event of its own
    transaction (the refused change itself is rolled back)."""
    refuse_all(ctx, [(authority, reason)], actor)


def refuse_all(
    ctx: ServiceContext, refusals: Sequence[tuple[CertificateAuthorityRecord, str]], actor: str
) -> None:
    """Several refusals (a storm of bad certificates), logged, their events in one transaction."""
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        for authority, reason in refusals:
            log.warning(
                "factory PKI: refused (CA %s, product %s): %s", authority.id, authority.product_id, reason
            )
            _record(uow, EventType.DEVICE_REGISTRATION_REFUSED, authority, actor, now, reason=reason)
        uow.commit()


def _record(
    uow: UnitOfWork,
    event_type: EventType,
    authority: CertificateAuthorityRecord,
    actor: str,
    at: datetime,
    **data: object,
) -> None:
    uow.events.add(
        new_event(event_type, authority, actor=actor, at=at, product_id=authority.product_id, **data)
    )


def _with_status(
    authority: CertificateAuthorityRecord, status: AuthorityStatus, **changes: object
) -> CertificateAuthorityRecord:
    return CertificateAuthorityRecord(**{**authority.__dict__, "status": status, **changes})
