"""The one clock: every adapter and service that needs the time is given this function (or a
test's fixed clock) rather than calling ``datetime.now`` itself."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
