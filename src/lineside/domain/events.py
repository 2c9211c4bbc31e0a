"""Domain events: facts, named in the past tense, that go to the outbox.

An event never carries a secret: only identifiers, states and counts. ``EventType`` is the
whole vocabulary (webhooks subscribe to its values); each type names the kind of subject it
is about, and ``new_event`` is the one way to make an event about any subject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, Self

from lineside.domain.identifiers import new_id


class EventType(StrEnum):
    """Every event Lineside records, as ``noun.verb``, with the kind of its subject."""

    subject_type: str

    def __new__(cls, value: str, subject_type: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.subject_type = subject_type
        return member

    DEVICE_DEFINED = "device.defined", "device"
    DEVICES_DEFINED_IN_BATCH = "devices.batch_defined", "batch"
    CREDENTIALS_ISSUED = "credentials.issued", "device"
    CREDENTIALS_ROTATED = "credentials.rotated", "device"
    CREDENTIALS_REVOKED = "credentials.revoked", "device"
    PRODUCT_CREATED = "product.created", "product"
    PRODUCT_UPDATED = "product.updated", "product"
    DEVICE_GROUP_CREATED = "device_group.created", "device_group"
    DEVICE_GROUP_UPDATED = "device_group.updated", "device_group"
    ORGANIZATION_CREATED = "organization.created", "organization"
    API_KEY_CREATED = "api_key.created", "api_key"
    API_KEY_REVOKED = "api_key.revoked", "api_key"
    DEVICE_CLAIMED = "device.claimed", "device"
    DEVICE_UNCLAIMED = "device.unclaimed", "device"
    DEVICE_DISCLAIMED = "device.disclaimed", "device"
    DEVICE_DELETED = "device.deleted", "device"
    STATIC_TOKENS_CREATED = "static_tokens.created", "static_token_batch"
    STATIC_TOKENS_EXPORTED = "static_tokens.exported", "static_token_batch"
    STATIC_TOKENS_REGENERATED = "static_tokens.regenerated", "static_token_batch"
    USER_SIGNED_UP = "user.signed_up", "user"
    USER_PASSWORD_CHANGED = "user.password_changed", "user"
    DEVICE_TRANSFER_OFFERED = "device.transfer_offered", "device"
    DEVICE_TRANSFER_CANCELLED = "device.transfer_cancelled", "device"
    DEVICE_TRANSFERRED = "device.transferred", "device"
    INVITATION_CREATED = "invitation.created", "invitation"
    INVITATION_ACCEPTED = "invitation.accepted", "invitation"
    MEMBERSHIP_ROLE_CHANGED = "membership.role_changed", "user"
    DEVICE_TESTED = "device.tested", "device"
    FACTORY_TOKEN_CREATED = "factory_token.created", "factory_token"
    FACTORY_TOKEN_REVOKED = "factory_token.revoked", "factory_token"
    PRODUCTION_TOKEN_CREATED = "production_token.created", "production_token"
    FIRMWARE_RELEASED = "firmware.released", "firmware_release"
    FIRMWARE_DEPLOYED = "firmware.deployed", "device_group"
    DEVICE_FIRMWARE_REPORTED = "device.firmware_reported", "device"
    DEVICE_PROVISIONED = "device.provisioned", "device"
    DEVICE_REPROVISIONING_ALLOWED = "device.reprovisioning_allowed", "device"
    PRODUCT_PROVISIONING_CONFIGURED = "product.provisioning_configured", "product"
    PRODUCT_PROVISIONING_DISABLED = "product.provisioning_disabled", "product"
    WEBHOOK_CREATED = "webhook.created", "webhook_endpoint"
    WEBHOOK_DISABLED = "webhook.disabled", "webhook_endpoint"
    WEBHOOK_UPDATED = "webhook.updated", "webhook_endpoint"
    WEBHOOK_DELETED = "webhook.deleted", "webhook_endpoint"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated", "webhook_endpoint"
    WEBHOOK_TEST = "webhook.test", "webhook_endpoint"  # sent to one endpoint, whatever it subscribes to
    DEVICE_ENROLLED = "device.enrolled", "device"
    DEVICE_RETESTED = "device.retested", "device"
    DEVICE_BLESSED = "device.blessed", "device"
    DEVICE_FAILED = "device.failed", "device"
    DEVICE_ACTIVATED = "device.activated", "device"
    DEVICE_REVOKED = "device.revoked", "device"
    DEVICE_MOVED = "device.moved", "device"  # to another device group, by a person
    DEVICE_REGISTERED = "device.registered", "device"  # by its own certificate (factory PKI)
    DEVICE_APPROVED = "device.approved", "device"
    DEVICE_REGISTRATION_REFUSED = "device.registration_refused", "certificate_authority"
    CERTIFICATE_AUTHORITY_REGISTERED = "certificate_authority.registered", "certificate_authority"
    CERTIFICATE_AUTHORITY_VERIFIED = "certificate_authority.verified", "certificate_authority"
    CERTIFICATE_AUTHORITY_DISABLED = "certificate_authority.disabled", "certificate_authority"
    CERTIFICATE_AUTHORITY_ENABLED = "certificate_authority.enabled", "certificate_authority"
    CERTIFICATE_AUTHORITY_DELETED = "certificate_authority.deleted", "certificate_authority"
    CERTIFICATE_AUTHORITY_CRL_UPDATED = "certificate_authority.crl_updated", "certificate_authority"
    CERTIFICATE_AUTHORITY_EXPIRING = "certificate_authority.expiring", "certificate_authority"
    STATION_CREATED = "station.created", "station"
    STATION_REVOKED = "station.revoked", "station"
    STATION_SYNCED = "station.synced", "station"  # entries of its ledger replayed
    STATION_SYNC_STOPPED = "station.sync_stopped", "station"  # at an entry it could not believe
    STATION_LIMIT_NEAR = "station.limit_near", "station"  # 80% of its budget or window spent


@dataclass(frozen=True)
class DomainEvent:
    type: EventType
    organization_id: str
    actor: str
    occurred_at: datetime
    subject_type: str
    subject_id: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    # When the server wrote it, where that is not when it occurred: an offline station's
    # action, replayed at its sync, occurred at the factory earlier.
    recorded_at: datetime | None = None

    @property
    def news_since(self) -> datetime:
        """From when the event is news here (which webhook endpoints existed to hear it)."""
        return self.recorded_at or self.occurred_at


class Subject(Protocol):
    """What an event is about: an id, and the organization the event is filed under."""

    @property
    def id(self) -> str: ...
    @property
    def organization_id(self) -> str: ...


@dataclass(frozen=True)
class SubjectRef:
    """A subject given by its ids, for one that is not an object here (a batch, a user)."""

    id: str
    organization_id: str


def new_event(
    event_type: EventType, subject: Subject, *, actor: str, at: datetime, **data: Any
) -> DomainEvent:
    """An event of ``event_type`` about ``subject``, filed under the subject's organization."""
    return DomainEvent(
        type=event_type,
        organization_id=subject.organization_id,
        actor=actor,
        occurred_at=at,
        subject_type=event_type.subject_type,
        subject_id=subject.id,
        data=data,
    )
