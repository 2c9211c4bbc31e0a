"""Where webhooks may go: the guard against server-side request forgery.

A webhook URL is chosen by a customer, and the request comes from inside the operator's
network, so a URL pointing at a private, loopback, link-local (cloud metadata at
169.254.169.254), multicast or reserved address could reach what no customer should.
Every address the host resolves to is checked, and the request then goes to one of the
checked addresses (pinned), so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot slip through. ``allow_private`` (an operator's setting,
for receivers on the same network or tests) lifts the rule.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from lineside.domain.webhooks import WebhookTargetRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_refused(address: IPAddress) -> bool:
    """True for every address that is not plainly on the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 is 127.0.0.1; 6to4 and Teredo addresses carry an IPv4 one inside.
        embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
        if any(inner is not None and is_refused(inner) for inner in embedded):
            return True
        if address.ipv4_mapped is not None:
            return False
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def addresses_of(infos: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    """The distinct addresses of ``getaddrinfo`` results, in the resolver's order."""
    seen: list[IPAddress] = []
    for info in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"): the zone is no part of the address.
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def checked(host: str, addresses: list[IPAddress], *, allow_private: bool) -> list[IPAddress]:
    """``addresses`` if webhooks may go there (all of them), else WebhookTargetRefused."""
    if not addresses:
        raise WebhookTargetRefused(f"The host '{host}' does not resolve to any address.")
    if not allow_private:
        refused = [str(address) for address in addresses if is_refused(address)]
        if refused:
            raise WebhookTargetRefused(
                f"The host '{host}' resolves to {', '.join(refused)}: private, loopback, link-local, "
                "multicast and reserved addresses cannot receive webhooks."
            )
    return addresses


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """Resolve now (blocking) and check every address."""
    literal = literal_address(host)
    if literal is not None:
        return checked(host, [literal], allow_private=allow_private)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        infos = []
    return checked(host, addresses_of(infos), allow_private=allow_private)
