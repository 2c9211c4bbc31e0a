"""Offline factory stations: the server's record of each, a station's own ledger, and keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lineside.domain.stations import LedgerEntry, Station


@dataclass(frozen=True)
class StationCredentials:
    """What a new station is given once, in its bundle (the server keeps the verify key and
    the CA certificate only)."""

    signing_key_pem: str
    verify_key_pem: str
    ca_key_pem: str
    ca_certificate_pem: str


class StationKeys(Protocol):
    def new_credentials(
        self, product_id: str, station_name: str, not_before: datetime, not_after: datetime
    ) -> StationCredentials: ...
    def sign(self, signing_key_pem: str, digest_hex: str) -> str: ...
    def signature_holds(self, verify_key_pem: str, digest_hex: str, signature: str) -> bool: ...


class StationRepository(Protocol):
    """The server's stations."""

    def add(self, station: Station) -> None: ...
    def get(self, station_id: str, *, within: str) -> Station | None: ...
    # For an upload: the row locked (PostgreSQL) so two syncs of one station take turns.
    def get_for_update(self, station_id: str, *, within: str) -> Station | None: ...
    def list(self, *, within: str, product_id: str | None = None) -> list[Station]: ...
    def advance(
        self, station_id: str, *, head_sequence: int, head_hash: str, devices_made: int, at: datetime
    ) -> None: ...
    def mark_warned(self, station_id: str, warned: str) -> None: ...
    def revoke(self, station_id: str, at: datetime) -> None: ...


class StationLedger(Protocol):
    """A station's own ledger (on the station's database)."""

    def head(self) -> tuple[int, str] | None: ...  # (sequence, hash) of the newest entry
    def append(self, entry: LedgerEntry) -> None: ...
    def unsynced(self, limit: int) -> list[LedgerEntry]: ...
    def mark_synced(self, through_sequence: int, at: datetime) -> None: ...
    def waiting(self) -> int: ...
    def last_synced_at(self) -> datetime | None: ...
    def count_of(self, kind: str, key: str, value: object) -> int: ...
    def entries(self, after: int, limit: int) -> Sequence[LedgerEntry]: ...
