"""Devices: define one or a batch, read, list, revoke, issue credentials."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from lineside.adapters.csv_files import csv_text as csv_file
from lineside.domain.device_specs import DeviceSpec, specs_from_serial_numbers
from lineside.domain.errors import InvalidInput
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import CredentialType
from lineside.entrypoints.api.bodies import csv_text, invalid, media_type
from lineside.entrypoints.api.constraints import Cursor, Limit
from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.schemas import (
    BatchIn,
    BatchOut,
    CertificateOut,
    CredentialIn,
    CredentialOut,
    DeviceIn,
    DeviceOut,
    PageOut,
    credential_out,
)
from lineside.services import credentials, devices
from lineside.services.ports import DeviceFilter

router = APIRouter(prefix="/api/v1", tags=["devices"])

_BATCH_BODY = {
    "requestBody": {
        "content": {
            "application/json": {"schema": BatchIn.model_json_schema()},
            "text/csv": {"schema": {"type": "string"}},
        },
        "description": "JSON, or a CSV whose header names serial_number, mac and metadata "
        "fields (with ?product_id= and optional ?issue_credentials=token|mqtt_password|x509).",
    }
}


@router.post("/devices", status_code=status.HTTP_201_CREATED)
def define_device(body: DeviceIn, ctx: Services, caller: Caller) -> DeviceOut:
    """Define one device of a product (serial number, MAC, metadata)."""
    device = devices.define_device(
        ctx,
        caller,
        product_id=body.product_id,
        serial_number=body.serial_number,
        mac=body.mac,
        metadata=body.metadata,
        hardware_id=body.hardware_id,
    )
    return DeviceOut.of(device)


@router.get("/devices")
def list_devices(
    ctx: Services,
    caller: Caller,
    product_id: str | None = None,
    state: DeviceState | None = None,
    serial_number: str | None = None,
    batch_id: str | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> PageOut[DeviceOut]:
    """Devices, filtered by product, state, serial number or batch, a page at a time."""
    filters = DeviceFilter(product_id=product_id, state=state, serial_number=serial_number, batch_id=batch_id)
    page = devices.list_devices(ctx, caller, filters=filters, cursor=cursor, limit=limit)
    return PageOut(items=[DeviceOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/devices/{device_id}")
def get_device(device_id: str, ctx: Services, caller: Caller) -> DeviceOut:
    """One device: its identity, state, owner, presence and lifecycle."""
    return DeviceOut.of(devices.get_device(ctx, caller, device_id))


@router.post("/devices/{device_id}/revoke")
def revoke_device(device_id: str, ctx: Services, caller: Caller) -> DeviceOut:
    """Terminal: the device's token and certificates stop working at once."""
    return DeviceOut.of(devices.revoke_device(ctx, caller, device_id))


@router.post("/devices/{device_id}/credentials", status_code=status.HTTP_201_CREATED)
def issue_credential(device_id: str, body: CredentialIn, ctx: Services, caller: Caller) -> CredentialOut:
    """A new token, MQTT password or certificate; the previous one of the same type stops
    working at once. A token or MQTT password is in ``secret``, shown this once."""
    if body.type is not CredentialType.X509 and body.csr is not None:
        raise InvalidInput("A CSR only goes with type 'x509'.")
    issued = credentials.issue_credential(ctx, caller, device_id, body.type, body.csr)
    return credential_out(issued)


@router.delete("/devices/{device_id}/credentials", status_code=status.HTTP_204_NO_CONTENT)
def revoke_credentials(device_id: str, ctx: Services, caller: Caller) -> None:
    """Stop the device's token, MQTT password and certificates at once. The device stays: it
    can be issued new credentials (revoking the device itself is terminal)."""
    credentials.revoke_credentials(ctx, caller, device_id)


@router.get("/devices/{device_id}/certificates")
def list_certificates(device_id: str, ctx: Services, caller: Caller) -> list[CertificateOut]:
    """The device's certificates, newest first, revoked ones included."""
    return [CertificateOut.of(c) for c in credentials.list_certificates(ctx, caller, device_id)]


def _specs_from_json(body: BatchIn) -> list[DeviceSpec]:
    if (body.serial_numbers is None) == (body.devices is None):
        raise InvalidInput("Send exactly one of 'serial_numbers' or 'devices'.")
    if body.serial_numbers is not None:
        return specs_from_serial_numbers(body.serial_numbers)
    # A bad mac is reported with the row's other problems, so it is passed on unchecked.
    return [
        DeviceSpec(item.serial_number, item.mac, item.metadata, row)
        for row, item in enumerate(body.devices or [], start=1)
    ]


def _parse_json_batch(raw: bytes) -> BatchIn:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # bad syntax, bad encoding, absurd nesting
        # The same 400 as every route whose body FastAPI parses itself.
        malformed = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([malformed]) from None
    try:
        return BatchIn.model_validate(document)
    except ValidationError as error:
        raise invalid(error) from None


def _credential_type(text: str | None) -> CredentialType | None:
    if not text:
        return None
    try:
        return CredentialType(text)
    except ValueError:
        raise InvalidInput("issue_credentials must be 'token', 'mqtt_password' or 'x509'.") from None


@router.post(
    "/device-batches",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_BATCH_BODY,
    response_model=BatchOut,
)
async def define_batch(
    request: Request,
    ctx: Services,
    caller: Caller,
    product_id: str | None = None,
    issue_credentials: str | None = None,
) -> Any:
    """Define many devices at once, all or nothing, optionally with credentials.

    Answers JSON, or the credentials file as CSV when the request says ``Accept: text/csv``.
    """
    raw = await request.body()
    content_type = media_type(request)
    if content_type == "text/csv":
        if not product_id:
            raise InvalidInput("A CSV batch needs ?product_id=.")
        kwargs: dict[str, Any] = {"product_id": product_id, "csv_text": csv_text(raw)}
        kind = _credential_type(issue_credentials)
    elif content_type == "application/json":
        if product_id or issue_credentials:
            raise InvalidInput("A JSON batch names product_id and issue_credentials in its body.")
        body = _parse_json_batch(raw)
        kwargs = {"product_id": body.product_id, "specs": _specs_from_json(body)}
        kind = body.issue_credentials
    else:
        raise InvalidInput("Send application/json or text/csv.")
    batch = await run_in_threadpool(devices.define_batch, ctx, caller, issue_credentials=kind, **kwargs)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(csv_file(batch.credential_rows()), status_code=201, media_type="text/csv")
    return BatchOut.of(batch)
