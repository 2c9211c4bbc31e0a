"""Who may connect to an MQTT broker, and to which topics: the single authority behind the
embedded broker and the HTTP hooks of production brokers (EMQX, mosquitto-go-auth, VerneMQ,
RabbitMQ).

A device connects with client id = username = its device id, and as password its device
token (``lsd_``) or its MQTT password (``lsm_``); on a TLS listener a client certificate
issued by its product's CA may stand in for the password. The user ``provision`` connects
with no credential of its own: it may only ask for credentials (see ``mqtt_provisioning``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from lineside.domain.errors import Unauthenticated
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Device
from lineside.domain.mqtt import PROVISION_USERNAME, TopicAccess, device_may, provisioner_may
from lineside.domain.secret_tokens import SecretKind
from lineside.services.context import ServiceContext


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

_REFUSED = (
    "Bad MQTT credentials: client id and username must be the device id, "
    "password its device token or MQTT password."
)


def authenticate_connection(
    ctx: ServiceContext,
    *,
    client_id: str | None,
    username: str | None,
    password: str | None,
    certificate_sha256: str | None = None,
) -> MqttIdentity:
    """The identity behind an MQTT CONNECT, or Unauthenticated (never says which part was wrong)."""
    if username == PROVISION_USERNAME:
        return PROVISIONER
    if not client_id or (username is not None and username != client_id):
        raise Unauthenticated(_REFUSED)
    if password:
        identity, device = _by_secret(ctx, password)
    elif certificate_sha256 is not None:
        identity, device = _by_certificate(ctx, certificate_sha256)
    else:
        raise Unauthenticated(_REFUSED)
    if device is None or device.id != client_id or device.state is DeviceState.REVOKED:
        raise Unauthenticated(_REFUSED)
    return identity


def _by_secret(ctx: ServiceContext, password: str) -> tuple[MqttIdentity, Device | None]:
    proof = ctx.hasher.hash(password)
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        if password.startswith(SecretKind.DEVICE_TOKEN.value):
            device = uow.devices.find_by_token_hash(proof)
            kind = MqttCredential.TOKEN
        elif password.startswith(SecretKind.MQTT_PASSWORD.value):
            device = uow.devices.find_by_mqtt_password_hash(proof)
            kind = MqttCredential.MQTT_PASSWORD
        else:
            raise Unauthenticated(_REFUSED)
    return _identity(kind, device, proof), device


def _by_certificate(ctx: ServiceContext, fingerprint: str) -> tuple[MqttIdentity, Device | None]:
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        device = uow.devices.find_by_active_certificate(fingerprint)
    return _identity(MqttCredential.CERTIFICATE, device, fingerprint), device


def _identity(kind: MqttCredential, device: Device | None, proof: str) -> MqttIdentity:
    if device is None:
        return MqttIdentity(kind, proof=proof)
    return MqttIdentity(kind, device.id, device.organization_id, proof)


def may_access(identity: MqttIdentity, topic: str, access: TopicAccess) -> bool:
    if identity.device_id is not None:
        return device_may(identity.device_id, topic, access)
    if identity.credential is MqttCredential.PROVISION:
        return provisioner_may(topic, access)
    return False


def no_longer_valid(ctx: ServiceContext, identities: Sequence[MqttIdentity]) -> set[str]:
    """The device ids among ``identities`` whose credential stopped working since they
    connected: the device was revoked or deleted, or that credential was replaced."""
    devices = [identity for identity in identities if identity.device_id is not None]
    if not devices:
        return set()
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        current = uow.devices.credential_proofs(
            [identity.device_id for identity in devices if identity.device_id]
        )
    return {
        identity.device_id
        for identity in devices
        if identity.device_id is not None and identity.proof not in current.get(identity.device_id, ())
    }
