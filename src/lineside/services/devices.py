"""Defining devices one at a time or in all-or-nothing batches, reading and revoking them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from lineside.domain.device_specs import (
    DeviceSpec,
    batch_problems,
    check_batch_size,
    first_problem_per_cell,
    new_device,
    normalize_mac,
    parse_csv,
    spec_problems,
)
from lineside.domain.errors import AlreadyExists, BatchRejected, Conflict, InvalidInput, RowError
from lineside.domain.events import EventType, SubjectRef, new_event
from lineside.domain.factory import normalize_hardware_id
from lineside.domain.identifiers import new_id, new_ids
from lineside.domain.lifecycle import Transition, apply_transition
from lineside.domain.models import (
    CredentialType,
    Device,
    DeviceGroup,
    Principal,
    Product,
    Scope,
    group_refuses,
)
from lineside.domain.secret_tokens import generate_secrets
from lineside.services.context import ServiceContext, page_size, require
from lineside.services.credentials import SECRET_KINDS, IssuedCredential, issue_certificate_in, revoke_all_in
from lineside.services.lookups import check_selection, load_device, load_group, load_product
from lineside.services.ports import DeviceFilter, NewDevice, Page, UnitOfWork
from lineside.services.quotas import check_device_quota


@dataclass(frozen=True, slots=True)
class DefinedDevice:
    device: Device
    credential: IssuedCredential | None = None


@dataclass(frozen=True)
class DefinedBatch:
    batch_id: str
    product: Product
    devices: list[DefinedDevice]

    def credential_rows(self) -> Iterator[list[str]]:
        """The credentials file a downstream manufacturing process receives: a header, then
        one row per device (secrets included: shown once)."""
        mqtt = any(d.credential and d.credential.type is CredentialType.MQTT_PASSWORD for d in self.devices)
        secret_column = "mqtt_password" if mqtt else "token"
        yield ["device_id", "serial_number", secret_column, "certificate", "private_key"]
        for defined in self.devices:
            credential = defined.credential or IssuedCredential(CredentialType.TOKEN)
            yield [
                defined.device.id,
                defined.device.serial_number,
                credential.secret or "",
                credential.certificate_pem or "",
                credential.private_key_pem or "",
            ]


def define_device(
    ctx: ServiceContext,
    principal: Principal,
    *,
    product_id: str,
    serial_number: str,
    mac: str | None = None,
    metadata: dict[str, object] | None = None,
    hardware_id: str | None = None,
) -> Device:
    require(principal, Scope.FACTORY)
    spec = DeviceSpec(serial_number=serial_number, mac=_mac(mac), metadata=dict(metadata or {}))
    hardware_id = normalize_hardware_id(hardware_id) if hardware_id is not None else None
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        problems = spec_problems(spec, product.metadata_fields)
        if problems:
            raise InvalidInput("; ".join(f"{p.column} {p.reason}" for p in problems))
        if uow.devices.existing_serial_numbers(product.id, [spec.serial_number]):
            raise AlreadyExists(f"Serial number '{spec.serial_number}' is already defined for this product.")
        if hardware_id is not None and uow.devices.find_by_hardware_id(product.id, hardware_id):
            raise AlreadyExists(f"Hardware id '{hardware_id}' is already defined for this product.")
        check_device_quota(ctx, uow, product.organization_id, 1)
        now = ctx.clock()
        device = new_device(product, spec, now, None)
        device.hardware_id = hardware_id
        uow.devices.add_many([NewDevice(device)])
        uow.events.add(
            new_event(
                EventType.DEVICE_DEFINED,
                device,
                actor=principal.actor,
                at=now,
                product_id=product.id,
                serial_number=device.serial_number,
            )
        )
        uow.commit()
    return device


def _mac(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    mac = normalize_mac(text)
    if mac is None:
        raise InvalidInput("mac must be a 48-bit MAC address such as 00:1a:2b:3c:4d:5e.")
    return mac


def _taken_serials(uow: UnitOfWork, product_id: str, specs: list[DeviceSpec]) -> set[str]:
    return uow.devices.existing_serial_numbers(
        product_id, [spec.serial_number for spec in specs if spec.serial_number]
    )


def define_batch(
    ctx: ServiceContext,
    principal: Principal,
    *,
    product_id: str,
    specs: list[DeviceSpec] | None = None,
    csv_text: str | None = None,
    issue_credentials: CredentialType | None = None,
    before_commit: Callable[[DefinedBatch], None] | None = None,
) -> DefinedBatch:
    """Define every device of a batch or none; report every bad row when refusing.

    ``before_commit`` gets the batch, secrets included, while its transaction is still
    open: a caller that keeps the secrets in a file writes and syncs it there, so that if
    it fails, nothing is committed (DESIGN.md §5).
    """
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        specs = validated_specs(uow, product, specs, csv_text)
        check_device_quota(ctx, uow, product.organization_id, len(specs))
        batch = _write_batch(ctx, uow, principal, product, specs, issue_credentials)
        if before_commit is not None:
            before_commit(batch)
        uow.commit()
    return batch


def validated_specs(
    uow: UnitOfWork, product: Product, specs: list[DeviceSpec] | None, csv_text: str | None
) -> list[DeviceSpec]:
    """The devices a batch asks for, or BatchRejected with every problem of every row."""
    problems: list[RowError] = []
    if csv_text is not None:
        specs, problems = parse_csv(csv_text, product.metadata_fields)
    specs = specs or []
    check_batch_size(len(specs) + len(problems))
    problems += batch_problems(specs, product.metadata_fields, _taken_serials(uow, product.id, specs))
    if problems:
        raise BatchRejected(first_problem_per_cell(problems))
    return specs


def _new_devices(
    ctx: ServiceContext,
    product: Product,
    specs: list[DeviceSpec],
    now: datetime,
    batch_id: str,
    issue_credentials: CredentialType | None,
) -> tuple[list[DefinedDevice], list[NewDevice]]:
    """The devices of a batch (with each secret, to show once) and the rows that store them
    (with only the secrets' keyed hashes), in the same order."""
    ids = new_ids(len(specs))
    kind = SECRET_KINDS.get(issue_credentials) if issue_credentials else None
    secrets = generate_secrets(kind, len(specs)) if kind else [None] * len(specs)
    hash_secret = ctx.hasher.hash
    defined: list[DefinedDevice] = []
    rows: list[NewDevice] = []
    for spec, device_id, secret in zip(specs, ids, secrets, strict=True):
        device = new_device(product, spec, now, batch_id, device_id)
        if secret is None or issue_credentials is None:
            defined.append(DefinedDevice(device))
            rows.append(NewDevice(device))
        else:
            defined.append(DefinedDevice(device, IssuedCredential(issue_credentials, secret=secret)))
            rows.append(_with_secret(device, issue_credentials, hash_secret(secret), now))
    return defined, rows


def _with_secret(device: Device, kind: CredentialType, secret_hash: str, now: datetime) -> NewDevice:
    if kind is CredentialType.MQTT_PASSWORD:
        device.mqtt_password_issued_at = now
        return NewDevice(device, mqtt_password_hash=secret_hash)
    device.token_issued_at = now
    return NewDevice(device, secret_hash)


def _write_batch(
    ctx: ServiceContext,
    uow: UnitOfWork,
    principal: Principal,
    product: Product,
    specs: list[DeviceSpec],
    issue_credentials: CredentialType | None,
) -> DefinedBatch:
    now = ctx.clock()
    batch_id = new_id()
    defined, rows = _new_devices(ctx, product, specs, now, batch_id, issue_credentials)
    uow.devices.add_many(rows)
    if issue_credentials is CredentialType.X509:
        defined = [
            DefinedDevice(item.device, issue_certificate_in(ctx, uow, product, item.device, None, now))
            for item in defined
        ]
    uow.events.add(
        new_event(
            EventType.DEVICES_DEFINED_IN_BATCH,
            SubjectRef(batch_id, product.organization_id),
            actor=principal.actor,
            at=now,
            product_id=product.id,
            count=len(defined),
            credentials=issue_credentials.value if issue_credentials else None,
        )
    )
    return DefinedBatch(batch_id=batch_id, product=product, devices=defined)


def get_device(ctx: ServiceContext, principal: Principal, device_id: str) -> Device:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return load_device(uow, principal, device_id, include_owned=True)


def get_devices(ctx: ServiceContext, principal: Principal, device_ids: Sequence[str]) -> list[Device]:
    """The chosen devices, in the order chosen (NotFound for any the caller may not see)."""
    require(principal, Scope.READ)
    check_selection(device_ids)
    with ctx.unit_of_work(write=False) as uow:
        return [load_device(uow, principal, device_id) for device_id in device_ids]


def list_devices(
    ctx: ServiceContext,
    principal: Principal,
    *,
    filters: DeviceFilter,
    cursor: str | None,
    limit: int,
) -> Page[Device]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        if filters.product_id:
            # Naming a product the caller cannot see is a 404, as on every other route.
            load_product(uow, principal, filters.product_id)
        return uow.devices.list(
            within=principal.organization.path,
            filters=filters,
            cursor=cursor,
            limit=page_size(limit),
        )


def revoke_device(ctx: ServiceContext, principal: Principal, device_id: str) -> Device:
    """Revoked is terminal: the token and every certificate stop working at once."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        now, previous = ctx.clock(), device.state
        event = apply_transition(device, Transition.REVOKE, at=now, actor=principal.actor)
        if not uow.devices.save_state_if(device, previous):
            raise Conflict("The device changed while it was being revoked; try again.")
        uow.events.add(event)
        revoke_all_in(uow, principal, device, now)
        uow.commit()
    return device


def move_to_group(ctx: ServiceContext, principal: Principal, device_ids: Sequence[str], group_id: str) -> int:
    """Move the chosen devices into a group of their product: all of them, or none."""
    require(principal, Scope.ADMIN)
    check_selection(device_ids)
    with ctx.unit_of_work() as uow:
        group = load_group(uow, principal, group_id)
        now = ctx.clock()
        moving = [_movable(load_device(uow, principal, device_id), group) for device_id in device_ids]
        uow.devices.set_group([device.id for device in moving], group.id)
        uow.events.add_many(
            [
                new_event(
                    EventType.DEVICE_MOVED,
                    device,
                    actor=principal.actor,
                    at=now,
                    from_group=device.group_id,
                    to_group=group.id,
                )
                for device in moving
            ]
        )
        uow.commit()
    return len(moving)


def _movable(device: Device, group: DeviceGroup) -> Device:
    if device.product_id != group.product_id:
        raise Conflict(f"The device {device.serial_number} is not of the group's product.")
    refused = group_refuses(group.kind, device.state)
    if refused:
        raise Conflict(f"The device {device.serial_number} cannot move there: {refused}")
    return device
