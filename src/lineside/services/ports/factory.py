"""The factory line: enrollment tokens, test runs, production tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from lineside.domain.factory import FactoryToken, ProductionToken, TestRun
from lineside.domain.models import (
    Product,
)


class FactoryTokenRepository(Protocol):
    """Factory enrollment tokens (owned by the factory feature)."""

    def add(self, token: FactoryToken, token_hash: str) -> None: ...
    # The unrevoked token with this hash, and the product it admits DUTs of.
    def find_active_by_hash(self, token_hash: str) -> tuple[FactoryToken, Product] | None: ...
    def get(self, token_id: str, *, within: str) -> FactoryToken | None: ...
    def list(self, *, within: str) -> list[FactoryToken]: ...
    def revoke(self, token_id: str, at: datetime) -> None: ...


class TestRunRepository(Protocol):
    """Test results of Devices Under Test (owned by the factory feature)."""

    def add(self, run: TestRun) -> None: ...
    # The newest run recorded at or after ``since`` (any run when None).
    def latest_for_device(self, device_id: str, *, since: datetime | None) -> TestRun | None: ...
    def list_for_device(self, device_id: str) -> list[TestRun]: ...  # newest first
    # A chunk of a station's ledger at once (services.station_chunk): one statement each.
    def add_many(self, runs: Sequence[TestRun]) -> None: ...
    def ids_existing(self, run_ids: Sequence[str]) -> set[str]: ...
    def latest_for_devices(self, device_ids: Sequence[str]) -> dict[str, TestRun]: ...  # any run


class ProductionTokenRepository(Protocol):
    """Production enrollment tokens: plan id + token id (owned by the factory feature)."""

    def add(self, token: ProductionToken, token_hash: str) -> None: ...
    def find_by_hash(self, token_hash: str, *, within: str) -> ProductionToken | None: ...
    # Mark the token used by ``device_id``; False when it already was (one winner of a race).
    def latest(self, *, within: str, limit: int) -> list[ProductionToken]: ...  # newest first
    def use_if_unused(self, token_id: str, device_id: str, at: datetime) -> bool: ...
