"""Webhook endpoints, deliveries and their attempts; the sender and the secret box."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from lineside.domain.events import DomainEvent
from lineside.domain.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from lineside.services.ports.common import Page


@dataclass(frozen=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A delivery a worker has leased until ``leased_until``, with what sending it needs."""

    delivery_id: str
    endpoint_id: str
    url: str
    sealed_secret: str = field(repr=False)
    event: DomainEvent
    attempt_count: int
    created_at: datetime
    leased_until: datetime


@dataclass(frozen=True)
class DeliveryChange:
    """Where a delivery stands after an attempt."""

    status: DeliveryStatus
    next_attempt_at: datetime | None
    completed_at: datetime | None


class WebhookRepository(Protocol):
    """Webhook endpoints, deliveries and attempts (owned by the webhooks feature)."""

    def backlog(self) -> tuple[int, datetime | None]: ...
    def add_endpoint(self, endpoint: WebhookEndpoint, sealed_secret: str) -> None: ...
    def get_endpoint(
        self, endpoint_id: str, *, within: str | None, lock: bool = False
    ) -> WebhookEndpoint | None:
        """``within=None``: any organization's (only for the worker). ``lock``: until the end
        of the transaction; whoever changes an endpoint's deliveries as a whole (disable,
        delete) locks the endpoint first, so two of them queue instead of deadlocking."""
        ...

    def list_endpoints(self, *, within: str, cursor: str | None, limit: int) -> Page[WebhookEndpoint]: ...
    def save_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Store event types, description and the disabled state (never the URL or secret)."""
        ...

    def set_sealed_secret(self, endpoint_id: str, sealed_secret: str) -> None: ...
    def delete_endpoint(self, endpoint_id: str) -> None:
        """The endpoint with its deliveries and their attempts."""
        ...

    def cancel_pending(self, endpoint_id: str, at: datetime) -> int: ...
    # The outbox dispatcher
    def any_undispatched(self) -> bool: ...
    def take_undispatched(self, limit: int) -> list[DomainEvent]:
        """The oldest events not yet dispatched, locked against other dispatchers (skipped
        by them, not waited for, on PostgreSQL)."""
        ...

    def enabled_endpoints_of(self, organization_ids: Iterable[str]) -> list[WebhookEndpoint]: ...
    def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None: ...
    def mark_dispatched(self, event_ids: Sequence[str], at: datetime) -> None: ...
    # The delivery loop
    def any_due(self, now: datetime) -> bool: ...
    def lease_due(self, now: datetime, until: datetime, limit: int) -> list[DueDelivery]:
        """Take up to ``limit`` due pending deliveries of enabled endpoints: set their lease,
        skipping (not waiting for) rows another worker is leasing right now."""
        ...

    def record_attempt(
        self, attempt: WebhookAttempt, *, leased_until: datetime, change: DeliveryChange
    ) -> bool:
        """Keep the attempt; apply ``change`` only if our lease still holds (True if it did)."""
        ...

    # Reading and re-sending
    def get_delivery(self, delivery_id: str, *, within: str) -> WebhookDelivery | None: ...
    def list_deliveries(
        self, endpoint_id: str, *, filters: DeliveryFilter, cursor: str | None, limit: int
    ) -> Page[WebhookDelivery]: ...
    def list_attempts(self, delivery_id: str) -> list[WebhookAttempt]: ...
    def make_due(self, delivery_id: str, at: datetime) -> None:
        """Pending again and due at ``at``, attempts and history kept."""
        ...


@dataclass(frozen=True)
class WebhookMessage:
    url: str
    message_id: str  # the webhook-id header: the delivery id
    body: bytes
    secret: str = field(repr=False)


@dataclass(frozen=True)
class SendResult:
    """What one attempt came to: a status code, or an error that kept it from getting one."""

    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookSender(Protocol):
    def check_target(self, url: str) -> None:
        """Raise WebhookTargetRefused unless ``url`` may receive webhooks now."""
        ...

    async def send(self, message: WebhookMessage) -> SendResult:
        """Sign and POST once, never following a redirect; never raises for the receiver's
        faults (refused address, timeout, connection error): they come back as a result."""
        ...


class SecretBox(Protocol):
    """Seals secrets the server must read back (a webhook signing secret), unlike the ones it
    only compares, which are hashed. ``context`` binds a sealed value to its row."""

    def seal(self, plaintext: str, context: str) -> str: ...
    def open(self, sealed: str, context: str) -> str:
        """Raises ValueError if ``sealed`` was not sealed with this key and context."""
        ...


@dataclass(frozen=True)
class WebhookAdapters:
    sender: WebhookSender
    secret_box: SecretBox
