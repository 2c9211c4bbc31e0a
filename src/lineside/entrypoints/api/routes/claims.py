"""Claiming a device by its QR code, and giving it back."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import Field, StrictStr

from lineside.entrypoints.api.dependencies import Caller, ClientAddress, Services
from lineside.entrypoints.api.openapi import problem_responses
from lineside.entrypoints.api.schemas import DeviceOut
from lineside.entrypoints.api.schemas import Request as RequestBody
from lineside.services import claims

router = APIRouter(prefix="/api/v1", tags=["claims"])


class ClaimIn(RequestBody):
    code: StrictStr = Field(max_length=200, description="The claim code from the QR label (lsc_...).")
    organization_id: StrictStr | None = Field(
        default=None, description="An organization you belong to; default: your personal one."
    )


@router.post("/claims", status_code=status.HTTP_201_CREATED, responses=problem_responses(410, 429))
def claim(body: ClaimIn, ctx: Services, caller: Caller, address: ClientAddress) -> DeviceOut:
    """Move the device behind a claim code into your organization."""
    device = claims.claim_device(
        ctx, caller, body.code, client_address=address, organization_id=body.organization_id
    )
    return DeviceOut.of(device)


@router.delete("/devices/{device_id}/claim")
def unclaim(device_id: str, ctx: Services, caller: Caller) -> DeviceOut:
    """As the owner: remove the device from your account (it can be claimed again)."""
    return DeviceOut.of(claims.unclaim_device(ctx, caller, device_id))


@router.post("/devices/{device_id}/disclaim")
def disclaim(device_id: str, ctx: Services, caller: Caller) -> DeviceOut:
    """As the manufacturer: take a claimed device back from its owner."""
    return DeviceOut.of(claims.disclaim_device(ctx, caller, device_id))


@router.delete("/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_device(device_id: str, ctx: Services, caller: Caller) -> Response:
    """As the manufacturer: delete the device; its token is refused from now on."""
    claims.delete_device(ctx, caller, device_id)
    return Response(status_code=204)
