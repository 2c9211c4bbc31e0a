"""mosquitto-go-auth's HTTP backend: ``/user``, ``/superuser`` and ``/acl``.

The plugin sends ``{"username", "password", "clientid"}`` to ``/user``, ``{"username"}`` to
``/superuser`` and ``{"username", "clientid", "topic", "acc"}`` to ``/acl`` (JSON or a form,
``auth_opt_http_params_mode``; POST, GET or PUT, ``auth_opt_http_method``). ``acc`` is 1 read
(a message delivered to a subscriber), 2 write (publish), 3 read and write, 4 subscribe.

One answer serves both the ``status`` and ``json`` response modes: the status says it (200
or 403) and the body says it too, ``{"ok": true, "error": ""}``. The ``text`` mode wants the
body "ok": point the plugin at ``/broker/mosquitto/text/...`` instead. Nobody is a superuser.
The plugin has no connection events: a device counts as connected when it authenticates.

Client certificates: on a listener with ``use_identity_as_username`` (or
``use_subject_as_username``) Mosquitto lets a client in on its certificate alone and never
calls ``/user``; the username is then the certificate's CN (or DN) and the client id the
device id. Each ``/acl`` check of such a connection confirms that the device still holds an
active certificate of that name (so a revoked one is refused at its next publish or
subscription), and the first one counts as its connection.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from lineside.domain.mqtt import PROVISION_USERNAME, TopicAccess
from lineside.entrypoints.api.routes.broker_hooks.common import (
    Params,
    allowed_and_seen,
    any_method,
    authenticated,
    connected_as,
    connection_identity,
    has_hook_secret,
    hook_params,
    password_identity,
    presence_of,
    text,
)
from lineside.services.context import ServiceContext
from lineside.services.mqtt_access import MqttCredential, MqttIdentity
from lineside.services.presence import PresenceRecorder

# mosquitto-go-auth reads the status: 200 allows, 403 refuses (with a JSON or text reason).
router = APIRouter(
    prefix="/broker/mosquitto",
    responses={
        403: {
            "description": "Refused (mosquitto-go-auth's contract).",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    },
)

OTHER_METHODS = ("GET", "PUT")  # besides POST
READ, WRITE, READ_WRITE, SUBSCRIBE = 1, 2, 3, 4
_ACCESSES = {
    READ: (TopicAccess.SUBSCRIBE,),
    WRITE: (TopicAccess.PUBLISH,),
    READ_WRITE: (TopicAccess.SUBSCRIBE, TopicAccess.PUBLISH),
    SUBSCRIBE: (TopicAccess.SUBSCRIBE,),
}
PROOF_HEADER = "X-Lineside-Proof"  # read by Lineside's plugin (broker_hooks.mosquitto_plugin)
# Tells the plugin "a device logging in as itself": it answers that connection's topic checks
# with the device rule (domain.mqtt.device_may) itself, sparing a round trip per device.
DEVICE_HEADER = "X-Lineside-Device"
_PASSWORDS = (MqttCredential.TOKEN, MqttCredential.MQTT_PASSWORD)  # client id = username = device id
_REFUSED = {"user": "Bad MQTT credentials.", "superuser": "No superusers.", "acl": "Topic not allowed."}


async def _user(request: Request) -> MqttIdentity | None:
    params = await hook_params(request)
    return await authenticated(
        request,
        client_id=text(params, "clientid"),
        username=text(params, "username"),
        password=text(params, "password"),
    )


async def _acl(request: Request) -> bool:
    params = await hook_params(request)
    identity = await connection_identity(request, text(params, "clientid"), text(params, "username"))
    if identity is not None and identity.credential is MqttCredential.CERTIFICATE and identity.device_id:
        presence_of(request).connected(identity.device_id)  # Mosquitto asked nothing at CONNECT
    return acl_allows(presence_of(request), identity, params)


def acl_allows(presence: PresenceRecorder, identity: MqttIdentity | None, params: Params) -> bool:
    """Whether ``identity`` may have the access ``acc`` to ``topic`` (a device publishing is seen)."""
    accesses = _ACCESSES.get(_access_level(params), ())
    topic = text(params, "topic")
    return bool(accesses) and all(allowed_and_seen(presence, identity, topic, access) for access in accesses)


def _access_level(params: Params) -> int:
    level = text(params, "acc") or ""
    return int(level) if level.isdigit() else 0


# -- Lineside's own plugin, answered before the framework (api.fast_paths) -----------------------

PlainAnswer = tuple[int, bytes, list[tuple[bytes, bytes]]]  # status, JSON body, extra headers


def plugin_user(services: ServiceContext, presence: PresenceRecorder, params: Params) -> PlainAnswer:
    """``/user`` for the plugin (a password CONNECT, synchronously): the answer with its proof."""
    identity = password_identity(
        services, text(params, "clientid"), text(params, "username"), text(params, "password")
    )
    if identity is not None and identity.device_id is not None:
        presence.connected(identity.device_id)
    status, body = _answer_document(identity is not None, "user")
    return status, body, _plugin_headers(identity)


def _plugin_headers(identity: MqttIdentity | None) -> list[tuple[bytes, bytes]]:
    """What the plugin keeps of an accepted CONNECT: the proof (for the rechecks) and, for a
    device logging in as itself with a password, its id (its topic rule is answered there)."""
    if identity is None or not identity.proof:
        return []
    headers = [(PROOF_HEADER.lower().encode(), identity.proof.encode())]
    if identity.device_id and identity.credential in _PASSWORDS:
        headers.append((DEVICE_HEADER.lower().encode(), identity.device_id.encode()))
    return headers


def plugin_acl(presence: PresenceRecorder, params: Params) -> PlainAnswer | None:
    """``/acl`` for the plugin, or None for a certificate connection (the route looks it up)."""
    client_id, username = text(params, "clientid"), text(params, "username")
    if username and username not in (PROVISION_USERNAME, client_id):
        return None
    status, body = _answer_document(acl_allows(presence, connected_as(client_id, username), params), "acl")
    return status, body, []


def _answer_document(ok: bool, check: str) -> tuple[int, bytes]:
    error = "" if ok else _REFUSED[check]
    return (200 if ok else 403), json.dumps({"ok": ok, "error": error}, separators=(",", ":")).encode()


def _answer(ok: bool, check: str) -> Response:
    status, body = _answer_document(ok, check)
    return Response(body, status_code=status, media_type="application/json")


def _text_answer(ok: bool, check: str) -> PlainTextResponse:
    return PlainTextResponse("ok" if ok else _REFUSED[check], status_code=200 if ok else 403)


@any_method(router, "/user", OTHER_METHODS)
async def user(request: Request) -> Response:
    """mosquitto-go-auth: may this client connect? 200 allows, 403 refuses (JSON).

    To a caller with the hook secret (Lineside's own plugin) an allowed device's answer also
    carries the proof it connected with, which the plugin's ticks hand back for the recheck."""
    identity = await _user(request)
    answer = _answer(identity is not None, "user")
    if has_hook_secret(request):
        answer.headers.update({name.decode(): value.decode() for name, value in _plugin_headers(identity)})
    return answer


@any_method(router, "/superuser", OTHER_METHODS)
async def superuser(request: Request) -> Response:
    """mosquitto-go-auth: devices are never superusers (403)."""
    return _answer(False, "superuser")


@any_method(router, "/acl", OTHER_METHODS)
async def acl(request: Request) -> Response:
    """mosquitto-go-auth: may this client read or write this topic? (JSON)"""
    return _answer(await _acl(request), "acl")


@any_method(router, "/text/user", OTHER_METHODS)
async def user_text(request: Request) -> Response:
    """mosquitto-go-auth with plain-text answers: may this client connect?"""
    return _text_answer(await _user(request) is not None, "user")


@any_method(router, "/text/superuser", OTHER_METHODS)
async def superuser_text(request: Request) -> Response:
    """mosquitto-go-auth with plain-text answers: never a superuser."""
    return _text_answer(False, "superuser")


@any_method(router, "/text/acl", OTHER_METHODS)
async def acl_text(request: Request) -> Response:
    """mosquitto-go-auth with plain-text answers: may this client use this topic?"""
    return _text_answer(await _acl(request), "acl")
