"""What the console does to one device: issue it a credential (shown once), revoke its
credentials, disclaim it from its owner, revoke it, delete it. Each that breaks something is
asked for on a page that says what, then done by a CSRF-checked POST."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from lineside.domain.errors import DomainError
from lineside.domain.models import CredentialType, Principal
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.console.seats import Seat, acted, chosen, seat_for, show
from lineside.entrypoints.web.pages import check_csrf, message
from lineside.services import claims, credentials, devices
from lineside.services.context import ServiceContext

router = APIRouter(prefix="/console", include_in_schema=False)


@dataclass(frozen=True)
class Action:
    title: str
    consequence: str  # what it breaks, said before it is done
    button: str
    run: Callable[[ServiceContext, Principal, str], Any]
    done: str


ACTIONS = {
    "disclaim": Action(
        "Take the device back from its owner",
        "It leaves its owner's account at once; the same QR code can claim it again.",
        "Disclaim",
        claims.disclaim_device,
        "disclaimed",
    ),
    "revoke": Action(
        "Revoke the device",
        "Its token, MQTT password and certificates stop working at once, and it can never "
        "activate or connect again. This cannot be undone.",
        "Revoke for good",
        devices.revoke_device,
        "revoked",
    ),
    "revoke-credentials": Action(
        "Revoke the device's credentials",
        "Its token, MQTT password and certificates stop working at once: it is cut off until "
        "it is given new credentials. The device itself stays.",
        "Revoke its credentials",
        credentials.revoke_credentials,
        "cut off from its credentials",
    ),
    "delete": Action(
        "Delete the device",
        "It is gone at once: its credentials stop working, it leaves its owner's account, and "
        "its QR code will say the device was deleted. Its events stay in the audit log.",
        "Delete for good",
        claims.delete_device,
        "deleted",
    ),
}


@router.post("/{organization_id}/devices/{device_id}/credentials", response_model=None)
async def issue(
    request: Request, organization_id: str, device_id: str, kind: str = Form(""), csrf: str = Form("")
) -> Response:
    """A new token, MQTT password or factory key and certificate, on a page of its own: the
    secret is shown this once (the previous one of its kind stops working)."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx = services(request)
    try:
        check_csrf(request, csrf)
        chosen_kind = chosen(CredentialType, kind, "kind of credential")
        issued = await run_in_threadpool(
            credentials.issue_credential, ctx, seat.acting, device_id, chosen_kind
        )
        device = await run_in_threadpool(devices.get_device, ctx, seat.acting, device_id)
    except DomainError as error:
        return message(request, status_of(error), "No credential issued", error.detail)
    return show(request, seat, "credential.html", device=device, issued=issued)


@router.get("/{organization_id}/devices/{device_id}/{action}", response_model=None)
async def confirm(request: Request, organization_id: str, device_id: str, action: str) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    chosen = ACTIONS.get(action)
    if chosen is None:
        return message(request, 404, "Not found", "There is no such thing to do to a device.")
    try:
        device = await run_in_threadpool(devices.get_device, services(request), seat.acting, device_id)
    except DomainError as error:
        return message(request, status_of(error), "Not found", error.detail)
    return show(request, seat, "confirm.html", device=device, action=action, chosen=chosen)


@router.post("/{organization_id}/devices/{device_id}/{action}", response_model=None)
async def act(
    request: Request, organization_id: str, device_id: str, action: str, csrf: str = Form("")
) -> Response:
    chosen = ACTIONS.get(action)
    if chosen is None:
        return message(request, 404, "Not found", "There is no such thing to do to a device.")
    devices_page = f"/console/{organization_id}/devices"
    return await acted(
        request,
        organization_id,
        csrf,
        lambda ctx, principal: chosen.run(ctx, principal, device_id),
        refused="Not done",
        then=f"{devices_page}?deleted=1"
        if action == "delete"
        else f"{devices_page}/{device_id}?done={chosen.done}",
    )
