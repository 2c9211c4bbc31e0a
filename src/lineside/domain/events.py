"""Domain events: facts, named in the past tense, that go to the outbox.

An event never carries a secret: only identifiers, states and counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from lineside.domain.identifiers import new_id

DEVICE_DEFINED = "device.defined"
DEVICES_DEFINED_IN_BATCH = "devices.batch_defined"
CREDENTIALS_ISSUED = "credentials.issued"
CREDENTIALS_ROTATED = "credentials.rotated"
CREDENTIALS_REVOKED = "credentials.revoked"
PRODUCT_CREATED = "product.created"
PRODUCT_UPDATED = "product.updated"
DEVICE_GROUP_CREATED = "device_group.created"
DEVICE_GROUP_UPDATED = "device_group.updated"
ORGANIZATION_CREATED = "organization.created"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"


@dataclass(frozen=True)
class DomainEvent:
    type: str
    organization_id: str
    actor: str
    occurred_at: datetime
    subject_type: str
    subject_id: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)


DEVICE_CLAIMED = "device.claimed"
DEVICE_UNCLAIMED = "device.unclaimed"
DEVICE_DISCLAIMED = "device.disclaimed"
DEVICE_DELETED = "device.deleted"
STATIC_TOKENS_CREATED = "static_tokens.created"
STATIC_TOKENS_EXPORTED = "static_tokens.exported"
STATIC_TOKENS_REGENERATED = "static_tokens.regenerated"
USER_SIGNED_UP = "user.signed_up"
USER_PASSWORD_CHANGED = "user.password_changed"
DEVICE_TRANSFER_OFFERED = "device.transfer_offered"
DEVICE_TRANSFER_CANCELLED = "device.transfer_cancelled"
DEVICE_TRANSFERRED = "device.transferred"
INVITATION_CREATED = "invitation.created"
INVITATION_ACCEPTED = "invitation.accepted"
# The connected factory (device.enrolled, .retested, .blessed, .failed and .activated come
# from the lifecycle table: see lifecycle.event_type_for).
DEVICE_TESTED = "device.tested"
FACTORY_TOKEN_CREATED = "factory_token.created"
FACTORY_TOKEN_REVOKED = "factory_token.revoked"
PRODUCTION_TOKEN_CREATED = "production_token.created"
# Firmware
FIRMWARE_RELEASED = "firmware.released"
FIRMWARE_DEPLOYED = "firmware.deployed"
DEVICE_FIRMWARE_REPORTED = "device.firmware_reported"
# MQTT provisioning (ThingsBoard-compatible): a device got its credentials over MQTT; a
# manufacturer re-opened a pre-defined device for one more provisioning; a product's
# provisioning was configured (secret issued or rotated) or disabled.
DEVICE_PROVISIONED = "device.provisioned"
DEVICE_REPROVISIONING_ALLOWED = "device.reprovisioning_allowed"
PRODUCT_PROVISIONING_CONFIGURED = "product.provisioning_configured"
PRODUCT_PROVISIONING_DISABLED = "product.provisioning_disabled"
# Webhooks
WEBHOOK_CREATED = "webhook.created"
WEBHOOK_DISABLED = "webhook.disabled"
WEBHOOK_UPDATED = "webhook.updated"
WEBHOOK_DELETED = "webhook.deleted"
WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"


class _AboutADevice(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def organization_id(self) -> str: ...


def device_event(
    event_type: str, device: _AboutADevice, *, actor: str, at: datetime, **data: Any
) -> DomainEvent:
    """An event about one device, filed under the organization that made it."""
    return DomainEvent(
        type=event_type,
        organization_id=device.organization_id,
        actor=actor,
        occurred_at=at,
        subject_type="device",
        subject_id=device.id,
        data=data,
    )
