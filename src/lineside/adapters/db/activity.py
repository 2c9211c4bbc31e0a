"""Activity counters: per product and hour, how many devices arrived in each lifecycle state,
were claimed or retested, and how test runs went per fixture and per factory token.

Like the device counters (adapters.db.device_counts), a transaction's changes are summed in
memory and written just before it commits, one upsert per key in key order; the device
repository reports arrivals as it changes states, the factory line reports test runs.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, select
from sqlalchemy.dialects import postgresql, sqlite

from lineside.adapters.db import tables as t
from lineside.adapters.db.repositories import SqlRepository, owned_within
from lineside.domain.clock import utc_now
from lineside.domain.lifecycle import DeviceState
from lineside.services.ports import ActivityCount, Measure


@dataclass(frozen=True, order=True)
class ActivityKey:
    organization_id: str
    product_id: str
    measure: str
    source: str


class ActivityChanges:
    """The activity of one transaction, not yet written; it is filed under the hour of the
    commit."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._counts: Counter[ActivityKey] = Counter()
        self._clock = clock

    def add(
        self, organization_id: str, product_id: str, measure: str, source: str = "", times: int = 1
    ) -> None:
        self._counts[ActivityKey(organization_id, product_id, measure, source)] += times

    def moved(self, organization_id: str, product_id: str, before: str, after: str) -> None:
        self.add(organization_id, product_id, after)
        if before == DeviceState.FAILED.value and after == DeviceState.UNDER_TEST.value:
            self.add(organization_id, product_id, Measure.RETESTED)

    def write(self, connection: Connection) -> None:
        counted = sorted((key, times) for key, times in self._counts.items() if times > 0)
        self._counts.clear()
        if counted:
            hour = self._clock().replace(minute=0, second=0, microsecond=0)
            rows = [{**key.__dict__, "hour": hour, "count": times} for key, times in counted]
            connection.execute(_upsert(connection.dialect.name), rows)

    def discard(self) -> None:
        self._counts.clear()


@functools.cache  # built once per dialect, as device_counts' upsert
def _upsert(dialect: str) -> Insert:
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(t.activity_counts)
    return statement.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=["organization_id", "product_id", "hour", "measure", "source"],
        set_={"count": t.activity_counts.c.count + statement.excluded.count},
    )


class SqlActivityRepository(SqlRepository):
    def __init__(self, connection: Connection, changes: ActivityChanges) -> None:
        super().__init__(connection)
        self._changes = changes

    def record_test_run(
        self, organization_id: str, product_id: str, *, sources: Sequence[str], passed: bool, first: bool
    ) -> None:
        measures = [Measure.TEST_RUNS] + [Measure.TESTS_PASSED] * passed
        if first:
            measures += [Measure.FIRST_TESTS] + [Measure.FIRST_TESTS_PASSED] * passed
        for source in ("", *sources):
            for measure in measures:
                self._changes.add(organization_id, product_id, measure, source)

    def count_at(self, organization_id: str, product_id: str, measure: str, source: str) -> None:
        self._changes.add(organization_id, product_id, measure, source)

    def since(self, within: str, since: datetime, *, product_id: str | None = None) -> list[ActivityCount]:
        c = t.activity_counts.c
        query = select(c.product_id, c.hour, c.measure, c.source, c.count).where(
            owned_within(c.organization_id, within), c.hour >= since
        )
        if product_id is not None:
            query = query.where(c.product_id == product_id)
        return [ActivityCount(*row) for row in self.connection.execute(query.order_by(c.hour))]
