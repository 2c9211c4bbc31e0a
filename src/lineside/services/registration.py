"""Just-in-time registration: a device whose certificate chains to a verified, enabled CA of
a product registers itself on its first connection (the MQTT TLS listener, or
``POST /device/v1/register`` behind a proxy that checked its TLS client certificate).

The CA the certificate names (by authority key identifier, along the presented chain) decides
the product; the product's registration policy decides the rest:

    open        a device of that name is defined (id = uuid5(product id, name))
    allow_list  only a device defined beforehand by that serial number
    approval    as open, but held as pending_approval until approved

A reconnect with the same certificate is not a second registration; another certificate for
the same device is refused unless the product allows re-registration. Every refusal says why
(log, and an event when the CA, so the organization, is known) and creates nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lineside.domain.device_specs import DeviceSpec, new_device
from lineside.domain.errors import CertificateRefused, Conflict, DomainError, QuotaExceeded
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.factory_pki import registered_device_id, registration_name, station_unit_name
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import STATE_TIMESTAMP_FIELD, DeviceState, Transition, apply_transition
from lineside.domain.models import (
    AuthorityStatus,
    Certificate,
    CertificateAuthorityRecord,
    Device,
    Principal,
    Product,
    RegistrationPolicy,
    Scope,
)
from lineside.services.authorities import refuse_all
from lineside.services.context import ServiceContext, require
from lineside.services.lookups import load_device
from lineside.services.ports import DeviceCertificateFacts, NewDevice, UnitOfWork
from lineside.services.quotas import check_device_quota

log = logging.getLogger("lineside.pki")
ACTOR = "factory_pki"
# A certificate of a batch that passed the chain checks: its place in the batch, what it says,
# and the CA it chains to.
Admitted = tuple[int, DeviceCertificateFacts, CertificateAuthorityRecord]
# Why a certificate made no device: a refusal of it, or its organization's device quota.
NotRegistered = CertificateRefused | QuotaExceeded


@dataclass(frozen=True)
class Registration:
    device: Device
    created: bool  # a new device (False: known already, by this certificate or its serial)


@dataclass(frozen=True)
class Presented:
    """A certificate a device presented, DER (or PEM), with the intermediates it sent."""

    certificate: bytes
    chain: Sequence[bytes] = ()


def register_device(
    ctx: ServiceContext, certificate: bytes, chain: Sequence[bytes] = (), *, via: str
) -> Registration:
    """The device the certificate names, registered now if it was not; CertificateRefused
    (with why) otherwise, or QuotaExceeded."""
    (outcome,) = register_devices(ctx, [Presented(certificate, tuple(chain))], via=via)
    if not isinstance(outcome, Registration):
        raise outcome
    return outcome


def register_devices(
    ctx: ServiceContext, presented: Sequence[Presented], *, via: str
) -> list[Registration | NotRegistered]:
    """Each certificate's device, registered now where it was not, or why it was refused: a
    reconnect storm of new devices costs one read and one write transaction, not two each."""
    outcomes: list[Registration | NotRegistered | None] = [None] * len(presented)
    read: list[tuple[int, DeviceCertificateFacts]] = []
    for index, item in enumerate(presented):
        try:
            read.append((index, ctx.x509.read_device_certificate(item.certificate, item.chain)))
        except CertificateRefused as refused:
            outcomes[index] = refused
    with ctx.unit_of_work(write=False) as uow:
        known = uow.devices.find_by_active_certificates(
            sorted({facts.fingerprint_sha256 for _i, facts in read})
        )
        key_ids = sorted({key for _i, facts in read for key in facts.issuer_key_ids})
        authorities = uow.authorities.with_key_ids(key_ids)
    refusals: list[tuple[CertificateAuthorityRecord, str]] = []
    admitted: list[Admitted] = []
    for index, facts in read:
        device = known.get(facts.fingerprint_sha256)
        if device is not None:
            outcomes[index] = Registration(device, created=False)
            continue
        candidates = [a for a in authorities if a.key_id in facts.issuer_key_ids]
        try:
            authority = _usable(candidates, facts)
            item = presented[index]
            ctx.x509.verify_device_chain(item.certificate, item.chain, authority.certificate_pem, ctx.clock())
            admitted.append((index, facts, authority))
        except CertificateRefused as refused:
            outcomes[index] = refused
            if candidates:  # the organization of the CA the chain names hears of it
                refusals.append((candidates[0], _why(facts, refused)))
    if admitted:
        refusals += _register_all(ctx, admitted, outcomes, via)
    if refusals:
        refuse_all(ctx, refusals, ACTOR)
    answered = [outcome for outcome in outcomes if outcome is not None]
    assert len(answered) == len(presented), "every certificate is registered or refused"
    return answered


def _register_all(
    ctx: ServiceContext,
    admitted: list[Admitted],
    outcomes: list[Registration | NotRegistered | None],
    via: str,
) -> list[tuple[CertificateAuthorityRecord, str]]:
    """One write transaction for every admitted certificate (each refused alone is left out):
    new devices together, then the rest one by one; if a concurrent registration wins a race,
    each is tried again on its own."""
    refusals: list[tuple[CertificateAuthorityRecord, str]] = []
    try:
        with ctx.unit_of_work() as uow:
            for index, facts, authority in _register_new_in(ctx, uow, admitted, outcomes, via):
                try:
                    outcomes[index] = _register_in(ctx, uow, authority, facts, via)
                except CertificateRefused as refused:
                    outcomes[index] = refused
                    refusals.append((authority, _why(facts, refused)))
                except QuotaExceeded as over:  # that device alone, the rest of the batch goes on
                    outcomes[index] = over
            uow.commit()
    except Conflict:
        refusals = []
        for index, facts, authority in admitted:
            try:
                with ctx.unit_of_work() as uow:
                    outcomes[index] = _register_in(ctx, uow, authority, facts, via)
                    uow.commit()
            except (CertificateRefused, Conflict) as refused:
                outcomes[index] = CertificateRefused(refused.detail)
                refusals.append((authority, _why(facts, refused)))
            except QuotaExceeded as over:
                outcomes[index] = over
    return refusals


def _register_new_in(
    ctx: ServiceContext,
    uow: UnitOfWork,
    admitted: list[Admitted],
    outcomes: list[Registration | NotRegistered | None],
    via: str,
) -> list[Admitted]:
    """Register in ``uow`` together the certificates that each make a new device (a fleet's
    first connections): the batch's CRL entries, products and taken serial numbers are read
    once, the quota checked once per organization, and the devices, certificates and events
    inserted in bulk, where one at a time cost about ten statements each. The rest is
    returned, in its order, for ``_register_in`` to take one at a time with every rule (a
    known serial number, a name the batch already made, an allow-list, a station's CA, and
    every refusal): each is decided as if it had connected alone just after these."""
    new = _within_quota(ctx, uow, _new_names(uow, admitted))
    if not new:
        return admitted
    now = ctx.clock()
    devices: list[Device] = []
    certificates: list[Certificate] = []
    events: list[DomainEvent] = []
    for (_product_id, name), ((index, facts, authority), product) in new.items():
        device = _new_device(
            product, name, registered_device_id(product.id, name), product.registration_policy, now
        )
        devices.append(device)
        certificates.append(_certificate(device, authority, facts, now))
        events += [
            _defined(device, product, now),
            _registered(device, authority, facts, via, now, created=True),
        ]
        outcomes[index] = Registration(device, created=True)
        log.info("factory PKI: device %s registered (new, via %s)", device.id, via)
    uow.devices.add_many(NewDevice(device) for device in devices)
    uow.certificates.add_many(certificates)
    uow.events.add_many(events)
    made = {index for (index, _facts, _authority), _product in new.values()}
    return [item for item in admitted if item[0] not in made]


def _new_names(uow: UnitOfWork, admitted: list[Admitted]) -> dict[tuple[str, str], tuple[Admitted, Product]]:
    """By (product id, name): the first certificate of each name that a maker's own CA (not a
    station's) would define now, where ``_register_in`` would: not on the CA's CRL, its product
    there and open or by approval, the name valid and not taken yet."""
    plain = [
        item for item in admitted if item[2].station_id is None and item[2].registration_closed_at is None
    ]
    revoked = _revoked(uow, plain)
    products = {
        pid: uow.products.get(pid, within="/") for pid in sorted({a.product_id for _i, _f, a in plain})
    }
    named: dict[tuple[str, str], tuple[Admitted, Product]] = {}
    for item in plain:
        _index, facts, authority = item
        product = products[authority.product_id]
        if (
            product is None
            or product.registration_policy is RegistrationPolicy.ALLOW_LIST
            or (authority.id, facts.serial_hex) in revoked
        ):
            continue
        try:
            name = registration_name(product.registration_identity, facts.common_name, facts.san_uris)
        except CertificateRefused:
            continue
        named.setdefault((product.id, name), (item, product))
    for product_id in sorted({product_id for product_id, _name in named}):
        names = [name for pid, name in named if pid == product_id]
        for taken in uow.devices.existing_serial_numbers(product_id, names):
            del named[(product_id, taken)]
    return named


def _revoked(uow: UnitOfWork, admitted: list[Admitted]) -> set[tuple[str, str]]:
    """(CA id, serial) of the certificates whose CA's CRL lists them: one query per CA."""
    serials: dict[str, set[str]] = {}
    for _index, facts, authority in admitted:
        serials.setdefault(authority.id, set()).add(facts.serial_hex)
    return {
        (authority_id, serial)
        for authority_id, of_authority in sorted(serials.items())
        for serial in uow.authorities.revoked_among(authority_id, sorted(of_authority))
    }


def _within_quota(
    ctx: ServiceContext, uow: UnitOfWork, new: dict[tuple[str, str], tuple[Admitted, Product]]
) -> dict[tuple[str, str], tuple[Admitted, Product]]:
    """Those whose organization may define all of its new devices of the batch; the others
    go one at a time, so each is decided (and refused) as it would be alone."""
    adding = Counter(product.organization_id for _item, product in new.values())
    over = set()
    for organization_id, count in sorted(adding.items()):
        try:
            check_device_quota(ctx, uow, organization_id, count)
        except QuotaExceeded:
            over.add(organization_id)
    return {key: value for key, value in new.items() if value[1].organization_id not in over}


def _why(facts: DeviceCertificateFacts, refused: DomainError) -> str:
    return f"device certificate {facts.fingerprint_sha256[:16]}: {refused.detail}"


def _usable(
    candidates: list[CertificateAuthorityRecord], facts: DeviceCertificateFacts
) -> CertificateAuthorityRecord:
    """The verified, enabled CA the chain names; refused (saying which way) when there is none."""
    usable = [a for a in candidates if a.status is AuthorityStatus.VERIFIED]
    if len(usable) == 1:
        return usable[0]
    if len(usable) > 1:  # a root and its intermediate both registered: the nearest one
        by_key = {a.key_id: a for a in usable}
        return next(by_key[key] for key in facts.issuer_key_ids if key in by_key)
    if any(a.status is AuthorityStatus.DISABLED for a in candidates):
        raise _refused("the CA that signed it is disabled")
    if candidates:
        raise _refused("the CA that signed it has not proven possession of its key yet (not verified)")
    raise _refused("no registered CA signed it")


def _refused(why: str) -> CertificateRefused:
    log.warning("factory PKI: device certificate refused: %s", why)
    return CertificateRefused(f"The device certificate is refused: {why}.")


def _register_in(
    ctx: ServiceContext,
    uow: UnitOfWork,
    authority: CertificateAuthorityRecord,
    facts: DeviceCertificateFacts,
    via: str,
) -> Registration:
    """Register one certificate in ``uow``: every refusal comes before any write for it."""
    now = ctx.clock()
    if uow.authorities.is_revoked(authority.id, facts.serial_hex):
        raise CertificateRefused(f"Its serial {facts.serial_hex} is on the CA's revocation list.")
    if authority.registration_closed_at is not None:
        raise CertificateRefused(
            "The station whose CA signed it was revoked: only the devices its synced ledger names connect."
        )
    product = uow.products.get(authority.product_id, within="/")
    if product is None:
        raise CertificateRefused("The CA's product no longer exists.")
    if authority.station_id is not None:
        name, device_id = _station_unit(uow, product, authority.station_id, facts)
    else:
        name = registration_name(product.registration_identity, facts.common_name, facts.san_uris)
        device_id = registered_device_id(product.id, name)
    device, created = _device_for(ctx, uow, product, name, device_id, station_id=authority.station_id)
    if not created:
        _replace_certificate(uow, product, device, now)
    uow.certificates.add(_certificate(device, authority, facts, now))
    uow.events.add(_registered(device, authority, facts, via, now, created=created))
    log.info("factory PKI: device %s registered (%s, via %s)", device.id, "new" if created else "known", via)
    return Registration(device, created)


def _station_unit(
    uow: UnitOfWork, product: Product, station_id: str, facts: DeviceCertificateFacts
) -> tuple[str, str]:
    """The serial number and id of a unit an offline station made: named by the subject
    serialNumber, its id (the CN) from the station's token pool or the one its serial gives."""
    pool = uow.stations.pool_entry(facts.common_name or "")
    if pool is not None and pool.station_id == station_id:
        name = station_unit_name(product.id, None, facts.subject_serial_number, check_id=False)
        return name, pool.device_id
    name = station_unit_name(product.id, facts.common_name, facts.subject_serial_number)
    return name, registered_device_id(product.id, name)


def _device_for(
    ctx: ServiceContext,
    uow: UnitOfWork,
    product: Product,
    name: str,
    device_id: str,
    *,
    station_id: str | None,
) -> tuple[Device, bool]:
    """The device named ``name`` (or, from a station's pool, by its id), defined now if new
    under ``device_id``. A station's CA (``station_id``) vouches for units that station made
    only: the product's allow-list or approval does not apply to them, the station's budget
    does, and any other device of the product is out of its reach."""
    existing = uow.devices.find_by_serial_number(product.id, name)
    if existing is None and station_id is not None:
        existing = uow.devices.get(device_id, within="/")
    if existing is not None:
        if existing.state is DeviceState.REVOKED:
            raise CertificateRefused(f"The device {name} is revoked.")
        if station_id is not None and not _made_by(uow, station_id, existing.id):
            raise CertificateRefused(f"The device {name} was not made by the station whose CA signed it.")
        return existing, False
    policy = RegistrationPolicy.OPEN if station_id is not None else product.registration_policy
    if policy is RegistrationPolicy.ALLOW_LIST:
        raise CertificateRefused(f"{name} is not on the product's allow-list (define it first).")
    check_device_quota(ctx, uow, product.organization_id, 1)
    if station_id is not None and not uow.stations.take_budget(station_id, 1):
        raise CertificateRefused("The budget of the station whose CA signed it is spent.")
    now = ctx.clock()
    device = _new_device(product, name, device_id, policy, now)
    uow.devices.add(device)
    if station_id is not None:
        uow.stations.add_made(station_id, [device.id])
    uow.events.add(_defined(device, product, now))
    return device, True


def _made_by(uow: UnitOfWork, station_id: str, device_id: str) -> bool:
    """Whether the station made the device: by its ledger, its CA or its pool."""
    if uow.stations.made_by(station_id, [device_id]):
        return True
    pool = uow.stations.pool_entry(device_id)
    return pool is not None and pool.station_id == station_id


def _new_device(
    product: Product, name: str, device_id: str, policy: RegistrationPolicy, now: datetime
) -> Device:
    device = new_device(product, DeviceSpec(serial_number=name), now, None, device_id)
    if policy is RegistrationPolicy.APPROVAL:  # held, not defined yet
        device.state = DeviceState.PENDING_APPROVAL
        device.timeline = {STATE_TIMESTAMP_FIELD[device.state]: now}
    return device


def _defined(device: Device, product: Product, now: datetime) -> DomainEvent:
    return new_event(
        EventType.DEVICE_DEFINED,
        device,
        actor=ACTOR,
        at=now,
        product_id=product.id,
        serial_number=device.serial_number,
    )


def _registered(
    device: Device,
    authority: CertificateAuthorityRecord,
    facts: DeviceCertificateFacts,
    via: str,
    now: datetime,
    *,
    created: bool,
) -> DomainEvent:
    return new_event(
        EventType.DEVICE_REGISTERED,
        device,
        actor=ACTOR,
        at=now,
        via=via,
        authority_id=authority.id,
        serial_number=device.serial_number,
        fingerprint_sha256=facts.fingerprint_sha256,
        created=created,
    )


def _replace_certificate(uow: UnitOfWork, product: Product, device: Device, now: datetime) -> None:
    """A known device with another certificate: refused, unless the product allows it to
    re-register (then its previous certificates stop)."""
    active = [c for c in uow.certificates.list_for_device(device.id) if c.revoked_at is None]
    if active and not product.reregistration:
        raise CertificateRefused(
            f"The device {device.serial_number} is registered with another certificate "
            "(the product does not allow re-registration)."
        )
    if active:
        uow.certificates.revoke_active(device.id, now)


def _certificate(
    device: Device, authority: CertificateAuthorityRecord, facts: DeviceCertificateFacts, now: datetime
) -> Certificate:
    return Certificate(
        id=new_id(),
        device_id=device.id,
        organization_id=device.organization_id,
        product_id=device.product_id,
        serial_hex=facts.fingerprint_sha256,  # unique; the issuer's serial is kept beside it
        fingerprint_sha256=facts.fingerprint_sha256,
        subject=facts.subject,
        not_before=facts.not_before,
        not_after=facts.not_after,
        created_at=now,
        authority_id=authority.id,
        issuer_serial_hex=facts.serial_hex,
    )


def approve_device(ctx: ServiceContext, principal: Principal, device_id: str) -> Device:
    """A device held as pending_approval becomes defined: it may connect (and activate)."""
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        if device.state is not DeviceState.PENDING_APPROVAL:
            raise Conflict(
                f"Only a device pending approval can be approved; this one is {device.state.value}."
            )
        event = apply_transition(device, Transition.APPROVE, at=ctx.clock(), actor=principal.actor)
        if not uow.devices.save_state_if(device, DeviceState.PENDING_APPROVAL):
            raise Conflict("The device changed while it was being approved; try again.")
        uow.events.add(event)
        uow.commit()
    return device
