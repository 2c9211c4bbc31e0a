"""The console's factory line and audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from lineside.adapters.csv_files import csv_text as csv_rows_text
from lineside.domain.errors import DomainError
from lineside.domain.events import DomainEvent, EventType
from lineside.domain.lifecycle import DeviceState
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.console.seats import PAGE_SIZE, Seat, acted, seat_for, show, shown_after
from lineside.entrypoints.web.pages import message
from lineside.services import activation, audit, factory_tokens, overview
from lineside.services.ports import EventFilter

router = APIRouter(prefix="/console", include_in_schema=False)


# -- the factory line ------------------------------------------------------------------------


@router.get("/{organization_id}/factory", response_model=None)
async def factory_page(request: Request, organization_id: str) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    return show(request, seat, "factory.html", **await run_in_threadpool(_factory_context, request, seat))


LINE_DAYS = 7  # the range of the line's figures per fixture and per token


def _factory_context(request: Request, seat: Seat) -> dict[str, Any]:
    ctx = services(request)
    figures = overview.product_figures(ctx, seat.acting)  # every product, with its counts
    week = overview.activity(ctx, seat.acting, days=LINE_DAYS, bucket="day")
    return {
        "tokens": factory_tokens.list_factory_tokens(ctx, seat.acting),
        "names": {row.product_id: row.product_name for row in figures},
        "figures": figures,
        "week": week,
        "token_use": {figures.source: figures for figures in week.tokens},
        "runs": overview.latest_events(ctx, seat.acting, EventType.DEVICE_TESTED),
        "production_tokens": activation.latest_production_tokens(ctx, seat.acting),
        "now": ctx.clock(),
        "made": None,
        "states": DeviceState,
        "line_days": LINE_DAYS,
    }


@router.get("/{organization_id}/factory/test-runs", response_model=None)
async def live_test_runs(request: Request, organization_id: str) -> Response:
    """The factory page's latest test runs alone: the part that refreshes itself."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    runs = await run_in_threadpool(
        overview.latest_events, services(request), seat.acting, EventType.DEVICE_TESTED
    )
    return show(request, seat, "_test_runs.html", runs=runs)


@router.post("/{organization_id}/factory/enrollment-tokens", response_model=None)
async def create_enrollment_token(
    request: Request,
    organization_id: str,
    product: str = Form(""),
    name: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """A line's enrollment token: its secret is on this one page, never again."""
    return await shown_after(
        request,
        organization_id,
        csrf,
        lambda ctx, seat: factory_tokens.create_factory_token(
            ctx, seat.acting, product_id=product, name=name or None
        ),
        "factory.html",
        _factory_context,
    )


@router.post("/{organization_id}/factory/enrollment-tokens/{token_id}/revoke", response_model=None)
async def revoke_enrollment_token(
    request: Request, organization_id: str, token_id: str, csrf: str = Form("")
) -> Response:
    return await acted(
        request,
        organization_id,
        csrf,
        lambda ctx, principal: factory_tokens.revoke_factory_token(ctx, principal, token_id),
        refused="Not revoked",
        then=f"/console/{organization_id}/factory?revoked=1",
    )


# -- the audit log ---------------------------------------------------------------------------

AUDIT_EXPORT_PAGE = 1000


def _audit_filters(event_type: str, subject: str) -> EventFilter:
    return EventFilter(type=event_type.strip() or None, subject_id=subject.strip() or None)


@router.get("/{organization_id}/audit", response_model=None)
async def audit_page(
    request: Request, organization_id: str, type: str = "", subject: str = "", cursor: str = ""
) -> Response:
    """Every event of the organization and below, oldest first, a page at a time."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    query = {"type": type, "subject": subject}
    try:
        found = await run_in_threadpool(
            lambda: audit.list_audit_events(
                services(request),
                seat.acting,
                filters=_audit_filters(type, subject),
                cursor=cursor or None,
                limit=PAGE_SIZE,
            )
        )
    except DomainError as error:
        return show(request, seat, "audit.html", status_of(error), error=error.detail, page=None, query=query)
    return show(request, seat, "audit.html", page=found, query=query)


@router.get("/{organization_id}/audit.csv", response_model=None)
async def audit_csv(request: Request, organization_id: str, type: str = "", subject: str = "") -> Response:
    """The filtered audit log as CSV (no cell can reach a spreadsheet as a formula)."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx, filters = services(request), _audit_filters(type, subject)

    def chunks() -> Iterator[str]:
        """A page of events at a time (starlette iterates this in its threadpool)."""
        yield csv_rows_text([AUDIT_COLUMNS])
        cursor: str | None = None
        while True:
            page = audit.list_audit_events(
                ctx, seat.acting, filters=filters, cursor=cursor, limit=AUDIT_EXPORT_PAGE
            )
            yield csv_rows_text(_audit_row(event) for event in page.items)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    try:  # the first page here, so that a refusal is a page, not a broken download
        await run_in_threadpool(
            audit.list_audit_events, ctx, seat.acting, filters=filters, cursor=None, limit=1
        )
    except DomainError as error:
        return message(request, status_of(error), "No export", error.detail)
    disposition = f'attachment; filename="audit-{organization_id}.csv"'
    headers = {"Content-Disposition": disposition, "Cache-Control": "no-store"}
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=headers)


AUDIT_COLUMNS = ["occurred_at", "type", "actor", "subject_type", "subject_id", "organization_id", "data"]


def _audit_row(event: DomainEvent) -> list[str]:
    data = json.dumps(event.data, sort_keys=True, default=str)
    return [
        event.occurred_at.isoformat(),
        event.type,
        event.actor,
        event.subject_type,
        event.subject_id,
        event.organization_id,
        data,
    ]
