"""SQL repository of firmware releases and their deployments to device groups."""

from __future__ import annotations

from lineside.adapters.db.repositories import SqlRepository


class SqlFirmwareRepository(SqlRepository):
    pass
