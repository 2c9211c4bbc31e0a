"""MQTT provisioning of a product (ThingsBoard-compatible key and secret), and re-opening a
provisioned device for one more provisioning. See docs/mqtt-provisioning.md."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.schemas import DeviceOut
from lineside.services import product_provisioning
from lineside.services.product_provisioning import ProvisioningSettings

router = APIRouter(prefix="/api/v1", tags=["provisioning"])


class ProvisioningOut(BaseModel):
    product_id: str
    provision_key: str | None = Field(description="Public: goes in every request as provisionDeviceKey.")
    enabled: bool
    policy: str = Field(description="The product's enrollment policy: create or predefined.")

    @classmethod
    def of(cls, settings: ProvisioningSettings) -> ProvisioningOut:
        return cls(
            product_id=settings.product_id,
            provision_key=settings.provision_key,
            enabled=settings.enabled,
            policy=settings.policy.value,
        )


class ProvisioningIssuedOut(ProvisioningOut):
    provision_secret: str = Field(description="provisionDeviceSecret. Shown once: store it now.")


@router.post("/products/{product_id}/provisioning", status_code=status.HTTP_201_CREATED)
def configure_provisioning(product_id: str, ctx: Services, caller: Caller) -> ProvisioningIssuedOut:
    """Enable MQTT provisioning with a new secret, or rotate it (the old secret stops at once)."""
    settings = product_provisioning.configure_provisioning(ctx, caller, product_id)
    assert settings.provision_secret is not None
    return ProvisioningIssuedOut(
        **ProvisioningOut.of(settings).model_dump(), provision_secret=settings.provision_secret
    )


@router.get("/products/{product_id}/provisioning")
def get_provisioning(product_id: str, ctx: Services, caller: Caller) -> ProvisioningOut:
    """The product's MQTT provisioning key, whether it is enabled, and its policy."""
    return ProvisioningOut.of(product_provisioning.get_provisioning(ctx, caller, product_id))


@router.delete("/products/{product_id}/provisioning", status_code=status.HTTP_204_NO_CONTENT)
def disable_provisioning(product_id: str, ctx: Services, caller: Caller) -> Response:
    """Requests with the secret fail from now on; the key stays for a later enable."""
    product_provisioning.disable_provisioning(ctx, caller, product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/devices/{device_id}/reprovision")
def allow_reprovisioning(device_id: str, ctx: Services, caller: Caller) -> DeviceOut:
    """Let a provisioned device provision once more; every credential it holds is revoked."""
    return DeviceOut.of(product_provisioning.allow_reprovisioning(ctx, caller, device_id))
