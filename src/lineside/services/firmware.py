"""Firmware by device group: releases, deployments, and what each device should run.

Electric Imp's connected-factory model: a product has *factory* firmware (it runs on the line,
tests the unit and blesses it) and *application* firmware (what the product does for its
owner). A release is deployed to a device group, never to a device: every member of the
group runs the group's current release, so a deployment reaches every member at once.

    upload (bytes -> data dir, row -> firmware_releases)
        |
        v
    deploy to group (device_groups.release_id, history in firmware_deployments)
        |
        v
    GET /device/v1/firmware -> assigned_release(device) -> download, install, report version
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from anyio import to_thread

from lineside.domain.errors import AlreadyExists, DomainError, InvalidInput, NotFound
from lineside.domain.events import EventType, new_event
from lineside.domain.identifiers import is_uuid, new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import (
    BLESSED_GROUP_KINDS,
    ApplicationFirmwareAfter,
    Device,
    FirmwareKind,
    FirmwareRelease,
    Principal,
    Product,
    Scope,
)
from lineside.services.context import ServiceContext, not_found, require
from lineside.services.lookups import load_product
from lineside.services.ports import FirmwareStore, UnitOfWork

MAX_VERSION_LENGTH = 64
MAX_NOTES_LENGTH = 2000

# Until activated, a member of a production group set to "activation" keeps factory firmware.
_NOT_YET_ACTIVATED = frozenset(
    {DeviceState.DEFINED, DeviceState.UNDER_TEST, DeviceState.BLESSED, DeviceState.FAILED}
)


class EmptyImage(DomainError):
    """No bytes at all: a malformed request (400) rather than a well-formed but invalid one."""

    title = "Empty firmware image"


# -- what a device should run ------------------------------------------------------------------


def assigned_release(uow: UnitOfWork, device: Device) -> FirmwareRelease | None:
    """The release ``device`` should run now, or None.

    The rule:

    * a device in no group, or in a group with no release deployed, gets None;
    * a revoked device gets None (it is out of service);
    * a member of a *production* or *pre-production* group whose ``application_firmware_after`` is
      ``activation`` that is not yet activated (defined, under test, blessed or failed) keeps
      the factory firmware it ran on the line: the release deployed to the product's factory
      group (the most recently deployed one if the product has several factory groups), or
      None when no factory release is known;
    * every other member gets the release deployed to its group.
    """
    if device.group_id is None or device.state is DeviceState.REVOKED:
        return None
    group = uow.firmware.get_group(device.group_id)
    if group is None or group.release_id is None:
        return None
    if (
        group.kind in BLESSED_GROUP_KINDS
        and group.application_firmware_after is ApplicationFirmwareAfter.ACTIVATION
        and device.state in _NOT_YET_ACTIVATED
    ):
        return uow.firmware.factory_release_of_product(device.product_id)
    return uow.firmware.get_release(group.release_id)


def image_path(release_id: str) -> str:
    """The path below the server where a device downloads the image (with its own token)."""
    return f"/device/v1/firmware/{release_id}/image"


def image_url(ctx: ServiceContext, release_id: str) -> str:
    """Where a device downloads the image (with its own bearer token)."""
    return f"{ctx.config.public_url.rstrip('/')}{image_path(release_id)}"


def release_view(ctx: ServiceContext, release: FirmwareRelease) -> dict[str, Any]:
    """What a device is told about a release: enough to download and verify the image."""
    return {
        "id": release.id,
        "kind": release.kind.value,
        "version": release.version,
        "sha256": release.sha256,
        "size_bytes": release.size_bytes,
        "url": image_url(ctx, release.id),
    }


@dataclass(frozen=True)
class DeviceFirmware:
    release: FirmwareRelease | None
    installed_version: str | None

    @property
    def update_available(self) -> bool:
        return self.release is not None and self.release.version != self.installed_version


def firmware_for_device(ctx: ServiceContext, device: Device) -> DeviceFirmware:
    with ctx.unit_of_work(write=False) as uow:
        release = assigned_release(uow, device)
    return DeviceFirmware(release, device.firmware_version)


def open_device_image(
    ctx: ServiceContext, device: Device, release_id: str
) -> tuple[FirmwareRelease, BinaryIO]:
    """The image of a release of the device's own product; any other answers 404."""
    with ctx.unit_of_work(write=False) as uow:
        release = uow.firmware.get_release(release_id) if is_uuid(release_id) else None
    if release is None or release.product_id != device.product_id:
        raise NotFound(f"No firmware release with id '{release_id}' exists for this device.")
    return release, _open_image(ctx, release)


def report_installed_version(ctx: ServiceContext, device: Device, version: str) -> Device:
    version = clean_version(version)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        uow.devices.set_firmware_version(device.id, version, now)
        uow.events.add(
            new_event(
                EventType.DEVICE_FIRMWARE_REPORTED,
                device,
                actor=f"device:{device.id}",
                at=now,
                version=version,
                previous_version=device.firmware_version,
            )
        )
        uow.commit()
    device.firmware_version = version
    device.firmware_reported_at = now
    return device


# -- releases -----------------------------------------------------------------------------------


def clean_version(version: str) -> str:
    if not 1 <= len(version) <= MAX_VERSION_LENGTH or not all(
        "!" <= character <= "~" for character in version
    ):
        raise InvalidInput(
            f"A firmware version is 1 to {MAX_VERSION_LENGTH} visible ASCII characters (no spaces)."
        )
    return version


def _clean_notes(notes: str | None) -> str | None:
    if notes is None or not notes.strip():
        return None
    if len(notes) > MAX_NOTES_LENGTH:
        raise InvalidInput(f"Release notes are at most {MAX_NOTES_LENGTH} characters.")
    return notes.strip()


@dataclass(frozen=True)
class NewRelease:
    product_id: str
    kind: FirmwareKind
    version: str
    notes: str | None = None


async def upload_release(
    ctx: ServiceContext, principal: Principal, new: NewRelease, image: AsyncIterable[bytes]
) -> FirmwareRelease:
    """Store an image as it arrives, then record it as a release of the product.

    Everything that can be refused without the bytes is checked before reading them. Bytes
    stored for an upload refused afterwards (the same version finished first) stay on disk
    under their hash: harmless, and reused if the same image is uploaded again.
    """
    require(principal, Scope.ADMIN)
    new = NewRelease(new.product_id, new.kind, clean_version(new.version), _clean_notes(new.notes))
    product = await to_thread.run_sync(_check_new_release, ctx, principal, new)
    stored = await _store(ctx).put(image)
    if stored.size_bytes == 0:
        raise EmptyImage("The firmware image is empty: send its bytes as the request body.")
    release = FirmwareRelease(
        id=new_id(),
        organization_id=product.organization_id,
        product_id=product.id,
        kind=new.kind,
        version=new.version,
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
        created_at=ctx.clock(),
        created_by=principal.actor,
        notes=new.notes,
    )
    await to_thread.run_sync(_record_release, ctx, release)
    return release


def _check_new_release(ctx: ServiceContext, principal: Principal, new: NewRelease) -> Product:
    with ctx.unit_of_work(write=False) as uow:
        product = load_product(uow, principal, new.product_id)
        _refuse_taken_version(uow, product.id, new.kind, new.version)
    return product


def _refuse_taken_version(uow: UnitOfWork, product_id: str, kind: FirmwareKind, version: str) -> None:
    if uow.firmware.version_taken(product_id, kind, version):
        raise AlreadyExists(f"The product already has a {kind.value} release with version '{version}'.")


def _record_release(ctx: ServiceContext, release: FirmwareRelease) -> None:
    with ctx.unit_of_work() as uow:
        # Checked again: another upload of the same version may have finished meanwhile (and
        # the unique constraint catches one finishing between this check and the insert).
        _refuse_taken_version(uow, release.product_id, release.kind, release.version)
        uow.firmware.add_release(release)
        uow.events.add(
            new_event(
                EventType.FIRMWARE_RELEASED,
                release,
                actor=release.created_by,
                at=release.created_at,
                product_id=release.product_id,
                kind=release.kind.value,
                version=release.version,
                sha256=release.sha256,
                size_bytes=release.size_bytes,
            )
        )
        uow.commit()


def list_releases(
    ctx: ServiceContext, principal: Principal, product_id: str, kind: FirmwareKind | None = None
) -> list[FirmwareRelease]:
    """The product's releases, newest first."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        product = load_product(uow, principal, product_id)
        return uow.firmware.list_releases(product.id, kind)


def get_release(ctx: ServiceContext, principal: Principal, release_id: str) -> FirmwareRelease:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return load_release(uow, principal, release_id)


def open_release_image(
    ctx: ServiceContext, principal: Principal, release_id: str
) -> tuple[FirmwareRelease, BinaryIO]:
    release = get_release(ctx, principal, release_id)
    return release, _open_image(ctx, release)


def load_release(uow: UnitOfWork, principal: Principal, release_id: str) -> FirmwareRelease:
    release = (
        uow.firmware.get_release(release_id, within=principal.organization.path)
        if is_uuid(release_id)
        else None
    )
    if release is None:
        raise not_found("firmware release", release_id)
    return release


def _store(ctx: ServiceContext) -> FirmwareStore:
    return ctx.firmware_store


def _open_image(ctx: ServiceContext, release: FirmwareRelease) -> BinaryIO:
    image = _store(ctx).open(release.sha256)
    if image is None:
        # The row outlived its bytes (a data dir restored without them): say so plainly.
        raise NotFound(f"The image of firmware release '{release.id}' is missing from the data directory.")
    return image
