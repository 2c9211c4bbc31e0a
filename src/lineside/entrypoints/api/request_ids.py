"""``X-Request-ID``: taken from the caller when it is a sensible token, made otherwise,
answered on every response and written on every log line of the request."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lineside.entrypoints.logs import begin_request

HEADER = b"x-request-id"
# A proxy's or client's id is kept only if it cannot forge a log line or grow without bound.
ACCEPTED = re.compile(rb"^[A-Za-z0-9._:@/+=\-]{1,128}\Z")


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == HEADER and ACCEPTED.match(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        begin_request(request_id)
        echoed = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, echoed]}
            await send(message)

        await self.app(scope, receive, send_with_id)
