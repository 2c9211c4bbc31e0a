"""Device counters: how many devices an organization made, per product, state and claimed.

The device repository reports every change it makes (``DeviceCountChanges``); the unit of
work writes the sum of a transaction's changes just before it commits, in key order, one
upsert per key. So the counters change in the same transaction as the devices, concurrent
transactions lock counter rows in one order (no deadlock between them), and a hot row is
held only from that write to the commit.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from lineside.adapters.db import tables as t
from lineside.adapters.db.activity import ActivityChanges
from lineside.adapters.db.repositories import SqlRepository, owned_within
from lineside.services.ports import DeviceCount, Measure


@dataclass(frozen=True, order=True)
class CountKey:
    organization_id: str
    product_id: str
    state: str
    claimed: bool


# A station's every enrollment reads it (its budget): built once, not per call (about 110 us
# built and run, 20 us run, on SQLite).
_OF_PRODUCT = select(func.coalesce(func.sum(t.device_counts.c.devices), 0)).where(
    t.device_counts.c.organization_id == bindparam("organization_id"),
    t.device_counts.c.product_id == bindparam("product_id"),
)


class DeviceCountChanges:
    """The counter changes of one transaction, not yet written."""

    def __init__(self) -> None:
        self._deltas: Counter[CountKey] = Counter()
        self.activity = ActivityChanges()  # arrivals, written with the counters

    def arrived(
        self, organization_id: str, product_id: str, state: str, claimed: bool, devices: int = 1
    ) -> None:
        """New devices, made in ``state``."""
        self.add(organization_id, product_id, state, claimed, devices)
        self.activity.add(organization_id, product_id, state, times=devices)

    def add(self, organization_id: str, product_id: str, state: str, claimed: bool, delta: int = 1) -> None:
        self._deltas[CountKey(organization_id, product_id, state, claimed)] += delta

    def add_all(self, keys: Iterable[CountKey]) -> None:
        self._deltas.update(keys)

    def made_by(self, organization_id: str) -> int:
        """How many devices the organization gains (or loses) by these changes."""
        return sum(delta for key, delta in self._deltas.items() if key.organization_id == organization_id)

    def moved(self, organization_id: str, product_id: str, claimed: bool, before: str, after: str) -> None:
        """One device changed state."""
        self.add(organization_id, product_id, before, claimed, -1)
        self.add(organization_id, product_id, after, claimed, +1)
        self.activity.moved(organization_id, product_id, before, after)

    def claim_changed(self, organization_id: str, product_id: str, state: str, claimed: bool) -> None:
        """One device was claimed (``claimed``) or given back."""
        self.add(organization_id, product_id, state, not claimed, -1)
        self.add(organization_id, product_id, state, claimed, +1)
        if claimed:
            self.activity.add(organization_id, product_id, Measure.CLAIMED)

    def write(self, connection: Connection) -> None:
        changed = sorted((key, delta) for key, delta in self._deltas.items() if delta)
        self._deltas.clear()
        if changed:
            rows = [{**key.__dict__, "devices": delta} for key, delta in changed]
            connection.execute(_upsert(connection.dialect.name), rows)
        self.activity.write(connection)

    def discard(self) -> None:
        self._deltas.clear()
        self.activity.discard()


@functools.cache  # built once per dialect: building it costs more than running it
def _upsert(dialect: str) -> Insert:
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(t.device_counts)
    return statement.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=["organization_id", "product_id", "state", "claimed"],
        set_={"devices": t.device_counts.c.devices + statement.excluded.devices},
    )


class SqlDeviceCountRepository(SqlRepository):
    def __init__(self, connection: Connection, pending: DeviceCountChanges | None = None) -> None:
        super().__init__(connection)
        self._pending = pending  # this transaction's changes, written only at its commit

    def made_by(self, organization_id: str) -> int:
        """How many devices the organization defined (its quota counts these), with those this
        transaction made already: a batch that checks the quota device by device sees its own."""
        c = t.device_counts.c
        query = select(func.coalesce(func.sum(c.devices), 0)).where(c.organization_id == organization_id)
        stored = int(self.connection.execute(query).scalar_one())
        return stored + (self._pending.made_by(organization_id) if self._pending is not None else 0)

    def of_product(self, organization_id: str, product_id: str) -> int:
        """How many devices of the product there are: a product's devices are its organization's,
        so this reads the few counters under one prefix of the counters' primary key."""
        parameters = {"organization_id": organization_id, "product_id": product_id}
        return int(self.connection.execute(_OF_PRODUCT, parameters).scalar_one())

    def within(self, within: str) -> list[DeviceCount]:
        """Every counter of the organizations in the subtree (the funnel reads these)."""
        c = t.device_counts.c
        query = (
            select(c.organization_id, c.product_id, c.state, c.claimed, c.devices)
            .where(owned_within(c.organization_id, within), c.devices != 0)
            .order_by(c.organization_id, c.product_id, c.state, c.claimed)
        )
        return [DeviceCount(*row) for row in self.connection.execute(query)]

    def by_state(self) -> dict[str, int]:
        """Every organization's devices by state (the operator's metrics)."""
        c = t.device_counts.c
        rows = self.connection.execute(select(c.state, func.sum(c.devices)).group_by(c.state))
        return {state: int(total) for state, total in rows if total}

    def recount(self) -> int:
        """Rebuild every counter from the devices; how many counters were wrong."""
        d = t.devices.c
        claimed = d.owner_organization_id.is_not(None)
        actual_rows = self.connection.execute(
            select(d.organization_id, d.product_id, d.state, claimed, func.count()).group_by(
                d.organization_id, d.product_id, d.state, claimed
            )
        )
        actual = {CountKey(o, p, s, bool(c)): n for o, p, s, c, n in actual_rows}
        c = t.device_counts.c
        kept = {
            CountKey(o, p, s, bool(cl)): n
            for o, p, s, cl, n in self.connection.execute(
                select(c.organization_id, c.product_id, c.state, c.claimed, c.devices)
            )
        }
        wrong = sum(1 for key in actual.keys() | kept.keys() if actual.get(key, 0) != kept.get(key, 0))
        self.connection.execute(t.device_counts.delete())
        if actual:
            rows = [{**key.__dict__, "devices": n} for key, n in sorted(actual.items())]
            self.connection.execute(t.device_counts.insert(), rows)
        return wrong
