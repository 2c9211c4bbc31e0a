"""The API devices call with their own credentials."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lineside.entrypoints.api.dependencies import bearer_token, services
from lineside.entrypoints.api.schemas import DeviceIdentityOut
from lineside.services.credentials import authenticate_device

router = APIRouter(prefix="/device/v1", tags=["device"])


@router.get("/me")
async def who_am_i(request: Request) -> DeviceIdentityOut:
    """Who the device token in ``Authorization: Bearer`` belongs to."""
    # The hottest route: one index probe, run on the event loop rather than paying two
    # threadpool hops that cost more than the query itself (see bench/README.md).
    device = authenticate_device(services(request), bearer_token(request))
    return DeviceIdentityOut(
        id=device.id,
        product_id=device.product_id,
        serial_number=device.serial_number,
        state=device.state.value,
    )
