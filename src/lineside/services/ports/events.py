"""The outbox every use case writes its domain events to."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lineside.domain.events import DomainEvent
from lineside.services.ports.common import Page


@dataclass(frozen=True)
class EventFilter:
    type: str | None = None
    subject_id: str | None = None


class EventOutbox(Protocol):
    def add(self, event: DomainEvent) -> None: ...
    def add_many(self, events: Sequence[DomainEvent]) -> None:
        """Many events in one executemany, in the order given."""
        ...

    def list(
        self, *, within: str, filters: EventFilter, cursor: str | None, limit: int
    ) -> Page[DomainEvent]: ...

    def latest(self, *, within: str, limit: int, type: str | None = None) -> builtins.list[DomainEvent]:
        """The subtree's ``limit`` newest events, newest first (read backwards along an index)."""
        ...
