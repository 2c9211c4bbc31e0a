"""An offline station's own books, on the station's database: seeded once from its bundle
(the organization, product, groups, factory token and fixtures' key the server made, under the
same ids, their secrets hashed with the station's own key), its ledger read for upload and
marked synced, and the figures its status page shows.

The line itself is ``services.station_line``; the server's side is ``services.stations``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from lineside.domain.events import EventType, SubjectRef, new_event
from lineside.domain.factory import FactoryToken
from lineside.domain.models import ApiKey, DeviceGroup, Organization, Product
from lineside.domain.stations import LedgerEntry, PoolEntry, StationWarning
from lineside.services.context import ServiceContext

STATION_ACTOR = "station"


@dataclass(frozen=True)
class StationSeed:
    """What the bundle says the station's line is, and the two secrets the line sends."""

    organization: Organization
    product: Product
    groups: list[DeviceGroup]
    factory_token: FactoryToken
    enrollment_token: str
    fixture_key: ApiKey
    fixture_api_key: str
    pool: list[tuple[str, str]] = field(default_factory=list)  # (device id, token), in order


@dataclass(frozen=True)
class StationFigures:
    devices_made: int
    devices_by_state: dict[str, int]
    entries_waiting: int
    head_sequence: int
    last_synced_at: datetime | None


def seed_station(ctx: ServiceContext, seed: StationSeed, station_id: str) -> bool:
    """Write the seed unless it is there already (a restart); whether it was written now."""
    with ctx.unit_of_work() as uow:
        if uow.products.get(seed.product.id, within="/") is not None:
            return False
        uow.organizations.add(seed.organization)
        uow.products.add(seed.product)
        for group in seed.groups:
            uow.groups.add(group)
        uow.factory_tokens.add(seed.factory_token, ctx.hasher.hash(seed.enrollment_token))
        uow.api_keys.add(seed.fixture_key, ctx.hasher.hash(seed.fixture_api_key))
        uow.stations.add_pool(
            [
                PoolEntry(device_id, station_id, position, ctx.hasher.hash(token))
                for position, (device_id, token) in enumerate(seed.pool)
            ]
        )
        uow.commit()
    return True


def station_figures(ctx: ServiceContext, organization_id: str, product_id: str) -> StationFigures:
    with ctx.unit_of_work(write=False) as uow:
        head = uow.station_ledger.head()
        return StationFigures(
            devices_made=uow.device_counts.of_product(organization_id, product_id),
            devices_by_state=dict(uow.device_counts.by_state()),
            entries_waiting=uow.station_ledger.waiting(),
            head_sequence=head[0] if head else 0,
            last_synced_at=uow.station_ledger.last_synced_at(),
        )


def entries_after(ctx: ServiceContext, sequence: int, limit: int) -> list[LedgerEntry]:
    """The entries after ``sequence``, in order, synced or not (the server's head decides)."""
    with ctx.unit_of_work(write=False) as uow:
        return list(uow.station_ledger.entries(sequence, limit))


def mark_synced(ctx: ServiceContext, through_sequence: int) -> None:
    """The server holds every entry up to ``through_sequence`` (its head says so)."""
    with ctx.unit_of_work() as uow:
        uow.station_ledger.mark_synced(through_sequence, ctx.clock())
        uow.commit()


def record_limit_near(
    ctx: ServiceContext, station_id: str, organization_id: str, warning: StationWarning, share: float
) -> None:
    """An event in the station's own outbox: the server hears of it from its own replay."""
    subject = SubjectRef(station_id, organization_id)
    with ctx.unit_of_work() as uow:
        uow.events.add(
            new_event(
                EventType.STATION_LIMIT_NEAR,
                subject,
                actor=STATION_ACTOR,
                at=ctx.clock(),
                limit=warning.value,
                share=round(share, 3),
            )
        )
        uow.commit()
