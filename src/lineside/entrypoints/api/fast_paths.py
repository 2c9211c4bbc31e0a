"""Hot requests answered before the framework: ``GET /device/v1/me``, and the Mosquitto
plugin's ``/broker/mosquitto/user`` and ``/acl``.

Every device asks it, often; the answer is one index probe. Routed through FastAPI it costs
several times the probe (routing, dependency solving, exception middleware, the body and
idempotency middleware a GET without a body does not need). So a request that is exactly
that route, with a device token that works, is answered here, inside the request id and
metrics middleware (it is logged, counted and timed like any other). Anything else, and
every failure, goes on to the framework, whose route gives the same answer and the problem
details: the API and its OpenAPI document stay the framework's.
"""

from __future__ import annotations

import hmac
import json
import logging
from urllib.parse import parse_qsl

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from lineside.bootstrap import Application
from lineside.domain.errors import DomainError
from lineside.entrypoints.api.middleware import replaying
from lineside.entrypoints.api.routes.broker_hooks.mosquitto import PlainAnswer, plugin_acl, plugin_user
from lineside.entrypoints.api.routes.broker_hooks.presence import recorder_of
from lineside.entrypoints.api.routes.device_api import identity_document
from lineside.services.credentials import identify_device

log = logging.getLogger("lineside.api")
ME_PATH = "/device/v1/me"
_JSON = (b"content-type", b"application/json")


class DeviceIdentityFastPath:
    def __init__(self, app: ASGIApp, application: Application, route: BaseRoute) -> None:
        self.app = app
        self._services = application.services
        self._mqtt_url = application.settings.effective_mqtt_url
        self._route = route  # the framework's route, for the metrics' route label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == ME_PATH and scope["method"] == "GET":
            token = _bearer_token(scope) if not scope["query_string"] else None
            if token is not None and await self._answered(scope, send, token):
                return
        await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, send: Send, token: str) -> bool:
        try:
            device = identify_device(self._services, token)
        except DomainError:
            return False  # the framework answers it, with its problem details
        body = json.dumps(identity_document(device, self._mqtt_url), separators=(",", ":")).encode()
        scope["route"] = self._route
        headers = [_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class MosquittoPluginFastPath:
    """Lineside's Mosquitto plugin asks ``POST /broker/mosquitto/user`` at every CONNECT and
    ``/acl`` at a connection's first use of a topic, one request at a time: Mosquitto waits
    on each (its plugin API cannot answer later). So those requests, when they are the
    plugin's own (a form, with the hook secret), are answered here, before the framework, by
    the routes' own functions (``broker_hooks.mosquitto.plugin_user`` and ``plugin_acl``): the
    same decision, the same answer, presence recorded the same way. The check runs on the
    event loop (one index probe, as for ``/device/v1/me``): with one request in flight, a hop
    to a worker thread would only add its cost. Anything else goes on to the framework's
    routes, which mosquitto-go-auth and the OpenAPI document use.
    """

    def __init__(self, app: ASGIApp, application: Application, routes: dict[str, BaseRoute]) -> None:
        self.app = app
        self._services = application.services
        secret = application.settings.broker_hook_secret
        self._secret = secret.get_secret_value().encode() if secret else b""
        self._routes = routes  # path -> the framework's route, for the metrics' route label
        # Never more than the app takes: a larger body gets the framework's 413.
        self._body_limit = min(PLUGIN_BODY_LIMIT, application.settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_plugin_request(scope):
            await self.app(scope, receive, send)
            return
        body, whole = await _body_up_to(receive, self._body_limit)
        answer = self._answer(scope, body) if whole else None
        if answer is None:
            await self.app(scope, replaying(body, receive, whole=whole), send)
            return
        scope["route"] = self._routes[scope["path"]]
        status, content, extra = answer
        headers = [_JSON, (b"content-length", str(len(content)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _is_plugin_request(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self._routes:
            return False
        if not self._secret or scope["query_string"]:
            return False
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        presented = _bearer_token(scope)
        if presented is None or not content_type.startswith(b"application/x-www-form-urlencoded"):
            return False
        return hmac.compare_digest(presented.encode("latin-1"), self._secret)

    def _answer(self, scope: Scope, body: bytes) -> PlainAnswer | None:
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except ValueError:
            return None  # the route answers an odd body
        presence = recorder_of(scope["app"])
        try:
            if scope["path"] == MOSQUITTO_USER_PATH:
                return plugin_user(self._services, presence, dict(params))
            return plugin_acl(presence, dict(params))
        except Exception:
            log.exception("the Mosquitto plugin's fast path failed; the route answers instead")
            return None


PLUGIN_BODY_LIMIT = 64 * 1024
MOSQUITTO_USER_PATH = "/broker/mosquitto/user"
MOSQUITTO_ACL_PATH = "/broker/mosquitto/acl"


async def _body_up_to(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body read so far, and whether it is whole (it stops past ``limit`` bytes)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
    return b"".join(chunks), False
