"""The outbox every use case writes its domain events to."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lineside.domain.events import DomainEvent
from lineside.services.ports.common import Page


@dataclass(frozen=True)
class EventFilter:
    type: str | None = None
    subject_id: str | None = None


class EventOutbox(Protocol):
    def add(self, event: DomainEvent) -> None: ...
    def add_many(self, events: Sequence[DomainEvent], *, recorded_at: datetime | None = None) -> None:
        """Many events in one bulk insert, in the order given; ``recorded_at``, when given,
        for each (a replay's events happened earlier elsewhere and are recorded now)."""
        ...

    def list(
        self, *, within: str, filters: EventFilter, cursor: str | None, limit: int
    ) -> Page[DomainEvent]: ...

    def latest(self, *, within: str, limit: int, type: str | None = None) -> builtins.list[DomainEvent]:
        """The subtree's ``limit`` newest events, newest first (read backwards along an index)."""
        ...
