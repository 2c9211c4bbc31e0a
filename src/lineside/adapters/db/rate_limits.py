"""Fixed-window attempt counters in the database, so every server process shares them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from lineside.adapters.db import tables as t


class SqlRateLimiter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def retry_after(self, bucket: str, limit: int, window: timedelta) -> int | None:
        """Seconds until ``bucket`` may try again, or None when it may try now."""
        now = datetime.now(UTC)
        with self._engine.connect() as connection:
            row = connection.execute(select(t.rate_limits).where(t.rate_limits.c.bucket == bucket)).first()
        if row is None or row.window_start + window <= now or row._mapping["count"] < limit:
            return None
        return max(1, int((row.window_start + window - now).total_seconds()) + 1)

    def record(self, bucket: str, window: timedelta) -> None:
        """Count one failed attempt in the current window of ``bucket``."""
        now = datetime.now(UTC)
        c = t.rate_limits.c
        with self._engine.begin() as connection:
            row = connection.execute(select(t.rate_limits).where(c.bucket == bucket)).first()
            if row is None:
                try:
                    with connection.begin_nested():
                        connection.execute(
                            insert(t.rate_limits).values(bucket=bucket, window_start=now, count=1)
                        )
                except IntegrityError:  # a concurrent first attempt made the row
                    connection.execute(
                        update(t.rate_limits).where(c.bucket == bucket).values(count=c.count + 1)
                    )
            elif row.window_start + window <= now:
                connection.execute(
                    update(t.rate_limits).where(c.bucket == bucket).values(window_start=now, count=1)
                )
            else:
                connection.execute(update(t.rate_limits).where(c.bucket == bucket).values(count=c.count + 1))
