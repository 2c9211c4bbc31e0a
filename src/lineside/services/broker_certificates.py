"""Certificate-authenticated clients of production brokers (EMQX, mosquitto-go-auth, VerneMQ,
RabbitMQ): the broker ends the TLS session, verifies the client certificate against the CAs
its operator gave it, and tells Lineside's hook what it saw. Brokers tell two different
things, and each is worth what it says::

    the certificate itself       EMQX >= 5.8 (${cert_pem}), VerneMQ >= 2.1 (client_cert)
      -> found by its SHA-256 fingerprint, or registered just in time (services.registration),
         exactly as on the embedded broker's TLS listener (services.mqtt_access)

    only its name (CN or DN)     EMQX (${cert_common_name}), Mosquitto (use_identity_as_username,
                                 use_subject_as_username), VerneMQ (use_identity_as_username),
                                 RabbitMQ (ssl_cert_login)
      -> the device named by the client id must hold an active certificate with that CN,
         from Lineside's product CA or a verified, enabled CA of a maker: a revoked certificate,
         a disabled or deleted CA or a serial on the CA's CRL is refused. Nothing is registered:
         a name is no certificate, so a device never seen before cannot register this way.

A name proves less than a certificate: any CA in the broker's trust store may sign any name,
so a broker that trusts several organizations' CAs lets each of them vouch for the others'
device names. docs/brokers.md says what the operator must configure.
"""

from __future__ import annotations

import logging
from datetime import datetime

from lineside.domain.errors import CertificateRefused
from lineside.domain.identifiers import is_uuid
from lineside.domain.models import Certificate
from lineside.services.context import ServiceContext
from lineside.services.mqtt_access import ConnectAttempt, MqttIdentity, authenticate_connections

log = logging.getLogger("lineside.mqtt")

_COMMON_NAME_TYPES = frozenset({"cn", "commonname", "2.5.4.3", "oid.2.5.4.3"})
_MAX_NAME = 1024  # a certificate name a broker passes; longer is no device's


def authenticate_presented_certificate(
    ctx: ServiceContext, *, client_id: str | None, username: str | None, certificate: bytes
) -> MqttIdentity | None:
    """The device whose certificate (DER or PEM) the broker verified and passed on, found by
    its fingerprint or registered now; None when refused (the registration says why)."""
    try:
        facts = ctx.x509.read_device_certificate(certificate, ())
    except CertificateRefused as refused:
        log.info("broker hook: a client certificate was unreadable: %s", refused.detail)
        return None
    # A broker may put the certificate's name in the username (EMQX peer_cert_as_username,
    # VerneMQ use_identity_as_username): that is no other identity than the certificate's.
    if username in ("", client_id) or _named(username, facts.common_name):
        username = None
    attempt = ConnectAttempt(client_id, username, None, facts.fingerprint_sha256, certificate)
    (identity,) = authenticate_connections(ctx, [attempt])
    return identity


def authenticate_certificate_name(
    ctx: ServiceContext, *, client_id: str | None, name: str | None
) -> MqttIdentity | None:
    """The device ``client_id`` if it holds an active certificate whose subject CN is the one
    ``name`` gives (a CN, or a DN with a CN), from a CA that still vouches for it; else None."""
    if not client_id or not name or len(name) > _MAX_NAME or not is_uuid(client_id):
        return None
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        certificates = uow.certificates.list_for_device(client_id)
    now = ctx.clock()
    named = [c for c in certificates if _current(c, now) and _named(name, common_name(c.subject))]
    for certificate in named:
        # The rest (a CA still verified and enabled, the device's state) as for a fingerprint.
        attempt = ConnectAttempt(client_id, None, None, certificate.fingerprint_sha256)
        (identity,) = authenticate_connections(ctx, [attempt])
        if identity is not None:
            return identity
    log.info("broker hook: client %s has no active certificate of the name the broker passed", client_id)
    return None


def _current(certificate: Certificate, now: datetime) -> bool:
    return certificate.revoked_at is None and certificate.not_after > now


def _named(name: str | None, cn: str | None) -> bool:
    """Whether a broker's certificate name is the CN ``cn``: the name may be the CN itself or a
    DN with that CN. Both readings are tried, as a CN may hold '=' and ',' (a serial may)."""
    return cn is not None and name is not None and cn in (name, common_name(name))


def common_name(distinguished_name: str) -> str | None:
    """The first CN of an RFC 4514 / RFC 2253 distinguished name (as cryptography, OpenSSL
    and RabbitMQ print one: ``CN=SN-1,O=Maker``), or None when it is no DN with a CN."""
    try:
        attributes = _attributes(distinguished_name)
    except ValueError:
        return None
    return next((value for kind, value in attributes if kind.lower() in _COMMON_NAME_TYPES), None)


def _attributes(text: str) -> list[tuple[str, str]]:
    """``type=value`` pairs separated by ',' or '+' (multi-valued RDNs); escapes: a backslash
    before a special character, or two hex digits (UTF-8 bytes). ValueError when malformed."""
    attributes: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        equals = text.find("=", position)
        if equals < 0:
            raise ValueError("an attribute without '='")
        kind = text[position:equals].strip()
        if not kind or any(c in kind for c in ',+\\"'):
            raise ValueError("a bad attribute type")
        value, position = _value(text, equals + 1)
        attributes.append((kind, value))
    return attributes


def _value(text: str, start: int) -> tuple[str, int]:
    """An attribute value from ``start``, unescaped, and where the next attribute begins."""
    raw = bytearray()
    position = start
    while position < len(text):
        char = text[position]
        if char in ",+":
            return raw.decode("utf-8"), position + 1
        if char == "\\":
            pair = text[position + 1 : position + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                raw.append(int(pair, 16))
                position += 3
                continue
            if position + 1 >= len(text):
                raise ValueError("a dangling escape")
            raw.extend(text[position + 1].encode())
            position += 2
            continue
        raw.extend(char.encode())
        position += 1
    return raw.decode("utf-8"), position
