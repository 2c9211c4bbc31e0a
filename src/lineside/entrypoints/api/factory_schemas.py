"""Request and response bodies of the connected factory: the line, production tokens, activation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictStr

from lineside.domain.factory import MAX_MEASUREMENT_VALUES, BlessingResult, ClaimStatus, FactoryToken, TestRun
from lineside.entrypoints.api.constraints import NO_NUL_PATTERN, HardwareId, Label, Name, SerialNumber
from lineside.entrypoints.api.schemas import DeviceIdentityOut, DeviceOut, Request

# Generous for every identifier and secret we hand out; refuses megabytes before hashing them.
MAX_TOKEN_LENGTH = 200

FirmwareView = dict[str, Any]
_FIRMWARE_DESCRIPTION = "The firmware release to run (id, kind, version, sha256, size_bytes, url), or null."

# -- factory enrollment tokens -------------------------------------------------------------


class FactoryTokenIn(Request):
    product_id: StrictStr
    name: Name | None = None


class FactoryTokenOut(BaseModel):
    id: str
    organization_id: str
    product_id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: FactoryToken) -> FactoryTokenOut:
        return cls(
            id=token.id,
            organization_id=token.organization_id,
            product_id=token.product_id,
            name=token.name,
            prefix=token.prefix,
            created_at=token.created_at,
            revoked_at=token.revoked_at,
        )


class CreatedFactoryTokenOut(FactoryTokenOut):
    token: str = Field(
        description="The factory enrollment token (lsf_...). Shown once; only its hash is kept."
    )


# -- the line ---------------------------------------------------------------------------------


class DutIn(Request):
    enrollment_token: StrictStr = Field(max_length=MAX_TOKEN_LENGTH, description="A factory token, lsf_...")
    hardware_id: HardwareId = Field(description="The unit's MAC or chip id.")
    serial_number: SerialNumber | None = Field(default=None, description="Default: the hardware id.")


class DutOut(BaseModel):
    device: DeviceOut
    factory_firmware: FirmwareView | None = Field(description=_FIRMWARE_DESCRIPTION)


class TestRunIn(Request):
    passed: StrictBool
    measurements: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Numbers, text without NUL, lists and objects: at most {MAX_MEASUREMENT_VALUES} values.",
        json_schema_extra={
            "propertyNames": {"pattern": NO_NUL_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/Measurement"},
        },
    )
    fixture: Label | None = None
    operator: Label | None = None


class TestRunOut(BaseModel):
    id: str
    device_id: str
    passed: bool
    measurements: dict[str, Any]
    fixture: str | None
    operator: str | None
    created_at: datetime

    @classmethod
    def of(cls, run: TestRun) -> TestRunOut:
        return cls(
            id=run.id,
            device_id=run.device_id,
            passed=run.passed,
            measurements=run.measurements,
            fixture=run.fixture,
            operator=run.operator,
            created_at=run.created_at,
        )


class BlessIn(Request):
    """Nothing to say: the last test run decides."""


class BlessingOut(BaseModel):
    result: BlessingResult
    led: Literal["green", "red"]
    device: DeviceOut
    application_firmware: FirmwareView | None = Field(description=_FIRMWARE_DESCRIPTION)


# -- production enrollment tokens and activation ---------------------------------------------


class ProductionTokenIn(Request):
    product_id: StrictStr | None = Field(
        default=None, description="Only devices of this product may activate with the token."
    )


class ElectricImpTokenOut(BaseModel):
    plan_id: str = Field(description="16 random bytes as hex.")
    token_id: str = Field(description="32 random bytes as hex: the credential. Shown once.")


class ProductionTokenOut(ElectricImpTokenOut):
    expires_at: datetime
    product_id: str | None


class TokenClaimOut(BaseModel):
    status: ClaimStatus
    device_id: str | None
    device_url: str | None
    expires_at: datetime


class ActivationIn(Request):
    plan_id: StrictStr = Field(max_length=MAX_TOKEN_LENGTH)
    token_id: StrictStr = Field(max_length=MAX_TOKEN_LENGTH)
    device_id: StrictStr = Field(max_length=MAX_TOKEN_LENGTH)


class DeviceCredentialOut(BaseModel):
    type: Literal["token"] = "token"
    token: str = Field(description="The device's bearer token (lsd_...); any earlier one stops working.")


class DeviceConfigurationOut(BaseModel):
    api_url: str = Field(description="Where the device API lives (/device/v1 of this server).")
    firmware: FirmwareView | None = Field(description=_FIRMWARE_DESCRIPTION)


class ActivationOut(BaseModel):
    device: DeviceIdentityOut
    credentials: DeviceCredentialOut
    configuration: DeviceConfigurationOut
