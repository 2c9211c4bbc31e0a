"""The audit log."""

from __future__ import annotations

from fastapi import APIRouter, Query

from lineside.entrypoints.api.constraints import Limit, SequenceCursor
from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.schemas import EventOut, PageOut
from lineside.services.audit import list_audit_events
from lineside.services.ports import EventFilter

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit-events")
def audit_events(
    ctx: Services,
    caller: Caller,
    type: str | None = Query(default=None, description="e.g. device.defined"),
    subject_id: str | None = Query(default=None, description="a device, product or key id"),
    cursor: SequenceCursor = None,
    limit: Limit = 100,
) -> PageOut[EventOut]:
    """Every event of your organization and its sub-organizations, oldest first."""
    page = list_audit_events(
        ctx,
        caller,
        filters=EventFilter(type=type, subject_id=subject_id),
        cursor=cursor,
        limit=limit,
    )
    return PageOut(items=[EventOut.of(e) for e in page.items], next_cursor=page.next_cursor)
