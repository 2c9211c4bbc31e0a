"""Offline factory stations: delegate a product's line to a station, list and revoke
stations, and replay a station's ledger (what it did while the link was down)."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.problems import problem
from lineside.entrypoints.api.station_schemas import (
    CreatedStationOut,
    LedgerUploadIn,
    StationIn,
    StationOut,
    StationRevokeIn,
    SyncOut,
)
from lineside.services import station_sync, stations

router = APIRouter(prefix="/api/v1", tags=["factory stations"])


@router.post("/products/{product_id}/stations", status_code=status.HTTP_201_CREATED)
def create_station(product_id: str, body: StationIn, ctx: Services, caller: Caller) -> CreatedStationOut:
    """Delegate the product's line to an offline station. The answer's ``bundle`` is shown
    once: it holds the station's signing key, its CA's key and the line's secrets."""
    request = stations.StationRequest(
        name=body.name,
        budget=body.budget,
        valid_days=body.valid_days,
        enrollment_token=body.enrollment_token,
        fixture_api_key=body.fixture_api_key,
        token_pool=body.token_pool,
    )
    made = stations.create_station(ctx, caller, product_id, request)
    return CreatedStationOut(station=StationOut.of(made.station), bundle=made.bundle)


@router.get("/stations")
def list_stations(ctx: Services, caller: Caller, product_id: str | None = None) -> list[StationOut]:
    """The organization's stations (of one product with ``product_id``), oldest first."""
    return [StationOut.of(s) for s in stations.list_stations(ctx, caller, product_id)]


@router.get("/stations/{station_id}")
def get_station(station_id: str, ctx: Services, caller: Caller) -> StationOut:
    """Where its ledger's replay stands (``head_sequence``): a station resumes a sync there."""
    return StationOut.of(stations.get_station(ctx, caller, station_id))


@router.post("/stations/{station_id}/revoke")
def revoke_station(
    station_id: str, ctx: Services, caller: Caller, body: StationRevokeIn | None = None
) -> StationOut:
    """Nothing it does from now (or ``as_of``) on is replayed, and its CA registers no new
    device; what its ledger shows it made before then still syncs and keeps working."""
    as_of = body.as_of if body is not None else None
    return StationOut.of(stations.revoke_station(ctx, caller, station_id, as_of))


@router.post(
    "/stations/{station_id}/ledger",
    response_model=SyncOut,
    responses={
        409: {"description": "The upload starts past the entry after the server's head: send that first."},
        422: {"description": "The sync stopped at an entry it could not believe."},
    },
)
def sync_ledger(
    station_id: str, body: LedgerUploadIn, ctx: Services, caller: Caller
) -> SyncOut | JSONResponse:
    """Replay ledger entries in order (the station's fixture API key). Entries replayed
    before are skipped, so a repeated upload changes nothing; the first entry that does not
    chain, is not signed by the station, or falls outside its window or budget stops the sync:
    422 with ``stopped_at`` and ``reason``, and what came before it applied. An upload that
    starts past the entry after the head (sent before the one it follows landed) changes
    nothing: 409 with ``expected_sequence``, the entry to send first."""
    report = station_sync.sync_ledger(ctx, caller, station_id, [entry.entry() for entry in body.entries])
    if report.waiting_for is not None:
        return problem(
            status.HTTP_409_CONFLICT,
            "Ledger upload out of order",
            f"The server holds entries through {report.head_sequence}: upload from entry"
            f" {report.waiting_for} first. Nothing was applied.",
            expected_sequence=report.waiting_for,
            head_sequence=report.head_sequence,
        )
    if report.stopped_at is not None:
        return problem(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "Ledger sync stopped",
            f"The sync stopped at entry {report.stopped_at}: {report.reason}",
            stopped_at=report.stopped_at,
            reason=report.reason,
            head_sequence=report.head_sequence,
            applied=report.applied,
        )
    return SyncOut(head_sequence=report.head_sequence, head_hash=report.head_hash, applied=report.applied)
