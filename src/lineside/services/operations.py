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
        by_state = uow.devices.count_by_state()
        backlog, oldest = uow.webhooks.backlog()
    return FleetFigures(by_state, backlog, oldest)
