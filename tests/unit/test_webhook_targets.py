"""Where webhooks may go: URL shape, and every address a host resolves to."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from lineside.adapters.webhooks.addresses import addresses_of, checked, is_refused, resolve
from lineside.domain.webhooks import WebhookTarget, WebhookTargetRefused, parse_target

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "64:ff9b::7f00:1",  # NAT64 around 127.0.0.1
    "2001:db8::1",
]
ALLOWED = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_private_loopback_link_local_multicast_and_reserved_addresses_are_refused(address: str) -> None:
    assert is_refused(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_refused(ipaddress.ip_address(address))


def test_one_private_address_among_public_ones_refuses_the_host() -> None:
    addresses = [ipaddress.ip_address(a) for a in ("8.8.8.8", "10.0.0.1")]
    with pytest.raises(WebhookTargetRefused, match=r"10\.0\.0\.1"):
        checked("mixed.example", addresses, allow_private=False)
    assert checked("mixed.example", addresses, allow_private=True) == addresses


def test_a_host_that_resolves_to_nothing_is_refused_even_when_private_targets_are_allowed() -> None:
    with pytest.raises(WebhookTargetRefused, match="does not resolve"):
        checked("nowhere.invalid", [], allow_private=True)


def test_addresses_are_read_from_getaddrinfo_without_repeats_or_zones() -> None:
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", 443, 0, 2)),
    ]
    assert [str(a) for a in addresses_of(infos)] == ["93.184.216.34", "fe80::1"]


def test_ip_literals_and_localhost_are_checked_without_asking_a_remote_resolver() -> None:
    with pytest.raises(WebhookTargetRefused):
        resolve("127.0.0.1", 80, allow_private=False)
    with pytest.raises(WebhookTargetRefused):
        resolve("localhost", 80, allow_private=False)
    assert [str(a) for a in resolve("::1", 80, allow_private=True)] == ["::1"]


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://hooks.example.com/in", WebhookTarget("https", "hooks.example.com", 443)),
        ("http://hooks.example.com:8080/in?x=1", WebhookTarget("http", "hooks.example.com", 8080)),
        ("HTTPS://[2606:4700::1]/", WebhookTarget("https", "2606:4700::1", 443)),
    ],
)
def test_a_plain_http_url_gives_its_scheme_host_and_port(url: str, target: WebhookTarget) -> None:
    assert parse_target(url) == target


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://user:pass@example.com/",
        "http://token@example.com/",
        "http:///path",
        "http://example.com:0x50/",
        "http://example.com/#part",
        "http://exa mple.com/",
        "http://example.com/\n",
        "https://example.com/" + "a" * 2000,
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookTargetRefused):
        parse_target(url)
