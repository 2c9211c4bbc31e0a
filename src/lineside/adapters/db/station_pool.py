"""A station's pool of device ids and token hashes (domain.stations.PoolEntry): the server
holds the hashes, so a token device from the pool authenticates before its station syncs; a
station keeps the same rows (hashed under its own key) to hand out the next id."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from lineside.adapters.db import tables as t
from lineside.adapters.db.repositories import SqlRepository
from lineside.domain.stations import PoolEntry


def _pool_entry(row: Row[Any]) -> PoolEntry:
    return PoolEntry(row.device_id, row.station_id, row.position, row.token_hash, row.opened_at)


_POOL_CHUNK = 5000  # rows per INSERT: a 100,000-device pool is a few statements


class SqlStationPool(SqlRepository):
    """The pool, as part of the station repository."""

    def add_pool(self, entries: Sequence[PoolEntry]) -> None:
        rows = [
            {
                "device_id": e.device_id,
                "station_id": e.station_id,
                "position": e.position,
                "token_hash": e.token_hash,
                "opened_at": e.opened_at,
            }
            for e in entries
        ]
        for start in range(0, len(rows), _POOL_CHUNK):
            self.connection.execute(insert(t.station_pool), rows[start : start + _POOL_CHUNK])

    def pool_by_token_hashes(self, token_hashes: Sequence[str]) -> builtins.list[PoolEntry]:
        if not token_hashes:
            return []
        c = t.station_pool.c
        return [
            _pool_entry(r)
            for r in self._all(select(t.station_pool).where(c.token_hash.in_(list(token_hashes))))
        ]

    def pool_entry(self, device_id: str) -> PoolEntry | None:
        row = self._first(select(t.station_pool).where(t.station_pool.c.device_id == device_id))
        return _pool_entry(row) if row else None

    def pool_entries(self, device_ids: Sequence[str]) -> builtins.list[PoolEntry]:
        if not device_ids:
            return []
        query = select(t.station_pool).where(self._one_of(t.station_pool.c.device_id, device_ids))
        return [_pool_entry(r) for r in self._all(query)]

    def open_pool_entry(self, device_id: str, at: datetime) -> None:
        c = t.station_pool.c
        self.connection.execute(
            update(t.station_pool).where(c.device_id == device_id, c.opened_at.is_(None)).values(opened_at=at)
        )

    def next_free_pool_entry(self, station_id: str) -> PoolEntry | None:
        c = t.station_pool.c
        query = (
            select(t.station_pool)
            .where(c.station_id == station_id, c.opened_at.is_(None))
            .order_by(c.position)
            .limit(1)
        )
        row = self._first(query)
        return _pool_entry(row) if row else None
