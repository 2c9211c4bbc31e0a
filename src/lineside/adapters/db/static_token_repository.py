"""SQL repositories of static-token batches and of the tombstones deleted devices leave."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from lineside.adapters.db import tables as t
from lineside.adapters.db.repositories import SqlRepository, owned_within
from lineside.domain.models import StaticTokenBatch


def _batch(row: Row[Any]) -> StaticTokenBatch:
    m = row._mapping
    return StaticTokenBatch(
        id=m["id"],
        organization_id=m["organization_id"],
        product_id=m["product_id"],
        count=m["count"],
        metadata_columns=list(m["metadata_columns"]),
        created_at=m["created_at"],
        exported_at=m["exported_at"],
    )


class SqlStaticTokenBatchRepository(SqlRepository):
    def add(self, batch: StaticTokenBatch) -> None:
        self.connection.execute(
            insert(t.static_token_batches).values(
                id=batch.id,
                organization_id=batch.organization_id,
                product_id=batch.product_id,
                count=batch.count,
                metadata_columns=batch.metadata_columns,
                created_at=batch.created_at,
            )
        )

    def get(self, batch_id: str, *, within: str) -> StaticTokenBatch | None:
        c = t.static_token_batches.c
        row = self._first(
            select(t.static_token_batches).where(c.id == batch_id, owned_within(c.organization_id, within))
        )
        return _batch(row) if row else None

    def mark_exported(self, batch_id: str, at: datetime) -> bool:
        """True for the one caller that gets to show the tokens."""
        c = t.static_token_batches.c
        result = self.connection.execute(
            update(t.static_token_batches)
            .where(c.id == batch_id, c.exported_at.is_(None))
            .values(exported_at=at)
        )
        return result.rowcount == 1

    def latest(self, *, within: str, limit: int) -> list[StaticTokenBatch]:
        c = t.static_token_batches.c
        query = select(t.static_token_batches).where(owned_within(c.organization_id, within))
        return [_batch(row) for row in self._all(query.order_by(c.id.desc()).limit(limit))]

    def clear_exported(self, batch_id: str) -> None:
        c = t.static_token_batches.c
        self.connection.execute(
            update(t.static_token_batches).where(c.id == batch_id).values(exported_at=None)
        )


class SqlTombstoneRepository(SqlRepository):
    def add(
        self, claim_code_hash: str, device_id: str, organization_id: str, serial: str, at: datetime
    ) -> None:
        self.connection.execute(
            insert(t.device_tombstones).values(
                claim_code_hash=claim_code_hash,
                device_id=device_id,
                organization_id=organization_id,
                serial_number=serial,
                deleted_at=at,
            )
        )

    def find(self, claim_code_hash: str) -> tuple[str, datetime] | None:
        """(serial number, deleted at) of the device a claim code belonged to."""
        c = t.device_tombstones.c
        row = self._first(select(c.serial_number, c.deleted_at).where(c.claim_code_hash == claim_code_hash))
        return (row.serial_number, row.deleted_at) if row else None
