"""Claiming a device by its QR code, giving it back, and handing it to another person."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field, StrictStr

from lineside.entrypoints.api.dependencies import Caller, ClientAddress, Services
from lineside.entrypoints.api.openapi import problem_responses
from lineside.entrypoints.api.schemas import DeviceOut
from lineside.entrypoints.api.schemas import Request as RequestBody
from lineside.services import claims, transfers

router = APIRouter(prefix="/api/v1", tags=["claims"])


class ClaimIn(RequestBody):
    code: StrictStr = Field(max_length=200, description="The claim code from the QR label (lsc_...).")
    organization_id: StrictStr | None = Field(
        default=None, description="An organization you belong to; default: your personal one."
    )


class TransferOut(BaseModel):
    id: str
    device_id: str
    code: str = Field(description="lst_...; give it (or the URL) to the new owner. Shown once.")
    url: str = Field(description="The page where the new owner accepts the device.")
    expires_at: datetime


class AcceptTransferIn(RequestBody):
    code: StrictStr = Field(max_length=200, description="The transfer code (lst_...).")
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


@router.post("/devices/{device_id}/transfers", status_code=status.HTTP_201_CREATED)
def offer_transfer(device_id: str, ctx: Services, caller: Caller) -> TransferOut:
    """As the owner: offer the device to another person; an earlier offer of it ends."""
    offered = transfers.offer_transfer(ctx, caller, device_id)
    return TransferOut(
        id=offered.transfer.id,
        device_id=offered.transfer.device_id,
        code=offered.code,
        url=offered.url,
        expires_at=offered.transfer.expires_at,
    )


@router.delete("/devices/{device_id}/transfers", status_code=status.HTTP_204_NO_CONTENT)
def cancel_transfers(device_id: str, ctx: Services, caller: Caller) -> Response:
    """As the owner: end the open transfer offer of the device, if there is one."""
    transfers.cancel_transfers(ctx, caller, device_id)
    return Response(status_code=204)


@router.post("/transfers/accept", responses=problem_responses(410, 429))
def accept_transfer(
    body: AcceptTransferIn, ctx: Services, caller: Caller, address: ClientAddress
) -> DeviceOut:
    """Take the device offered by a transfer code into your organization, in one step."""
    device = transfers.accept_transfer(
        ctx, caller, body.code, client_address=address, organization_id=body.organization_id
    )
    return DeviceOut.of(device)
