"""RabbitMQ's HTTP auth backend (``rabbitmq_auth_backend_http``) for its MQTT plugin.

What RabbitMQ 3.10 sends when an MQTT client connects, subscribes and publishes (a form
body with ``auth_http.http_method = post``, else a query string), each answered with the
plain text ``allow`` or ``deny``:

- ``user``: ``username``, ``password``, ``vhost``, ``client_id``.
- ``vhost``: ``username``, ``vhost``, ``ip``, ``client_id``: the default vhost ``/``.
- ``resource``: ``username``, ``vhost``, ``resource``, ``name``, ``permission``,
  ``client_id``: the MQTT exchange ``amq.topic`` (read and write) and the connection's own
  subscription queues ``mqtt-subscription-{client id}qos{0|1}``.
- ``topic``: ... ``routing_key``, ``variable_map.client_id``: the MQTT topic with ``/`` as
  ``.`` and ``+`` as ``*``; ``write`` is a publish, ``read`` a subscription.

No connection events reach the backend: a device counts as connected when it authenticates.

Client certificates (``mqtt.ssl_cert_login = true``): a client that sends no username and
password logs in as its certificate's CN (``ssl_cert_login_from = common_name``) or DN (the
default), and ``user`` then has no ``password`` field at all (a typed username always comes
with one: RabbitMQ refuses it otherwise before asking). RabbitMQ 3.13 and later send the
client id with it, and the device it names must hold an active certificate of that name;
3.10 to 3.12 send the username alone, so ``user`` lets the certificate's name in and
``vhost``, which RabbitMQ asks before the connection opens and which carries the client id,
makes that check; except for a name that is a device id (the CN of a certificate of
Lineside's product CA), which ``user`` checks as that device's, since ``vhost`` would take it
for a password login (client id = username). ``resource`` and ``topic`` check the device too,
for connections whose username is not their client id.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from lineside.domain.identifiers import is_uuid
from lineside.domain.mqtt import TopicAccess
from lineside.entrypoints.api.routes.broker_hooks.common import (
    Params,
    allowed,
    any_method,
    authenticated,
    connection_identity,
    hook_params,
    presence_of,
    text,
)
from lineside.services.mqtt_access import MqttCredential, MqttIdentity

# RabbitMQ's HTTP auth backend reads a plain-text body: "allow" or "deny".
router = APIRouter(prefix="/broker/rabbitmq", default_response_class=PlainTextResponse)

OTHER_METHODS = ("GET",)  # besides POST
MQTT_EXCHANGE = "amq.topic"
DEFAULT_VHOST = "/"
_SUBSCRIPTION_QUEUE = re.compile(r"mqtt-subscription-(?P<client_id>.+)qos[012]")
_TOPIC_PERMISSIONS = {"write": TopicAccess.PUBLISH, "read": TopicAccess.SUBSCRIBE}


def _answer(ok: bool) -> PlainTextResponse:
    # "allow" without tags: a device is no administrator, not even of the management UI.
    return PlainTextResponse("allow" if ok else "deny")


def _client_id(params: Params) -> str | None:
    return text(params, "client_id") or text(params, "variable_map.client_id")


def mqtt_topic(routing_key: str) -> str:
    """The MQTT topic (or filter) behind an AMQP routing key, as the MQTT plugin maps it."""
    return routing_key.replace(".", "/").replace("*", "+")


@any_method(router, "/user", OTHER_METHODS)
async def user(request: Request) -> PlainTextResponse:
    """RabbitMQ HTTP auth backend: may this MQTT client log in? (allow or deny)"""
    params = await hook_params(request)
    username, client_id = text(params, "username"), _client_id(params)
    certificate_name = username if "password" not in params else None
    if certificate_name and client_id is None:  # a certificate login of RabbitMQ < 3.13
        if not is_uuid(certificate_name):
            return _answer(True)  # a name that is no client id: "vhost" checks the device
        # The CN of a certificate of Lineside's product CA: the device id, which the device
        # also uses as client id. "vhost" cannot tell that pair from a password login.
        client_id = certificate_name
    identity = await authenticated(
        request,
        client_id=client_id,
        username=username,
        password=text(params, "password"),
        certificate_name=certificate_name,
    )
    return _answer(identity is not None)


@any_method(router, "/vhost", OTHER_METHODS)
async def vhost(request: Request) -> PlainTextResponse:
    """RabbitMQ HTTP auth backend: may it use the virtual host?"""
    params = await hook_params(request)
    identity = await connection_identity(request, _client_id(params), text(params, "username"))
    if identity is not None and identity.credential is MqttCredential.CERTIFICATE and identity.device_id:
        presence_of(request).connected(identity.device_id)  # RabbitMQ < 3.13 said no client id before
    return _answer(identity is not None and text(params, "vhost") == DEFAULT_VHOST)


@any_method(router, "/resource", OTHER_METHODS)
async def resource(request: Request) -> PlainTextResponse:
    """RabbitMQ HTTP auth backend: may it use this exchange or queue?"""
    params = await hook_params(request)
    client_id = _client_id(params)
    identity = await connection_identity(request, client_id, text(params, "username"))
    if identity is None or text(params, "vhost") != DEFAULT_VHOST:
        return _answer(False)
    kind, name, permission = text(params, "resource"), text(params, "name") or "", text(params, "permission")
    if kind == "exchange":
        return _answer(name == MQTT_EXCHANGE and permission in ("read", "write"))
    if kind == "queue":
        return _answer(_own_queue(name, client_id, identity))
    return _answer(False)


def _own_queue(name: str, client_id: str | None, identity: MqttIdentity) -> bool:
    """The subscription queue of this very connection (the provisioning user's are named
    after whatever client id it chose)."""
    match = _SUBSCRIPTION_QUEUE.fullmatch(name)
    if match is None or client_id is None or match["client_id"] != client_id:
        return False
    return identity.device_id in (None, client_id)


@any_method(router, "/topic", OTHER_METHODS)
async def topic(request: Request) -> PlainTextResponse:
    """RabbitMQ HTTP auth backend: may it publish or subscribe with this routing key?"""
    params = await hook_params(request)
    identity = await connection_identity(request, _client_id(params), text(params, "username"))
    access = _TOPIC_PERMISSIONS.get(text(params, "permission") or "")
    routing_key = text(params, "routing_key")
    if access is None or routing_key is None or text(params, "name") != MQTT_EXCHANGE:
        return _answer(False)
    return _answer(allowed(request, identity, mqtt_topic(routing_key), access))
