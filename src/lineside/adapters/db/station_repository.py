"""Offline factory stations: the server's record of each, and a station's own ledger."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, update

from lineside.adapters.db import tables as t
from lineside.adapters.db.repositories import SqlRepository, owned_within
from lineside.adapters.db.station_pool import SqlStationPool
from lineside.domain.stations import LedgerEntry, LedgerKind, Station

_FIELDS = tuple(Station.__dataclass_fields__)


def _station(row: Row[Any]) -> Station:
    m = row._mapping
    return Station(**{name: m[name] for name in _FIELDS})


class SqlStationRepository(SqlStationPool):
    def add(self, station: Station) -> None:
        self.connection.execute(
            insert(t.stations).values(**{name: getattr(station, name) for name in _FIELDS})
        )

    def get(self, station_id: str, *, within: str) -> Station | None:
        row = self._first(self._owned(station_id, within))
        return _station(row) if row else None

    def get_for_update(self, station_id: str, *, within: str) -> Station | None:
        row = self._first(self._owned(station_id, within).with_for_update())
        return _station(row) if row else None

    def _owned(self, station_id: str, within: str) -> Any:
        c = t.stations.c
        return select(t.stations).where(c.id == station_id, owned_within(c.organization_id, within))

    def list(self, *, within: str, product_id: str | None = None) -> builtins.list[Station]:
        c = t.stations.c
        query = select(t.stations).where(owned_within(c.organization_id, within))
        if product_id is not None:
            query = query.where(c.product_id == product_id)
        return [_station(row) for row in self._all(query.order_by(c.created_at, c.id))]

    def advance(
        self, station_id: str, *, head_sequence: int, head_hash: str, devices_made: int, at: datetime
    ) -> None:
        self.connection.execute(
            update(t.stations)
            .where(t.stations.c.id == station_id)
            .values(
                head_sequence=head_sequence, head_hash=head_hash, devices_made=devices_made, last_sync_at=at
            )
        )

    def mark_warned(self, station_id: str, warned: str) -> None:
        self.connection.execute(update(t.stations).where(t.stations.c.id == station_id).values(warned=warned))

    def made_by(self, station_id: str, device_ids: Sequence[str]) -> set[str]:
        c = t.station_devices.c
        found: set[str] = set()
        unique = sorted(set(device_ids))
        for start in range(0, len(unique), 1000):
            query = select(c.device_id).where(
                c.station_id == station_id, self._one_of(c.device_id, unique[start : start + 1000])
            )
            found.update(str(row.device_id) for row in self._all(query))
        return found

    def add_made(self, station_id: str, device_ids: Sequence[str]) -> None:
        if device_ids:
            rows = [{"device_id": device_id, "station_id": station_id} for device_id in device_ids]
            self.connection.execute(insert(t.station_devices), rows)

    def take_budget(self, station_id: str, count: int) -> bool:
        """One atomic step: the station's count of devices made grows by ``count`` only while
        it stays within the budget (a device registering by itself between syncs counts)."""
        c = t.stations.c
        result = self.connection.execute(
            update(t.stations)
            .where(c.id == station_id, c.devices_made + count <= c.budget)
            .values(devices_made=c.devices_made + count)
        )
        return bool(result.rowcount)

    def revoke(self, station_id: str, at: datetime) -> None:
        c = t.stations.c
        self.connection.execute(
            update(t.stations)
            .where(c.id == station_id, or_(c.revoked_at.is_(None), c.revoked_at > at))
            .values(revoked_at=at)
        )


# Every action at a station reads the head and appends an entry: statements built once, and
# their cache keys with them (building them per call cost 56 and 100 us, running them 18 and 22).
_HEAD = (
    select(t.station_ledger.c.sequence, t.station_ledger.c.hash)
    .order_by(t.station_ledger.c.sequence.desc())
    .limit(1)
)
_APPEND = insert(t.station_ledger)


def _entry(row: Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        sequence=row.sequence,
        at=row.at,
        kind=LedgerKind(row.kind),
        data=dict(row.data),
        previous_hash=row.previous_hash,
        hash=row.hash,
        signature=row.signature,
    )


class SqlStationLedger(SqlRepository):
    """The station's ledger; appended in the transaction of the action it records."""

    def head(self) -> tuple[int, str] | None:
        row = self._first(_HEAD)
        return (row.sequence, row.hash) if row else None

    def append(self, entry: LedgerEntry) -> None:
        self.connection.execute(
            _APPEND,
            {
                "sequence": entry.sequence,
                "at": entry.at,
                "kind": entry.kind.value,
                "data": entry.data,
                "previous_hash": entry.previous_hash,
                "hash": entry.hash,
                "signature": entry.signature,
            },
        )

    def entries(self, after: int, limit: int) -> Sequence[LedgerEntry]:
        c = t.station_ledger.c
        query = select(t.station_ledger).where(c.sequence > after).order_by(c.sequence).limit(limit)
        return [_entry(row) for row in self._all(query)]

    def mark_synced(self, through_sequence: int, at: datetime) -> None:
        c = t.station_ledger.c
        self.connection.execute(
            update(t.station_ledger)
            .where(c.sequence <= through_sequence, c.synced_at.is_(None))
            .values(synced_at=at)
        )

    def waiting(self) -> int:
        c = t.station_ledger.c
        return int(self.connection.execute(select(func.count()).where(c.synced_at.is_(None))).scalar_one())

    def last_synced_at(self) -> datetime | None:
        c = t.station_ledger.c
        value: datetime | None = self.connection.execute(select(func.max(c.synced_at))).scalar_one()
        return value
