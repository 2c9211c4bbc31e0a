"""Static tokens: make a batch, download its one-time export, labels, regenerate."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, StrictInt, ValidationError
from starlette.datastructures import UploadFile

from lineside.domain.errors import InvalidInput
from lineside.entrypoints.api.batch_files import export_file, labels_pdf_file, labels_zip_file
from lineside.entrypoints.api.bodies import csv_text, invalid, media_type
from lineside.entrypoints.api.dependencies import Caller, Services, application
from lineside.entrypoints.api.openapi import problem_responses
from lineside.entrypoints.api.schemas import Request as RequestBody
from lineside.services import static_tokens

router = APIRouter(prefix="/api/v1", tags=["static tokens"])

_CREATE_BODY = {
    "parameters": [
        {
            "name": "mapping",
            "in": "query",
            "required": False,
            "content": {
                "application/json": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}
            },
            "description": 'With text/csv: CSV header -> field name, as a JSON object ({"Serial Number": '
            '"serial_number"}).',
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["count"],
                    "additionalProperties": False,
                    "properties": {
                        "count": {"type": "integer", "minimum": 1, "maximum": static_tokens.MAX_COUNT}
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "mapping": {"type": "string"},
                    },
                }
            },
        },
        "description": "A count, or a CSV whose header names serial_number, mac and metadata fields. "
        "mapping (JSON object, CSV header -> field name) renames columns: ?mapping= for text/csv, "
        "a form field for multipart. Headers are case-sensitive.",
    },
}


class CountIn(RequestBody):
    count: StrictInt = Field(ge=1, le=static_tokens.MAX_COUNT)


class StaticTokenBatchOut(BaseModel):
    batch_id: str
    product_id: str
    count: int
    created_at: datetime
    exported_at: datetime | None
    export_url: str = Field(description="The one download that shows device tokens.")
    labels_url: str
    labels_pdf_url: str


def _batch_out(request: Request, batch: Any) -> StaticTokenBatchOut:
    base = f"{application(request).settings.effective_public_url}/api/v1/static-token-batches/{batch.id}"
    return StaticTokenBatchOut(
        batch_id=batch.id,
        product_id=batch.product_id,
        count=batch.count,
        created_at=batch.created_at,
        exported_at=batch.exported_at,
        export_url=f"{base}/export.zip",
        labels_url=f"{base}/labels.zip",
        labels_pdf_url=f"{base}/labels.pdf",
    )


def _mapping(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        mapping = json.loads(text)
    except ValueError:
        raise InvalidInput("mapping must be a JSON object of CSV header -> field name.") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise InvalidInput("mapping must be a JSON object of CSV header -> field name.")
    return mapping


async def _creation_arguments(request: Request) -> dict[str, Any]:
    content_type = media_type(request)
    if content_type == "application/json":
        try:
            return {"count": CountIn.model_validate_json(await request.body()).count}
        except ValidationError as error:
            raise invalid(error) from None
    if content_type == "text/csv":
        return {
            "csv_text": csv_text(await request.body()),
            "mapping": _mapping(request.query_params.get("mapping")),
        }
    if content_type == "multipart/form-data":
        # Closed on the way out: nobody else closes a form a route parsed itself, and an
        # upload's spooled temporary file would stay open until garbage collection.
        async with request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("The multipart upload needs a 'file' part holding the CSV.")
            mapping = form.get("mapping")
            return {
                "csv_text": csv_text(await upload.read()),
                "mapping": _mapping(mapping if isinstance(mapping, str) else None),
            }
    raise InvalidInput('Send application/json ({"count": N}), text/csv or multipart/form-data.')


@router.post(
    "/products/{product_id}/static-tokens",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_CREATE_BODY,
    response_model=StaticTokenBatchOut,
)
async def create_static_tokens(
    product_id: str, request: Request, ctx: Services, caller: Caller
) -> StaticTokenBatchOut:
    """N devices at once, or one per CSV row, each with a claim code (QR) and, at export, a token."""
    arguments = await _creation_arguments(request)
    batch = await run_in_threadpool(static_tokens.create_static_tokens, ctx, caller, product_id, **arguments)
    return _batch_out(request, batch)


@router.get("/static-token-batches/{batch_id}")
def get_batch(batch_id: str, request: Request, ctx: Services, caller: Caller) -> StaticTokenBatchOut:
    """A static-token batch: its count, export state and download links."""
    return _batch_out(request, static_tokens.get_batch(ctx, caller, batch_id))


@router.post("/static-token-batches/{batch_id}/regenerate")
def regenerate(batch_id: str, request: Request, ctx: Services, caller: Caller) -> StaticTokenBatchOut:
    """Void the batch's device tokens and allow one new export (until a device activates)."""
    return _batch_out(request, static_tokens.regenerate_batch(ctx, caller, batch_id))


@router.get(
    "/static-token-batches/{batch_id}/export.zip",
    response_class=FileResponse,
    responses=problem_responses(410),
)
async def export(batch_id: str, request: Request, ctx: Services, caller: Caller) -> FileResponse:
    """tokens.csv (with device tokens) and qr/*.png. Downloadable once: then 410.

    The whole zip is built and its tokens committed before the first byte is sent; if the
    download is lost after that, `POST .../regenerate` allows one more.
    """
    return await export_file(request, ctx, caller, batch_id)


@router.get("/static-token-batches/{batch_id}/labels.zip", response_class=FileResponse)
async def labels_zip(batch_id: str, request: Request, ctx: Services, caller: Caller) -> FileResponse:
    """QR PNGs and a CSV without secrets, as often as wanted."""
    return await labels_zip_file(request, ctx, caller, batch_id)


@router.get("/static-token-batches/{batch_id}/labels.pdf", response_class=FileResponse)
async def labels_pdf(batch_id: str, request: Request, ctx: Services, caller: Caller) -> FileResponse:
    """A printable sheet: QR code, serial number and product name per label."""
    return await labels_pdf_file(request, ctx, caller, batch_id)
