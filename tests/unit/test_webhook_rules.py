"""Which events an endpoint gets, the body it is sent, and what an answer means."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lineside.domain.events import DomainEvent, EventType
from lineside.domain.webhooks import (
    KNOWN_EVENT_TYPES,
    AttemptOutcome,
    UnknownEventType,
    WebhookEndpoint,
    event_types_for_subscription,
    outcome_of,
    webhook_body,
    webhook_payload,
)

AT = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
EVENT = DomainEvent(
    type=EventType.DEVICE_BLESSED,
    organization_id="org-1",
    actor="api_key:k",
    occurred_at=AT,
    subject_type="device",
    subject_id="dev-1",
    data={"from": "under_test", "to": "blessed", "serial_number": "SN-1"},
    id="evt-1",
)


def endpoint(event_types: tuple[str, ...] = ("*",), **changes: object) -> WebhookEndpoint:
    values: dict[str, object] = {
        "id": "ep-1",
        "organization_id": "org-1",
        "url": "https://example.com/",
        "event_types": event_types,
        "description": None,
        "created_at": AT - timedelta(seconds=1),
        **changes,
    }
    return WebhookEndpoint(**values)  # type: ignore[arg-type]


def test_the_factory_and_ownership_events_can_be_subscribed_to() -> None:
    required = {
        "device.tested",
        "device.blessed",
        "device.failed",
        "device.activated",
        "device.claimed",
        "device.unclaimed",
        "credentials.rotated",
        "device.deleted",
        "webhook.disabled",
    }
    assert required <= KNOWN_EVENT_TYPES


def test_a_subscription_is_sorted_without_repeats_and_the_wildcard_swallows_the_rest() -> None:
    assert event_types_for_subscription(["device.failed", "device.blessed", "device.failed"]) == (
        "device.blessed",
        "device.failed",
    )
    assert event_types_for_subscription(["device.blessed", "*"]) == ("*",)


@pytest.mark.parametrize("requested", [[], ["device.exploded"], ["*", "Device.Blessed"], ["x"] * 101])
def test_unknown_or_no_event_types_are_refused(requested: list[str]) -> None:
    with pytest.raises(UnknownEventType):
        event_types_for_subscription(requested)


def test_an_endpoint_receives_its_types_of_its_organization_from_its_creation_on() -> None:
    assert endpoint().receives(EVENT)
    assert endpoint(("device.blessed",)).receives(EVENT)
    assert not endpoint(("device.failed",)).receives(EVENT)
    assert not endpoint(organization_id="org-2").receives(EVENT)
    assert not endpoint(created_at=AT + timedelta(microseconds=1)).receives(EVENT)
    assert not endpoint(disabled_at=AT).receives(EVENT)


def test_an_event_a_station_replays_is_news_when_recorded_not_when_it_happened_at_the_factory() -> None:
    replayed = replace(EVENT, recorded_at=AT + timedelta(hours=3))
    assert endpoint(created_at=AT + timedelta(hours=1)).receives(replayed)
    assert not endpoint(created_at=AT + timedelta(hours=4)).receives(replayed)


def test_the_payload_names_the_event_and_carries_its_data() -> None:
    assert webhook_payload(EVENT) == {
        "type": "device.blessed",
        "timestamp": "2025-03-04T05:06:07.890123Z",
        "data": {
            "from": "under_test",
            "to": "blessed",
            "serial_number": "SN-1",
            "event_id": "evt-1",
            "subject_type": "device",
            "subject_id": "dev-1",
            "organization_id": "org-1",
            "actor": "api_key:k",
        },
    }


def test_the_body_is_the_same_bytes_however_the_data_was_ordered() -> None:
    shuffled = DomainEvent(**{**EVENT.__dict__, "data": dict(reversed(list(EVENT.data.items())))})
    assert webhook_body(EVENT) == webhook_body(shuffled)
    assert json.loads(webhook_body(EVENT)) == webhook_payload(EVENT)


def test_event_data_cannot_overwrite_what_identifies_the_event() -> None:
    forged = DomainEvent(**{**EVENT.__dict__, "data": {"event_id": "forged", "organization_id": "org-9"}})
    assert webhook_payload(forged)["data"]["event_id"] == "evt-1"
    assert webhook_payload(forged)["data"]["organization_id"] == "org-1"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, AttemptOutcome.SUCCEEDED),
        (204, AttemptOutcome.SUCCEEDED),
        (299, AttemptOutcome.SUCCEEDED),
        (410, AttemptOutcome.GONE),
        (301, AttemptOutcome.FAILED),
        (302, AttemptOutcome.FAILED),
        (404, AttemptOutcome.FAILED),
        (500, AttemptOutcome.FAILED),
        (None, AttemptOutcome.FAILED),
    ],
)
def test_only_2xx_delivers_and_only_410_gives_the_endpoint_up(
    status: int | None, outcome: AttemptOutcome
) -> None:
    assert outcome_of(status) is outcome
