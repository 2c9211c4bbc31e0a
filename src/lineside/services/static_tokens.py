"""Static tokens (the Blynk flow): devices made in bulk, each with a device token for its
firmware and a claim code behind the QR code on its box.

Device tokens are issued when the batch is exported, not when it is made: the one export
is the one place they are ever shown, so no token exists anywhere in clear before or
after it, and the export commits them only once it is whole. Claim codes are derived from
the server key (see ADR 4), so labels can be reprinted at any time while the database holds
only their keyed hashes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from lineside.domain.device_specs import DeviceSpec, new_device
from lineside.domain.errors import Conflict, Gone, InvalidInput
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.identifiers import new_id, new_ids
from lineside.domain.models import Principal, Product, Scope, StaticTokenBatch
from lineside.domain.secret_tokens import SecretKind, generate_secrets
from lineside.services.claims import claim_code_hash, claim_url
from lineside.services.context import ServiceContext, not_found, page_size, require
from lineside.services.devices import validated_specs
from lineside.services.lookups import check_selection, load_device, load_product
from lineside.services.ports import BatchUnit, NewDevice, UnitOfWork
from lineside.services.quotas import check_device_quota

EXPORT_CHUNK = 2000
T = TypeVar("T")
MAX_COUNT = 200_000


@dataclass(frozen=True)
class TokenRow:
    """One unit of a batch as its labels and export show it."""

    device_id: str
    serial_number: str
    metadata: Mapping[str, Any]
    claim_url: str
    device_token: str | None = None


@dataclass(frozen=True)
class BatchContents:
    batch: StaticTokenBatch
    product: Product
    rows: Iterator[TokenRow]


def _renamed_header(csv_text: str, mapping: Mapping[str, str]) -> str:
    """Apply a column mapping (CSV header -> field name) to the header row only."""
    if not mapping:
        return csv_text
    first, newline, rest = csv_text.partition("\n")
    header = next(csv.reader([first.rstrip("\r")]))
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([mapping.get(cell.strip(), cell) for cell in header])
    return out.getvalue() + newline + rest


def _specs_for_count(count: int) -> list[DeviceSpec]:
    if not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"count must be 1 to {MAX_COUNT:,}.")
    # Auto-created tokens have no serial number of their own: the device id stands in.
    return [DeviceSpec(serial_number="", row=row) for row in range(1, count + 1)]


def _refuse_required_fields(product: Product) -> None:
    """Units made by count carry no metadata, so a product that requires some cannot have
    them: the same rule as defining one device without its required fields."""
    required = [field.name for field in product.metadata_fields if field.required]
    if required:
        names = ", ".join(f"'{name}'" for name in required)
        raise InvalidInput(
            f"The product requires metadata {names}: make the units from a CSV with those columns, "
            "not by count."
        )


def create_static_tokens(
    ctx: ServiceContext,
    principal: Principal,
    product_id: str,
    *,
    count: int | None = None,
    csv_text: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> StaticTokenBatch:
    require(principal, Scope.FACTORY)
    if (count is None) == (csv_text is None):
        raise InvalidInput("Give either a count or a CSV of devices.")
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        if csv_text is not None:
            specs = validated_specs(uow, product, None, _renamed_header(csv_text, mapping or {}))
        else:
            _refuse_required_fields(product)
            specs = _specs_for_count(count or 0)
        check_device_quota(ctx, uow, product.organization_id, len(specs))
        batch = _write(ctx, uow, principal, product, specs)
        uow.commit()
    return batch


def _write(
    ctx: ServiceContext, uow: UnitOfWork, principal: Principal, product: Product, specs: list[DeviceSpec]
) -> StaticTokenBatch:
    now = ctx.clock()
    used_fields = {name for spec in specs for name in spec.metadata}
    batch = StaticTokenBatch(
        id=new_id(),
        organization_id=product.organization_id,
        product_id=product.id,
        count=len(specs),
        metadata_columns=[field.name for field in product.metadata_fields if field.name in used_fields],
        created_at=now,
    )
    uow.static_batches.add(batch)
    uow.devices.add_many(_new_rows(ctx, product, specs, now, batch.id))
    uow.events.add(_batch_event(EventType.STATIC_TOKENS_CREATED, batch, principal.actor, now))
    return batch


def _new_rows(
    ctx: ServiceContext, product: Product, specs: list[DeviceSpec], now: datetime, batch_id: str
) -> Iterator[NewDevice]:
    """Built one by one as the database takes them, so memory does not grow with the batch."""
    for spec, device_id in zip(specs, new_ids(len(specs)), strict=True):
        device = new_device(product, spec, now, batch_id, device_id)
        device.serial_number = device.serial_number or device.id
        yield NewDevice(device, claim_code_hash=claim_code_hash(ctx, device.id, 0))


def _batch_event(event_type: EventType, batch: StaticTokenBatch, actor: str, at: Any) -> DomainEvent:
    return new_event(event_type, batch, actor=actor, at=at, product_id=batch.product_id, count=batch.count)


def _load_batch(uow: UnitOfWork, principal: Principal, batch_id: str) -> tuple[StaticTokenBatch, Product]:
    batch = uow.static_batches.get(batch_id, within=principal.organization.path)
    if batch is None:
        raise not_found("static token batch", batch_id)
    return batch, load_product(uow, principal, batch.product_id)


def latest_batches(ctx: ServiceContext, principal: Principal, limit: int = 100) -> list[StaticTokenBatch]:
    """The newest batches of the caller's organization and below, newest first."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.static_batches.latest(within=principal.organization.path, limit=page_size(limit))


def get_batch(ctx: ServiceContext, principal: Principal, batch_id: str) -> StaticTokenBatch:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return _load_batch(uow, principal, batch_id)[0]


def export_batch(
    ctx: ServiceContext, principal: Principal, batch_id: str, build: Callable[[BatchContents], T]
) -> T:
    """The one download that shows the device tokens; a second one is Gone.

    All or nothing: new tokens are made as ``build`` reads the rows, and ``build`` must
    write the whole export somewhere durable (a temporary file, synced) before it returns.
    Only then are the tokens' hashes and the exported mark committed, in one transaction.
    If ``build`` fails, nothing changed and the batch can be exported again; if the export
    is lost after the commit (a client that went away mid-download), ``regenerate_batch``
    voids the tokens and allows one more export. Of two racing exports, the first to
    commit wins; the other gets Gone.
    """
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work(write=False) as uow:
        batch, product = _load_batch(uow, principal, batch_id)
    if batch.exported_at is not None:
        raise _already_exported()
    issued = _IssuedTokens()
    built = build(BatchContents(batch, product, _rows_with_new_tokens(ctx, batch, issued)))
    if not issued.complete:
        raise RuntimeError("the export was built without reading every unit of the batch")
    with ctx.unit_of_work() as uow:
        now = ctx.clock()
        if not uow.static_batches.mark_exported(batch.id, now):
            raise _already_exported()
        uow.devices.set_tokens(issued.hashes, now)
        uow.events.add(_batch_event(EventType.STATIC_TOKENS_EXPORTED, batch, principal.actor, now))
        uow.commit()
    return built


def _already_exported() -> Gone:
    return Gone(
        "This batch's tokens were already downloaded; they are shown only once. "
        "Regenerate the batch to download new ones."
    )


@dataclass
class _IssuedTokens:
    """The (device id, token hash) pairs of an export being built, committed at its end."""

    hashes: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = False


def _rows_with_new_tokens(
    ctx: ServiceContext, batch: StaticTokenBatch, issued: _IssuedTokens
) -> Iterator[TokenRow]:
    after: str | None = None
    while True:
        with ctx.unit_of_work(write=False) as uow:
            units = uow.devices.batch_page(batch.id, after, EXPORT_CHUNK)
        if not units:
            issued.complete = True
            return
        tokens = generate_secrets(SecretKind.DEVICE_TOKEN, len(units))
        issued.hashes.extend(
            (unit.device_id, ctx.hasher.hash(token)) for unit, token in zip(units, tokens, strict=True)
        )
        yield from (_row(ctx, unit, token) for unit, token in zip(units, tokens, strict=True))
        after = units[-1].device_id


def _row(ctx: ServiceContext, unit: BatchUnit, token: str | None) -> TokenRow:
    return TokenRow(
        device_id=unit.device_id,
        serial_number=unit.serial_number,
        metadata=unit.metadata,
        claim_url=claim_url(ctx, unit.device_id, unit.claim_generation),
        device_token=token,
    )


def batch_labels(ctx: ServiceContext, principal: Principal, batch_id: str) -> BatchContents:
    """The labels of a batch (claim URLs, no secrets), as often as wanted."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        batch, product = _load_batch(uow, principal, batch_id)
    return BatchContents(batch, product, _label_rows(ctx, batch))


def _label_rows(ctx: ServiceContext, batch: StaticTokenBatch) -> Iterator[TokenRow]:
    after: str | None = None
    while True:
        with ctx.unit_of_work(write=False) as uow:
            units = uow.devices.batch_page(batch.id, after, EXPORT_CHUNK)
        if not units:
            return
        yield from (_row(ctx, unit, None) for unit in units)
        after = units[-1].device_id


@dataclass(frozen=True)
class BatchFigures:
    """Where a batch's units are: by lifecycle state, claimed by an owner, online now."""

    by_state: dict[str, int]
    claimed: int
    online: int

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    def count(self, state: str) -> int:
        return self.by_state.get(state, 0)


def batch_figures(ctx: ServiceContext, principal: Principal, batch_id: str) -> BatchFigures:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        batch, _product = _load_batch(uow, principal, batch_id)
        mixes = uow.devices.batch_figures(batch.id)
    by_state: dict[str, int] = {}
    for state, _claimed, _online, devices in mixes:
        by_state[state] = by_state.get(state, 0) + devices
    claimed = sum(devices for _state, owned, _online, devices in mixes if owned)
    online = sum(devices for _state, _owned, online, devices in mixes if online)
    return BatchFigures(by_state, claimed, online)


def chosen_labels(
    ctx: ServiceContext, principal: Principal, batch_id: str, device_ids: Sequence[str]
) -> BatchContents:
    """The labels of some units of a batch (one, or a selection), as ``batch_labels``."""
    require(principal, Scope.READ)
    check_selection(device_ids)
    with ctx.unit_of_work(write=False) as uow:
        batch, product = _load_batch(uow, principal, batch_id)
        units = [load_device(uow, principal, device_id) for device_id in device_ids]
    outside = [device.serial_number for device in units if device.batch_id != batch.id]
    if outside:
        raise InvalidInput(f"Not of this batch: {', '.join(outside[:5])}.")
    rows = (_row(ctx, BatchUnit(d.id, d.serial_number, d.metadata, d.claim_generation), None) for d in units)
    return BatchContents(batch, product, rows)


def regenerate_batch(ctx: ServiceContext, principal: Principal, batch_id: str) -> StaticTokenBatch:
    """Void the batch's device tokens at once and allow one new export, while none of its
    devices has activated (an activated device would be cut off)."""
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work() as uow:
        batch, _product = _load_batch(uow, principal, batch_id)
        if uow.devices.any_activated_in_batch(batch.id):
            raise Conflict("A device of this batch has activated; its token can no longer be replaced.")
        now = ctx.clock()
        uow.devices.clear_tokens_of_batch(batch.id)
        uow.static_batches.clear_exported(batch.id)
        uow.events.add(_batch_event(EventType.STATIC_TOKENS_REGENERATED, batch, principal.actor, now))
        uow.commit()
    return replace(batch, exported_at=None)
