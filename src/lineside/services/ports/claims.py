"""Static-token batches and the tombstones of disclaimed claim codes."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from lineside.domain.models import (
    StaticTokenBatch,
)


class StaticTokenBatchRepository(Protocol):
    def add(self, batch: StaticTokenBatch) -> None: ...
    def get(self, batch_id: str, *, within: str) -> StaticTokenBatch | None: ...
    def mark_exported(self, batch_id: str, at: datetime) -> bool: ...
    def clear_exported(self, batch_id: str) -> None: ...
    def latest(self, *, within: str, limit: int) -> list[StaticTokenBatch]:
        """The subtree's ``limit`` newest batches, newest first."""
        ...


class TombstoneRepository(Protocol):
    def add(
        self, claim_code_hash: str, device_id: str, organization_id: str, serial: str, at: datetime
    ) -> None: ...
    def find(self, claim_code_hash: str) -> tuple[str, datetime] | None: ...
