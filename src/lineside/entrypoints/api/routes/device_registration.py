"""Just-in-time registration over HTTPS: a device presents its certificate to a TLS-terminating
proxy (nginx, Caddy), which checks the device holds its key and passes the certificate on in
a header (LINESIDE_CLIENT_CERTIFICATE_HEADER) that is believed from LINESIDE_TRUSTED_PROXIES
only. A certificate in the body proves nothing (it is public), so there is none."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from fastapi import APIRouter, Request, Response, status

from lineside.domain.errors import NotFound, PermissionDenied, Unauthenticated
from lineside.entrypoints.api.dependencies import Services, application
from lineside.entrypoints.api.openapi import problem_responses
from lineside.entrypoints.api.peers import from_trusted_proxy
from lineside.entrypoints.api.pki_schemas import ChainIn, RegisteredDeviceOut
from lineside.services.registration import register_device

router = APIRouter(prefix="/device/v1", tags=["device"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses={**problem_responses(401, 403, 404, 422), 200: {"description": "Known already."}},
)
def register(
    request: Request, response: Response, ctx: Services, body: ChainIn | None = None
) -> RegisteredDeviceOut:
    """Register the device whose certificate (from a registered, verified CA of a product)
    the proxy passed: 201 the first time, 200 after (the same certificate, the same device).
    ``chain`` may carry intermediates between it and the registered CA."""
    certificate = _client_certificate(request)
    chain = [link.encode() for link in (body.chain if body else [])]
    registration = register_device(ctx, certificate, chain, via="https")
    device = registration.device
    if not registration.created:
        response.status_code = status.HTTP_200_OK
    return RegisteredDeviceOut(
        device_id=device.id,
        product_id=device.product_id,
        serial_number=device.serial_number,
        state=device.state.value,
        created=registration.created,
    )


def _client_certificate(request: Request) -> bytes:
    settings = application(request).settings
    header = settings.client_certificate_header
    if not header:
        raise NotFound(
            "Registration over HTTPS is off here: set LINESIDE_CLIENT_CERTIFICATE_HEADER behind a proxy."
        )
    if not from_trusted_proxy(request, settings.trusted_proxy_list):
        raise PermissionDenied(
            "A client certificate is believed only from a proxy in LINESIDE_TRUSTED_PROXIES."
        )
    raw = request.headers.get(header, "").strip()
    if not raw:
        raise Unauthenticated("No client certificate: the device presented none to the proxy.")
    return _decoded(raw)


def _decoded(raw: str) -> bytes:
    """URL-escaped PEM (nginx's $ssl_client_escaped_cert), PEM, or base64 DER (Caddy)."""
    text = unquote(raw)
    if text.startswith("-----BEGIN"):
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Unauthenticated("The client certificate header holds neither PEM nor base64 DER.") from None
