"""The console's product page: a product's facts and settings (name, metadata fields, blessing),
its device groups (with when a production or pre-production group loads application firmware,
the Electric Imp setting that factory activation needs) and its MQTT provisioning, whose secret
is on the page that issued it and never again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from lineside.domain.errors import DomainError
from lineside.domain.metadata import MetadataField
from lineside.domain.models import ApplicationFirmwareAfter, GroupKind, Principal
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.console.fleet import metadata_fields
from lineside.entrypoints.web.console.seats import Seat, chosen, seat_for, show
from lineside.entrypoints.web.pages import check_csrf, message
from lineside.services import firmware_groups, product_provisioning, products
from lineside.services.context import ServiceContext

router = APIRouter(prefix="/console", include_in_schema=False)

Act = Callable[[ServiceContext, Principal], object]

# What a redirect after a form says (?done=...), so no query parameter writes on the page.
NOTICES = {
    "saved": "Product settings saved.",
    "group": "Device group created.",
    "firmware": "The group's firmware setting is saved.",
    "disabled": "Provisioning is disabled: requests with the secret fail from now on.",
}


def _context(ctx: ServiceContext, seat: Seat, product_id: str) -> dict[str, Any]:
    """The product, its groups with their firmware, its provisioning; NotFound for a product
    the seat cannot see."""
    product = products.get_product(ctx, seat.acting, product_id)
    groups = products.list_groups(ctx, seat.acting, product.id)
    return {
        "product": product,
        "groups": [firmware_groups.get_group(ctx, seat.acting, group.id) for group in groups],
        "provisioning": product_provisioning.get_provisioning(ctx, seat.acting, product.id),
        "fields_text": fields_text(product.metadata_fields),
        "kinds": list(GroupKind),
        "afters": list(ApplicationFirmwareAfter),
        "made": None,
        "form": {},
        "failed": "",
    }


def fields_text(fields: list[MetadataField]) -> str:
    """The fields as the form writes them (``colour: string required``), one per line: what
    ``fleet.metadata_fields`` reads back."""
    return "".join(f"{f.name}: {f.type.value}{' required' if f.required else ''}\n" for f in fields)


async def _shown(request: Request, seat: Seat, product_id: str, status: int = 200, **extra: Any) -> Response:
    try:
        context = await run_in_threadpool(_context, services(request), seat, product_id)
    except DomainError as error:
        return message(request, status_of(error), error.title, error.detail)
    return show(request, seat, "product.html", status, **{**context, **extra})


@router.get("/{organization_id}/products/{product_id}", response_model=None)
async def product_page(request: Request, organization_id: str, product_id: str, done: str = "") -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    return await _shown(request, seat, product_id, notice=NOTICES.get(done))


async def _submitted(
    request: Request,
    organization_id: str,
    product_id: str,
    csrf: str,
    act: Act,
    *,
    section: str,
    form: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    """One form of the product page: the seat, the CSRF token, the service call. Then back to
    the page with the notice ``done`` (303), or, without one, the page at once with what was
    made (a secret shown this once). Refused: the page with why, beside ``section``'s form as
    it was filled in."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    try:
        check_csrf(request, csrf)
        made = await run_in_threadpool(act, services(request), seat.acting)
    except DomainError as error:
        refused = {"error": error.detail, "failed": section, "form": form or {}}
        return await _shown(request, seat, product_id, status_of(error), **refused)
    if done is None:
        return await _shown(request, seat, product_id, made=made)
    return RedirectResponse(f"/console/{organization_id}/products/{product_id}?done={done}", status_code=303)


@router.post("/{organization_id}/products/{product_id}", response_model=None)
async def edit_product(
    request: Request,
    organization_id: str,
    product_id: str,
    name: str = Form(""),
    fields: str = Form(""),
    requires_blessing: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """The settings that may change after creation (the service's ``update_product``, which
    says which metadata changes the product's devices refuse): the name, the metadata fields
    (one per line, as on the products page) and whether units need blessing."""
    return await _submitted(
        request,
        organization_id,
        product_id,
        csrf,
        lambda ctx, principal: products.update_product(
            ctx,
            principal,
            product_id,
            name=name,
            fields=metadata_fields(fields),
            requires_blessing=bool(requires_blessing),
        ),
        section="edit",
        form={"name": name, "fields": fields, "requires_blessing": requires_blessing},
        done="saved",
    )


@router.post("/{organization_id}/products/{product_id}/groups", response_model=None)
async def create_group(
    request: Request,
    organization_id: str,
    product_id: str,
    name: str = Form(""),
    kind: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    return await _submitted(
        request,
        organization_id,
        product_id,
        csrf,
        lambda ctx, principal: products.create_group(
            ctx, principal, product_id, name=name, kind=chosen(GroupKind, kind, "kind of group")
        ),
        section="group",
        form={"name": name, "kind": kind},
        done="group",
    )


@router.post("/{organization_id}/products/{product_id}/groups/{group_id}/firmware", response_model=None)
async def set_firmware_after(
    request: Request,
    organization_id: str,
    product_id: str,
    group_id: str,
    after: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """When the group's members load application firmware: after blessing or after activation."""
    return await _submitted(
        request,
        organization_id,
        product_id,
        csrf,
        lambda ctx, principal: firmware_groups.set_application_firmware_after(
            ctx, principal, group_id, chosen(ApplicationFirmwareAfter, after, "moment to load firmware")
        ),
        section="groups",
        form={"after": after, "group": group_id},
        done="firmware",
    )


@router.post("/{organization_id}/products/{product_id}/provisioning", response_model=None)
async def configure_provisioning(
    request: Request, organization_id: str, product_id: str, csrf: str = Form("")
) -> Response:
    """Enable provisioning with a new secret, or issue a new one (the old stops at once): the
    secret is on the page this answers with, never again."""
    return await _submitted(
        request,
        organization_id,
        product_id,
        csrf,
        lambda ctx, principal: product_provisioning.configure_provisioning(ctx, principal, product_id),
        section="provisioning",
    )


@router.post("/{organization_id}/products/{product_id}/provisioning/disable", response_model=None)
async def disable_provisioning(
    request: Request, organization_id: str, product_id: str, csrf: str = Form("")
) -> Response:
    return await _submitted(
        request,
        organization_id,
        product_id,
        csrf,
        lambda ctx, principal: product_provisioning.disable_provisioning(ctx, principal, product_id),
        section="provisioning",
        done="disabled",
    )
