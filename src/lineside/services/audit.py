"""The audit log: every event of the caller's organization and its sub-organizations."""

from __future__ import annotations

from lineside.domain.events import DomainEvent
from lineside.domain.models import Principal, Scope
from lineside.services.context import ServiceContext, page_size, require
from lineside.services.ports import EventFilter, Page


def list_audit_events(
    ctx: ServiceContext,
    principal: Principal,
    *,
    filters: EventFilter,
    cursor: str | None,
    limit: int,
) -> Page[DomainEvent]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.events.list(
            within=principal.organization.path,
            filters=filters,
            cursor=cursor,
            limit=page_size(limit),
        )
