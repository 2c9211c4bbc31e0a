"""How many devices an organization may define."""

from __future__ import annotations

from lineside.domain.errors import QuotaExceeded
from lineside.services.context import ServiceContext, not_found
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
