"""Request and response bodies. Requests forbid unknown fields and never coerce types."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from lineside.domain.device_specs import MAX_BATCH_SIZE
from lineside.domain.events import DomainEvent
from lineside.domain.lifecycle import STATE_TIMESTAMP_FIELD
from lineside.domain.metadata import RESERVED_NAMES, FieldType, MetadataField
from lineside.domain.models import (
    ApiKey,
    ApplicationFirmwareAfter,
    Certificate,
    CredentialType,
    Device,
    DeviceGroup,
    EnrollmentPolicy,
    GroupKind,
    Organization,
    Product,
    Scope,
)
from lineside.entrypoints.api.constraints import FIELD_NAME_PATTERN, HardwareId, Mac, Name, SerialNumber
from lineside.services.devices import DefinedBatch, DefinedDevice


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- organizations and keys -------------------------------------------------------------


class OrganizationIn(Request):
    name: Name


class OrganizationOut(BaseModel):
    id: str
    name: str
    parent_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, organization: Organization) -> OrganizationOut:
        return cls(
            id=organization.id,
            name=organization.name,
            parent_id=organization.parent_id,
            created_at=organization.created_at,
        )


class CreatedOrganizationOut(OrganizationOut):
    api_key: str = Field(description="An admin key of the new organization. Shown once.")


class ApiKeyIn(Request):
    name: Name
    scopes: list[Scope] = Field(min_length=1)
    organization_id: StrictStr | None = Field(
        default=None, description="A sub-organization to create the key for; default: yours."
    )


class ApiKeyOut(BaseModel):
    id: str
    organization_id: str
    name: str
    scopes: list[Scope]
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            organization_id=key.organization_id,
            name=key.name,
            scopes=sorted(key.scopes),
            prefix=key.prefix,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class CreatedApiKeyOut(ApiKeyOut):
    key: str = Field(description="The secret. Shown once; only its keyed hash is stored.")


# -- products -----------------------------------------------------------------------------


_RESERVED_FIELD_NAMES: list[Any] = sorted(RESERVED_NAMES)


class MetadataFieldIn(Request):
    name: StrictStr = Field(
        max_length=64,
        description="Letters, digits and underscores; not id, serial_number, mac, state or product_id.",
        json_schema_extra={
            "pattern": FIELD_NAME_PATTERN,
            "not": {"enum": _RESERVED_FIELD_NAMES},
        },
    )
    type: FieldType
    required: StrictBool = False


_REQUIRES_BLESSING = (
    "Whether only blessed devices activate at their first MQTT connection; when false, a device "
    "defined without the factory line (a batch, static tokens) activates too."
)


class ProductIn(Request):
    name: Name
    metadata_fields: list[MetadataFieldIn] = Field(default_factory=list, max_length=100)
    enrollment_policy: EnrollmentPolicy = Field(
        default=EnrollmentPolicy.CREATE,
        description="Which units the product's factory enrollment tokens admit: 'create' makes a device "
        "for an unknown hardware id, 'predefined' admits only devices defined beforehand.",
    )
    requires_blessing: StrictBool = Field(default=False, description=_REQUIRES_BLESSING)

    def fields(self) -> list[MetadataField]:
        return [MetadataField(f.name, f.type, f.required) for f in self.metadata_fields]


class ProductOut(BaseModel):
    id: str
    organization_id: str
    name: str
    metadata_fields: list[dict[str, Any]]
    created_at: datetime
    enrollment_policy: EnrollmentPolicy
    requires_blessing: bool

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        return cls(
            id=product.id,
            organization_id=product.organization_id,
            name=product.name,
            metadata_fields=[field.as_dict() for field in product.metadata_fields],
            created_at=product.created_at,
            enrollment_policy=product.enrollment_policy,
            requires_blessing=product.requires_blessing,
        )


class ProductPatchIn(Request):
    """Only what is given changes."""

    name: Name | None = Field(default=None, description="Unique among your organization's products.")
    metadata_fields: list[MetadataFieldIn] | None = Field(
        default=None,
        max_length=100,
        description="The whole new list. While the product has devices, a field may be added only "
        "as optional, and a field's type may not change nor an optional field become required "
        "(409); removing a field or making it optional is always allowed, and devices keep the "
        "values they have.",
    )
    requires_blessing: StrictBool | None = Field(default=None, description=_REQUIRES_BLESSING)

    def fields(self) -> list[MetadataField] | None:
        if self.metadata_fields is None:
            return None
        return [MetadataField(f.name, f.type, f.required) for f in self.metadata_fields]


class GroupIn(Request):
    name: Name
    kind: GroupKind


class GroupOut(BaseModel):
    id: str
    product_id: str
    name: str
    kind: GroupKind
    created_at: datetime
    application_firmware_after: ApplicationFirmwareAfter
    release_id: str | None  # the firmware release deployed to the group

    @classmethod
    def of(cls, group: DeviceGroup) -> GroupOut:
        return cls(
            id=group.id,
            product_id=group.product_id,
            name=group.name,
            kind=group.kind,
            created_at=group.created_at,
            application_firmware_after=group.application_firmware_after,
            release_id=group.release_id,
        )


# -- devices --------------------------------------------------------------------------------


class DeviceIn(Request):
    product_id: StrictStr
    serial_number: SerialNumber
    mac: Mac | None = None
    hardware_id: HardwareId | None = Field(
        default=None, description="The MAC or chip id a fixture reads off the unit; unique per product."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class DeviceOut(BaseModel):
    id: str
    product_id: str
    organization_id: str
    serial_number: str
    mac: str | None
    hardware_id: str | None
    metadata: dict[str, Any]
    state: str
    group_id: str | None
    batch_id: str | None
    owner_organization_id: str | None
    token_issued_at: datetime | None
    created_at: datetime
    lifecycle: dict[str, datetime | None] = Field(
        description="When the device entered each state (the latest entry on a retest)."
    )
    online: bool = Field(description="Connected to MQTT, as the last presence flush recorded it.")
    last_seen_at: datetime | None
    provisioned_at: datetime | None = Field(description="When MQTT provisioning gave it credentials.")
    mqtt_password_issued_at: datetime | None

    @classmethod
    def of(cls, device: Device) -> DeviceOut:
        return cls(
            id=device.id,
            product_id=device.product_id,
            organization_id=device.organization_id,
            serial_number=device.serial_number,
            mac=device.mac,
            hardware_id=device.hardware_id,
            metadata=device.metadata,
            state=device.state.value,
            group_id=device.group_id,
            batch_id=device.batch_id,
            owner_organization_id=device.owner_organization_id,
            token_issued_at=device.token_issued_at,
            created_at=device.created_at,
            lifecycle={field: device.timeline.get(field) for field in STATE_TIMESTAMP_FIELD.values()},
            online=device.online,
            last_seen_at=device.last_seen_at,
            provisioned_at=device.provisioned_at,
            mqtt_password_issued_at=device.mqtt_password_issued_at,
        )


class BatchDeviceIn(Request):
    serial_number: SerialNumber
    mac: Mac | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class BatchIn(Request):
    """Exactly one of ``serial_numbers`` and ``devices``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["serial_numbers"],
                    "properties": {"serial_numbers": {"type": "array"}, "devices": {"type": "null"}},
                },
                {
                    "required": ["devices"],
                    "properties": {"devices": {"type": "array"}, "serial_numbers": {"type": "null"}},
                },
            ]
        },
    )

    product_id: StrictStr
    serial_numbers: list[SerialNumber] | None = Field(
        default=None, json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH_SIZE, "uniqueItems": True}
    )
    devices: list[BatchDeviceIn] | None = Field(
        default=None, json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH_SIZE}
    )
    issue_credentials: CredentialType | None = None


class CredentialIn(Request):
    """``csr`` (PEM) goes only with type ``x509``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"properties": {"type": {"const": "x509"}}},
                {"properties": {"type": {"enum": ["token", "mqtt_password"]}, "csr": {"type": "null"}}},
            ]
        },
    )

    type: CredentialType
    csr: StrictStr | None = Field(default=None, max_length=65536)


class CredentialOut(BaseModel):
    type: CredentialType
    secret: str | None = None
    certificate_id: str | None = None
    certificate: str | None = None
    private_key: str | None = None
    serial: str | None = None


class BatchDeviceOut(BaseModel):
    id: str
    serial_number: str
    credential: CredentialOut | None


class BatchOut(BaseModel):
    batch_id: str
    product_id: str
    count: int
    devices: list[BatchDeviceOut]

    @classmethod
    def of(cls, batch: DefinedBatch) -> BatchOut:
        return cls(
            batch_id=batch.batch_id,
            product_id=batch.product.id,
            count=len(batch.devices),
            devices=[_batch_device(defined) for defined in batch.devices],
        )


def credential_out(issued: Any) -> CredentialOut:
    return CredentialOut(
        type=issued.type,
        secret=issued.secret,
        certificate_id=issued.certificate_id,
        certificate=issued.certificate_pem,
        private_key=issued.private_key_pem,
        serial=issued.serial_hex,
    )


def _batch_device(defined: DefinedDevice) -> BatchDeviceOut:
    return BatchDeviceOut(
        id=defined.device.id,
        serial_number=defined.device.serial_number,
        credential=credential_out(defined.credential) if defined.credential else None,
    )


class CertificateOut(BaseModel):
    id: str
    serial: str
    fingerprint_sha256: str
    subject: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, certificate: Certificate) -> CertificateOut:
        return cls(
            id=certificate.id,
            serial=certificate.serial_hex,
            fingerprint_sha256=certificate.fingerprint_sha256,
            subject=certificate.subject,
            not_before=certificate.not_before,
            not_after=certificate.not_after,
            created_at=certificate.created_at,
            revoked_at=certificate.revoked_at,
        )


class DeviceIdentityOut(BaseModel):
    id: str
    product_id: str
    serial_number: str
    state: str
    online: bool = Field(description="Connected to MQTT, as the last presence flush recorded it.")
    last_seen_at: datetime | None = Field(description="When the server last heard from it over MQTT.")
    mqtt_url: str | None = Field(
        description="Where to connect over MQTT (mqtt:// or mqtts://); null: the server knows of no broker."
    )

    @classmethod
    def of(cls, device: Device, mqtt_url: str | None) -> DeviceIdentityOut:
        return cls(
            id=device.id,
            product_id=device.product_id,
            serial_number=device.serial_number,
            state=device.state.value,
            online=device.online,
            last_seen_at=device.last_seen_at,
            mqtt_url=mqtt_url,
        )


# -- events ---------------------------------------------------------------------------------


class EventOut(BaseModel):
    id: str
    type: str
    organization_id: str
    actor: str
    subject_type: str
    subject_id: str
    data: dict[str, Any]
    occurred_at: datetime

    @classmethod
    def of(cls, event: DomainEvent) -> EventOut:
        return cls(
            id=event.id,
            type=event.type,
            organization_id=event.organization_id,
            actor=event.actor,
            subject_type=event.subject_type,
            subject_id=event.subject_id,
            data=event.data,
            occurred_at=event.occurred_at,
        )


T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


Health = Literal["ok"]
