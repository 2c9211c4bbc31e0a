"""What every broker's hooks share: reading what the broker sent (JSON, a form or a query
string, whatever the operator configured), asking ``mqtt_access`` off the event loop,
telling the presence recorder, and the shared secret of the event hooks.

A hook never answers 500 for odd input: a body that does not parse is just a request with
no fields, and no fields means no credentials, which means "deny".

Clients with TLS client certificates (``services.broker_certificates``): a broker that passes
the certificate itself gets it looked up by fingerprint or registered just in time; one that
passes only the certificate's name (its CN, or a DN) gets the device the client id names if
that device holds an active certificate of that name.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from lineside.bootstrap import Application
from lineside.domain.errors import PermissionDenied, Unauthenticated
from lineside.domain.mqtt import PROVISION_USERNAME, TopicAccess
from lineside.entrypoints.api.routes.broker_hooks.presence import recorder_of
from lineside.services.broker_certificates import (
    authenticate_certificate_name,
    authenticate_presented_certificate,
)
from lineside.services.context import ServiceContext
from lineside.services.mqtt_access import (
    PROVISIONER,
    MqttCredential,
    MqttIdentity,
    authenticate_connection,
    may_access,
    names_a_device,
)
from lineside.services.presence import PresenceRecorder

Endpoint = Callable[..., Awaitable[Response]]

log = logging.getLogger("lineside.broker_hooks")

Params = dict[str, Any]
SECRET_QUERY_PARAMETER = "secret"


async def hook_params(request: Request) -> Params:
    """The query string and the body's fields in one dict (the body wins)."""
    params: Params = dict(request.query_params)
    body = await request.body()
    if body:
        params.update(_body_fields(body, request.headers.get("content-type", "")))
    return params


def _body_fields(body: bytes, content_type: str) -> Params:
    if "form" not in content_type:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        if "json" in content_type:
            return {}
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except ValueError:
        return {}


def any_method(
    router: APIRouter, path: str, also: tuple[str, ...], **documented: Any
) -> Callable[[Endpoint], Endpoint]:
    """Route POST to ``path``, and the other methods a broker may be configured with too
    (kept out of the OpenAPI document, which would otherwise list one operation twice).
    ``documented``: how the POST route is described (its responses, response class)."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.post(path, **documented)(endpoint)
        router.api_route(path, methods=list(also), include_in_schema=False)(endpoint)
        return endpoint

    return register


def text(params: Params, name: str) -> str | None:
    """A field as text: strings as they are, numbers spelt out, anything else absent."""
    value = params.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def application_of(request: Request) -> Application:
    application: Application = request.app.state.lineside
    return application


def presence_of(request: Request) -> PresenceRecorder:
    return recorder_of(request.app)


def certificate_bytes(value: str | None) -> bytes | None:
    """A client certificate as a broker passes it: PEM (EMQX's ${cert_pem}) or base64 DER
    (VerneMQ's client_cert); None when absent or neither (a placeholder the broker left as is)."""
    if not value:
        return None
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    try:
        return base64.b64decode(value, validate=True) or None
    except (binascii.Error, ValueError):
        return None


async def authenticated(
    request: Request,
    *,
    client_id: str | None,
    username: str | None,
    password: str | None,
    certificate: bytes | None = None,
    certificate_name: str | None = None,
) -> MqttIdentity | None:
    """The identity behind a CONNECT, or None when it is refused. A password (and the user
    ``provision``) is checked as a password; without one, the client certificate the broker
    passed, else the certificate name it passed. A device that authenticates counts as
    connected (for presence and its activation)."""
    services = application_of(request).services
    identity: MqttIdentity | None
    if password or username == PROVISION_USERNAME or (certificate is None and not certificate_name):
        identity = await run_in_threadpool(password_identity, services, client_id, username, password)
    elif certificate is not None:
        identity = await run_in_threadpool(
            lambda: authenticate_presented_certificate(
                services, client_id=client_id, username=username, certificate=certificate
            )
        )
    else:
        identity = await by_certificate_name(request, client_id, certificate_name)
    if identity is not None and identity.device_id is not None:
        presence_of(request).connected(identity.device_id)
    return identity


def password_identity(
    services: ServiceContext, client_id: str | None, username: str | None, password: str | None
) -> MqttIdentity | None:
    """The identity behind a password CONNECT (or the provisioner's), None when refused. The
    provisioner is refused a device's id as client id: the broker would hand it that device's
    connection and session."""
    try:
        identity = authenticate_connection(
            services, client_id=client_id, username=username, password=password
        )
    except Unauthenticated:
        return None
    if identity.credential is MqttCredential.PROVISION and names_a_device(services, client_id):
        log.warning("broker hook: the provision user was refused a device's client id")
        return None
    return identity


async def by_certificate_name(
    request: Request, client_id: str | None, name: str | None
) -> MqttIdentity | None:
    """The device ``client_id`` if it holds an active certificate named ``name``."""
    services = application_of(request).services
    return await run_in_threadpool(
        lambda: authenticate_certificate_name(services, client_id=client_id, name=name)
    )


def connected_as(client_id: str | None, username: str | None) -> MqttIdentity | None:
    """Who a connection that logged in with a password is, from what the broker says about it.

    Authorisation hooks carry no password: the broker vouches that ``username`` passed
    authentication, and Lineside authenticated devices only as client id = username.
    """
    if username == PROVISION_USERNAME:
        return PROVISIONER
    if not username or (client_id is not None and client_id != username):
        return None
    return MqttIdentity(MqttCredential.TOKEN, device_id=username)


async def connection_identity(
    request: Request, client_id: str | None, username: str | None, certificate_name: str | None = None
) -> MqttIdentity | None:
    """Who an already authenticated connection is, password or certificate.

    A password login is client id = username (or the provisioner), and needs no lookup. Any
    other connection got in with a client certificate: its name is ``certificate_name`` when
    the broker passes one (EMQX ${cert_common_name}), else the username (Mosquitto, VerneMQ
    and RabbitMQ put the certificate's CN or DN there), and the device the client id names
    must still hold an active certificate of that name (a few index probes per check).
    """
    if username and username not in (PROVISION_USERNAME, client_id):
        return await by_certificate_name(request, client_id, certificate_name or username)
    if not username and certificate_name:
        return await by_certificate_name(request, client_id, certificate_name)
    return connected_as(client_id, username)


def allowed(request: Request, identity: MqttIdentity | None, topic: str | None, access: TopicAccess) -> bool:
    """Whether ``identity`` may use ``topic``; a device allowed to publish was seen just now."""
    return allowed_and_seen(presence_of(request), identity, topic, access)


def allowed_and_seen(
    presence: PresenceRecorder, identity: MqttIdentity | None, topic: str | None, access: TopicAccess
) -> bool:
    """``allowed``, telling ``presence`` directly."""
    if identity is None or not topic or not may_access(identity, topic, access):
        return False
    if access is TopicAccess.PUBLISH and identity.device_id is not None:
        presence.seen(identity.device_id)
    return True


def require_hook_secret(request: Request) -> None:
    """Event hooks mark devices online and offline: only a broker that knows the shared
    secret (``LINESIDE_BROKER_HOOK_SECRET``) may call them."""
    configured = application_of(request).settings.broker_hook_secret
    if configured is None or not configured.get_secret_value():
        raise PermissionDenied(
            "Broker event hooks are off: set LINESIDE_BROKER_HOOK_SECRET and configure the broker to send it."
        )
    presented = _presented_secret(request)
    expected = configured.get_secret_value().encode()
    if presented is None or not hmac.compare_digest(presented.encode(), expected):
        log.warning("broker event hook %s refused: missing or wrong secret", request.url.path)
        raise Unauthenticated("Send the broker hook secret: 'Authorization: Bearer <secret>' or '?secret='.")


def has_hook_secret(request: Request) -> bool:
    """Whether the request carries the configured hook secret (never raises)."""
    configured = application_of(request).settings.broker_hook_secret
    presented = _presented_secret(request)
    if configured is None or not configured.get_secret_value() or presented is None:
        return False
    return hmac.compare_digest(presented.encode(), configured.get_secret_value().encode())


def _presented_secret(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.query_params.get(SECRET_QUERY_PARAMETER)
