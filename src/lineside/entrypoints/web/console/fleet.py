"""The console's overview, devices and products."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from lineside.domain.errors import DomainError, InvalidInput
from lineside.domain.lifecycle import DeviceState
from lineside.domain.metadata import FieldType, MetadataField
from lineside.domain.models import EnrollmentPolicy
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.console.seats import (
    NOT_A_MAKER,
    PRODUCTS_SHOWN,
    Seat,
    makers_of,
    seat_for,
    show,
)
from lineside.entrypoints.web.pages import check_csrf, message, signed_in
from lineside.services import (
    audit,
    credentials,
    devices,
    factory_line,
    factory_tokens,
    overview,
    products,
)
from lineside.services.ports import EventFilter

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("", response_model=None)
def console_home(request: Request) -> Response:
    """The first manufacturer organization the person belongs to."""
    person = signed_in(request)
    if person is None:
        return RedirectResponse("/signin?next=/console", status_code=303)
    makers = makers_of(person)
    if not makers:
        return message(request, 403, "No console for you yet", NOT_A_MAKER)
    return RedirectResponse(f"/console/{makers[0][0].id}", status_code=303)


@router.get("/{organization_id}", response_model=None)
async def overview_page(
    request: Request, organization_id: str, product: str = "", days: str = "30", bucket: str = "day"
) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx = services(request)
    query = {"product": product, "days": int(days) if days.isdigit() else days, "bucket": bucket}

    def read() -> dict[str, Any]:
        figures = overview.overview(ctx, seat.acting)
        context: dict[str, Any] = {"figures": figures, "recent_events": figures.recent_events}
        try:
            if not days.isdigit():
                raise InvalidInput("The range is a whole number of days.")
            activity = overview.activity(
                ctx, seat.acting, days=int(days), bucket=bucket, product_id=product or None
            )
        except DomainError as error:
            return {**context, "activity": None, "error": error.detail, "status": status_of(error)}
        tokens = factory_tokens.list_factory_tokens(ctx, seat.acting)
        return {
            **context,
            "activity": activity,
            "funnel_series": funnel_series(activity),
            "hourly": hourly_series(activity),
            "token_names": {token.id: token.name for token in tokens},
        }

    context = await run_in_threadpool(read)
    status = context.pop("status", 200)
    return show(request, seat, "overview.html", status, states=list(DeviceState), query=query, **context)


@router.get("/{organization_id}/activity", response_model=None)
async def activity_feed(request: Request, organization_id: str) -> Response:
    """The overview's latest events alone: the part of the page that refreshes itself."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    recent = await run_in_threadpool(overview.latest_events, services(request), seat.acting)
    return show(request, seat, "_activity.html", recent_events=recent)


@dataclass(frozen=True)
class Series:
    """One measure over time, as a chart shows it."""

    title: str
    key: str
    unit: str
    points: list[tuple[str, int]]

    @property
    def total(self) -> int:
        return sum(count for _label, count in self.points)

    @property
    def peak(self) -> int:
        return max((count for _label, count in self.points), default=0)


FUNNEL_TITLES = {
    "defined": "Defined",
    "under_test": "Enrolled (under test)",
    "blessed": "Blessed",
    "activated": "Activated",
    "claimed": "Claimed",
}


def funnel_series(activity: overview.Activity) -> list[Series]:
    return [
        Series(
            FUNNEL_TITLES[step],
            step,
            activity.bucket,
            [(bucket.start.strftime("%d %b"), bucket.count(step)) for bucket in activity.buckets],
        )
        for step in overview.FUNNEL_STEPS
    ]


def hourly_series(activity: overview.Activity) -> Series:
    points = [
        (bucket.start.strftime("%H:00"), bucket.count("activated"))
        for bucket in activity.activations_per_hour
    ]
    return Series("Activations per hour (UTC)", "activations-per-hour", "hour", points)


# -- devices ---------------------------------------------------------------------------------


@router.get("/{organization_id}/devices/{device_id}", response_model=None)
async def device_page(request: Request, organization_id: str, device_id: str) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx = services(request)

    def read() -> dict[str, Any]:
        device = devices.get_device(ctx, seat.acting, device_id)
        history = audit.list_audit_events(
            ctx, seat.acting, filters=EventFilter(subject_id=device.id), cursor=None, limit=100
        )
        return {
            "device": device,
            "product": products.get_product(ctx, seat.acting, device.product_id),
            "history": history.items,
            "runs": factory_line.list_test_runs(ctx, seat.acting, device.id),
            "certificates": credentials.list_certificates(ctx, seat.acting, device.id),
        }

    try:
        context = await run_in_threadpool(read)
    except DomainError as error:
        return message(request, status_of(error), "Not found", error.detail)
    return show(request, seat, "device.html", **context)


# -- products --------------------------------------------------------------------------------


@router.get("/{organization_id}/products", response_model=None)
async def products_page(request: Request, organization_id: str) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    made = await run_in_threadpool(
        lambda: products.list_products(services(request), seat.acting, cursor=None, limit=PRODUCTS_SHOWN)
    )
    return show(request, seat, "products.html", made=made.items, form={}, policies=list(EnrollmentPolicy))


@router.post("/{organization_id}/products", response_model=None)
async def create_product(
    request: Request,
    organization_id: str,
    name: str = Form(""),
    fields: str = Form(""),
    policy: str = Form("create"),
    requires_blessing: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx = services(request)
    try:
        check_csrf(request, csrf)
        made = await run_in_threadpool(
            lambda: products.create_product(
                ctx,
                seat.acting,
                name=name,
                fields=metadata_fields(fields),
                enrollment_policy=_policy(policy),
                requires_blessing=bool(requires_blessing),
            )
        )
    except DomainError as error:
        listed = await run_in_threadpool(
            lambda: products.list_products(ctx, seat.acting, cursor=None, limit=PRODUCTS_SHOWN)
        )
        form = {"name": name, "fields": fields, "policy": policy, "requires_blessing": requires_blessing}
        return show(
            request,
            seat,
            "products.html",
            status_of(error),
            made=listed.items,
            form=form,
            error=error.detail,
            policies=list(EnrollmentPolicy),
        )
    return RedirectResponse(f"/console/{organization_id}/products?created={made.id}", status_code=303)


def metadata_fields(text: str) -> list[MetadataField]:
    """The form's metadata fields, one per line: ``name: type`` with ``required`` after it
    when the field must be given (``colour: string required``)."""
    parsed = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, _, rest = line.partition(":")
        words = rest.split()
        kinds = {kind.value for kind in FieldType}
        if not name.strip() or not words or words[0] not in kinds or words[1:] not in ([], ["required"]):
            raise InvalidInput(
                f"Metadata field line {number} should read 'name: type' or 'name: type required', "
                f"type one of {', '.join(sorted(kinds))}."
            )
        parsed.append(
            MetadataField(name=name.strip(), type=FieldType(words[0]), required=words[1:] == ["required"])
        )
    return parsed


def _policy(text: str) -> EnrollmentPolicy:
    try:
        return EnrollmentPolicy(text)
    except ValueError:
        raise InvalidInput("The enrollment policy is 'create' or 'predefined'.") from None
