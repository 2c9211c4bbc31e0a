"""Webhook endpoints: create one (its signing secret shown once), change, disable, delete;
list its deliveries with their attempts, send one again, and send the endpoint a test event.

Delivering is in ``webhook_delivery``. Reads need the read scope, changes the admin scope;
another organization's endpoint or delivery answers NotFound, exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from lineside.domain.errors import Conflict
from lineside.domain.events import DomainEvent, EventType, new_event
from lineside.domain.identifiers import is_uuid, new_id
from lineside.domain.models import Principal, Scope
from lineside.domain.webhooks import (
    KNOWN_EVENT_TYPES,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    event_types_for_subscription,
    generate_signing_secret,
)
from lineside.services.context import ServiceContext, not_found, page_size, require
from lineside.services.ports import DeliveryFilter, Page, UnitOfWork, WebhookAdapters


@dataclass(frozen=True)
class EndpointWithSecret:
    """An endpoint and its signing secret: shown at creation or rotation, never again."""

    endpoint: WebhookEndpoint
    secret: str


@dataclass(frozen=True)
class EndpointChanges:
    """A PATCH: None leaves a field as it is; an empty description removes it."""

    event_types: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class DeliveryWithAttempts:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


def webhook_adapters(ctx: ServiceContext) -> WebhookAdapters:
    return ctx.webhooks


def known_event_types() -> list[str]:
    return sorted(KNOWN_EVENT_TYPES)


def endpoint_event(
    event_type: EventType, endpoint: WebhookEndpoint, *, actor: str, at: datetime, **data: Any
) -> DomainEvent:
    # Never the URL: people put tokens in query strings, and events carry no secret.
    return new_event(event_type, endpoint, actor=actor, at=at, **data)


def load_endpoint(
    uow: UnitOfWork, principal: Principal, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint:
    within = principal.organization.path
    endpoint = (
        uow.webhooks.get_endpoint(endpoint_id, within=within, lock=lock) if is_uuid(endpoint_id) else None
    )
    if endpoint is None:
        raise not_found("webhook endpoint", endpoint_id)
    return endpoint


def new_delivery(event: DomainEvent, endpoint: WebhookEndpoint, now: datetime) -> WebhookDelivery:
    """``event`` on its way to ``endpoint``: pending, due now."""
    return WebhookDelivery(
        id=new_id(),
        endpoint_id=endpoint.id,
        organization_id=endpoint.organization_id,
        event_id=event.id,
        event_type=event.type,
        status=DeliveryStatus.PENDING,
        created_at=now,
        next_attempt_at=now,
    )


def _load_delivery(uow: UnitOfWork, principal: Principal, delivery_id: str) -> WebhookDelivery:
    within = principal.organization.path
    delivery = uow.webhooks.get_delivery(delivery_id, within=within) if is_uuid(delivery_id) else None
    if delivery is None:
        raise not_found("webhook delivery", delivery_id)
    return delivery


def create_endpoint(
    ctx: ServiceContext,
    principal: Principal,
    *,
    url: str,
    event_types: list[str],
    description: str | None = None,
) -> EndpointWithSecret:
    require(principal, Scope.ADMIN)
    adapters = webhook_adapters(ctx)
    subscribed = event_types_for_subscription(event_types)
    adapters.sender.check_target(url)  # resolves the host: before the transaction opens
    secret = generate_signing_secret()
    now = ctx.clock()
    endpoint = WebhookEndpoint(
        id=new_id(),
        organization_id=principal.organization.id,
        url=url,
        event_types=subscribed,
        description=description or None,
        created_at=now,
    )
    with ctx.unit_of_work() as uow:
        uow.webhooks.add_endpoint(endpoint, adapters.secret_box.seal(secret, endpoint.id))
        uow.events.add(
            endpoint_event(
                EventType.WEBHOOK_CREATED,
                endpoint,
                actor=principal.actor,
                at=now,
                event_types=list(subscribed),
            )
        )
        uow.commit()
    return EndpointWithSecret(endpoint, secret)


def list_endpoints(
    ctx: ServiceContext, principal: Principal, *, cursor: str | None, limit: int
) -> Page[WebhookEndpoint]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.webhooks.list_endpoints(
            within=principal.organization.path, cursor=cursor, limit=page_size(limit)
        )


def get_endpoint(ctx: ServiceContext, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return load_endpoint(uow, principal, endpoint_id)


def disable_endpoint_in(
    uow: UnitOfWork, endpoint: WebhookEndpoint, *, reason: str, at: datetime, actor: str
) -> WebhookEndpoint:
    """Disable ``endpoint`` and cancel its pending deliveries, in the caller's unit of work."""
    disabled = endpoint.disabled(at, reason)
    uow.webhooks.save_endpoint(disabled)
    cancelled = uow.webhooks.cancel_pending(endpoint.id, at)
    uow.events.add(
        endpoint_event(
            EventType.WEBHOOK_DISABLED,
            disabled,
            actor=actor,
            at=at,
            reason=reason,
            cancelled_deliveries=cancelled,
        )
    )
    return disabled


def update_endpoint(
    ctx: ServiceContext, principal: Principal, endpoint_id: str, changes: EndpointChanges
) -> WebhookEndpoint:
    require(principal, Scope.ADMIN)
    subscribed = None if changes.event_types is None else event_types_for_subscription(changes.event_types)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        endpoint = load_endpoint(uow, principal, endpoint_id, lock=True)
        updated = replace(
            endpoint,
            event_types=subscribed or endpoint.event_types,
            description=endpoint.description if changes.description is None else changes.description or None,
        )
        if changes.enabled is True and not updated.enabled:
            updated = updated.enabled_again()
        if updated != endpoint:
            uow.webhooks.save_endpoint(updated)
            uow.events.add(
                endpoint_event(
                    EventType.WEBHOOK_UPDATED,
                    updated,
                    actor=principal.actor,
                    at=now,
                    event_types=list(updated.event_types),
                    enabled=updated.enabled,
                )
            )
        if changes.enabled is False and updated.enabled:
            reason = f"Disabled by {principal.actor}."
            updated = disable_endpoint_in(uow, updated, reason=reason, at=now, actor=principal.actor)
        uow.commit()
    return updated


def delete_endpoint(ctx: ServiceContext, principal: Principal, endpoint_id: str) -> None:
    require(principal, Scope.ADMIN)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        endpoint = load_endpoint(uow, principal, endpoint_id, lock=True)
        uow.webhooks.delete_endpoint(endpoint.id)
        uow.events.add(endpoint_event(EventType.WEBHOOK_DELETED, endpoint, actor=principal.actor, at=now))
        uow.commit()


def rotate_secret(ctx: ServiceContext, principal: Principal, endpoint_id: str) -> EndpointWithSecret:
    """A new signing secret at once; the old one signs nothing from now on."""
    require(principal, Scope.ADMIN)
    adapters = webhook_adapters(ctx)
    secret = generate_signing_secret()
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        endpoint = load_endpoint(uow, principal, endpoint_id)
        uow.webhooks.set_sealed_secret(endpoint.id, adapters.secret_box.seal(secret, endpoint.id))
        uow.events.add(
            endpoint_event(EventType.WEBHOOK_SECRET_ROTATED, endpoint, actor=principal.actor, at=now)
        )
        uow.commit()
    return EndpointWithSecret(endpoint, secret)


def list_deliveries(
    ctx: ServiceContext,
    principal: Principal,
    endpoint_id: str,
    *,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[WebhookDelivery]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        endpoint = load_endpoint(uow, principal, endpoint_id)
        return uow.webhooks.list_deliveries(
            endpoint.id, filters=DeliveryFilter(status=status), cursor=cursor, limit=page_size(limit)
        )


def get_delivery(ctx: ServiceContext, principal: Principal, delivery_id: str) -> DeliveryWithAttempts:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        delivery = _load_delivery(uow, principal, delivery_id)
        return DeliveryWithAttempts(delivery, uow.webhooks.list_attempts(delivery.id))


def resend_delivery(ctx: ServiceContext, principal: Principal, delivery_id: str) -> WebhookDelivery:
    """Pending again and due now, with the same webhook-id and body: the receiver can tell
    it is the same message."""
    require(principal, Scope.ADMIN)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        delivery = _load_delivery(uow, principal, delivery_id)
        endpoint = uow.webhooks.get_endpoint(delivery.endpoint_id, within=None)
        if endpoint is None or not endpoint.enabled:
            raise Conflict("The endpoint is disabled: enable it (PATCH enabled: true) before re-sending.")
        if delivery.locked_until is not None and delivery.locked_until > now:
            raise Conflict("The delivery is being sent right now; try again in a moment.")
        uow.webhooks.make_due(delivery.id, now)
        uow.commit()
    return replace(delivery, status=DeliveryStatus.PENDING, next_attempt_at=now, completed_at=None)


def send_test_event(ctx: ServiceContext, principal: Principal, endpoint_id: str) -> WebhookDelivery:
    """A ``webhook.test`` event for this endpoint alone, whatever types it subscribes to.

    The event goes to the outbox (so the audit log shows who sent it) already dispatched, with
    its one delivery beside it in the same transaction: the dispatcher never offers it to the
    organization's other endpoints, and the worker signs, sends and retries it like any other.
    """
    require(principal, Scope.ADMIN)
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        # Locked as disabling locks it: a test cannot slip in beside a disable's cancellations.
        endpoint = load_endpoint(uow, principal, endpoint_id, lock=True)
        if not endpoint.enabled:
            raise Conflict(
                "The endpoint is disabled: enable it (PATCH enabled: true) before sending a test event."
            )
        event = endpoint_event(EventType.WEBHOOK_TEST, endpoint, actor=principal.actor, at=now)
        delivery = new_delivery(event, endpoint, now)
        uow.events.add(event)
        uow.webhooks.add_deliveries([delivery])
        uow.webhooks.mark_dispatched([event.id], now)
        uow.commit()
    return delivery
