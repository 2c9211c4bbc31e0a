"""The console's webhooks: endpoints (made with the event types they want, the signing secret
shown once; turned off and on; sent a test event), and each endpoint's recent deliveries,
re-sent on demand."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from lineside.domain.errors import DomainError
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.console.seats import PAGE_SIZE, Seat, acted, seat_for, show, shown_after
from lineside.entrypoints.web.pages import message
from lineside.services import webhooks
from lineside.services.webhooks import EndpointChanges

router = APIRouter(prefix="/console", include_in_schema=False)
ENDPOINTS_SHOWN = 100


def _context(request: Request, seat: Seat) -> dict[str, Any]:
    listed = webhooks.list_endpoints(services(request), seat.acting, cursor=None, limit=ENDPOINTS_SHOWN)
    return {"endpoints": listed.items, "event_types": webhooks.known_event_types(), "made": None}


@router.get("/{organization_id}/webhooks", response_model=None)
async def webhooks_page(request: Request, organization_id: str) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    return show(request, seat, "webhooks.html", **await run_in_threadpool(_context, request, seat))


@router.post("/{organization_id}/webhooks", response_model=None)
async def create_endpoint(request: Request, organization_id: str) -> Response:
    """A new endpoint; its signing secret is on the page this answers, and never again."""
    async with request.form(max_fields=200) as form:
        url, description = str(form.get("url", "")), str(form.get("description", ""))
        chosen, csrf = [str(value) for value in form.getlist("event_types")], str(form.get("csrf", ""))
    return await shown_after(
        request,
        organization_id,
        csrf,
        lambda ctx, seat: webhooks.create_endpoint(
            ctx, seat.acting, url=url, event_types=chosen, description=description
        ),
        "webhooks.html",
        _context,
        form={"url": url, "description": description, "event_types": chosen},
    )


# Before ``turn``, whose ``{switch}`` would take "test" for a switch it does not know.
@router.post("/{organization_id}/webhooks/{endpoint_id}/test", response_model=None)
async def send_test(
    request: Request, organization_id: str, endpoint_id: str, csrf: str = Form("")
) -> Response:
    """A ``webhook.test`` event for this endpoint alone."""
    return await acted(
        request,
        organization_id,
        csrf,
        lambda ctx, principal: webhooks.send_test_event(ctx, principal, endpoint_id),
        refused="No test event sent",
        then=f"/console/{organization_id}/webhooks/{endpoint_id}?tested=1",
    )


@router.post("/{organization_id}/webhooks/{endpoint_id}/{switch}", response_model=None)
async def turn(
    request: Request, organization_id: str, endpoint_id: str, switch: str, csrf: str = Form("")
) -> Response:
    """Turn an endpoint off (its pending deliveries are cancelled) or on again."""
    if switch not in ("enable", "disable"):
        return message(request, 404, "Not found", "An endpoint is enabled or disabled.")
    changes = EndpointChanges(enabled=switch == "enable")
    return await acted(
        request,
        organization_id,
        csrf,
        lambda ctx, principal: webhooks.update_endpoint(ctx, principal, endpoint_id, changes),
        refused="Not changed",
        then=f"/console/{organization_id}/webhooks/{endpoint_id}",
    )


@router.get("/{organization_id}/webhooks/{endpoint_id}", response_model=None)
async def endpoint_page(
    request: Request, organization_id: str, endpoint_id: str, cursor: str = ""
) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx = services(request)

    def read() -> dict[str, Any]:
        endpoint = webhooks.get_endpoint(ctx, seat.acting, endpoint_id)
        sent = webhooks.list_deliveries(
            ctx, seat.acting, endpoint.id, status=None, cursor=cursor or None, limit=PAGE_SIZE
        )
        return {"endpoint": endpoint, "deliveries": sent}

    try:
        context = await run_in_threadpool(read)
    except DomainError as error:
        return message(request, status_of(error), "Not found", error.detail)
    return show(request, seat, "endpoint.html", **context)


@router.post("/{organization_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend", response_model=None)
async def resend(
    request: Request, organization_id: str, endpoint_id: str, delivery_id: str, csrf: str = Form("")
) -> Response:
    return await acted(
        request,
        organization_id,
        csrf,
        lambda ctx, principal: webhooks.resend_delivery(ctx, principal, delivery_id),
        refused="Not re-sent",
        then=f"/console/{organization_id}/webhooks/{endpoint_id}?resent=1",
    )
