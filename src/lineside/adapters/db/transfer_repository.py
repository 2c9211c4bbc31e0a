"""SQL repository of device transfers between owners."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from lineside.adapters.db import tables as t
from lineside.adapters.db.repositories import SqlRepository
from lineside.domain.transfers import DeviceTransfer

_c = t.device_transfers.c


def _transfer(row: Row[Any]) -> DeviceTransfer:
    m = row._mapping
    return DeviceTransfer(
        id=m["id"],
        device_id=m["device_id"],
        from_organization_id=m["from_organization_id"],
        offered_by=m["offered_by"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        accepted_at=m["accepted_at"],
        to_organization_id=m["to_organization_id"],
        cancelled_at=m["cancelled_at"],
    )


class SqlTransferRepository(SqlRepository):
    def add(self, transfer: DeviceTransfer, code_hash: str) -> None:
        self.connection.execute(
            insert(t.device_transfers).values(
                id=transfer.id,
                device_id=transfer.device_id,
                from_organization_id=transfer.from_organization_id,
                code_hash=code_hash,
                offered_by=transfer.offered_by,
                created_at=transfer.created_at,
                expires_at=transfer.expires_at,
            )
        )

    def find_by_code_hash(self, code_hash: str) -> DeviceTransfer | None:
        row = self._first(select(t.device_transfers).where(_c.code_hash == code_hash))
        return _transfer(row) if row else None

    def get(self, transfer_id: str) -> DeviceTransfer | None:
        row = self._first(select(t.device_transfers).where(_c.id == transfer_id))
        return _transfer(row) if row else None

    def open_for_device(self, device_id: str, now: datetime) -> list[DeviceTransfer]:
        query = select(t.device_transfers).where(
            _c.device_id == device_id,
            _c.accepted_at.is_(None),
            _c.cancelled_at.is_(None),
            _c.expires_at > now,
        )
        return [_transfer(row) for row in self._all(query.order_by(_c.created_at))]

    def accept(self, transfer_id: str, to_organization_id: str, at: datetime) -> bool:
        """True for the one acceptance of an open offer."""
        result = self.connection.execute(
            update(t.device_transfers)
            .where(
                _c.id == transfer_id,
                _c.accepted_at.is_(None),
                _c.cancelled_at.is_(None),
                _c.expires_at > at,
            )
            .values(accepted_at=at, to_organization_id=to_organization_id)
        )
        return result.rowcount == 1

    def cancel_open(self, device_id: str, at: datetime) -> int:
        """End every open offer of the device (it was handed on, unclaimed or deleted)."""
        result = self.connection.execute(
            update(t.device_transfers)
            .where(_c.device_id == device_id, _c.accepted_at.is_(None), _c.cancelled_at.is_(None))
            .values(cancelled_at=at)
        )
        return int(result.rowcount)
