"""Webhooks: which events an endpoint receives, the body it is sent, and when to try again.

Pure rules. Sending, signing and the address guard are adapters (``adapters/webhooks``);
the outbox dispatcher and the delivery loop are services (``services/webhook_delivery``).

A delivery's life::

    event in the outbox --dispatch--> pending --2xx--> succeeded
                                        |  ^
                            non-2xx,    |  | due again after the
                            timeout,    |  | retry schedule's delay
                            refused     v  |
                                      (attempt) --3 days since created--> failed
                                        |
                                        +--410 Gone--> failed, endpoint disabled,
                                                       its other pending deliveries cancelled
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from lineside.domain.errors import DomainError
from lineside.domain.events import DomainEvent, EventType

WILDCARD = "*"
MAX_EVENT_TYPES = 100
MAX_URL_LENGTH = 2000
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes


class UnknownEventType(DomainError):
    """An event type no Lineside event has (HTTP 400)."""

    title = "Unknown event type"


class WebhookTargetRefused(DomainError):
    """A URL webhooks may not be sent to (HTTP 400): not http(s), credentials in it, or a
    host that resolves to a private, loopback, link-local, multicast or reserved address."""

    title = "Webhook target refused"


# Every event type is subscribable the moment it is declared in EventType.
KNOWN_EVENT_TYPES: frozenset[str] = frozenset(EventType)


def event_types_for_subscription(requested: Iterable[str]) -> tuple[str, ...]:
    """The event types an endpoint subscribes to, sorted and without repeats; ``*`` is all.

    Raises UnknownEventType naming every type that does not exist.
    """
    wanted = set(requested)
    if not wanted:
        raise UnknownEventType("Subscribe to at least one event type, or '*' for all.")
    if len(wanted) > MAX_EVENT_TYPES:
        raise UnknownEventType(f"Subscribe to at most {MAX_EVENT_TYPES} event types.")
    unknown = sorted(wanted - KNOWN_EVENT_TYPES - {WILDCARD})
    if unknown:
        raise UnknownEventType(
            f"Unknown event types: {', '.join(unknown)}. See GET /api/v1/webhook-event-types."
        )
    return (WILDCARD,) if WILDCARD in wanted else tuple(sorted(wanted))


@dataclass(frozen=True)
class WebhookTarget:
    """The parts of an endpoint URL that decide where a request goes."""

    scheme: str
    host: str
    port: int


def parse_target(url: str) -> WebhookTarget:
    """Check a URL's shape (not where its host points: that needs DNS, see the adapter)."""
    if len(url) > MAX_URL_LENGTH or any(character.isspace() or ord(character) < 32 for character in url):
        raise WebhookTargetRefused(f"The URL must be at most {MAX_URL_LENGTH} characters, without spaces.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookTargetRefused("The URL is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookTargetRefused("Only http:// and https:// URLs can receive webhooks.")
    if parts.username is not None or parts.password is not None:
        raise WebhookTargetRefused("The URL must not carry credentials; verify the signature instead.")
    if not parts.hostname:
        raise WebhookTargetRefused("The URL has no host.")
    if parts.fragment:
        raise WebhookTargetRefused("The URL must not have a #fragment: it is never sent.")
    return WebhookTarget(scheme, parts.hostname, port or (443 if scheme == "https" else 80))


def generate_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    organization_id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def receives(self, event: DomainEvent) -> bool:
        """Only events of its organization and types, and none from before it existed."""
        return (
            self.enabled
            and event.organization_id == self.organization_id
            and event.news_since >= self.created_at
            and (WILDCARD in self.event_types or event.type in self.event_types)
        )

    def disabled(self, at: datetime, reason: str) -> WebhookEndpoint:
        return replace(self, disabled_at=at, disabled_reason=reason[:500])

    def enabled_again(self) -> WebhookEndpoint:
        return replace(self, disabled_at=None, disabled_reason=None)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up after the retry window, or the receiver answered 410
    CANCELLED = "cancelled"  # the endpoint was disabled before it got through


@dataclass(frozen=True)
class WebhookDelivery:
    """One event on its way to one endpoint. Its id is the ``webhook-id`` header, the same on
    every attempt, so a receiver can drop a repeat."""

    id: str
    endpoint_id: str
    organization_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    created_at: datetime
    attempt_count: int = 0
    next_attempt_at: datetime | None = None
    locked_until: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class WebhookAttempt:
    id: str
    delivery_id: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    GONE = "gone"  # 410: the receiver says this endpoint will never take webhooks again
    FAILED = "failed"


HTTP_GONE = 410


def outcome_of(status_code: int | None) -> AttemptOutcome:
    """2xx delivered; 410 gone; anything else (3xx included: redirects are not followed),
    a timeout or a refused address is a failed attempt worth retrying."""
    if status_code is not None and 200 <= status_code < 300:
        return AttemptOutcome.SUCCEEDED
    if status_code == HTTP_GONE:
        return AttemptOutcome.GONE
    return AttemptOutcome.FAILED


# -- what is sent -------------------------------------------------------------------------


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def webhook_payload(event: DomainEvent) -> dict[str, Any]:
    """The JSON a receiver gets. Events carry no secret, so neither does this."""
    data = {
        **event.data,
        "event_id": event.id,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "organization_id": event.organization_id,
        "actor": event.actor,
    }
    return {"type": event.type, "timestamp": _timestamp(event.occurred_at), "data": data}


def webhook_body(event: DomainEvent) -> bytes:
    """The exact bytes sent: built from the stored event, with sorted keys and no spaces, so
    every attempt and every resend of a delivery sends the same body."""
    payload = webhook_payload(event)
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- when to try again --------------------------------------------------------------------


def _default_delays() -> tuple[timedelta, ...]:
    seconds = (5, 30, 120, 600, 1800, 3600, 7200)
    return tuple(timedelta(seconds=value) for value in seconds)


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential-ish backoff with jitter: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, then
    every 5 hours, each delay moved by up to +-20 % at random so that many deliveries failing
    together do not come back together; given up 3 days after the delivery was made."""

    delays: tuple[timedelta, ...] = field(default_factory=_default_delays)
    then_every: timedelta = timedelta(hours=5)
    give_up_after: timedelta = timedelta(days=3)
    jitter: float = 0.2

    def scaled(self, factor: float) -> RetrySchedule:
        """The same shape, every duration times ``factor`` (tests use a tiny one)."""
        return replace(
            self,
            delays=tuple(delay * factor for delay in self.delays),
            then_every=self.then_every * factor,
            give_up_after=self.give_up_after * factor,
        )

    def delay_after(self, attempts_made: int) -> timedelta:
        """The delay before the next attempt, without jitter, after ``attempts_made`` >= 1."""
        index = attempts_made - 1
        return self.delays[index] if index < len(self.delays) else self.then_every

    def next_attempt_at(
        self,
        created_at: datetime,
        attempts_made: int,
        now: datetime,
        random: Callable[[], float],
    ) -> datetime | None:
        """When to try again after a failed attempt, or None to give up.

        ``random`` returns a float in [0, 1) (``random.random``-like), injected so tests can
        pin the jitter.
        """
        spread = 1 + self.jitter * (2 * random() - 1)
        due = now + self.delay_after(attempts_made) * spread
        return None if due > created_at + self.give_up_after else due


DEFAULT_RETRY_SCHEDULE = RetrySchedule()
