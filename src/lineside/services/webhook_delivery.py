"""Getting events out: the outbox dispatcher and the delivery loop.

::

    events (outbox)  --dispatch_events-->  webhook_deliveries (pending, due now)
                                               |
                             lease_due (lease: locked_until = now + lease, commit)
                                               |
                              deliver: sign, POST outside any transaction
                                               |
                   record_attempt: the attempt row, and the delivery's next state,
                   only while the lease still holds

Every step commits before the next, so a worker killed anywhere loses nothing: an event
not yet dispatched is dispatched by the next worker, and a leased delivery is due again
when its lease runs out (at least once; the webhook-id lets receivers drop repeats).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from lineside.domain.identifiers import new_id
from lineside.domain.webhooks import (
    AttemptOutcome,
    DeliveryStatus,
    WebhookAttempt,
    WebhookEndpoint,
    outcome_of,
    webhook_body,
)
from lineside.services.context import ServiceContext
from lineside.services.ports import DeliveryChange, DueDelivery, SendResult, WebhookMessage
from lineside.services.webhooks import disable_endpoint_in, new_delivery, webhook_adapters

WORKER_ACTOR = "webhook-worker"
# Dispatching only writes rows, so it takes bigger bites than sending does.
DISPATCH_BATCH = 500
_JITTER = secrets.SystemRandom()


def dispatch_events(ctx: ServiceContext, *, limit: int = DISPATCH_BATCH) -> int:
    """Turn the oldest undispatched events into deliveries; the number of events handled."""
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        batch = uow.webhooks.take_undispatched(limit)
        if not batch:
            return 0
        endpoints: dict[str, list[WebhookEndpoint]] = defaultdict(list)
        for endpoint in uow.webhooks.enabled_endpoints_of({event.organization_id for event in batch}):
            endpoints[endpoint.organization_id].append(endpoint)
        uow.webhooks.add_deliveries(
            [
                new_delivery(event, endpoint, now)
                for event in batch
                for endpoint in endpoints[event.organization_id]
                if endpoint.receives(event)
            ]
        )
        uow.webhooks.mark_dispatched([event.id for event in batch], now)
        uow.commit()
    return len(batch)


def pending_work(ctx: ServiceContext) -> tuple[bool, bool]:
    """(events to dispatch?, deliveries due?): two index probes, no write lock taken."""
    now = ctx.clock()
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        undispatched = uow.webhooks.any_undispatched()
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        due = uow.webhooks.any_due(now)
    return undispatched, due


def lease_due(ctx: ServiceContext, *, limit: int | None = None) -> list[DueDelivery]:
    now = ctx.clock()
    with ctx.unit_of_work() as uow:
        due = uow.webhooks.lease_due(
            now, now + ctx.config.webhook_lease, limit or ctx.config.webhook_batch_size
        )
        uow.commit()
    return due


def _change_after(
    ctx: ServiceContext, due: DueDelivery, outcome: AttemptOutcome, now: datetime
) -> DeliveryChange:
    if outcome is AttemptOutcome.SUCCEEDED:
        return DeliveryChange(DeliveryStatus.SUCCEEDED, None, now)
    if outcome is AttemptOutcome.GONE:
        return DeliveryChange(DeliveryStatus.FAILED, None, now)
    retry_at = ctx.config.webhook_retry.next_attempt_at(
        due.created_at, due.attempt_count + 1, now, _JITTER.random
    )
    if retry_at is None:
        return DeliveryChange(DeliveryStatus.FAILED, None, now)
    return DeliveryChange(DeliveryStatus.PENDING, retry_at, None)


def record_attempt(
    ctx: ServiceContext, due: DueDelivery, attempted_at: datetime, result: SendResult
) -> DeliveryStatus | None:
    """Keep the attempt and move the delivery on; None if the lease was lost meanwhile (the
    endpoint was disabled or deleted), when only the attempt is kept."""
    now = ctx.clock()
    outcome = outcome_of(result.status_code)
    change = _change_after(ctx, due, outcome, now)
    attempt = WebhookAttempt(
        id=new_id(),
        delivery_id=due.delivery_id,
        attempted_at=attempted_at,
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
    )
    gone = outcome is AttemptOutcome.GONE
    with ctx.unit_of_work() as uow:
        # Lock the endpoint before touching the delivery, as every other change of an
        # endpoint's deliveries does: two 410s at once then queue instead of deadlocking.
        endpoint = uow.webhooks.get_endpoint(due.endpoint_id, within=None, lock=True) if gone else None
        applied = uow.webhooks.record_attempt(attempt, leased_until=due.leased_until, change=change)
        if applied and endpoint is not None and endpoint.enabled:
            reason = "The receiver answered 410 Gone."
            disable_endpoint_in(uow, endpoint, reason=reason, at=now, actor=WORKER_ACTOR)
        uow.commit()
    return change.status if applied else None


async def deliver(ctx: ServiceContext, due: DueDelivery) -> SendResult:
    """One attempt at a leased delivery, then its record."""
    adapters = webhook_adapters(ctx)
    attempted_at = ctx.clock()
    try:
        secret = adapters.secret_box.open(due.sealed_secret, due.endpoint_id)
    except ValueError:
        result = SendResult(None, "The signing secret does not open: was the server key replaced?", 0)
    else:
        message = WebhookMessage(due.url, due.delivery_id, webhook_body(due.event), secret)
        result = await adapters.sender.send(message)
    await asyncio.to_thread(record_attempt, ctx, due, attempted_at, result)
    return result


@dataclass(frozen=True)
class Round:
    """What one round of the worker did."""

    handled: int  # events dispatched plus deliveries attempted
    full: bool  # a batch was filled, so more may be waiting: go again without a pause
    outcomes: tuple[AttemptOutcome, ...] = ()  # of this round's attempts


async def run_once(ctx: ServiceContext) -> Round:
    """Dispatch what the outbox holds, then send every due delivery side by side."""
    undispatched, due = await asyncio.to_thread(pending_work, ctx)
    dispatched = await asyncio.to_thread(dispatch_events, ctx) if undispatched else 0
    if not (due or dispatched):
        return Round(handled=0, full=False)
    leased = await asyncio.to_thread(lease_due, ctx)
    outcomes = await asyncio.gather(*(deliver(ctx, job) for job in leased), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    full = dispatched >= DISPATCH_BATCH or len(leased) >= ctx.config.webhook_batch_size
    attempted = tuple(outcome_of(result.status_code) for result in outcomes if isinstance(result, SendResult))
    return Round(handled=dispatched + len(leased), full=full, outcomes=attempted)
