"""Request and response bodies of firmware releases, deployments and the device firmware API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictStr

from lineside.domain.models import ApplicationFirmwareAfter, FirmwareKind, FirmwareRelease
from lineside.entrypoints.api.constraints import Version
from lineside.entrypoints.api.schemas import GroupOut, Request
from lineside.services.context import ServiceContext
from lineside.services.firmware import DeviceFirmware, release_view
from lineside.services.firmware_groups import GroupFirmware
from lineside.services.ports import FirmwareDeployment


class ReleaseOut(BaseModel):
    id: str
    product_id: str
    kind: FirmwareKind
    version: str
    sha256: str = Field(description="SHA-256 of the image, lower-case hex; also the image's ETag.")
    size_bytes: int
    notes: str | None
    created_at: datetime

    @classmethod
    def of(cls, release: FirmwareRelease) -> ReleaseOut:
        return cls(
            id=release.id,
            product_id=release.product_id,
            kind=release.kind,
            version=release.version,
            sha256=release.sha256,
            size_bytes=release.size_bytes,
            notes=release.notes,
            created_at=release.created_at,
        )


class DeploymentIn(Request):
    release_id: StrictStr = Field(max_length=64)


class DeploymentOut(BaseModel):
    id: str
    group_id: str
    release_id: str
    deployed_by: str
    created_at: datetime

    @classmethod
    def of(cls, deployment: FirmwareDeployment) -> DeploymentOut:
        return cls(
            id=deployment.id,
            group_id=deployment.group_id,
            release_id=deployment.release_id,
            deployed_by=deployment.deployed_by,
            created_at=deployment.created_at,
        )


class GroupSettingsIn(Request):
    application_firmware_after: ApplicationFirmwareAfter = Field(
        description="'blessing': production units load application firmware as soon as they are "
        "blessed; 'activation': they keep factory firmware until activated."
    )


class GroupFirmwareOut(GroupOut):
    release: ReleaseOut | None

    @classmethod
    def of_firmware(cls, found: GroupFirmware) -> GroupFirmwareOut:
        return cls(
            **GroupOut.of(found.group).model_dump(),
            release=ReleaseOut.of(found.release) if found.release else None,
        )


class DeviceReleaseOut(BaseModel):
    id: str
    kind: FirmwareKind
    version: str
    sha256: str
    size_bytes: int
    url: str = Field(description="Download it with the device token, then check the SHA-256.")


class DeviceFirmwareOut(BaseModel):
    release: DeviceReleaseOut | None = Field(description="What the device should run now; null: nothing.")
    installed_version: str | None = Field(description="The version the device last reported.")
    update_available: bool

    @classmethod
    def of(cls, ctx: ServiceContext, found: DeviceFirmware) -> DeviceFirmwareOut:
        release = DeviceReleaseOut(**release_view(ctx, found.release)) if found.release else None
        return cls(
            release=release,
            installed_version=found.installed_version,
            update_available=found.update_available,
        )


class FirmwareReportIn(Request):
    version: Version = Field(description="The firmware version the device now runs.")
