"""The console's firmware: a product's releases, uploading one, deploying one to a device
group, and which devices report running each version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from lineside.domain.errors import DomainError, InvalidInput
from lineside.domain.models import FirmwareKind
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.console.seats import Seat, chosen, product_choices, seat_for, show
from lineside.entrypoints.web.pages import check_csrf, message
from lineside.services import firmware, firmware_groups, firmware_usage, products
from lineside.services.context import ServiceContext
from lineside.services.firmware import NewRelease

router = APIRouter(prefix="/console", include_in_schema=False)
_CHUNK = 64 * 1024


def _firmware_context(ctx: ServiceContext, seat: Seat, product_id: str) -> dict[str, Any]:
    """The page for one product (the first one when none is chosen); a product the seat
    cannot see raises NotFound, as on every other page."""
    choices = product_choices(ctx, seat)
    chosen = product_id or (choices["products"][0].id if choices["products"] else "")
    context: dict[str, Any] = {**choices, "product": None, "kinds": list(FirmwareKind), "form": {}}
    if not chosen:
        return context
    product = products.get_product(ctx, seat.acting, chosen)
    releases = firmware.list_releases(ctx, seat.acting, product.id)
    return {
        **context,
        "product": product,
        "releases": releases,
        "releases_by_id": {release.id: release for release in releases},
        "groups": products.list_groups(ctx, seat.acting, product.id),
        "in_use": firmware_usage.devices_by_version(ctx, seat.acting, product.id),
        "counted_up_to": firmware_usage.COUNTED_UP_TO,
    }


async def _firmware_page(
    request: Request, seat: Seat, product_id: str, status: int = 200, **extra: Any
) -> Response:
    try:
        context = await run_in_threadpool(_firmware_context, services(request), seat, product_id)
    except DomainError as error:
        return message(request, status_of(error), "Not found", error.detail)
    return show(request, seat, "firmware.html", status, **{**context, **extra})


def _back_to(organization_id: str, product_id: str, done: str) -> RedirectResponse:
    query = urlencode({"product": product_id, done: "1"})
    return RedirectResponse(f"/console/{organization_id}/firmware?{query}", status_code=303)


@router.get("/{organization_id}/firmware", response_model=None)
async def firmware_page(request: Request, organization_id: str, product: str = "") -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    return await _firmware_page(request, seat, product)


@router.post("/{organization_id}/firmware/releases", response_model=None)
async def upload_release(
    request: Request,
    organization_id: str,
    product: str = Form(""),
    version: str = Form(""),
    kind: str = Form(""),
    notes: str = Form(""),
    file: Annotated[UploadFile | None, File()] = None,
    csrf: str = Form(""),
) -> Response:
    """An image from the form's file, stored as it is read, as a release of the product."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    try:
        check_csrf(request, csrf)
        new = NewRelease(
            product_id=product,
            kind=chosen(FirmwareKind, kind, "kind of release"),
            version=version.strip(),
            notes=notes,
        )
        if file is None or not file.filename:
            raise InvalidInput("Choose the firmware image file to upload.")
        await firmware.upload_release(services(request), seat.acting, new, _chunks(file))
    except DomainError as error:
        form = {"version": version, "kind": kind, "notes": notes}
        return await _firmware_page(
            request, seat, product, status_of(error), error=error.detail, form={"upload": form}
        )
    return _back_to(organization_id, product, "uploaded")


async def _chunks(file: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await file.read(_CHUNK):
        yield chunk


@router.post("/{organization_id}/firmware/groups/{group_id}/deployments", response_model=None)
async def deploy_release(
    request: Request,
    organization_id: str,
    group_id: str,
    product: str = Form(""),
    release: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """The chosen release becomes the group's firmware: every member gets it at its next check."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    try:
        check_csrf(request, csrf)
        await run_in_threadpool(
            firmware_groups.deploy_release, services(request), seat.acting, group_id, release
        )
    except DomainError as error:
        form = {"group": group_id, "release": release}
        return await _firmware_page(
            request, seat, product, status_of(error), error=error.detail, form={"deploy": form}
        )
    return _back_to(organization_id, product, "deployed")
