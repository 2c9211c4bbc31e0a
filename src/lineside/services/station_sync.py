"""Replaying an offline station's ledger on the server (domain.stations).

An upload is a run of entries in order. Entries the server replayed already (at or below
the station's head) are skipped, so a retried or repeated upload changes nothing. The rest
are believed only while each one chains to the last, carries the station's signature, falls
inside the station's window (and before its revocation) and keeps within its budget; the
first that does not stops the sync there, with its sequence and why, and nothing after it is
applied. Believed entries are replayed as the same actions the server's own line performs
(services.factory_line), dated when they happened at the factory and done by
``station:<id>``, so devices, test runs, blessings, events and webhooks appear as if the
line had been online. One transaction per upload: the head moves with what it applied.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from lineside.domain.errors import Conflict, DomainError, InvalidInput
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.factory import check_measurements
from lineside.domain.factory_pki import registered_device_id
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Certificate, Device, Principal, Product, Scope
from lineside.domain.stations import (
    MAX_ENTRIES_PER_UPLOAD,
    LedgerEntry,
    LedgerKind,
    PoolEntry,
    Station,
    budget_problem,
    chain_problem,
    data_problem,
    warnings_due,
    window_problem,
)
from lineside.services.context import ServiceContext, require
from lineside.services.factory_line import bless_unit, enroll_unit, record_run
from lineside.services.ports import EventOutbox, UnitOfWork
from lineside.services.station_chunk import ChunkUnit
from lineside.services.stations import load_station

log = logging.getLogger("lineside.stations")
# Where a unit that registered itself (by the station CA's certificate) before its ledger
# synced may already be: past the line, so the line's entries are kept as its history.
_ON_THE_LINE = frozenset({DeviceState.DEFINED, DeviceState.UNDER_TEST, DeviceState.FAILED})


@dataclass(frozen=True)
class SyncReport:
    station_id: str
    head_sequence: int
    head_hash: str
    applied: int
    stopped_at: int | None = None  # the sequence of the entry the sync stopped at
    reason: str | None = None
    # Set when the upload starts past the entry after the head (an upload sent before the one
    # it follows had landed): nothing was applied, and nothing is wrong with its entries.
    waiting_for: int | None = None


def sync_ledger(
    ctx: ServiceContext, principal: Principal, station_id: str, entries: Sequence[LedgerEntry]
) -> SyncReport:
    require(principal, Scope.FACTORY)
    if len(entries) > MAX_ENTRIES_PER_UPLOAD:
        raise InvalidInput(f"Upload at most {MAX_ENTRIES_PER_UPLOAD} entries at a time.")
    report = _apply(ctx, principal, station_id, list(entries))
    if report.stopped_at is not None:
        log.warning("station %s: sync stopped at entry %d: %s", station_id, report.stopped_at, report.reason)
    return report


def _apply(
    ctx: ServiceContext, principal: Principal, station_id: str, entries: list[LedgerEntry]
) -> SyncReport:
    now = ctx.clock()
    signatures = _Signatures(ctx, _verify_key(ctx, principal, station_id), entries)
    with ctx.unit_of_work() as uow:
        station = uow.stations.get_for_update(station_id, within=principal.organization.path) or load_station(
            uow, principal, station_id
        )
        fresh = [entry for entry in entries if entry.sequence > station.head_sequence]
        if fresh and fresh[0].sequence > station.head_sequence + 1:
            return SyncReport(
                station.id, station.head_sequence, station.head_hash, 0, waiting_for=station.head_sequence + 1
            )
        unsigned_refusal = _unsigned_problem(station, fresh, now)
        # The chunk's rows are read while the signatures are checked: reading rows for
        # entries the check may yet refuse changes nothing, replaying them would.
        replay = _Replay(ctx, uow, station, fresh[: unsigned_refusal.index if unsigned_refusal else None])
        believed, stop = _believed(fresh, unsigned_refusal, signatures.first_forged_of(fresh))
        replayed, refused = replay.entries(believed)
        if refused is not None:  # it comes before any entry _believed refused
            stop, believed = refused, believed[:replayed]
        replay.chunk.write()
        uow.stations.add_made(station.id, replay.made_now)
        head = believed[-1] if believed else None
        head_sequence = head.sequence if head else station.head_sequence
        head_hash = head.hash if head else station.head_hash
        if head is not None:
            uow.stations.advance(
                station.id,
                head_sequence=head_sequence,
                head_hash=head_hash,
                devices_made=replay.devices_made,
                at=now,
            )
            _announce(uow, station, principal, now, len(believed), head_sequence)
            _warn_near_limits(uow, station, replay.devices_made, now, principal.actor)
        if stop is not None:
            uow.events.add(
                new_event(
                    EventType.STATION_SYNC_STOPPED,
                    station,
                    actor=principal.actor,
                    at=now,
                    sequence=stop[0],
                    reason=stop[1],
                )
            )
        uow.commit()
    return SyncReport(
        station.id,
        head_sequence,
        head_hash,
        len(believed),
        stop[0] if stop else None,
        stop[1] if stop else None,
    )


def _verify_key(ctx: ServiceContext, principal: Principal, station_id: str) -> str:
    """The station's verify key, read before its row is locked (it never changes)."""
    with ctx.unit_of_work(write=False) as uow:
        return load_station(uow, principal, station_id).verify_key_pem


def _signed(entries: Sequence[LedgerEntry]) -> list[tuple[str, str]]:
    return [(entry.hash, entry.signature) for entry in entries]


class _Signatures:
    """An upload's signatures, checked from before its station's row is locked: while the
    upload before it (of the same station) still holds the row, and while this one's rows
    are read (``StationKeys.check_signatures``)."""

    def __init__(self, ctx: ServiceContext, verify_key_pem: str, entries: Sequence[LedgerEntry]) -> None:
        self._keys, self._key, self._entries = ctx.station_keys, verify_key_pem, entries
        self._check = self._keys.check_signatures(verify_key_pem, _signed(entries))

    def first_forged_of(self, fresh: Sequence[LedgerEntry]) -> int | None:
        """The index in ``fresh`` (the upload's entries past the head) of its first forged one."""
        offset = len(self._entries) - len(fresh)
        if all(a is b for a, b in zip(self._entries[offset:], fresh, strict=True)):
            forged = self._check.first_forged()
            if forged is None or forged >= offset:
                return None if forged is None else forged - offset
        # Rare: the fresh entries are not the upload's tail (it is out of order), or one the
        # server holds already came with a forged signature, which could hide a later one.
        return self._keys.check_signatures(self._key, _signed(fresh)).first_forged()


@dataclass(frozen=True)
class _Refusal:
    index: int  # in the upload's fresh entries
    problem: str
    chain: bool  # a chain problem, found before an entry's signature is looked at


def _unsigned_problem(station: Station, fresh: list[LedgerEntry], now: datetime) -> _Refusal | None:
    """The first entry that does not chain, falls outside the station's window or carries
    data its line could not have written; its signature aside (see ``_believed``)."""
    sequence, previous = station.head_sequence + 1, station.head_hash
    for index, entry in enumerate(fresh):
        problem = chain_problem(station.id, entry, sequence, previous)
        if problem is not None:
            return _Refusal(index, problem, chain=True)
        problem = window_problem(station, entry.at, now) or data_problem(entry.kind, entry.data)
        if problem is not None:
            return _Refusal(index, problem, chain=False)
        sequence, previous = sequence + 1, entry.hash
    return None


def _believed(
    fresh: list[LedgerEntry], unsigned: _Refusal | None, forged: int | None
) -> tuple[list[LedgerEntry], tuple[int, str] | None]:
    """The entries that chain, carry the station's signature and fall in its window, up to
    the first that does not (and why that one was refused). An entry is judged as it is
    read: its chain, then its signature, then its window and data."""
    refusal = unsigned
    if forged is not None and (
        unsigned is None or forged < unsigned.index or (forged == unsigned.index and not unsigned.chain)
    ):
        refusal = _Refusal(forged, "its signature is not the station's (a forged entry)", chain=False)
    if refusal is None:
        return fresh, None
    entry = fresh[refusal.index]
    return fresh[: refusal.index], (entry.sequence, f"entry {entry.sequence}: {refusal.problem}")


def _announce(
    uow: UnitOfWork, station: Station, principal: Principal, now: datetime, applied: int, head: int
) -> None:
    uow.events.add(
        new_event(
            EventType.STATION_SYNCED,
            station,
            actor=principal.actor,
            at=now,
            applied=applied,
            from_sequence=station.head_sequence + 1,
            through_sequence=head,
        )
    )


def _warn_near_limits(
    uow: UnitOfWork, station: Station, devices_made: int, now: datetime, actor: str
) -> None:
    """Once per limit: a station.limit_near event when 80% of the budget or window is spent."""
    said = set(filter(None, station.warned.split(",")))
    due = {
        w.value
        for w in warnings_due(station.budget, devices_made, station.not_before, station.not_after, now)
    }
    for limit in sorted(due - said):
        uow.events.add(
            new_event(
                EventType.STATION_LIMIT_NEAR,
                station,
                actor=actor,
                at=now,
                limit=limit,
                budget=station.budget,
                devices_made=devices_made,
                not_after=station.not_after.isoformat(),
            )
        )
    if due - said:
        uow.stations.mark_warned(station.id, ",".join(sorted(due | said)))


class _RecordedNow:
    """The replay's events: dated when they happened at the factory, recorded now (so the
    webhook endpoints that exist now hear of them: services.webhook_delivery)."""

    def __init__(self, outbox: EventOutbox, now: datetime) -> None:
        self._outbox, self._now = outbox, now

    def add(self, event: DomainEvent) -> None:
        self._outbox.add(replace(event, recorded_at=self._now))

    def add_many(self, events: Sequence[DomainEvent], *, recorded_at: datetime | None = None) -> None:
        self._outbox.add_many(events, recorded_at=self._now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)


class _ReplayUnit:
    """The upload's unit of work, its events recorded now."""

    def __init__(self, uow: UnitOfWork, now: datetime) -> None:
        self._uow = uow
        self.events = _RecordedNow(uow.events, now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._uow, name)


def _refusal(error: Exception) -> str:
    if isinstance(error, DomainError):
        return f"its replay was refused: {error.detail}"
    # A signed entry whose data the station's line could not have written (a missing or
    # mistyped field): refused as any other entry the replay cannot believe.
    return f"its data is malformed ({type(error).__name__}: {str(error)[:200]})"


class _Replay:
    """The actions of believed entries, in order, replayed on the chunk's rows in memory
    (services.station_chunk) and written together at the end."""

    def __init__(
        self, ctx: ServiceContext, uow: UnitOfWork, station: Station, entries: Sequence[LedgerEntry]
    ) -> None:
        self.ctx, self.station = ctx, station
        self.actor = f"station:{station.id}"
        # One context for the whole replay, dated by each entry (a context per entry cost a
        # dataclass copy of every service an entry could need).
        self.clock = _EntryClock(ctx.clock())
        self.entry_ctx = replace(ctx, clock=self.clock)
        self.devices_made = station.devices_made
        self.product = self._product(uow)
        token = uow.factory_tokens.get(station.factory_token_id, within="/")
        if token is None:
            raise Conflict("The station's factory token no longer exists.")
        self.token = token
        self.chunk = ChunkUnit(cast(UnitOfWork, _ReplayUnit(uow, ctx.clock())), self.product, entries)
        self.uow = cast(UnitOfWork, self.chunk)
        # The devices this station made (its ledger, its CA, its pool): the only ones its
        # entries may touch. Those this chunk makes join them, and are written with it.
        named = [str(entry.data.get("device_id")) for entry in entries]
        self.mine = uow.stations.made_by(station.id, named)
        self.made_now: list[str] = []

    def entries(self, entries: Sequence[LedgerEntry]) -> tuple[int, tuple[int, str] | None]:
        """How many were replayed, and (its sequence, why) of the first refused, if any."""
        for replayed, entry in enumerate(entries):
            self.chunk.begin_entry()
            devices_made, made_now = self.devices_made, len(self.made_now)
            try:
                self.entry(entry)
            except (DomainError, KeyError, TypeError, ValueError) as error:
                self.chunk.drop_entry()
                self.devices_made = devices_made
                del self.made_now[made_now:]
                return replayed, (entry.sequence, _refusal(error))
        return len(entries), None

    def _product(self, uow: UnitOfWork) -> Product:
        product = uow.products.get(self.station.product_id, within="/")
        if product is None:
            raise Conflict("The station's product no longer exists.")
        return product

    def entry(self, entry: LedgerEntry) -> None:
        self.clock.at = entry.at
        ctx, data = self.entry_ctx, entry.data
        if entry.kind is LedgerKind.ENROLL:
            self._enroll(ctx, data)
        elif entry.kind is LedgerKind.TEST_RUN:
            self._test_run(ctx, data)
        elif entry.kind is LedgerKind.BLESS:
            self._bless(ctx, data)
        elif entry.kind is LedgerKind.CERTIFICATE:
            self._certificate(ctx, data)
        elif entry.kind is LedgerKind.TOKEN:
            self._token(ctx, data)

    def _enroll(self, ctx: ServiceContext, data: dict[str, Any]) -> None:
        serial, device_id = str(data["serial_number"]), str(data["device_id"])
        hardware_id = str(data["hardware_id"])
        from_pool = self._pool_entry(device_id) is not None
        if not from_pool and device_id != registered_device_id(self.product.id, serial):
            raise Conflict(
                "the device id is neither from the station's pool nor the one its serial number gives"
            )
        existing = self.uow.devices.get(device_id, within="/")
        if existing is not None and not from_pool and existing.id not in self.mine:
            raise Conflict(f"device {device_id} is not one this station made")
        if bool(data.get("new_device")):
            self._count_new(existing, device_id)
        if from_pool:
            self.uow.stations.open_pool_entry(device_id, ctx.clock())
        if existing is not None:
            self._name(existing, serial, hardware_id)
            if existing.state not in _ON_THE_LINE:
                return  # it registered itself already and went on: the line's entries are its history
        enrolled = enroll_unit(
            ctx,
            self.uow,
            self.token,
            self.product,
            hardware_id,
            serial,
            actor=self.actor,
            new_device_id=device_id,
            firmware=False,
        )
        if enrolled.device.id != device_id:
            raise Conflict(f"the server holds that unit as device {enrolled.device.id}, not {device_id}")

    def _count_new(self, existing: Device | None, device_id: str) -> None:
        """A unit the station made: within its budget, once (one that registered itself
        before this sync was counted then)."""
        if existing is not None and existing.hardware_id is not None:
            # Registration knows a unit by its serial only: a hardware id means a line
            # enrolled it already, so this "new" unit is an earlier entry played again.
            raise Conflict(f"it makes device {device_id} again (a replayed entry)")
        if existing is None:
            problem = budget_problem(self.station.budget, self.devices_made)
            if problem is not None:
                raise Conflict(problem)
            self.devices_made += 1
            self.made_now.append(device_id)
            self.mine.add(device_id)

    def _pool_entry(self, device_id: str) -> PoolEntry | None:
        entry = self.uow.stations.pool_entry(device_id)
        return entry if entry is not None and entry.station_id == self.station.id else None

    def _name(self, device: Device, serial: str, hardware_id: str) -> None:
        """A unit that connected before its ledger arrived: by its certificate (named by its
        serial already) or its pool token (named by its id until now). The ledger names it."""
        if device.serial_number != serial:
            if device.serial_number != device.id:
                raise Conflict(f"device {device.id} is {device.serial_number} here, not {serial}")
            if self.uow.devices.find_by_serial_number(self.product.id, serial) is not None:
                raise Conflict(f"another device of the product is serial number {serial} already")
            self.uow.devices.set_serial_number(device.id, serial)
            device.serial_number = serial
        if device.hardware_id is None:
            self.uow.devices.set_hardware_id(device.id, hardware_id)
            device.hardware_id = hardware_id

    def _token(self, ctx: ServiceContext, data: dict[str, Any]) -> None:
        """The unit was handed its pool token on the line: the device holds it from now on."""
        device = self._device(data)
        entry = self._pool_entry(device.id)
        if entry is None:
            raise Conflict(f"device {device.id} is not from the station's token pool")
        now = ctx.clock()
        self.uow.stations.open_pool_entry(device.id, now)
        if device.token_issued_at is not None:
            return  # it connected with it already, or the server rotated or revoked it since
        self.uow.devices.set_token(device.id, entry.token_hash, now)
        self.uow.events.add(
            new_event(EventType.CREDENTIALS_ISSUED, device, actor=self.actor, at=now, type="token")
        )

    def _device(self, data: dict[str, Any]) -> Device:
        device = self.uow.devices.get(str(data["device_id"]), within="/")
        if device is None or device.product_id != self.product.id:
            raise Conflict(f"no device {data['device_id']} of the station's product was enrolled")
        if device.id not in self.mine and self._pool_entry(device.id) is None:
            raise Conflict(f"device {device.id} is not one this station made")
        return device

    def _test_run(self, ctx: ServiceContext, data: dict[str, Any]) -> None:
        device = self._device(data)
        measurements = check_measurements(dict(data.get("measurements") or {}))
        fixture, operator = data.get("fixture"), data.get("operator")
        if device.state not in _ON_THE_LINE:
            return
        run_id = str(data.get("run_id") or new_id())
        if self.chunk.test_runs.recorded(run_id):
            # Not left to the primary key: that would fail the whole upload, not stop it here.
            raise Conflict(f"its test run {run_id} was recorded already (a replayed entry)")
        record_run(
            ctx,
            self.uow,
            device,
            self.actor,
            passed=bool(data["passed"]),
            measurements=measurements,
            fixture=fixture,
            operator=operator,
            run_id=run_id,
        )

    def _bless(self, ctx: ServiceContext, data: dict[str, Any]) -> None:
        device = self._device(data)
        if device.state not in _ON_THE_LINE:
            return
        blessing = bless_unit(ctx, self.uow, device, self.actor, firmware=False)
        if blessing.result.value != data.get("result"):
            raise Conflict(
                f"the station said {data.get('result')}, the replayed test runs say {blessing.result.value}"
            )

    def _certificate(self, ctx: ServiceContext, data: dict[str, Any]) -> None:
        device = self._device(data)
        fingerprint = str(data["fingerprint_sha256"])
        if self.chunk.certificate_known(fingerprint):
            return  # it registered itself with this certificate already
        self.uow.certificates.add(
            Certificate(
                id=new_id(),
                device_id=device.id,
                organization_id=device.organization_id,
                product_id=device.product_id,
                serial_hex=fingerprint,  # unique, as registration keeps it; the issuer's serial beside
                fingerprint_sha256=fingerprint,
                subject=str(data["subject"])[:500],
                not_before=datetime.fromisoformat(str(data["not_before"])),
                not_after=datetime.fromisoformat(str(data["not_after"])),
                created_at=ctx.clock(),
                authority_id=self.station.authority_id,
                issuer_serial_hex=str(data["serial_hex"]),
            )
        )


class _EntryClock:
    """The replay's clock: the time of the entry being replayed (``_Replay.entry`` sets it)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at
