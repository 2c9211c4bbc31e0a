"""Entities of the provisioning domain, as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from lineside.domain.lifecycle import DeviceState
from lineside.domain.metadata import MetadataField


class Scope(StrEnum):
    """What an API key may do. Each scope includes the ones below it."""

    READ = "read"
    FACTORY = "factory"
    ADMIN = "admin"


_SCOPE_RANK = {Scope.READ: 0, Scope.FACTORY: 1, Scope.ADMIN: 2}


def scope_grants(held: frozenset[Scope], needed: Scope) -> bool:
    return any(_SCOPE_RANK[scope] >= _SCOPE_RANK[needed] for scope in held)


class Role(StrEnum):
    """What a person may do in an organization they belong to (a membership's role)."""

    OWNER = "owner"  # everything, and the organization's people and their roles
    ADMIN = "admin"  # everything but making owners: products, keys, webhooks, invitations
    OPERATOR = "operator"  # the factory line, batches, static tokens: what a factory key may do
    VIEWER = "viewer"  # reads only


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.OWNER: frozenset({Scope.ADMIN}),
    Role.ADMIN: frozenset({Scope.ADMIN}),
    Role.OPERATOR: frozenset({Scope.FACTORY}),
    Role.VIEWER: frozenset({Scope.READ}),
}


class GroupKind(StrEnum):
    """Electric Imp's kinds of device group. A pre-production group holds blessed units, as a
    production group does, kept apart to try application firmware before the production fleet
    gets it (in impCentral, the units a pre-factory trial line blesses). Blessing in Lineside
    assigns a production group, so units reach a pre-production group by being moved there."""

    DEVELOPMENT = "development"
    FACTORY = "factory"
    PRE_PRODUCTION = "pre_production"
    PRODUCTION = "production"


PRODUCTION_STATES = frozenset({DeviceState.BLESSED, DeviceState.ACTIVATED})
# The groups of blessed units: they run application firmware, after blessing or activation.
BLESSED_GROUP_KINDS = frozenset({GroupKind.PRE_PRODUCTION, GroupKind.PRODUCTION})


def group_refuses(kind: GroupKind, state: DeviceState) -> str | None:
    """Why a device in ``state`` cannot be moved by hand into a group of ``kind`` (None if
    it can). Units join a factory group by enrolling and a production group by blessing, so
    a person moves blessed devices only between production and pre-production groups, and
    the others only between development groups (Electric Imp's impCentral draws the same
    lines)."""
    if state is DeviceState.REVOKED:
        return "A revoked device stays where it is."
    if kind is GroupKind.FACTORY:
        return "Units join a factory group by enrolling on the line, not by hand."
    if (kind in BLESSED_GROUP_KINDS) != (state in PRODUCTION_STATES):
        return (
            "Only blessed units join a production or pre-production group, "
            "and they leave one only for another."
        )
    return None


class RegistrationPolicy(StrEnum):
    """Which devices a product's own certificate authorities register on first connection."""

    OPEN = "open"  # any device whose certificate chains to a verified, enabled CA
    ALLOW_LIST = "allow_list"  # only devices defined beforehand by serial number
    APPROVAL = "approval"  # any, held as pending_approval until approved


class RegistrationIdentity(StrEnum):
    """Where a registering device's certificate names it (its serial number here)."""

    COMMON_NAME = "cn"  # the subject's CN
    SAN_URI = "san_uri"  # the first URI in its subjectAltName


class AuthorityStatus(StrEnum):
    PENDING = "pending_verification"  # registered; trusts nothing until possession is proven
    VERIFIED = "verified"
    DISABLED = "disabled"


@dataclass(frozen=True)
class CertificateAuthorityRecord:
    """A maker's own CA, registered for a product: devices whose certificates chain to it
    (once verified, while enabled) register themselves on first connection."""

    id: str
    organization_id: str
    product_id: str
    subject: str
    key_id: str  # its subject key identifier, hex: how a device certificate names its issuer
    fingerprint_sha256: str
    certificate_pem: str
    not_after: datetime
    status: AuthorityStatus
    created_at: datetime
    verified_at: datetime | None = None
    crl_updated_at: datetime | None = None
    # A station's CA, once the station is revoked: known devices connect, no new one registers.
    registration_closed_at: datetime | None = None
    # Made by the server for an offline station: its devices are named by the station (the
    # subject serialNumber; CN = the id the station gave), whatever the product's policy.
    station_id: str | None = None


class EnrollmentPolicy(StrEnum):
    """Which hardware a product's factory enrollment tokens admit as Devices Under Test."""

    CREATE = "create"  # an unknown hardware id becomes a new device
    PREDEFINED = "predefined"  # only devices defined beforehand (by serial and hardware id)


class FirmwareKind(StrEnum):
    FACTORY = "factory"  # runs on the line: tests the unit and blesses it
    APPLICATION = "application"  # what the product does in its owner's hands


class ApplicationFirmwareAfter(StrEnum):
    """When a production or pre-production group's members load application firmware
    (Electric Imp's setting)."""

    BLESSING = "blessing"  # at once: the unit leaves the line running the application
    ACTIVATION = "activation"  # only once activated: needed for factory activation


class CredentialType(StrEnum):
    TOKEN = "token"
    X509 = "x509"
    MQTT_PASSWORD = "mqtt_password"  # the MQTT CONNECT password (client id = username = device id)


class OrganizationKind(StrEnum):
    MANUFACTURER = "manufacturer"
    PERSONAL = "personal"  # made for one end user at sign-up


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    parent_id: str | None
    path: str  # "/root-id/child-id/": a prefix match finds a whole subtree
    created_at: datetime
    kind: OrganizationKind = OrganizationKind.MANUFACTURER
    device_quota: int | None = None  # None: the installation's default

    def contains(self, other_path: str) -> bool:
        return other_path.startswith(self.path)


@dataclass(frozen=True)
class ApiKey:
    id: str
    organization_id: str
    name: str
    scopes: frozenset[Scope]
    prefix: str  # the first characters of the key, enough to recognise it in a list
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key acting for an organization and its sub-organizations."""

    organization: Organization
    scopes: frozenset[Scope]
    actor: str  # e.g. "api_key:<id>", "user:<id>" or "cli"
    user_id: str | None = None  # set when a signed-in person is calling
    role: Role | None = None  # the person's role in ``organization`` (None for keys and the CLI)

    def can(self, needed: Scope) -> bool:
        return scope_grants(self.scopes, needed)


@dataclass(frozen=True)
class Product:
    id: str
    organization_id: str
    name: str
    metadata_fields: list[MetadataField]
    created_at: datetime
    enrollment_policy: EnrollmentPolicy = EnrollmentPolicy.CREATE
    requires_blessing: bool = False  # a defined (unblessed) device does not activate
    provision_key: str | None = None  # MQTT provisioning; its secret is kept hashed elsewhere
    registration_policy: RegistrationPolicy = RegistrationPolicy.OPEN
    registration_identity: RegistrationIdentity = RegistrationIdentity.COMMON_NAME
    reregistration: bool = False  # may a device come back with a different certificate


@dataclass(frozen=True)
class DeviceGroup:
    id: str
    organization_id: str
    product_id: str
    name: str
    kind: GroupKind
    created_at: datetime
    application_firmware_after: ApplicationFirmwareAfter = ApplicationFirmwareAfter.BLESSING
    release_id: str | None = None  # the firmware release deployed to the group, if any


@dataclass(slots=True)
class Device:
    id: str
    organization_id: str
    product_id: str
    serial_number: str
    state: DeviceState
    created_at: datetime
    mac: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    group_id: str | None = None
    batch_id: str | None = None
    owner_organization_id: str | None = None
    token_issued_at: datetime | None = None
    timeline: dict[str, datetime | None] = field(default_factory=dict)
    claimed_at: datetime | None = None
    claim_generation: int = 0
    has_claim_code: bool = False
    hardware_id: str | None = None  # MAC or chip id, as a factory fixture reads it
    factory_token_id: str | None = None  # the factory enrollment it was enrolled with
    firmware_version: str | None = None  # what the device last said it runs
    firmware_reported_at: datetime | None = None
    mqtt_password_issued_at: datetime | None = None
    online: bool = False  # connected to the MQTT broker, as presence last recorded it
    last_seen_at: datetime | None = None
    provisioned_at: datetime | None = None  # credentials handed out by MQTT provisioning

    @property
    def is_claimed(self) -> bool:
        return self.owner_organization_id is not None


@dataclass(frozen=True)
class Certificate:
    id: str
    device_id: str
    organization_id: str
    product_id: str
    serial_hex: str
    fingerprint_sha256: str
    subject: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    revoked_at: datetime | None = None
    # A certificate a maker's CA signed (factory PKI): that CA, and the serial it gave (the
    # ``serial_hex`` of such a row is its fingerprint, unique, as issuers' serials are not).
    authority_id: str | None = None
    issuer_serial_hex: str | None = None


@dataclass(frozen=True)
class User:
    id: str
    email: str
    personal_organization_id: str
    created_at: datetime


@dataclass(frozen=True)
class StaticTokenBatch:
    id: str
    organization_id: str
    product_id: str
    count: int
    metadata_columns: list[str]
    created_at: datetime
    exported_at: datetime | None = None


@dataclass(frozen=True)
class FirmwareRelease:
    """An image uploaded for a product; the bytes live in the data dir under their SHA-256."""

    id: str
    organization_id: str
    product_id: str
    kind: FirmwareKind
    version: str
    sha256: str
    size_bytes: int
    created_at: datetime
    created_by: str
    notes: str | None = None
