"""The API devices call with their own credentials."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lineside.entrypoints.api.dependencies import application, bearer_token, services
from lineside.entrypoints.api.schemas import DeviceIdentityOut
from lineside.services.credentials import identify_device
from lineside.services.ports import DeviceIdentity

router = APIRouter(prefix="/device/v1", tags=["device"])


@router.get("/me", response_model=DeviceIdentityOut)
async def who_am_i(request: Request) -> JSONResponse:
    """Who the device token in ``Authorization: Bearer`` belongs to."""
    # The hottest route: one index probe, run on the event loop rather than paying two
    # threadpool hops that cost more than the query itself (see bench/README.md). A request
    # that succeeds is usually answered before it gets here (entrypoints.api.fast_paths).
    device = identify_device(services(request), bearer_token(request))
    return JSONResponse(identity_document(device, application(request).settings.effective_mqtt_url))


def identity_document(device: DeviceIdentity, mqtt_url: str | None) -> dict[str, object]:
    """What ``GET /device/v1/me`` answers, as plain JSON: the schema above documents it, and
    skipping the response model's validation of a few values we just read is a measurable
    share of the request."""
    return {
        "id": device.id,
        "product_id": device.product_id,
        "serial_number": device.serial_number,
        "state": device.state.value,
        "online": device.online,
        "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
        "mqtt_url": mqtt_url,
    }
