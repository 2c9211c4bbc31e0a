"""The manufacturer console: /console, for people of a manufacturer's organization.

Every page acts for one organization the person belongs to (its id is in the path), with
the person's role there; every action calls the same service as the API, which checks the
role's scope. Plain HTML forms and links: no script, like the owner's pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from lineside.domain.errors import BatchRejected, DomainError, InvalidInput
from lineside.domain.lifecycle import DeviceState
from lineside.domain.metadata import FieldType, MetadataField
from lineside.domain.models import EnrollmentPolicy, Organization, OrganizationKind, Principal, Role, Scope
from lineside.entrypoints.api.batch_files import export_file, labels_pdf_file, labels_zip_file
from lineside.entrypoints.api.bodies import csv_text
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.pages import Person, check_csrf, message, page, signed_in
from lineside.services import audit, devices, factory_line, overview, people, products, static_tokens
from lineside.services.context import ServiceContext
from lineside.services.ports import DeviceFilter, EventFilter

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 50
NOT_A_MAKER = (
    "The console is for people of a manufacturer's organization. Ask its owner to invite you "
    "(your own devices are under Your devices)."
)


@dataclass(frozen=True)
class Seat:
    """Who is looking, for which organization, with which role; the organizations they may switch to."""

    person: Person
    acting: Principal
    makers: list[tuple[Organization, Role]]

    @property
    def organization(self) -> Organization:
        return self.acting.organization

    def may(self, scope: str) -> bool:
        return self.acting.can(Scope(scope))


def _makers(person: Person) -> list[tuple[Organization, Role]]:
    return [(org, role) for org, role in person.memberships if org.kind is OrganizationKind.MANUFACTURER]


def _seat(request: Request, organization_id: str) -> Seat | Response:
    """The seat for ``organization_id``, or the page to show instead (sign in, not a member)."""
    person = signed_in(request)
    if person is None:
        return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
    makers = _makers(person)
    if not any(org.id == organization_id for org, _role in makers):
        return message(request, 404, "Not found", "No organization of yours has this id.")
    acting = people.authenticate_user_token(services(request), person.token, organization_id)
    return Seat(person, acting, makers)


def _show(request: Request, seat: Seat, template: str, status: int = 200, **context: Any) -> Response:
    return page(request, f"console/{template}", status, user=seat.person.user, seat=seat, **context)


@router.get("", response_model=None)
def console_home(request: Request) -> Response:
    """The first manufacturer organization the person belongs to."""
    person = signed_in(request)
    if person is None:
        return RedirectResponse("/signin?next=/console", status_code=303)
    makers = _makers(person)
    if not makers:
        return message(request, 403, "No console for you yet", NOT_A_MAKER)
    return RedirectResponse(f"/console/{makers[0][0].id}", status_code=303)


@router.get("/{organization_id}", response_model=None)
async def overview_page(request: Request, organization_id: str) -> Response:
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    figures = await run_in_threadpool(overview.overview, services(request), seat.acting)
    return _show(request, seat, "overview.html", figures=figures, states=list(DeviceState))


# -- devices ---------------------------------------------------------------------------------


@router.get("/{organization_id}/devices", response_model=None)
async def devices_page(
    request: Request,
    organization_id: str,
    product: str = "",
    state: str = "",
    serial: str = "",
    cursor: str = "",
) -> Response:
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx, query = services(request), {"product": product, "state": state, "serial": serial}

    def read() -> dict[str, Any]:
        context = _list_context(ctx, seat)
        try:
            filters = DeviceFilter(
                product_id=product or None,
                state=DeviceState(state) if state else None,
                serial_number=serial.strip() or None,
            )
            limit = PAGE_SIZE
            context["page"] = devices.list_devices(
                ctx, seat.acting, filters=filters, cursor=cursor or None, limit=limit
            )
        except ValueError:
            context["error"], context["status"] = f"Unknown state '{state}'.", 422
        except DomainError as error:
            context["error"], context["status"] = error.detail, status_of(error)
        return context

    context = await run_in_threadpool(read)
    return _show(request, seat, "devices.html", context.pop("status", 200), query=query, **context)


def _list_context(ctx: ServiceContext, seat: Seat) -> dict[str, Any]:
    made = products.list_products(ctx, seat.acting, cursor=None, limit=200).items
    return {
        "products": made,
        "names": {p.id: p.name for p in made},
        "states": list(DeviceState),
        "page": None,
    }


@router.get("/{organization_id}/devices/{device_id}", response_model=None)
async def device_page(request: Request, organization_id: str, device_id: str) -> Response:
    seat = await run_in_threadpool(_seat, request, organization_id)
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
        }

    try:
        context = await run_in_threadpool(read)
    except DomainError as error:
        return message(request, status_of(error), "Not found", error.detail)
    return _show(request, seat, "device.html", **context)


# -- products --------------------------------------------------------------------------------


@router.get("/{organization_id}/products", response_model=None)
async def products_page(request: Request, organization_id: str) -> Response:
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    made = await run_in_threadpool(
        lambda: products.list_products(services(request), seat.acting, cursor=None, limit=200)
    )
    return _show(request, seat, "products.html", made=made.items, form={}, policies=list(EnrollmentPolicy))


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
    seat = await run_in_threadpool(_seat, request, organization_id)
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
            lambda: products.list_products(ctx, seat.acting, cursor=None, limit=200)
        )
        form = {"name": name, "fields": fields, "policy": policy, "requires_blessing": requires_blessing}
        return _show(
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


# -- static tokens (Blynk.Console's page) ----------------------------------------------------


@router.get("/{organization_id}/static-tokens", response_model=None)
async def static_tokens_page(request: Request, organization_id: str) -> Response:
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    return _show(
        request, seat, "static_tokens.html", **await run_in_threadpool(_batches_context, request, seat)
    )


def _batches_context(request: Request, seat: Seat) -> dict[str, Any]:
    ctx = services(request)
    made = products.list_products(ctx, seat.acting, cursor=None, limit=200).items
    return {
        "batches": static_tokens.latest_batches(ctx, seat.acting),
        "products": made,
        "names": {product.id: product.name for product in made},
        "form": {},
    }


@router.post("/{organization_id}/static-tokens", response_model=None)
async def create_static_tokens(
    request: Request,
    organization_id: str,
    product: str = Form(""),
    count: str = Form(""),
    mapping: str = Form(""),
    file: Annotated[UploadFile | None, File()] = None,
    csrf: str = Form(""),
) -> Response:
    """N units, or one per row of an uploaded CSV (its headers renamed by ``mapping`` lines
    ``CSV header = field``): every bad row is shown, nothing written, when any is bad."""
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx = services(request)
    uploaded = await file.read() if file is not None and file.filename else b""
    try:
        check_csrf(request, csrf)
        arguments = _batch_arguments(count, uploaded, mapping)
        batch = await run_in_threadpool(
            lambda: static_tokens.create_static_tokens(ctx, seat.acting, product, **arguments)
        )
    except DomainError as error:
        context = await run_in_threadpool(_batches_context, request, seat)
        context["form"] = {"product": product, "count": count, "mapping": mapping}
        rows = error.errors if isinstance(error, BatchRejected) else []
        return _show(
            request, seat, "static_tokens.html", status_of(error), error=error.detail, rows=rows, **context
        )
    return RedirectResponse(f"/console/{organization_id}/static-tokens/{batch.id}?created=1", status_code=303)


def _batch_arguments(count: str, uploaded: bytes, mapping: str) -> dict[str, Any]:
    if uploaded and count.strip():
        raise InvalidInput("Give a number of units or a CSV file, not both.")
    if uploaded:
        return {"csv_text": csv_text(uploaded), "mapping": column_mapping(mapping)}
    if not count.strip().isdigit():
        raise InvalidInput("Give a number of units (a whole number), or choose a CSV file.")
    return {"count": int(count)}


def column_mapping(text: str) -> dict[str, str]:
    """``CSV header = field`` per line, as the form takes a mapping."""
    mapping = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        header, equals, name = line.partition("=")
        if not equals or not header.strip() or not name.strip():
            raise InvalidInput(f"Column mapping line {number} should read 'CSV header = field name'.")
        mapping[header.strip()] = name.strip()
    return mapping


@router.get("/{organization_id}/static-tokens/{batch_id}", response_model=None)
async def batch_page(request: Request, organization_id: str, batch_id: str) -> Response:
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx = services(request)
    try:
        batch = await run_in_threadpool(static_tokens.get_batch, ctx, seat.acting, batch_id)
        product = await run_in_threadpool(products.get_product, ctx, seat.acting, batch.product_id)
    except DomainError as error:
        return message(request, status_of(error), "Not found", error.detail)
    return _show(request, seat, "batch.html", batch=batch, product=product)


@router.get("/{organization_id}/static-tokens/{batch_id}/labels.{kind}", response_model=None)
async def batch_labels(request: Request, organization_id: str, batch_id: str, kind: str) -> Response:
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    files = {"pdf": labels_pdf_file, "zip": labels_zip_file}
    if kind not in files:
        return message(request, 404, "Not found", "Labels come as labels.pdf or labels.zip.")
    try:
        return await files[kind](request, services(request), seat.acting, batch_id)
    except DomainError as error:
        return message(request, status_of(error), "Not found", error.detail)


@router.post("/{organization_id}/static-tokens/{batch_id}/export", response_model=None)
async def batch_export(
    request: Request, organization_id: str, batch_id: str, csrf: str = Form("")
) -> Response:
    """The one download with the device tokens: a POST with the form's CSRF token, so no
    link elsewhere can spend it."""
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    try:
        check_csrf(request, csrf)
        return await export_file(request, services(request), seat.acting, batch_id)
    except DomainError as error:
        return message(request, status_of(error), "Not exported", error.detail)


@router.post("/{organization_id}/static-tokens/{batch_id}/regenerate", response_model=None)
async def batch_regenerate(
    request: Request, organization_id: str, batch_id: str, csrf: str = Form("")
) -> Response:
    seat = await run_in_threadpool(_seat, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    try:
        check_csrf(request, csrf)
        await run_in_threadpool(static_tokens.regenerate_batch, services(request), seat.acting, batch_id)
    except DomainError as error:
        return message(request, status_of(error), "Not regenerated", error.detail)
    return RedirectResponse(
        f"/console/{organization_id}/static-tokens/{batch_id}?regenerated=1", status_code=303
    )
