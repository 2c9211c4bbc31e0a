"""Who may connect to an MQTT broker, and to which topics: the single authority behind the
embedded broker and the HTTP hooks of production brokers (EMQX, mosquitto-go-auth, VerneMQ,
RabbitMQ).

A device connects with client id = username = its device id, and as password its device
token (``lsd_``) or its MQTT password (``lsm_``); on a TLS listener a client certificate
issued by its product's CA may stand in for the password. The user ``provision`` connects
with no credential of its own: it may only ask for credentials (see ``mqtt_provisioning``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from lineside.domain.errors import DomainError, Unauthenticated
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Device
from lineside.domain.mqtt import PROVISION_USERNAME, TopicAccess, device_may, provisioner_may
from lineside.domain.secret_tokens import SecretKind
from lineside.services.context import ServiceContext
from lineside.services.registration import Presented, register_devices
from lineside.services.station_pool import devices_from_pools


class MqttCredential(StrEnum):
    TOKEN = "token"
    MQTT_PASSWORD = "mqtt_password"
    CERTIFICATE = "x509"
    PROVISION = "provision"  # the provisioning user: no device yet


@dataclass(frozen=True, slots=True)
class MqttIdentity:
    """Who a connection authenticated as. ``proof`` is the keyed hash of the secret (or the
    certificate's SHA-256 fingerprint) it used, so a later check can tell whether that very
    credential still holds after a rotation."""

    credential: MqttCredential
    device_id: str | None = None
    organization_id: str | None = None
    proof: str = ""

    @property
    def is_device(self) -> bool:
        return self.device_id is not None


PROVISIONER = MqttIdentity(MqttCredential.PROVISION)
PROOF_CHUNK = 500  # device ids per credential query of a recheck
# A revoked device never connects; one pending approval not until it is approved.
# Also the rule of the SQL the Mosquitto plugin runs itself (adapters/db/plugin_queries).
MAY_NOT_CONNECT = frozenset({DeviceState.REVOKED, DeviceState.PENDING_APPROVAL})
log = logging.getLogger("lineside.mqtt")

_REFUSED = (
    "Bad MQTT credentials: client id and username must be the device id, "
    "password its device token or MQTT password."
)


@dataclass(frozen=True, slots=True)
class ConnectAttempt:
    """What an MQTT CONNECT offers: its client id, username and password, and on a TLS
    listener the SHA-256 fingerprint of the client certificate, if any."""

    client_id: str | None
    username: str | None
    password: str | None
    certificate_sha256: str | None = None
    # The certificate itself (DER) and the intermediates it came with: a device unknown by its
    # fingerprint may register with them (factory PKI, services.registration).
    certificate: bytes | None = None
    chain: tuple[bytes, ...] = ()


def authenticate_connection(
    ctx: ServiceContext,
    *,
    client_id: str | None,
    username: str | None,
    password: str | None,
    certificate_sha256: str | None = None,
) -> MqttIdentity:
    """The identity behind an MQTT CONNECT, or Unauthenticated (never says which part was wrong)."""
    attempt = ConnectAttempt(client_id, username, password, certificate_sha256)
    (identity,) = authenticate_connections(ctx, [attempt])
    if identity is None:
        raise Unauthenticated(_REFUSED)
    return identity


def authenticate_connections(
    ctx: ServiceContext, attempts: Sequence[ConnectAttempt]
) -> list[MqttIdentity | None]:
    """The identity behind each CONNECT, or None where it is refused, for many at once: one
    query per kind of secret for all of them, so a reconnect storm is not one database
    round trip per device."""
    proofs = [_proof(ctx, attempt) for attempt in attempts]
    tokens = [proof for kind, proof in proofs if kind is MqttCredential.TOKEN]
    passwords = [proof for kind, proof in proofs if kind is MqttCredential.MQTT_PASSWORD]
    certificates = sorted({proof for kind, proof in proofs if kind is MqttCredential.CERTIFICATE})
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        by_token, by_password = uow.devices.find_by_secret_hashes(tokens, passwords)
        by_certificate: dict[str, Device | None] = {**uow.devices.find_by_active_certificates(certificates)}
    unknown_tokens = [proof for proof in tokens if proof not in by_token]
    if unknown_tokens:  # perhaps units an offline station made, not synced yet
        claimed = {proof: a.client_id for a, (kind, proof) in zip(attempts, proofs, strict=True) if kind}
        by_token = {**by_token, **devices_from_pools(ctx, unknown_tokens, claimed)}
    by_certificate |= _registered(ctx, attempts, proofs, by_certificate)
    found: dict[MqttCredential, Mapping[str, Device | None]] = {
        MqttCredential.TOKEN: by_token,
        MqttCredential.MQTT_PASSWORD: by_password,
        MqttCredential.CERTIFICATE: by_certificate,
    }
    return [
        _decide(attempt, kind, proof, found) for attempt, (kind, proof) in zip(attempts, proofs, strict=True)
    ]


def _registered(
    ctx: ServiceContext,
    attempts: Sequence[ConnectAttempt],
    proofs: Sequence[tuple[MqttCredential | None, str]],
    known: Mapping[str, Device | None],
) -> dict[str, Device | None]:
    """Devices unknown by their certificate's fingerprint, registered now if a registered CA
    of a product vouches for them: all of a batch's in one write (a fleet's first connection)."""
    unknown: dict[str, ConnectAttempt] = {}
    for attempt, (kind, proof) in zip(attempts, proofs, strict=True):
        if kind is MqttCredential.CERTIFICATE and not known.get(proof) and attempt.certificate is not None:
            unknown.setdefault(proof, attempt)
    if not unknown:
        return {}
    presented = [Presented(attempt.certificate or b"", attempt.chain) for attempt in unknown.values()]
    outcomes = register_devices(ctx, presented, via="mqtt")
    registered: dict[str, Device | None] = {}
    for proof, outcome in zip(unknown, outcomes, strict=True):
        if isinstance(outcome, DomainError):  # said in the log and an event by the registration
            log.info("MQTT: a certificate was not registered: %s", outcome.detail)
            registered[proof] = None
        else:
            registered[proof] = outcome.device
    return registered


def _proof(ctx: ServiceContext, attempt: ConnectAttempt) -> tuple[MqttCredential | None, str]:
    """Which kind of credential the attempt offers and its proof (keyed hash or certificate
    fingerprint); (None, "") when it offers none worth looking up."""
    if attempt.username == PROVISION_USERNAME:
        return MqttCredential.PROVISION, ""
    if not attempt.client_id or (attempt.username is not None and attempt.username != attempt.client_id):
        return None, ""
    password = attempt.password
    if password:
        if password.startswith(SecretKind.DEVICE_TOKEN.value):
            return MqttCredential.TOKEN, ctx.hasher.hash(password)
        if password.startswith(SecretKind.MQTT_PASSWORD.value):
            return MqttCredential.MQTT_PASSWORD, ctx.hasher.hash(password)
        return None, ""
    if attempt.certificate_sha256 is not None:
        return MqttCredential.CERTIFICATE, attempt.certificate_sha256
    return None, ""


def _decide(
    attempt: ConnectAttempt,
    kind: MqttCredential | None,
    proof: str,
    found: Mapping[MqttCredential, Mapping[str, Device | None]],
) -> MqttIdentity | None:
    if kind is MqttCredential.PROVISION:
        return PROVISIONER
    if kind is None:
        return None
    device = found[kind].get(proof)
    if device is None or device.id != attempt.client_id or device.state in MAY_NOT_CONNECT:
        return None
    return _identity(kind, device, proof)


def _identity(kind: MqttCredential, device: Device, proof: str) -> MqttIdentity:
    return MqttIdentity(kind, device.id, device.organization_id, proof)


def names_a_device(ctx: ServiceContext, client_id: str | None) -> bool:
    """Whether ``client_id`` is an existing device's id. A production broker hands a client id
    to whoever authenticates with it, ending the connection (and session) that held it; the
    ``provision`` user needs no password, so it must not use a device's id (the embedded broker
    gives it a private session instead)."""
    if not client_id:
        return False
    try:
        uuid.UUID(client_id)
    except ValueError:
        return False  # device ids are UUIDs
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        return uow.devices.get(client_id, within="/") is not None


def may_access(identity: MqttIdentity, topic: str, access: TopicAccess) -> bool:
    if identity.device_id is not None:
        return device_may(identity.device_id, topic, access)
    if identity.credential is MqttCredential.PROVISION:
        return provisioner_may(topic, access)
    return False


def no_longer_valid(ctx: ServiceContext, identities: Sequence[MqttIdentity]) -> set[str]:
    """The device ids among ``identities`` whose credential stopped working since they
    connected: the device was revoked or deleted, or that credential was replaced."""
    return stale_proofs(
        ctx, [(identity.device_id, identity.proof) for identity in identities if identity.device_id]
    )


def stale_proofs(ctx: ServiceContext, connections: Sequence[tuple[str, str]]) -> set[str]:
    """The device ids among ``connections`` (device id, the proof it connected with) whose
    proof no longer holds: what a broker that keeps only the proof (the Mosquitto plugin)
    asks every recheck."""
    device_ids = sorted({device_id for device_id, _ in connections})
    if not device_ids:
        return set()  # no connections (a tick of an idle broker): no transaction
    current: dict[str, set[str]] = {}
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        # In chunks: one IN (...) list per query stays within every database's parameter limit.
        for start in range(0, len(device_ids), PROOF_CHUNK):
            current |= uow.devices.credential_proofs(device_ids[start : start + PROOF_CHUNK])
    return {device_id for device_id, proof in connections if proof not in current.get(device_id, ())}
