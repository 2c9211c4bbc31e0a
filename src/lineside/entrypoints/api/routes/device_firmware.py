"""What a device should run, its image, and the version it reports: with its device token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from lineside.domain.models import Device
from lineside.entrypoints.api.dependencies import Services, bearer_token, services
from lineside.entrypoints.api.firmware_schemas import DeviceFirmwareOut, FirmwareReportIn
from lineside.entrypoints.api.routes.firmware import OCTET_STREAM, image_response
from lineside.services import firmware
from lineside.services.credentials import authenticate_device

router = APIRouter(prefix="/device/v1", tags=["device"])


def calling_device(request: Request) -> Device:
    return authenticate_device(services(request), bearer_token(request))


CallingDevice = Annotated[Device, Depends(calling_device)]


@router.get("/firmware")
def what_to_run(ctx: Services, device: CallingDevice) -> DeviceFirmwareOut:
    """The release this device should run now (null: none), and whether it differs from
    the version the device last reported."""
    return DeviceFirmwareOut.of(ctx, firmware.firmware_for_device(ctx, device))


@router.get(
    "/firmware/{release_id}/image",
    response_class=StreamingResponse,
    responses={200: {"content": {OCTET_STREAM: {}}}},
)
def download_image(release_id: str, request: Request, ctx: Services, device: CallingDevice) -> Response:
    """The image of a release of the device's own product; ``ETag`` is its SHA-256."""
    release, image = firmware.open_device_image(ctx, device, release_id)
    return image_response(request, release, image)


@router.post("/firmware")
def report_version(body: FirmwareReportIn, ctx: Services, device: CallingDevice) -> DeviceFirmwareOut:
    """The device says which version it now runs (after installing an update, or at boot)."""
    device = firmware.report_installed_version(ctx, device, body.version)
    return DeviceFirmwareOut.of(ctx, firmware.firmware_for_device(ctx, device))
