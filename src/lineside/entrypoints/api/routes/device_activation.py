"""Activation: a blessed device presents a production enrollment token and gets its
credentials and configuration. The token is the credential; there is no other."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lineside.entrypoints.api.dependencies import Services, application
from lineside.entrypoints.api.factory_schemas import (
    ActivationIn,
    ActivationOut,
    DeviceConfigurationOut,
    DeviceCredentialOut,
)
from lineside.entrypoints.api.openapi import problem_responses
from lineside.entrypoints.api.schemas import DeviceIdentityOut
from lineside.services import activation
from lineside.services.firmware import release_view

router = APIRouter(prefix="/device/v1", tags=["device"])


@router.post("/activate", responses=problem_responses(401, 404, 409, 410))
def activate(body: ActivationIn, request: Request, ctx: Services) -> ActivationOut:
    """Only a blessed device activates; the token must be unexpired and unused, and is spent."""
    done = activation.activate_device(
        ctx, plan_id=body.plan_id, token_id=body.token_id, device_id=body.device_id
    )
    device = done.device
    return ActivationOut(
        device=DeviceIdentityOut.of(device, application(request).settings.effective_mqtt_url),
        credentials=DeviceCredentialOut(token=done.device_token),
        configuration=DeviceConfigurationOut(
            api_url=f"{ctx.config.public_url}/device/v1",
            firmware=release_view(ctx, done.firmware) if done.firmware is not None else None,
        ),
    )
