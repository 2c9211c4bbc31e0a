"""Request and response bodies of offline factory stations and their ledgers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, StrictBool

from lineside.domain.stations import (
    MAX_BUDGET,
    MAX_ENTRIES_PER_UPLOAD,
    MAX_POOL,
    MAX_WINDOW_DAYS,
    LedgerEntry,
    LedgerKind,
    Station,
)
from lineside.entrypoints.api.schemas import Request

MIN_WINDOW_DAYS = 1 / 1440  # one minute
MAX_SEQUENCE = 2**63 - 1  # a BIGINT


class StationIn(Request):
    name: str = Field(min_length=1, max_length=200, description="What the line calls the station.")
    budget: int = Field(ge=1, le=MAX_BUDGET, description="How many new devices it may make.")
    valid_days: float = Field(
        ge=MIN_WINDOW_DAYS,
        le=MAX_WINDOW_DAYS,
        description="How long it may work, from now (a minute at least).",
    )
    enrollment_token: str = Field(
        max_length=200, description="The factory enrollment token (lsf_...) the line's fixtures send."
    )
    fixture_api_key: str = Field(
        max_length=200,
        description="The API key (lsk_..., factory scope) the fixtures send; the station syncs with it.",
    )
    token_pool: StrictBool = Field(
        default=False,
        description=f"Give it a device id and token per unit of the budget (at most {MAX_POOL:,}) so "
        "its line can hand token devices their token offline.",
    )


class StationOut(BaseModel):
    pool_size: int = Field(description="Device ids with tokens it was given, for token devices (0: none).")
    id: str
    organization_id: str
    product_id: str
    factory_token_id: str
    name: str
    budget: int
    devices_made: int = Field(description="New devices its replayed ledger made (the budget counts these).")
    not_before: datetime
    not_after: datetime
    authority_id: str | None = Field(description="Its CA, registered for the product.")
    head_sequence: int = Field(description="The last ledger entry the server replayed.")
    head_hash: str
    last_sync_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, station: Station) -> StationOut:
        return cls(**{name: getattr(station, name) for name in cls.model_fields})


class CreatedStationOut(BaseModel):
    station: StationOut
    bundle: dict[str, Any] = Field(
        description="Shown once: the station's keys and the line's secrets. Save it (mode 0600) "
        "and start the station with `lineside station run BUNDLE`."
    )


class StationRevokeIn(Request):
    as_of: AwareDatetime | None = Field(
        default=None,
        description="Revoke as of this time (default now): entries dated after it are refused too. "
        "Use the last moment the station was trusted if its key may have leaked earlier.",
    )


class LedgerEntryIn(Request):
    sequence: int = Field(ge=1, le=MAX_SEQUENCE)
    at: AwareDatetime
    kind: LedgerKind
    data: dict[str, Any]
    previous_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    signature: str = Field(max_length=200)

    def entry(self) -> LedgerEntry:
        return LedgerEntry(
            self.sequence, self.at, self.kind, self.data, self.previous_hash, self.hash, self.signature
        )


class LedgerUploadIn(Request):
    entries: list[LedgerEntryIn] = Field(max_length=MAX_ENTRIES_PER_UPLOAD)


class SyncOut(BaseModel):
    head_sequence: int
    head_hash: str
    applied: int
