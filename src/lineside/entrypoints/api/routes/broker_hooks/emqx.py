"""EMQX 5: HTTP authentication, HTTP authorisation, and client events from a webhook.

- ``POST /broker/emqx/authenticate`` (authentication ``http`` backend), body
  ``{"clientid": "${clientid}", "username": "${username}", "password": "${password}"}``:
  ``200 {"result": "allow", "is_superuser": false}`` or ``200 {"result": "deny"}``. Lineside
  is the authority, so it never answers "ignore": an unknown client is denied, not passed on.
  (``method = get`` works too: the placeholders then arrive in the query string.)
  Over TLS with client certificates, add ``"cert_common_name": "${cert_common_name}"`` and,
  from EMQX 5.8, ``"cert_pem": "${cert_pem}"``: a client without a password is then let in
  by its certificate (registered just in time when only ``cert_pem`` can say who it is).
- ``POST /broker/emqx/authorize`` (authorisation ``http`` source), body
  ``{"clientid": "${clientid}", "username": "${username}", "topic": "${topic}",
  "action": "${action}"}`` (plus ``"cert_common_name": "${cert_common_name}"`` for clients
  with certificates): ``200 {"result": "allow" | "deny"}``.
- ``POST /broker/emqx/events`` (a webhook on ``$events/client_connected`` and
  ``$events/client_disconnected``, with the hook secret): the event JSON as EMQX renders it
  (``{"event": "client.connected", "clientid": ..., ...}``), answered ``204``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from lineside.domain.mqtt import TopicAccess
from lineside.entrypoints.api.routes.broker_hooks.common import (
    allowed,
    any_method,
    authenticated,
    certificate_bytes,
    connection_identity,
    hook_params,
    presence_of,
    require_hook_secret,
    text,
)

router = APIRouter(prefix="/broker/emqx")

ALLOW = {"result": "allow", "is_superuser": False}
DENY = {"result": "deny"}
_ACTIONS = {"publish": TopicAccess.PUBLISH, "subscribe": TopicAccess.SUBSCRIBE}
_CONNECTED = {"client.connected", "client_connected"}
_DISCONNECTED = {"client.disconnected", "client_disconnected"}
# The old connection of a client id that just connected again: the device is not offline.
_REPLACED = {"takenover", "takeovered", "discarded"}


@any_method(router, "/authenticate", ("GET",))
async def authenticate(request: Request) -> JSONResponse:
    """EMQX HTTP authentication: may this client connect (allow or deny)?"""
    params = await hook_params(request)
    identity = await authenticated(
        request,
        client_id=text(params, "clientid"),
        username=text(params, "username"),
        password=text(params, "password"),
        certificate=certificate_bytes(text(params, "cert_pem")),
        certificate_name=text(params, "cert_common_name"),
    )
    return JSONResponse(ALLOW if identity is not None else DENY)


@any_method(router, "/authorize", ("GET",))
async def authorize(request: Request) -> JSONResponse:
    """EMQX HTTP authorization: may this client publish or subscribe to this topic?"""
    params = await hook_params(request)
    identity = await connection_identity(
        request, text(params, "clientid"), text(params, "username"), text(params, "cert_common_name")
    )
    access = _ACTIONS.get(text(params, "action") or "")
    ok = access is not None and allowed(request, identity, text(params, "topic"), access)
    return JSONResponse({"result": "allow"} if ok else DENY)


@router.post("/events", status_code=204)
async def events(request: Request) -> Response:
    """EMQX webhook: a client connected or disconnected (presence); needs the hook secret."""
    require_hook_secret(request)
    params = await hook_params(request)
    event = text(params, "event") or text(params, "action") or ""
    device_id = text(params, "clientid")
    # Only connections that authenticated as a device are devices: client id = username, or
    # no username at all (a device with a client certificate; the provisioner has one).
    if device_id and text(params, "username") in (device_id, "", None):
        if event in _CONNECTED:
            presence_of(request).connected(device_id)
        elif event in _DISCONNECTED and text(params, "reason") not in _REPLACED:
            presence_of(request).disconnected(device_id)
    return Response(status_code=204)
