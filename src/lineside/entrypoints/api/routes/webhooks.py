"""Webhook endpoints, their deliveries and attempts, re-sending, and test events."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from lineside.domain.webhooks import DeliveryStatus
from lineside.entrypoints.api.constraints import Cursor, Limit
from lineside.entrypoints.api.dependencies import Caller, Services
from lineside.entrypoints.api.schemas import PageOut
from lineside.entrypoints.api.webhook_schemas import (
    WebhookDeliveryOut,
    WebhookDeliveryWithAttemptsOut,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPatch,
    WebhookEndpointWithSecretOut,
)
from lineside.services import webhooks

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


@router.post("/webhooks", status_code=status.HTTP_201_CREATED)
def create_webhook(body: WebhookEndpointIn, ctx: Services, caller: Caller) -> WebhookEndpointWithSecretOut:
    """Send the organization's events of these types to this URL, signed (Standard Webhooks).

    The answer holds the signing secret, shown this once. A URL whose host resolves to a
    private, loopback or link-local address is refused (400) unless the operator allows it.
    """
    created = webhooks.create_endpoint(
        ctx, caller, url=body.url, event_types=body.event_types, description=body.description
    )
    return WebhookEndpointWithSecretOut.with_secret(created.endpoint, created.secret)


@router.get("/webhooks")
def list_webhooks(
    ctx: Services,
    caller: Caller,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> PageOut[WebhookEndpointOut]:
    """The organization's webhook endpoints, a page at a time."""
    page = webhooks.list_endpoints(ctx, caller, cursor=cursor, limit=limit)
    return PageOut(items=[WebhookEndpointOut.of(e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/webhook-event-types")
def webhook_event_types(_caller: Caller) -> list[str]:
    """Every event type an endpoint can subscribe to."""
    return webhooks.known_event_types()


@router.get("/webhooks/{endpoint_id}")
def get_webhook(endpoint_id: str, ctx: Services, caller: Caller) -> WebhookEndpointOut:
    """One webhook endpoint (its secret is never shown again)."""
    return WebhookEndpointOut.of(webhooks.get_endpoint(ctx, caller, endpoint_id))


@router.patch("/webhooks/{endpoint_id}")
def update_webhook(
    endpoint_id: str, body: WebhookEndpointPatch, ctx: Services, caller: Caller
) -> WebhookEndpointOut:
    """Change the event types or description, or disable (cancelling pending deliveries) and
    enable the endpoint again. Events that happen while it is disabled are not sent."""
    return WebhookEndpointOut.of(webhooks.update_endpoint(ctx, caller, endpoint_id, body.changes()))


@router.delete("/webhooks/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(endpoint_id: str, ctx: Services, caller: Caller) -> Response:
    """Delete the endpoint with its deliveries and their attempts."""
    webhooks.delete_endpoint(ctx, caller, endpoint_id)
    return Response(status_code=204)


@router.post("/webhooks/{endpoint_id}/rotate-secret")
def rotate_webhook_secret(endpoint_id: str, ctx: Services, caller: Caller) -> WebhookEndpointWithSecretOut:
    """A new signing secret, shown this once; the old one stops signing at once."""
    rotated = webhooks.rotate_secret(ctx, caller, endpoint_id)
    return WebhookEndpointWithSecretOut.with_secret(rotated.endpoint, rotated.secret)


@router.post("/webhooks/{endpoint_id}/test", status_code=status.HTTP_202_ACCEPTED)
def send_webhook_test_event(endpoint_id: str, ctx: Services, caller: Caller) -> WebhookDeliveryOut:
    """Queue a `webhook.test` event for this endpoint only (whatever types it subscribes to),
    signed, sent and retried like any delivery; 409 while the endpoint is disabled."""
    return WebhookDeliveryOut.of(webhooks.send_test_event(ctx, caller, endpoint_id))


@router.get("/webhooks/{endpoint_id}/deliveries")
def list_webhook_deliveries(
    endpoint_id: str,
    ctx: Services,
    caller: Caller,
    status: DeliveryStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> PageOut[WebhookDeliveryOut]:
    """The endpoint's deliveries, oldest first."""
    page = webhooks.list_deliveries(ctx, caller, endpoint_id, status=status, cursor=cursor, limit=limit)
    return PageOut(items=[WebhookDeliveryOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/webhook-deliveries/{delivery_id}")
def get_webhook_delivery(delivery_id: str, ctx: Services, caller: Caller) -> WebhookDeliveryWithAttemptsOut:
    """A delivery with every attempt made at it."""
    return WebhookDeliveryWithAttemptsOut.with_attempts(webhooks.get_delivery(ctx, caller, delivery_id))


@router.post("/webhook-deliveries/{delivery_id}/resend", status_code=status.HTTP_202_ACCEPTED)
def resend_webhook_delivery(delivery_id: str, ctx: Services, caller: Caller) -> WebhookDeliveryOut:
    """Send again, now: the same webhook-id and body, so the receiver knows it is a repeat."""
    return WebhookDeliveryOut.of(webhooks.resend_delivery(ctx, caller, delivery_id))
