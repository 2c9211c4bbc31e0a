"""The factory line at an offline station: the server's own line (services.factory_line),
run on the station's database, each action appended to the station's ledger in the same
transaction (so a crash loses an action and its entry together, or neither).

The station refuses work past its budget (new devices) or outside its window with a clear
error the fixture shows. A new unit's device id is the one registration gives its serial
number (domain.factory_pki.registered_device_id), so a device whose certificate the station
signed can register itself at the server before the ledger arrives, under the same id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lineside.domain.device_specs import serial_number_problem
from lineside.domain.errors import Conflict, InvalidInput, StationLimitReached
from lineside.domain.events import EventType, new_event
from lineside.domain.factory import check_measurements, normalize_hardware_id
from lineside.domain.factory_pki import registered_device_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import CredentialType, Principal, Scope
from lineside.domain.stations import LedgerEntry, LedgerKind, budget_problem, entry_hash, genesis_hash
from lineside.services.context import ServiceContext, require
from lineside.services.credentials import IssuedCredential, issue_certificate_in
from lineside.services.factory_line import (
    Blessing,
    EnrolledDut,
    bless_unit,
    checked_label,
    enroll_unit,
    record_run,
)
from lineside.services.factory_tokens import authenticate_factory_token
from lineside.services.lookups import load_device, load_product
from lineside.services.ports import UnitOfWork


@dataclass(frozen=True)
class StationPost:
    """What this station was delegated (from its bundle)."""

    station_id: str
    product_id: str
    budget: int
    not_before: datetime
    not_after: datetime
    signing_key_pem: str
    # Its token pool, device id -> device token (the server holds the tokens' hashes); empty
    # when it was given none. A new unit takes the next id of the pool when there is one.
    pool_tokens: Mapping[str, str] = field(default_factory=dict)


def enroll(
    ctx: ServiceContext,
    post: StationPost,
    enrollment_token: str,
    *,
    hardware_id: str,
    serial_number: str | None,
) -> EnrolledDut:
    _check_window(ctx, post)
    hardware_id = normalize_hardware_id(hardware_id)
    if serial_number is not None and (problem := serial_number_problem(serial_number)):
        raise InvalidInput(f"serial_number {problem}.")
    with ctx.unit_of_work() as uow:
        token, product = authenticate_factory_token(ctx, uow, enrollment_token)
        made = uow.device_counts.of_product(product.organization_id, product.id)
        serial = serial_number if serial_number is not None else hardware_id
        device_id = _new_unit_id(uow, post, product.id, serial)
        enrolled = enroll_unit(
            ctx,
            uow,
            token,
            product,
            hardware_id,
            serial_number,
            new_device_id=device_id or registered_device_id(product.id, serial),
        )
        if not enrolled.created:
            return enrolled
        if enrolled.new_device and post.pool_tokens:
            if device_id is None:  # a unit the line made already goes on; a new one needs an id
                raise StationLimitReached(
                    "The station's token pool is spent: sync, and ask for a new station."
                )
            uow.stations.open_pool_entry(device_id, ctx.clock())
        if enrolled.new_device and (problem := budget_problem(post.budget, made)):
            raise StationLimitReached(
                f"The station cannot enroll a new unit: {problem}. Sync, and ask for a new station."
            )
        data = {
            "device_id": enrolled.device.id,
            "hardware_id": hardware_id,
            "serial_number": enrolled.device.serial_number,
            "new_device": enrolled.new_device,
        }
        append_entry(ctx, uow, post, LedgerKind.ENROLL, data)
        uow.commit()
    return enrolled


def record_test_run(
    ctx: ServiceContext,
    post: StationPost,
    principal: Principal,
    device_id: str,
    *,
    passed: bool,
    measurements: dict[str, Any] | None = None,
    fixture: str | None = None,
    operator: str | None = None,
) -> Any:
    require(principal, Scope.FACTORY)
    _check_window(ctx, post)
    fixture, operator = checked_label(fixture, "fixture"), checked_label(operator, "operator")
    measurements = check_measurements(measurements or {})
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        run = record_run(
            ctx,
            uow,
            device,
            principal.actor,
            passed=passed,
            measurements=measurements,
            fixture=fixture,
            operator=operator,
        )
        data = {
            "device_id": device.id,
            "run_id": run.id,
            "passed": passed,
            "measurements": measurements,
            "fixture": fixture,
            "operator": operator,
        }
        append_entry(ctx, uow, post, LedgerKind.TEST_RUN, data)
        uow.commit()
    return run


def bless(ctx: ServiceContext, post: StationPost, principal: Principal, device_id: str) -> Blessing:
    require(principal, Scope.FACTORY)
    _check_window(ctx, post)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        blessing = bless_unit(ctx, uow, device, principal.actor)
        append_entry(
            ctx, uow, post, LedgerKind.BLESS, {"device_id": device.id, "result": blessing.result.value}
        )
        uow.commit()
    return blessing


def issue_certificate(
    ctx: ServiceContext, post: StationPost, principal: Principal, device_id: str, csr_pem: str | None
) -> IssuedCredential:
    """A device certificate from the station's CA (a key made here, or the CSR's)."""
    require(principal, Scope.FACTORY)
    _check_window(ctx, post)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        if device.state is DeviceState.REVOKED:
            raise InvalidInput("The device is revoked; it can get no new credentials.")
        product = load_product(uow, principal, device.product_id)
        now = ctx.clock()
        uow.certificates.revoke_active(device.id, now)
        issued = issue_certificate_in(ctx, uow, product, device, csr_pem, now)
        assert issued.certificate_pem is not None
        facts = ctx.x509.read_device_certificate(issued.certificate_pem.encode("ascii"), ())
        uow.events.add(
            new_event(
                EventType.CREDENTIALS_ISSUED,
                device,
                actor=principal.actor,
                at=now,
                type=CredentialType.X509.value,
            )
        )
        data = {
            "device_id": device.id,
            "fingerprint_sha256": facts.fingerprint_sha256,
            "serial_hex": facts.serial_hex,
            "subject": facts.subject,
            "not_before": facts.not_before.isoformat(),
            "not_after": facts.not_after.isoformat(),
        }
        append_entry(ctx, uow, post, LedgerKind.CERTIFICATE, data)
        uow.commit()
    return issued


def _new_unit_id(uow: UnitOfWork, post: StationPost, product_id: str, serial: str) -> str | None:
    """The id a new unit will have here and at the server: the next id of the station's pool,
    or (without a pool) the id registration gives the serial number. None: the pool is spent
    (a unit the line made already may still go on)."""
    if not post.pool_tokens:
        return registered_device_id(product_id, serial)
    entry = uow.stations.next_free_pool_entry(post.station_id)
    return entry.device_id if entry is not None else None


def issue_pool_token(
    ctx: ServiceContext, post: StationPost, principal: Principal, device_id: str
) -> IssuedCredential:
    """The unit's device token from the station's pool (the server knows its hash, so it works
    before the station syncs). A pool token is the unit's for good: asking again gives the same
    one; rotate it at the server once the unit is in the field."""
    require(principal, Scope.FACTORY)
    _check_window(ctx, post)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        token = post.pool_tokens.get(device.id)
        if token is None:
            raise Conflict(
                "This unit's id is not from the station's token pool: its token must come from the server."
            )
        if device.state is DeviceState.REVOKED:
            raise InvalidInput("The device is revoked; it can get no new credentials.")
        now = ctx.clock()
        uow.devices.set_token(device.id, ctx.hasher.hash(token), now)
        uow.events.add(
            new_event(EventType.CREDENTIALS_ISSUED, device, actor=principal.actor, at=now, type="token")
        )
        append_entry(ctx, uow, post, LedgerKind.TOKEN, {"device_id": device.id})
        uow.commit()
    return IssuedCredential(CredentialType.TOKEN, secret=token)


def append_entry(
    ctx: ServiceContext, uow: UnitOfWork, post: StationPost, kind: LedgerKind, data: dict[str, Any]
) -> LedgerEntry:
    """The next entry, chained to the newest and signed, in ``uow`` (the action's own)."""
    head = uow.station_ledger.head()
    sequence, previous = (head[0] + 1, head[1]) if head else (1, genesis_hash(post.station_id))
    at = ctx.clock()
    digest = entry_hash(post.station_id, sequence, at, kind.value, data, previous)
    signature = ctx.station_keys.sign(post.signing_key_pem, digest)
    entry = LedgerEntry(sequence, at, kind, data, previous, digest, signature)
    uow.station_ledger.append(entry)
    return entry


def _check_window(ctx: ServiceContext, post: StationPost) -> None:
    now = ctx.clock()
    if now < post.not_before:
        raise StationLimitReached("The station's window has not opened yet (check this computer's clock).")
    if now > post.not_after:
        raise StationLimitReached(
            f"The station's window closed at {post.not_after.isoformat()}: sync, and ask for a new station."
        )
