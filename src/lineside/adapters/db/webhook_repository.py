"""SQL repository of webhook endpoints, deliveries and attempts, and the outbox dispatch.

Workers share the tables by leases: ``lease_due`` takes due rows with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (on SQLite the single writer of ``BEGIN IMMEDIATE``
serialises takers), sets ``locked_until`` and commits; the attempt is recorded only while
that lease still holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, exists, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from lineside.adapters.db import tables as t
from lineside.adapters.db.paging import paged
from lineside.adapters.db.repositories import SqlRepository, owned_within
from lineside.domain.events import DomainEvent
from lineside.domain.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from lineside.services.ports import DeliveryChange, DeliveryFilter, DueDelivery, Page

_endpoints = t.webhook_endpoints
_deliveries = t.webhook_deliveries
_attempts = t.webhook_attempts
_PENDING = DeliveryStatus.PENDING.value
_EVENT = "outbox_event_"  # the label prefix of the event's columns beside the delivery's


def _event(m: Any, prefix: str = "") -> DomainEvent:
    return DomainEvent(
        id=m[f"{prefix}id"],
        type=m[f"{prefix}type"],
        organization_id=m[f"{prefix}organization_id"],
        actor=m[f"{prefix}actor"],
        occurred_at=m[f"{prefix}occurred_at"],
        subject_type=m[f"{prefix}subject_type"],
        subject_id=m[f"{prefix}subject_id"],
        data=m[f"{prefix}data"],
        recorded_at=m[f"{prefix}recorded_at"],
    )


def _endpoint(row: Row[Any]) -> WebhookEndpoint:
    m = row._mapping
    return WebhookEndpoint(
        id=m["id"],
        organization_id=m["organization_id"],
        url=m["url"],
        event_types=tuple(m["event_types"]),
        description=m["description"],
        created_at=m["created_at"],
        disabled_at=m["disabled_at"],
        disabled_reason=m["disabled_reason"],
    )


def _delivery(row: Row[Any]) -> WebhookDelivery:
    m = row._mapping
    return WebhookDelivery(
        id=m["id"],
        endpoint_id=m["endpoint_id"],
        organization_id=m["organization_id"],
        event_id=m["event_id"],
        event_type=m["event_type"],
        status=DeliveryStatus(m["status"]),
        created_at=m["created_at"],
        attempt_count=m["attempt_count"],
        next_attempt_at=m["next_attempt_at"],
        locked_until=m["locked_until"],
        last_status_code=m["last_status_code"],
        last_error=m["last_error"],
        completed_at=m["completed_at"],
    )


def _attempt(row: Row[Any]) -> WebhookAttempt:
    m = row._mapping
    return WebhookAttempt(
        id=m["id"],
        delivery_id=m["delivery_id"],
        attempted_at=m["attempted_at"],
        status_code=m["status_code"],
        error=m["error"],
        duration_ms=m["duration_ms"],
    )


def _delivery_row(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "organization_id": delivery.organization_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status.value,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
    }


class SqlWebhookRepository(SqlRepository):
    # -- endpoints ---------------------------------------------------------------------------

    def backlog(self) -> tuple[int, datetime | None]:
        """Deliveries still to send (every organization's), and when the oldest was made."""
        c = t.webhook_deliveries.c
        row = self.connection.execute(
            select(func.count(), func.min(c.created_at)).where(c.next_attempt_at.is_not(None))
        ).one()
        return int(row[0]), row[1]  # min() keeps the column's type: an aware datetime

    def add_endpoint(self, endpoint: WebhookEndpoint, sealed_secret: str) -> None:
        self.connection.execute(
            insert(_endpoints).values(
                id=endpoint.id,
                organization_id=endpoint.organization_id,
                url=endpoint.url,
                event_types=list(endpoint.event_types),
                description=endpoint.description,
                sealed_secret=sealed_secret,
                created_at=endpoint.created_at,
                disabled_at=endpoint.disabled_at,
                disabled_reason=endpoint.disabled_reason,
            )
        )

    def get_endpoint(
        self, endpoint_id: str, *, within: str | None, lock: bool = False
    ) -> WebhookEndpoint | None:
        query = select(_endpoints).where(_endpoints.c.id == endpoint_id)
        if within is not None:
            query = query.where(owned_within(_endpoints.c.organization_id, within))
        if lock:
            # FOR NO KEY UPDATE: the dispatcher's inserts (a foreign key's KEY SHARE) go on.
            query = query.with_for_update(key_share=True)
        row = self._first(query)
        return _endpoint(row) if row else None

    def list_endpoints(self, *, within: str, cursor: str | None, limit: int) -> Page[WebhookEndpoint]:
        query = select(_endpoints).where(owned_within(_endpoints.c.organization_id, within))
        return paged(query, _endpoints.c.id, cursor, limit, self._all, _endpoint)

    def save_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self.connection.execute(
            update(_endpoints)
            .where(_endpoints.c.id == endpoint.id)
            .values(
                event_types=list(endpoint.event_types),
                description=endpoint.description,
                disabled_at=endpoint.disabled_at,
                disabled_reason=endpoint.disabled_reason,
            )
        )

    def set_sealed_secret(self, endpoint_id: str, sealed_secret: str) -> None:
        self.connection.execute(
            update(_endpoints).where(_endpoints.c.id == endpoint_id).values(sealed_secret=sealed_secret)
        )

    def delete_endpoint(self, endpoint_id: str) -> None:
        of_endpoint = select(_deliveries.c.id).where(_deliveries.c.endpoint_id == endpoint_id)
        self.connection.execute(delete(_attempts).where(_attempts.c.delivery_id.in_(of_endpoint)))
        self.connection.execute(delete(_deliveries).where(_deliveries.c.endpoint_id == endpoint_id))
        self.connection.execute(delete(_endpoints).where(_endpoints.c.id == endpoint_id))

    def cancel_pending(self, endpoint_id: str, at: datetime) -> int:
        result = self.connection.execute(
            update(_deliveries)
            .where(_deliveries.c.endpoint_id == endpoint_id, _deliveries.c.status == _PENDING)
            .values(status=DeliveryStatus.CANCELLED.value, next_attempt_at=None, completed_at=at)
        )
        return result.rowcount

    # -- the outbox dispatcher ---------------------------------------------------------------

    def any_undispatched(self) -> bool:
        query = select(exists().where(t.events.c.dispatched_at.is_(None)))
        return bool(self.connection.execute(query).scalar())

    def take_undispatched(self, limit: int) -> list[DomainEvent]:
        query = (
            select(t.events)
            .where(t.events.c.dispatched_at.is_(None))
            .order_by(t.events.c.sequence)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_event(row._mapping) for row in self._all(query)]

    def enabled_endpoints_of(self, organization_ids: Iterable[str]) -> list[WebhookEndpoint]:
        query = select(_endpoints).where(
            _endpoints.c.organization_id.in_(list(organization_ids)), _endpoints.c.disabled_at.is_(None)
        )
        return [_endpoint(row) for row in self._all(query.order_by(_endpoints.c.id))]

    def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        if deliveries:
            self.connection.execute(insert(_deliveries), [_delivery_row(d) for d in deliveries])

    def mark_dispatched(self, event_ids: Sequence[str], at: datetime) -> None:
        self.connection.execute(
            update(t.events).where(self._one_of(t.events.c.id, event_ids)).values(dispatched_at=at)
        )

    # -- the delivery loop -------------------------------------------------------------------

    def _due(self, now: datetime) -> tuple[ColumnElement[bool], ...]:
        enabled = select(_endpoints.c.id).where(_endpoints.c.disabled_at.is_(None))
        return (
            _deliveries.c.status == _PENDING,
            _deliveries.c.next_attempt_at <= now,
            or_(_deliveries.c.locked_until.is_(None), _deliveries.c.locked_until <= now),
            _deliveries.c.endpoint_id.in_(enabled),
        )

    def any_due(self, now: datetime) -> bool:
        return bool(self.connection.execute(select(exists().where(*self._due(now)))).scalar())

    def lease_due(self, now: datetime, until: datetime, limit: int) -> list[DueDelivery]:
        # Only the delivery rows are locked (FOR UPDATE OF): locking their endpoint too would
        # make a second worker skip every other delivery to the same endpoint.
        due = (
            select(_deliveries.c.id)
            .where(*self._due(now))
            .order_by(_deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=_deliveries)
        )
        ids = [row.id for row in self._all(due)]
        if not ids:
            return []
        self.connection.execute(
            update(_deliveries).where(_deliveries.c.id.in_(ids)).values(locked_until=until)
        )
        event_columns = [column.label(f"{_EVENT}{column.name}") for column in t.events.c]
        query = (
            select(_deliveries, _endpoints.c.url, _endpoints.c.sealed_secret, *event_columns)
            .join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
            .join(t.events, t.events.c.id == _deliveries.c.event_id)
            .where(_deliveries.c.id.in_(ids))
            .order_by(_deliveries.c.next_attempt_at)
        )
        return [_due_delivery(row, until) for row in self._all(query)]

    def record_attempt(
        self, attempt: WebhookAttempt, *, leased_until: datetime, change: DeliveryChange
    ) -> bool:
        result = self.connection.execute(
            update(_deliveries)
            .where(
                _deliveries.c.id == attempt.delivery_id,
                _deliveries.c.status == _PENDING,
                _deliveries.c.locked_until == leased_until,
            )
            .values(
                status=change.status.value,
                attempt_count=_deliveries.c.attempt_count + 1,
                next_attempt_at=change.next_attempt_at,
                locked_until=None,
                last_status_code=attempt.status_code,
                last_error=attempt.error,
                completed_at=change.completed_at,
            )
        )
        applied = result.rowcount == 1
        # A delivery deleted with its endpoint mid-send has nowhere to keep the attempt.
        if applied or self._first(select(_deliveries.c.id).where(_deliveries.c.id == attempt.delivery_id)):
            self.connection.execute(
                insert(_attempts).values(
                    id=attempt.id,
                    delivery_id=attempt.delivery_id,
                    attempted_at=attempt.attempted_at,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                )
            )
        return applied

    # -- reading and re-sending --------------------------------------------------------------

    def get_delivery(self, delivery_id: str, *, within: str) -> WebhookDelivery | None:
        row = self._first(
            select(_deliveries).where(
                _deliveries.c.id == delivery_id, owned_within(_deliveries.c.organization_id, within)
            )
        )
        return _delivery(row) if row else None

    def list_deliveries(
        self, endpoint_id: str, *, filters: DeliveryFilter, cursor: str | None, limit: int
    ) -> Page[WebhookDelivery]:
        query = select(_deliveries).where(_deliveries.c.endpoint_id == endpoint_id)
        index = "ix_webhook_deliveries_endpoint_id_id"
        if filters.status is not None:
            query = query.where(_deliveries.c.status == filters.status.value)
            index = "ix_webhook_deliveries_endpoint_id_status_id"
        query = query.with_hint(_deliveries, f"INDEXED BY {index}", "sqlite")  # see adapters.db.pages
        return paged(query, _deliveries.c.id, cursor, limit, self._all, _delivery)

    def list_attempts(self, delivery_id: str) -> list[WebhookAttempt]:
        query = (
            select(_attempts)
            .where(_attempts.c.delivery_id == delivery_id)
            .order_by(_attempts.c.attempted_at, _attempts.c.id)
        )
        return [_attempt(row) for row in self._all(query)]

    def make_due(self, delivery_id: str, at: datetime) -> None:
        self.connection.execute(
            update(_deliveries)
            .where(_deliveries.c.id == delivery_id)
            .values(status=_PENDING, next_attempt_at=at, completed_at=None)
        )


def _due_delivery(row: Row[Any], leased_until: datetime) -> DueDelivery:
    m = row._mapping
    return DueDelivery(
        delivery_id=m["id"],
        endpoint_id=m["endpoint_id"],
        url=m["url"],
        sealed_secret=m["sealed_secret"],
        event=_event(m, _EVENT),
        attempt_count=m["attempt_count"],
        created_at=m["created_at"],
        leased_until=leased_until,
    )
