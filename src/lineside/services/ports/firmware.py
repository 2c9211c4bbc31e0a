"""Firmware releases, deployments to groups, and the store of image bytes."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from lineside.domain.models import (
    ApplicationFirmwareAfter,
    DeviceGroup,
    FirmwareKind,
    FirmwareRelease,
)


@dataclass(frozen=True)
class FirmwareDeployment:
    """One deployment of a release to a device group: the group's history, newest first."""

    id: str
    organization_id: str
    group_id: str
    release_id: str
    deployed_by: str
    created_at: datetime


class FirmwareRepository(Protocol):
    """Firmware releases and their deployments to device groups (owned by the firmware feature)."""

    def add_release(self, release: FirmwareRelease) -> None: ...
    def get_release(self, release_id: str, *, within: str | None = None) -> FirmwareRelease | None:
        """``within=None``: any organization's (only for a device, which is checked after)."""
        ...

    def list_releases(self, product_id: str, kind: FirmwareKind | None) -> list[FirmwareRelease]: ...
    def version_taken(self, product_id: str, kind: FirmwareKind, version: str) -> bool: ...
    def get_group(self, group_id: str, *, within: str | None = None) -> DeviceGroup | None: ...
    def set_group_release(self, group_id: str, release_id: str) -> None: ...
    def set_application_firmware_after(self, group_id: str, after: ApplicationFirmwareAfter) -> None: ...
    def add_deployment(self, deployment: FirmwareDeployment) -> None: ...
    def list_deployments(self, group_id: str) -> list[FirmwareDeployment]: ...
    def count_group_members(self, group_id: str) -> int: ...
    def factory_release_of_product(self, product_id: str) -> FirmwareRelease | None:
        """The release deployed to the product's factory group (the newest deployed, if several)."""
        ...

    def latest_event_sequence(self) -> int:
        """The sequence number of the newest event of any kind (0 when none): a cursor."""
        ...

    def deployed_events_after(self, sequence: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """``firmware.deployed`` events after ``sequence``, oldest first: (sequence, data)."""
        ...

    def group_member_ids(self, group_id: str) -> list[str]: ...


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    size_bytes: int


class FirmwareStore(Protocol):
    """Firmware image bytes, content-addressed: the same bytes are stored once."""

    async def put(self, chunks: AsyncIterable[bytes]) -> StoredImage:
        """Store the bytes as they arrive, hashing as it goes; nothing is kept for no bytes."""
        ...

    def open(self, sha256: str) -> BinaryIO | None:
        """The stored bytes for reading, None when absent; the caller closes it."""
        ...
