"""What an operator watches across the whole installation (every organization): the fleet by
lifecycle state and the webhook backlog. Read at each metrics scrape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lineside.services.context import ServiceContext


@dataclass(frozen=True)
class FleetFigures:
    devices_by_state: dict[str, int]
    webhook_backlog: int
    oldest_pending_delivery_at: datetime | None


def fleet_figures(ctx: ServiceContext) -> FleetFigures:
    with ctx.unit_of_work(write=False) as uow:
        by_state = uow.device_counts.by_state()
        backlog, oldest = uow.webhooks.backlog()
    return FleetFigures(by_state, backlog, oldest)


def recount_devices(ctx: ServiceContext) -> int:
    """Rebuild the device counters from the devices (after a restore of an old backup, or
    rows changed by hand); how many counters were wrong."""
    with ctx.unit_of_work() as uow:
        wrong = uow.device_counts.recount()
        uow.commit()
    return wrong
