"""The console's static tokens, as Blynk.Console's page has them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from lineside.domain.errors import BatchRejected, DomainError, InvalidInput
from lineside.entrypoints.api.batch_files import export_file, labels_pdf_file, labels_zip_file
from lineside.entrypoints.api.bodies import csv_text
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.console.seats import Seat, acted, product_choices, seat_for, show
from lineside.entrypoints.web.pages import check_csrf, message
from lineside.services import products, static_tokens

router = APIRouter(prefix="/console", include_in_schema=False)


# -- static tokens (Blynk.Console's page) ----------------------------------------------------


@router.get("/{organization_id}/static-tokens", response_model=None)
async def static_tokens_page(request: Request, organization_id: str) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    return show(
        request, seat, "static_tokens.html", **await run_in_threadpool(_batches_context, request, seat)
    )


def _batches_context(request: Request, seat: Seat) -> dict[str, Any]:
    ctx = services(request)
    return {
        "batches": static_tokens.latest_batches(ctx, seat.acting),
        "form": {},
        **product_choices(ctx, seat),
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
    seat = await run_in_threadpool(seat_for, request, organization_id)
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
        return show(
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
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    ctx = services(request)
    try:
        batch = await run_in_threadpool(static_tokens.get_batch, ctx, seat.acting, batch_id)
        product = await run_in_threadpool(products.get_product, ctx, seat.acting, batch.product_id)
        figures = await run_in_threadpool(static_tokens.batch_figures, ctx, seat.acting, batch_id)
    except DomainError as error:
        return message(request, status_of(error), "Not found", error.detail)
    return show(request, seat, "batch.html", batch=batch, product=product, figures=figures)


@router.get("/{organization_id}/static-tokens/{batch_id}/labels.{kind}", response_model=None)
async def batch_labels(request: Request, organization_id: str, batch_id: str, kind: str) -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
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
    seat = await run_in_threadpool(seat_for, request, organization_id)
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
    return await acted(
        request,
        organization_id,
        csrf,
        lambda ctx, principal: static_tokens.regenerate_batch(ctx, principal, batch_id),
        refused="Not regenerated",
        then=f"/console/{organization_id}/static-tokens/{batch_id}?regenerated=1",
    )
