"""Factory PKI: a product's own certificate authorities (register, prove possession, list,
disable, enable, delete, load a CRL) and its registration policy; approving a device that
registered under the approval policy."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.pki_schemas import (
    AuthorityIn,
    AuthorityOut,
    CrlIn,
    CrlOut,
    RegisteredAuthorityOut,
    RegistrationSettingsIn,
    RegistrationSettingsOut,
    VerificationIn,
)
from lineside.entrypoints.api.schemas import DeviceOut
from lineside.services import authorities, registration

router = APIRouter(prefix="/api/v1", tags=["factory PKI"])


@router.post("/products/{product_id}/certificate-authorities", status_code=status.HTTP_201_CREATED)
def register_authority(
    product_id: str, body: AuthorityIn, ctx: Services, caller: Caller
) -> RegisteredAuthorityOut:
    """Register your CA for the product. It trusts nothing until you prove you hold its key:
    sign a certificate whose subject CN is ``challenge`` with it and send it to ``/verify``."""
    made = authorities.register_authority(ctx, caller, product_id, body.certificate)
    return RegisteredAuthorityOut(
        **AuthorityOut.of(made.authority).model_dump(),
        challenge=made.challenge,
        challenge_expires_at=made.challenge_expires_at,
    )


@router.get("/products/{product_id}/certificate-authorities")
def list_authorities(product_id: str, ctx: Services, caller: Caller) -> list[AuthorityOut]:
    return [AuthorityOut.of(a) for a in authorities.list_authorities(ctx, caller, product_id)]


@router.get("/certificate-authorities/{authority_id}")
def get_authority(authority_id: str, ctx: Services, caller: Caller) -> AuthorityOut:
    return AuthorityOut.of(authorities.get_authority(ctx, caller, authority_id))


@router.post("/certificate-authorities/{authority_id}/verify")
def verify_authority(authority_id: str, body: VerificationIn, ctx: Services, caller: Caller) -> AuthorityOut:
    """Proof of possession: the verification certificate signed by the CA's key."""
    return AuthorityOut.of(
        authorities.verify_authority(ctx, caller, authority_id, body.verification_certificate)
    )


@router.post("/certificate-authorities/{authority_id}/disable")
def disable_authority(authority_id: str, ctx: Services, caller: Caller) -> AuthorityOut:
    """Its devices are refused at once; live MQTT sessions end at the broker's next check."""
    return AuthorityOut.of(authorities.disable_authority(ctx, caller, authority_id))


@router.post("/certificate-authorities/{authority_id}/enable")
def enable_authority(authority_id: str, ctx: Services, caller: Caller) -> AuthorityOut:
    return AuthorityOut.of(authorities.enable_authority(ctx, caller, authority_id))


@router.delete("/certificate-authorities/{authority_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_authority(authority_id: str, ctx: Services, caller: Caller) -> Response:
    authorities.delete_authority(ctx, caller, authority_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/certificate-authorities/{authority_id}/crl")
def load_crl(authority_id: str, body: CrlIn, ctx: Services, caller: Caller) -> CrlOut:
    """Replace the CA's revocation list: its serials are refused, and registered devices with
    one are cut off."""
    loaded = authorities.load_revocation_list(ctx, caller, authority_id, body.crl)
    return CrlOut(serials=loaded.serials, certificates_revoked=loaded.certificates_revoked)


@router.put("/products/{product_id}/registration")
def set_registration(
    product_id: str, body: RegistrationSettingsIn, ctx: Services, caller: Caller
) -> RegistrationSettingsOut:
    """Which devices the product's CAs register on first connection, and how."""
    product = authorities.set_registration(
        ctx,
        caller,
        product_id,
        policy=body.policy,
        identity=body.identity,
        reregistration=body.reregistration,
    )
    return RegistrationSettingsOut(
        product_id=product.id,
        policy=product.registration_policy,
        identity=product.registration_identity,
        reregistration=product.reregistration,
    )


@router.post("/devices/{device_id}/approve")
def approve_device(device_id: str, ctx: Services, caller: Caller) -> DeviceOut:
    """A device that registered under the approval policy may connect from now on."""
    return DeviceOut.of(registration.approve_device(ctx, caller, device_id))
