"""VerneMQ's webhooks (``vmq_webhooks``), MQTT 3.1.1 and 5 alike.

Each hook is ``POST /broker/vernemq/<hook>``, or ``POST /broker/vernemq`` for all of them
(VerneMQ names the hook in the ``vernemq-hook`` header). Authentication and authorisation:

- ``auth_on_register[_m5]`` ``{"client_id", "username", "password", ...}``: ``{"result": "ok"}``
  or ``{"result": {"error": "not_allowed"}}`` (never "next": Lineside is the authority).
- ``auth_on_publish[_m5]`` ``{"client_id", "username", "topic", ...}``: the same answers.
- ``auth_on_subscribe[_m5]`` ``{"client_id", "username", "topics": [{"topic", "qos"}]}``:
  ``{"result": "ok"}`` when every filter is allowed; otherwise the refused ones come back
  with QoS 128 (MQTT 5: 135, "not authorized") and the others as asked.

Client certificates: VerneMQ 2.1 and later, with ``forward_connection_opts = on`` on a TLS
listener, put the client certificate in ``auth_on_register`` (``client_cert``, base64 DER): it
is looked up by fingerprint, or registered just in time. Older ones can only put the
certificate's CN in the username (``use_identity_as_username = on``), which the payload does
not tell apart from a typed username: Lineside reads a password-less username as a
certificate's CN only when the endpoint URL says every listener does so
(``?usernames_from=certificates``). The publish and subscribe hooks of a connection whose
username is not its client id check that the device still holds an active certificate of
that name.

Events, which need the hook secret (``?secret=`` in the endpoint URL): ``on_register[_m5]``
marks the device connected, ``on_client_offline`` and ``on_client_gone`` disconnected; they
are answered ``{}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lineside.domain.errors import NotFound
from lineside.domain.mqtt import TopicAccess
from lineside.entrypoints.api.openapi import problem_responses
from lineside.entrypoints.api.routes.broker_hooks.common import (
    Params,
    allowed,
    authenticated,
    certificate_bytes,
    connection_identity,
    hook_params,
    presence_of,
    require_hook_secret,
    text,
)

router = APIRouter(prefix="/broker/vernemq", responses=problem_responses(404))

HOOK_HEADER = "vernemq-hook"
OK: dict[str, Any] = {"result": "ok"}
NOT_ALLOWED: dict[str, Any] = {"result": {"error": "not_allowed"}}
REFUSED_QOS = 128  # MQTT 3.1.1 SUBACK failure
REFUSED_QOS_V5 = 135  # MQTT 5 reason code "not authorized"
# In the endpoint URL (the operator's word, never the client's): every listener that reaches
# this hook sets the username from a verified client certificate's CN.
USERNAMES_FROM = "usernames_from"
CERTIFICATES = "certificates"


async def _auth_on_register(request: Request, params: Params) -> dict[str, Any]:
    username = text(params, "username")
    usernames_are_names = request.query_params.get(USERNAMES_FROM) == CERTIFICATES
    identity = await authenticated(
        request,
        client_id=text(params, "client_id"),
        username=username,
        password=text(params, "password"),
        certificate=certificate_bytes(text(params, "client_cert")),
        certificate_name=username if usernames_are_names else None,
    )
    return OK if identity is not None else NOT_ALLOWED


async def _auth_on_publish(request: Request, params: Params) -> dict[str, Any]:
    identity = await connection_identity(request, text(params, "client_id"), text(params, "username"))
    return OK if allowed(request, identity, text(params, "topic"), TopicAccess.PUBLISH) else NOT_ALLOWED


async def _auth_on_subscribe(request: Request, params: Params, *, v5: bool) -> dict[str, Any]:
    identity = await connection_identity(request, text(params, "client_id"), text(params, "username"))
    topics = params.get("topics")
    if not isinstance(topics, list) or not topics or not all(isinstance(t, dict) for t in topics):
        return NOT_ALLOWED
    verdicts = [allowed(request, identity, text(t, "topic"), TopicAccess.SUBSCRIBE) for t in topics]
    if all(verdicts):
        return OK
    refused = REFUSED_QOS_V5 if v5 else REFUSED_QOS
    rewritten = [
        {"topic": t.get("topic"), "qos": t.get("qos") if ok else refused}
        for t, ok in zip(topics, verdicts, strict=True)
    ]
    # MQTT 3.1.1 hooks take the rewritten list at the top level, MQTT 5 ones as a modifier.
    if v5:
        return {"result": "ok", "modifiers": {"topics": rewritten}}
    return {"result": "ok", "topics": rewritten}


def _on_register(request: Request, params: Params) -> dict[str, Any]:
    require_hook_secret(request)
    device_id = text(params, "client_id")
    if device_id and device_id == text(params, "username"):
        presence_of(request).connected(device_id)
    return {}


def _on_offline(request: Request, params: Params) -> dict[str, Any]:
    require_hook_secret(request)
    device_id = text(params, "client_id")
    if device_id:
        presence_of(request).disconnected(device_id)
    return {}


async def _answer(request: Request, hook: str) -> dict[str, Any]:
    base = hook.removesuffix("_m5")
    params = await hook_params(request)
    if base == "auth_on_register":
        return await _auth_on_register(request, params)
    if base == "auth_on_publish":
        return await _auth_on_publish(request, params)
    if base == "auth_on_subscribe":
        return await _auth_on_subscribe(request, params, v5=hook != base)
    if base == "on_register":
        return _on_register(request, params)
    if hook in ("on_client_offline", "on_client_gone"):
        return _on_offline(request, params)
    raise NotFound(f"Lineside does not implement the VerneMQ hook '{hook}'.")


@router.post("")
async def any_hook(request: Request) -> JSONResponse:
    """One endpoint for every hook, told apart by the ``vernemq-hook`` header."""
    return JSONResponse(await _answer(request, request.headers.get(HOOK_HEADER, "")))


@router.post("/{hook}")
async def named_hook(hook: str, request: Request) -> JSONResponse:
    """VerneMQ webhook named in the path (auth_on_register, on_register, ...)."""
    return JSONResponse(await _answer(request, hook))
