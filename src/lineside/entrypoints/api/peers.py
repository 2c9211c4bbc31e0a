"""Who is at the other end of the socket, kept before X-Forwarded-For rewrites the client
address: a header only a proxy may set (a device's client certificate) is believed only from
a proxy the operator listed."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

PEER = "lineside.peer"


class RememberPeer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            scope[PEER] = client[0] if client else None
        await self.app(scope, receive, send)


def from_trusted_proxy(request: Request, proxies: list[str]) -> bool:
    """Whether the socket's peer is one of ``proxies`` (addresses or networks)."""
    peer = request.scope.get(PEER)
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(proxy, strict=False) for proxy in proxies)
