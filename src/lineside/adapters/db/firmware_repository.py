"""SQL repository of firmware releases and their deployments to device groups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update

from lineside.adapters.db import tables as t
from lineside.adapters.db.repositories import SqlRepository, group_from_row, owned_within
from lineside.domain.events import EventType
from lineside.domain.models import (
    ApplicationFirmwareAfter,
    DeviceGroup,
    FirmwareKind,
    FirmwareRelease,
    GroupKind,
)
from lineside.services.ports import FirmwareDeployment

_releases = t.firmware_releases
_deployments = t.firmware_deployments
_groups = t.device_groups
_GROUP_BY_ID = select(_groups).where(_groups.c.id == bindparam("group_id"))


def _release(row: Row[Any]) -> FirmwareRelease:
    m = row._mapping
    return FirmwareRelease(
        id=m["id"],
        organization_id=m["organization_id"],
        product_id=m["product_id"],
        kind=FirmwareKind(m["kind"]),
        version=m["version"],
        sha256=m["sha256"],
        size_bytes=m["size_bytes"],
        created_at=m["created_at"],
        created_by=m["created_by"],
        notes=m["notes"],
    )


def _deployment(row: Row[Any]) -> FirmwareDeployment:
    m = row._mapping
    return FirmwareDeployment(
        id=m["id"],
        organization_id=m["organization_id"],
        group_id=m["group_id"],
        release_id=m["release_id"],
        deployed_by=m["deployed_by"],
        created_at=m["created_at"],
    )


class SqlFirmwareRepository(SqlRepository):
    def add_release(self, release: FirmwareRelease) -> None:
        self.connection.execute(
            insert(_releases).values(
                id=release.id,
                organization_id=release.organization_id,
                product_id=release.product_id,
                kind=release.kind.value,
                version=release.version,
                sha256=release.sha256,
                size_bytes=release.size_bytes,
                notes=release.notes,
                created_by=release.created_by,
                created_at=release.created_at,
            )
        )

    def get_release(self, release_id: str, *, within: str | None = None) -> FirmwareRelease | None:
        query = select(_releases).where(_releases.c.id == release_id)
        if within is not None:
            query = query.where(owned_within(_releases.c.organization_id, within))
        row = self._first(query)
        return _release(row) if row else None

    def list_releases(self, product_id: str, kind: FirmwareKind | None) -> list[FirmwareRelease]:
        query = select(_releases).where(_releases.c.product_id == product_id)
        if kind is not None:
            query = query.where(_releases.c.kind == kind.value)
        query = query.order_by(_releases.c.created_at.desc(), _releases.c.id.desc())
        return [_release(row) for row in self._all(query)]

    def version_taken(self, product_id: str, kind: FirmwareKind, version: str) -> bool:
        query = select(_releases.c.id).where(
            _releases.c.product_id == product_id,
            _releases.c.kind == kind.value,
            _releases.c.version == version,
        )
        return self._first(query) is not None

    def get_group(self, group_id: str, *, within: str | None = None) -> DeviceGroup | None:
        if within is None:  # every blessing asks this: a statement built once
            row = self.connection.execute(_GROUP_BY_ID, {"group_id": group_id}).first()
            return group_from_row(row) if row else None
        query = select(_groups).where(_groups.c.id == group_id)
        row = self._first(query.where(owned_within(_groups.c.organization_id, within)))
        return group_from_row(row) if row else None

    def set_group_release(self, group_id: str, release_id: str) -> None:
        self.connection.execute(update(_groups).where(_groups.c.id == group_id).values(release_id=release_id))

    def set_application_firmware_after(self, group_id: str, after: ApplicationFirmwareAfter) -> None:
        self.connection.execute(
            update(_groups).where(_groups.c.id == group_id).values(application_firmware_after=after.value)
        )

    def add_deployment(self, deployment: FirmwareDeployment) -> None:
        self.connection.execute(
            insert(_deployments).values(
                id=deployment.id,
                organization_id=deployment.organization_id,
                group_id=deployment.group_id,
                release_id=deployment.release_id,
                deployed_by=deployment.deployed_by,
                created_at=deployment.created_at,
            )
        )

    def list_deployments(self, group_id: str) -> list[FirmwareDeployment]:
        query = (
            select(_deployments)
            .where(_deployments.c.group_id == group_id)
            .order_by(_deployments.c.created_at.desc(), _deployments.c.id.desc())
        )
        return [_deployment(row) for row in self._all(query)]

    def count_group_members(self, group_id: str) -> int:
        query = select(func.count()).select_from(t.devices).where(t.devices.c.group_id == group_id)
        return int(self.connection.execute(query).scalar_one())

    def latest_event_sequence(self) -> int:
        return int(
            self.connection.execute(select(func.coalesce(func.max(t.events.c.sequence), 0))).scalar_one()
        )

    def deployed_events_after(self, sequence: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        query = (
            select(t.events.c.sequence, t.events.c.data)
            .where(t.events.c.type == EventType.FIRMWARE_DEPLOYED, t.events.c.sequence > sequence)
            .order_by(t.events.c.sequence)
            .limit(limit)
        )
        return [(int(row.sequence), dict(row.data)) for row in self._all(query)]

    def group_member_ids(self, group_id: str) -> list[str]:
        query = select(t.devices.c.id).where(t.devices.c.group_id == group_id).order_by(t.devices.c.id)
        return [str(row.id) for row in self._all(query)]

    def factory_release_of_product(self, product_id: str) -> FirmwareRelease | None:
        # The release a factory group runs now, from the latest deployment of it to such a group.
        query = (
            select(_releases)
            .join(_groups, _groups.c.release_id == _releases.c.id)
            .join(
                _deployments,
                (_deployments.c.group_id == _groups.c.id) & (_deployments.c.release_id == _releases.c.id),
            )
            .where(_groups.c.product_id == product_id, _groups.c.kind == GroupKind.FACTORY.value)
            .order_by(_deployments.c.created_at.desc(), _deployments.c.id.desc())
            .limit(1)
        )
        row = self._first(query)
        return _release(row) if row else None
