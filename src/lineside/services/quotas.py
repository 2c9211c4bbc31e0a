"""How many devices an organization may define."""

from __future__ import annotations

from dataclasses import dataclass

from lineside.domain.errors import QuotaExceeded
from lineside.domain.models import Principal, Scope
from lineside.services.context import ServiceContext, not_found, require
from lineside.services.ports import UnitOfWork


def check_device_quota(ctx: ServiceContext, uow: UnitOfWork, organization_id: str, adding: int) -> None:
    """Refuse, before anything is written, a definition that would pass the quota."""
    organization = uow.organizations.get(organization_id, within="/")
    if organization is None:
        raise not_found("organization", organization_id)
    quota = organization.device_quota
    if quota is None:
        quota = ctx.config.default_device_quota
    used = uow.device_counts.made_by(organization_id)
    if used + adding > quota:
        raise QuotaExceeded(
            f"This would make {used + adding:,} devices; the organization's quota is {quota:,} "
            f"({used:,} defined). Ask the operator to raise it: lineside org quota {organization_id} N."
        )


def set_device_quota(ctx: ServiceContext, organization_id: str, quota: int | None) -> None:
    """For the operator (CLI): None goes back to the installation's default."""
    with ctx.unit_of_work() as uow:
        if uow.organizations.get(organization_id, within="/") is None:
            raise not_found("organization", organization_id)
        uow.organizations.set_device_quota(organization_id, quota)
        uow.commit()


@dataclass(frozen=True)
class Usage:
    devices: int  # defined by the organization itself (what its quota counts)
    quota: int


def usage(ctx: ServiceContext, principal: Principal) -> Usage:
    """How many devices the caller's organization has defined, and how many it may."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        used = uow.device_counts.made_by(principal.organization.id)
        organization = uow.organizations.get(principal.organization.id, within="/")
    quota = organization.device_quota if organization and organization.device_quota is not None else None
    return Usage(used, quota if quota is not None else ctx.config.default_device_quota)
