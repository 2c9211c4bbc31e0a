"""Request and response bodies of the webhook routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictBool, StrictStr

from lineside.domain.webhooks import (
    KNOWN_EVENT_TYPES,
    MAX_EVENT_TYPES,
    MAX_URL_LENGTH,
    WILDCARD,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from lineside.entrypoints.api.schemas import Request
from lineside.services.webhooks import DeliveryWithAttempts, EndpointChanges

EVENT_TYPES_HELP = 'Event types to receive (GET /api/v1/webhook-event-types), or ["*"] for all.'
_EVENT_TYPES: list[Any] = sorted(KNOWN_EVENT_TYPES | {WILDCARD})
EventTypes = Annotated[
    list[StrictStr],
    Field(
        max_length=MAX_EVENT_TYPES,
        description=EVENT_TYPES_HELP,
        json_schema_extra={"minItems": 1, "items": {"type": "string", "enum": _EVENT_TYPES}},
    ),
]


class WebhookEndpointIn(Request):
    url: StrictStr = Field(
        max_length=MAX_URL_LENGTH,
        description="An http(s) URL whose host resolves to a public address; no credentials in it.",
        json_schema_extra={"pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+(/[^\s#]*)?$"},
    )
    event_types: EventTypes
    description: StrictStr | None = Field(default=None, max_length=500)


class WebhookEndpointPatch(Request):
    event_types: EventTypes | None = None
    description: StrictStr | None = Field(default=None, max_length=500, description='"" removes it.')
    enabled: StrictBool | None = Field(
        default=None, description="false disables the endpoint and cancels its pending deliveries."
    )

    def changes(self) -> EndpointChanges:
        return EndpointChanges(
            event_types=self.event_types, description=self.description, enabled=self.enabled
        )


class WebhookEndpointOut(BaseModel):
    id: str
    organization_id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookEndpointOut:
        return cls(
            id=endpoint.id,
            organization_id=endpoint.organization_id,
            url=endpoint.url,
            event_types=list(endpoint.event_types),
            description=endpoint.description,
            enabled=endpoint.enabled,
            disabled_at=endpoint.disabled_at,
            disabled_reason=endpoint.disabled_reason,
            created_at=endpoint.created_at,
        )


class WebhookEndpointWithSecretOut(WebhookEndpointOut):
    secret: str = Field(
        description="The signing secret (whsec_...): shown now and never again. Verify each "
        "webhook's webhook-signature header with it (Standard Webhooks)."
    )

    @classmethod
    def with_secret(cls, endpoint: WebhookEndpoint, secret: str) -> WebhookEndpointWithSecretOut:
        return cls(**WebhookEndpointOut.of(endpoint).model_dump(), secret=secret)


class WebhookDeliveryOut(BaseModel):
    id: str = Field(description="Also the webhook-id header, the same on every attempt.")
    endpoint_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> WebhookDeliveryOut:
        return cls(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=delivery.status,
            attempt_count=delivery.attempt_count,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            completed_at=delivery.completed_at,
        )


class WebhookAttemptOut(BaseModel):
    id: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> WebhookAttemptOut:
        return cls(
            id=attempt.id,
            attempted_at=attempt.attempted_at,
            status_code=attempt.status_code,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
        )


class WebhookDeliveryWithAttemptsOut(WebhookDeliveryOut):
    attempts: list[WebhookAttemptOut]

    @classmethod
    def with_attempts(cls, found: DeliveryWithAttempts) -> WebhookDeliveryWithAttemptsOut:
        return cls(
            **WebhookDeliveryOut.of(found.delivery).model_dump(),
            attempts=[WebhookAttemptOut.of(attempt) for attempt in found.attempts],
        )
