"""Firmware releases of a product, and their deployment to device groups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from lineside.domain.errors import InvalidInput
from lineside.domain.models import FirmwareKind, FirmwareRelease
from lineside.entrypoints.api.bodies import media_type
from lineside.entrypoints.api.constraints import VERSION_PATTERN
from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.firmware_schemas import (
    DeploymentIn,
    DeploymentOut,
    GroupFirmwareOut,
    GroupSettingsIn,
    ReleaseOut,
)
from lineside.services import firmware, firmware_groups
from lineside.services.firmware import NewRelease

router = APIRouter(prefix="/api/v1", tags=["firmware"])
OCTET_STREAM = "application/octet-stream"
_CHUNK = 64 * 1024
_IMAGE_BODY = {
    "required": True,
    "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
}


@router.post(
    "/products/{product_id}/firmware-releases",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": _IMAGE_BODY},
)
async def upload_release(
    request: Request,
    product_id: str,
    ctx: Services,
    caller: Caller,
    kind: FirmwareKind,
    version: str = Query(
        max_length=firmware.MAX_VERSION_LENGTH,
        description="1 to 64 visible ASCII characters (no spaces).",
        json_schema_extra={"pattern": VERSION_PATTERN},
    ),
    notes: str | None = Query(default=None, max_length=firmware.MAX_NOTES_LENGTH),
) -> ReleaseOut:
    """Upload an image (the raw request body) as a release of the product."""
    if media_type(request) != OCTET_STREAM:
        raise InvalidInput(f"Send the image as the raw body with 'Content-Type: {OCTET_STREAM}'.")
    new = NewRelease(product_id=product_id, kind=kind, version=version, notes=notes)
    return ReleaseOut.of(await firmware.upload_release(ctx, caller, new, request.stream()))


@router.get("/products/{product_id}/firmware-releases")
def list_releases(
    product_id: str, ctx: Services, caller: Caller, kind: FirmwareKind | None = None
) -> list[ReleaseOut]:
    """The product's releases, newest first."""
    return [ReleaseOut.of(release) for release in firmware.list_releases(ctx, caller, product_id, kind)]


@router.get("/firmware-releases/{release_id}")
def get_release(release_id: str, ctx: Services, caller: Caller) -> ReleaseOut:
    """One firmware release."""
    return ReleaseOut.of(firmware.get_release(ctx, caller, release_id))


@router.get(
    "/firmware-releases/{release_id}/image",
    response_class=StreamingResponse,
    responses={200: {"content": {OCTET_STREAM: {}}}},
)
def download_image(release_id: str, request: Request, ctx: Services, caller: Caller) -> Response:
    """The image's bytes; ``ETag`` is its SHA-256."""
    release, image = firmware.open_release_image(ctx, caller, release_id)
    return image_response(request, release, image)


@router.post("/device-groups/{group_id}/deployments", status_code=status.HTTP_201_CREATED)
def deploy_release(group_id: str, body: DeploymentIn, ctx: Services, caller: Caller) -> DeploymentOut:
    """Deploy a release to a group: every member runs it from its next check on."""
    return DeploymentOut.of(firmware_groups.deploy_release(ctx, caller, group_id, body.release_id))


@router.get("/device-groups/{group_id}/deployments")
def list_deployments(group_id: str, ctx: Services, caller: Caller) -> list[DeploymentOut]:
    """The group's deployments, newest first."""
    return [DeploymentOut.of(d) for d in firmware_groups.list_deployments(ctx, caller, group_id)]


@router.get("/device-groups/{group_id}")
def get_group(group_id: str, ctx: Services, caller: Caller) -> GroupFirmwareOut:
    """The group, with the release deployed to it."""
    return GroupFirmwareOut.of_firmware(firmware_groups.get_group(ctx, caller, group_id))


@router.patch("/device-groups/{group_id}")
def update_group(group_id: str, body: GroupSettingsIn, ctx: Services, caller: Caller) -> GroupFirmwareOut:
    """Set when a production group's members load application firmware."""
    found = firmware_groups.set_application_firmware_after(
        ctx, caller, group_id, body.application_firmware_after
    )
    return GroupFirmwareOut.of_firmware(found)


def image_response(request: Request, release: FirmwareRelease, image: BinaryIO) -> Response:
    """The image streamed from disk, or 304 when the caller already has these bytes."""
    etag = f'"{release.sha256}"'
    if etag in request.headers.get("if-none-match", ""):
        image.close()
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    return StreamingResponse(
        _chunks(image),
        media_type=OCTET_STREAM,
        headers={"ETag": etag, "Content-Length": str(release.size_bytes)},
    )


def _chunks(image: BinaryIO) -> Iterator[bytes]:
    # Starlette reads a plain iterator in its thread pool, so disk reads never block the loop.
    with image:
        while chunk := image.read(_CHUNK):
            yield chunk
