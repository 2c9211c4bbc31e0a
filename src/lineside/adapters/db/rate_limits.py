"""Fixed-window attempt counters in the database, so every server process shares them.

A slot is taken atomically, in one statement (an upsert whose update only happens while
the window has room): sixteen concurrent requests against a limit of ten take ten slots,
never thirteen, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lineside.adapters.db import tables as t
from lineside.services.ports import Slot

_c = t.rate_limits.c


class SqlRateLimiter:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock
        self._insert: Any = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert

    def acquire(self, bucket: str, limit: int, window: timedelta) -> Slot:
        """Take one of ``limit`` slots of ``bucket``'s current window, or learn how long to wait."""
        now = self._clock()
        window_over = _c.window_start <= literal(now - window, t.UtcDateTime())
        statement = (
            self._insert(t.rate_limits)
            .values(bucket=bucket, window_start=now, count=1)
            .on_conflict_do_update(
                index_elements=[_c.bucket],
                set_={
                    "window_start": case((window_over, literal(now, t.UtcDateTime())), else_=_c.window_start),
                    "count": case((window_over, 1), else_=_c.count + 1),
                },
                where=or_(window_over, _c.count < limit),
            )
            .returning(_c.count)
        )
        with self._engine.begin() as connection:
            taken = connection.execute(statement).scalar()
            if taken is not None:
                return Slot(taken=True, count=taken)
            started = connection.execute(select(_c.window_start).where(_c.bucket == bucket)).scalar_one()
        wait = max(1, int((started + window - now).total_seconds()) + 1)
        return Slot(taken=False, count=limit, retry_after=wait)

    def release(self, bucket: str, window: timedelta) -> None:
        """Give back a slot of the current window: the attempt turned out to be rightful."""
        now = self._clock()
        with self._engine.begin() as connection:
            connection.execute(
                update(t.rate_limits)
                .where(
                    _c.bucket == bucket,
                    _c.count > 0,
                    _c.window_start > literal(now - window, t.UtcDateTime()),
                )
                .values(count=_c.count - 1)
            )
