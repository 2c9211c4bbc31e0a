"""Device groups' firmware: deploy a release to a group, and when members load it.

A deployment sets the group's current release (``device_groups.release_id``) and keeps a row
of history; ``services.firmware.assigned_release`` reads the current release, so every member
gets it at its next check without a row per device being touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from lineside.domain.errors import Conflict
from lineside.domain.events import DomainEvent, EventType, SubjectRef, new_event
from lineside.domain.identifiers import new_id
from lineside.domain.models import (
    BLESSED_GROUP_KINDS,
    ApplicationFirmwareAfter,
    DeviceGroup,
    FirmwareKind,
    FirmwareRelease,
    GroupKind,
    Principal,
    Scope,
)
from lineside.services.context import ServiceContext, require
from lineside.services.firmware import load_release
from lineside.services.lookups import load_group
from lineside.services.ports import FirmwareDeployment

# Which kinds of group run which kind of firmware.
_GROUP_KINDS_FOR = {
    FirmwareKind.FACTORY: frozenset({GroupKind.FACTORY}),
    FirmwareKind.APPLICATION: frozenset({GroupKind.DEVELOPMENT, *BLESSED_GROUP_KINDS}),
}


@dataclass(frozen=True)
class GroupFirmware:
    group: DeviceGroup
    release: FirmwareRelease | None


def get_group(ctx: ServiceContext, principal: Principal, group_id: str) -> GroupFirmware:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        group = load_group(uow, principal, group_id)
        release = uow.firmware.get_release(group.release_id) if group.release_id else None
    return GroupFirmware(group, release)


def set_application_firmware_after(
    ctx: ServiceContext, principal: Principal, group_id: str, after: ApplicationFirmwareAfter
) -> GroupFirmware:
    """When a production or pre-production group's members load application firmware: after
    blessing or after activation. Electric Imp sets it on the group "to which your DUTs will be
    auto-assigned after blessing", which a pre-production group is on a pre-factory line: units
    activated in the factory are tried there before production, so it may wait too."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        group = load_group(uow, principal, group_id)
        if group.kind not in BLESSED_GROUP_KINDS and after is not ApplicationFirmwareAfter.BLESSING:
            raise Conflict(
                "Only a production or pre-production group can wait for activation; "
                f"'{group.name}' is a {_said(group.kind)} group."
            )
        uow.firmware.set_application_firmware_after(group.id, after)
        uow.events.add(
            new_event(
                EventType.DEVICE_GROUP_UPDATED,
                group,
                actor=principal.actor,
                at=ctx.clock(),
                application_firmware_after=after.value,
            )
        )
        uow.commit()
    return get_group(ctx, principal, group_id)


def deploy_release(
    ctx: ServiceContext, principal: Principal, group_id: str, release_id: str
) -> FirmwareDeployment:
    """Make ``release_id`` the group's firmware: every member is told at its next check."""
    require(principal, Scope.ADMIN)
    with ctx.unit_of_work() as uow:
        group = load_group(uow, principal, group_id)
        release = load_release(uow, principal, release_id)
        _check_release_fits(group, release)
        deployment = FirmwareDeployment(
            id=new_id(),
            organization_id=group.organization_id,
            group_id=group.id,
            release_id=release.id,
            deployed_by=principal.actor,
            created_at=ctx.clock(),
        )
        uow.firmware.set_group_release(group.id, release.id)
        uow.firmware.add_deployment(deployment)
        uow.events.add(
            _deployed_event(deployment, group, release, uow.firmware.count_group_members(group.id))
        )
        uow.commit()
    return deployment


def list_deployments(ctx: ServiceContext, principal: Principal, group_id: str) -> list[FirmwareDeployment]:
    """The group's deployments, newest first."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        group = load_group(uow, principal, group_id)
        return uow.firmware.list_deployments(group.id)


def _check_release_fits(group: DeviceGroup, release: FirmwareRelease) -> None:
    if release.product_id != group.product_id:
        raise Conflict(
            f"Release {release.version} is firmware of another product; "
            f"group '{group.name}' belongs to product {group.product_id}."
        )
    if group.kind not in _GROUP_KINDS_FOR[release.kind]:
        fits = sorted(_said(kind) for kind in _GROUP_KINDS_FOR[release.kind])
        either = fits[0] if len(fits) == 1 else f"{', '.join(fits[:-1])} or {fits[-1]}"
        raise Conflict(
            f"A {release.kind.value} release deploys only to {either} groups; "
            f"'{group.name}' is a {_said(group.kind)} group."
        )


def _said(kind: GroupKind) -> str:
    return kind.value.replace("_", "-")


def _deployed_event(
    deployment: FirmwareDeployment, group: DeviceGroup, release: FirmwareRelease, members: int
) -> DomainEvent:
    return new_event(
        EventType.FIRMWARE_DEPLOYED,
        SubjectRef(group.id, deployment.organization_id),
        actor=deployment.deployed_by,
        at=deployment.created_at,
        deployment_id=deployment.id,
        group_id=group.id,
        group_name=group.name,
        release_id=release.id,
        kind=release.kind.value,
        version=release.version,
        member_count=members,
    )
