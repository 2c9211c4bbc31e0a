"""``GET /device/v1/me`` answered before the framework.

Every device asks it, often; the answer is one index probe. Routed through FastAPI it costs
several times the probe (routing, dependency solving, exception middleware, the body and
idempotency middleware a GET without a body does not need). So a request that is exactly
that route, with a device token that works, is answered here, inside the request id and
metrics middleware (it is logged, counted and timed like any other). Anything else, and
every failure, goes on to the framework, whose route gives the same answer and the problem
details: the API and its OpenAPI document stay the framework's.
"""

from __future__ import annotations

import json

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from lineside.bootstrap import Application
from lineside.domain.errors import DomainError
from lineside.entrypoints.api.routes.device_api import identity_document
from lineside.services.credentials import identify_device

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
