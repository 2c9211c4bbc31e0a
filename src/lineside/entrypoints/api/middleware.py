"""ASGI middleware: a cap on request bodies, and Idempotency-Key replay of create calls."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lineside.domain.errors import DomainError
from lineside.entrypoints.api.problems import problem, status_of
from lineside.services.ports import IdempotencyStore, StoredResponse


class BodyTooLarge(Exception):
    pass


async def _send_problem(send: Send, status: int, title: str, detail: str) -> None:
    response = problem(status, title, detail)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413, whether or not Content-Length says so."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        if declared is None or not declared.isdigit():
            buffered = await self._buffered(receive, send)
            if buffered is None:
                return
            receive = buffered
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _buffered(self, receive: Receive, send: Send) -> Receive | None:
        """A chunked body meets the cap only while being read, and FastAPI turns any error
        raised while it parses a body into a 400: read it here, then hand it on.
        None when there is nothing to hand on (answered 413, or the client went away)."""
        try:
            body = await _read_capped(receive, self.max_bytes)
        except BodyTooLarge:
            await self._refuse(send)
            return None
        return None if body is None else replaying(body, receive)

    async def _refuse(self, send: Send) -> None:
        detail = f"The request body is larger than {self.max_bytes} bytes."
        await _send_problem(send, 413, "Request body too large", detail)


class RefuseNulBytes:
    """NUL never belongs in a URL, and PostgreSQL cannot even compare text containing it:
    refuse it up front with 400 instead of letting a query fail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            await _send_problem(send, 400, "Bad request", "The URL contains a NUL character.")
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    query = scope.get("query_string", b"").lower()
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


class IdempotencyKeys:
    """A POST with ``Idempotency-Key`` answers a retry with the first answer, byte for byte."""

    def __init__(
        self, app: ASGIApp, store: IdempotencyStore[Any], check_credential: Callable[[str], None]
    ) -> None:
        self.app = app
        self.store = store
        # A replay skips the route and its authentication: a revoked key must still get 401.
        self.check_credential = check_credential

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        key = headers.get(b"idempotency-key")
        if scope["type"] != "http" or scope["method"] != "POST" or key is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        fingerprint = hashlib.sha256(
            b"\0".join([scope["path"].encode(), scope.get("query_string", b""), body])
        ).hexdigest()
        credential = headers.get(b"authorization", b"").decode("latin-1")
        try:
            slot = self.store.scope(credential, key.decode("latin-1"))
            stored = await to_thread.run_sync(self.store.begin, slot, fingerprint)
            if stored is not None:
                await to_thread.run_sync(self.check_credential, credential)
        except DomainError as error:
            await _send_problem(send, status_of(error), error.title, error.detail)
            return
        if stored is not None:
            await _replay(send, stored)
            return
        await self._run_and_remember(scope, body, send, slot)

    async def _run_and_remember(self, scope: Scope, body: bytes, send: Send, slot: Any) -> None:
        status = 500
        content_type = "application/json"
        chunks: list[bytes] = []
        delivered = False
        remembered = False

        async def remember() -> None:
            nonlocal remembered
            if remembered:
                return
            remembered = True
            ok = 200 <= status < 300
            response = StoredResponse(status, content_type, b"".join(chunks).decode()) if ok else None
            await to_thread.run_sync(self.store.finish, slot, response)

        async def replay_receive() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capturing_send(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = _content_type(message) or content_type
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # Stored before the client has the answer, so a retry sent the moment it
                    # arrives is replayed instead of finding the key still in flight.
                    await remember()
            await send(message)

        try:
            await self.app(scope, replay_receive, capturing_send)
        finally:
            await remember()


def _content_type(start: Message) -> str | None:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return str(value.decode("latin-1"))
    return None


async def _read_capped(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body, None if the client disconnected; BodyTooLarge past ``max_bytes``."""
    parts = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def replaying(body: bytes, receive: Receive, *, whole: bool = True) -> Receive:
    """A receive that gives ``body`` in one message, then whatever the server sends next
    (the rest of the body, when ``body`` is not ``whole``)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": not whole}

    return replay


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _replay(send: Send, stored: StoredResponse) -> None:
    body = stored.body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": stored.status_code,
            "headers": [
                (b"content-type", stored.content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode()),
                (b"idempotent-replayed", b"true"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
