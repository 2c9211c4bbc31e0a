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
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from lineside.domain.mqtt import PROVISION_USERNAME, TopicAccess
from lineside.entrypoints.api.routes.broker_hooks.common import (
    Params,
    allowed,
    any_method,
    authenticated,
    connected_as,
    hook_params,
    text,
)

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
    identity = await authenticated(
        request,
        client_id=_client_id(params),
        username=text(params, "username"),
        password=text(params, "password"),
    )
    return _answer(identity is not None)


@any_method(router, "/vhost", OTHER_METHODS)
async def vhost(request: Request) -> PlainTextResponse:
    """RabbitMQ HTTP auth backend: may it use the virtual host?"""
    params = await hook_params(request)
    identity = connected_as(_client_id(params), text(params, "username"))
    return _answer(identity is not None and text(params, "vhost") == DEFAULT_VHOST)


@any_method(router, "/resource", OTHER_METHODS)
async def resource(request: Request) -> PlainTextResponse:
    """RabbitMQ HTTP auth backend: may it use this exchange or queue?"""
    params = await hook_params(request)
    username = text(params, "username")
    identity = connected_as(_client_id(params), username)
    if identity is None or text(params, "vhost") != DEFAULT_VHOST:
        return _answer(False)
    kind, name, permission = text(params, "resource"), text(params, "name") or "", text(params, "permission")
    if kind == "exchange":
        return _answer(name == MQTT_EXCHANGE and permission in ("read", "write"))
    if kind == "queue":
        return _answer(_own_queue(name, _client_id(params), username))
    return _answer(False)


def _own_queue(name: str, client_id: str | None, username: str | None) -> bool:
    """The subscription queue of this very connection (the provisioning user's are named
    after whatever client id it chose)."""
    match = _SUBSCRIPTION_QUEUE.fullmatch(name)
    if match is None or client_id is None:
        return False
    return match["client_id"] == client_id and username in (client_id, PROVISION_USERNAME)


@any_method(router, "/topic", OTHER_METHODS)
async def topic(request: Request) -> PlainTextResponse:
    """RabbitMQ HTTP auth backend: may it publish or subscribe with this routing key?"""
    params = await hook_params(request)
    identity = connected_as(_client_id(params), text(params, "username"))
    access = _TOPIC_PERMISSIONS.get(text(params, "permission") or "")
    routing_key = text(params, "routing_key")
    if access is None or routing_key is None or text(params, "name") != MQTT_EXCHANGE:
        return _answer(False)
    return _answer(allowed(request, identity, mqtt_topic(routing_key), access))
