"""Webhooks: endpoints, signed deliveries to a real receiver, retries, 410, redirects, resends.

The application runs on a database of its own (see tests.support.webhooks) with a tiny retry
schedule; the worker is the real one, on a thread, started by the tests that want it.
Tests that step through delivery by hand (give up, 410, cancel) run without it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from lineside.bootstrap import Application, bootstrap
from lineside.entrypoints.worker import BackgroundWorker
from lineside.services.ports import UnitOfWork
from lineside.services.webhook_delivery import dispatch_events, run_once
from tests.support import factory
from tests.support.api import Tenant, assert_problem, new_tenant
from tests.support.event_loops import run_coroutine
from tests.support.server import http_client_for
from tests.support.webhooks import (
    API,
    Answer,
    Received,
    Receiver,
    always,
    create_endpoint,
    deliveries,
    delivery,
    events_of,
    fail_first,
    wait_until,
)


@pytest.fixture
def tenant(hooks_app: Application, hooks_client: httpx.Client) -> Tenant:
    return new_tenant(hooks_app, hooks_client)


@pytest.fixture
def worker(hooks_app: Application) -> Iterator[None]:
    running = BackgroundWorker(hooks_app.services, poll_seconds=0.02)
    running.start()
    yield
    running.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def verified(secret: str, request: Received) -> dict[str, Any]:
    body: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return body


def events_since(tenant: Tenant, endpoint: dict[str, str]) -> list[dict[str, str]]:
    """The tenant's events from the endpoint's creation on: the ones it may receive."""
    created = datetime.fromisoformat(endpoint["created_at"])
    return [e for e in events_of(tenant) if datetime.fromisoformat(e["occurred_at"]) >= created]


# -- endpoints ------------------------------------------------------------------------------


def test_creating_an_endpoint_shows_its_standard_webhooks_secret_once(
    tenant: Tenant, receiver: Receiver
) -> None:
    created = create_endpoint(tenant, receiver.url(), ["device.blessed", "device.claimed"])

    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    assert created["event_types"] == ["device.blessed", "device.claimed"]
    assert created["enabled"] is True
    shown = tenant.get(f"{API}/webhooks/{created['id']}").json()
    assert "secret" not in shown
    assert shown["url"] == receiver.url()
    listed = tenant.get(f"{API}/webhooks").json()["items"]
    assert [item["id"] for item in listed] == [created["id"]]
    assert all("secret" not in item for item in listed)
    assert created["secret"] not in json.dumps(events_of(tenant))


def test_the_required_event_types_and_the_wildcard_are_accepted(tenant: Tenant, receiver: Receiver) -> None:
    required = [
        "device.tested",
        "device.blessed",
        "device.failed",
        "device.activated",
        "device.claimed",
        "device.unclaimed",
        "credentials.rotated",
        "device.deleted",
    ]
    assert create_endpoint(tenant, receiver.url(), required)["event_types"] == sorted(required)
    assert create_endpoint(tenant, receiver.url(), ["*", "device.blessed"])["event_types"] == ["*"]
    known = tenant.get(f"{API}/webhook-event-types").json()
    assert set(required) <= set(known)


@pytest.mark.parametrize("event_types", [["device.exploded"], ["device.blessed", "nope"], []])
def test_unknown_event_types_are_refused_with_400(
    tenant: Tenant, receiver: Receiver, event_types: list[str]
) -> None:
    response = tenant.post(f"{API}/webhooks", json={"url": receiver.url(), "event_types": event_types})
    assert_problem(response, 400)
    assert tenant.get(f"{API}/webhooks").json()["items"] == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hooks",
        "http://user:password@example.com/hooks",
        "https:///no-host",
        "http://example.com/hooks#fragment",
        "not a url",
        "http://example.com:99999/",
    ],
)
def test_urls_that_are_not_plain_http_are_refused_with_400(tenant: Tenant, url: str) -> None:
    assert_problem(tenant.post(f"{API}/webhooks", json={"url": url, "event_types": ["*"]}), 400)


@pytest.fixture(scope="module")
def strict_client(hooks_app: Application) -> Iterator[httpx.Client]:
    """The same database served by an application that does not allow private targets."""
    strict = bootstrap(hooks_app.settings.model_copy(update={"webhook_allow_private": False}))
    with http_client_for(strict) as http:
        yield http
    strict.close()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "10.1.2.3",
        "192.168.0.10",
        "169.254.169.254",
        "[fe80::1]",
        "224.0.0.1",
    ],
)
def test_private_targets_are_refused_unless_the_operator_allows_them(
    hooks_app: Application, strict_client: httpx.Client, host: str
) -> None:
    strict_tenant = new_tenant(hooks_app, strict_client)
    url = f"http://{host}:8080/hooks"
    response = strict_tenant.post(f"{API}/webhooks", json={"url": url, "event_types": ["*"]})
    assert "cannot receive webhooks" in assert_problem(response, 400)["detail"]
    assert strict_tenant.get(f"{API}/webhooks").json()["items"] == []


# -- delivery -------------------------------------------------------------------------------


def test_an_event_reaches_the_receiver_signed_as_standard_webhooks_says(
    tenant: Tenant, receiver: Receiver, worker: None
) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["credentials.issued"])
    device = tenant.device(tenant.product()["id"])
    tenant.token(device["id"])

    request = wait_until(lambda: receiver.answered(200), "the webhook")[0]
    payload = verified(endpoint["secret"], request)
    [event] = events_of(tenant, type="credentials.issued")
    assert payload["type"] == "credentials.issued"
    assert payload["data"] == {
        **event["data"],
        "event_id": event["id"],
        "subject_type": "device",
        "subject_id": device["id"],
        "organization_id": tenant.organization_id,
        "actor": event["actor"],
    }
    assert datetime.fromisoformat(payload["timestamp"]) == datetime.fromisoformat(event["occurred_at"])
    assert request.headers["content-type"] == "application/json"
    assert not any("lsd_" in value for value in request.headers.values())
    assert b"lsd_" not in request.body
    [sent] = wait_until(lambda: deliveries(tenant, endpoint["id"], "succeeded"), "the delivery to succeed")
    assert sent["id"] == request.webhook_id
    assert sent["event_id"] == event["id"]
    assert [a["status_code"] for a in delivery(tenant, sent["id"])["attempts"]] == [200]


def test_a_signature_made_with_another_secret_does_not_verify(
    tenant: Tenant, receiver: Receiver, worker: None
) -> None:
    create_endpoint(tenant, receiver.url())
    tenant.product()
    request = wait_until(lambda: receiver.answered(200), "the webhook")[0]
    with pytest.raises(WebhookVerificationError):
        verified("whsec_" + base64.b64encode(b"x" * 32).decode(), request)


def test_only_subscribed_types_of_the_endpoints_own_organization_are_sent(
    tenant: Tenant, make_other: Callable[[], Tenant], receiver: Receiver, worker: None
) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["credentials.rotated"])
    other = make_other()
    other.device(other.product()["id"])
    device = tenant.device(tenant.product()["id"])
    tenant.token(device["id"])
    tenant.token(device["id"])

    request = wait_until(lambda: receiver.answered(200), "the rotation's webhook")[0]
    assert verified(endpoint["secret"], request)["type"] == "credentials.rotated"
    dispatch_settled = wait_until(lambda: deliveries(tenant, endpoint["id"], "succeeded"), "the delivery")
    assert [d["event_type"] for d in deliveries(tenant, endpoint["id"])] == ["credentials.rotated"]
    assert len(dispatch_settled) == 1


@pytest.fixture
def make_other(hooks_app: Application, hooks_client: httpx.Client) -> Callable[[], Tenant]:
    return lambda: new_tenant(hooks_app, hooks_client)


def test_a_receiver_that_fails_for_a_while_still_gets_every_event_in_full(
    tenant: Tenant, worker: None
) -> None:
    with Receiver(fail_first(3)) as receiver:
        endpoint = create_endpoint(tenant, receiver.url())
        product = tenant.product()
        for _ in range(5):
            tenant.device(product["id"])
        expected = {event["id"]: event for event in events_since(tenant, endpoint)}
        assert len(expected) == 7  # webhook.created, product.created, 5 x device.defined

        def delivered() -> dict[str, dict[str, Any]]:
            bodies = [verified(endpoint["secret"], r) for r in receiver.answered(200)]
            return {str(b["data"]["event_id"]): b for b in bodies}

        wait_until(lambda: set(expected) <= set(delivered()), "every event to get through")
    for event_id, body in delivered().items():
        assert body["type"] == expected[event_id]["type"]
        assert body["data"]["subject_id"] == expected[event_id]["subject_id"]
    sent = deliveries(tenant, endpoint["id"])
    assert {d["status"] for d in sent} == {"succeeded"}
    assert {d["attempt_count"] for d in sent} == {4}
    attempts = [a["status_code"] for a in delivery(tenant, sent[0]["id"])["attempts"]]
    assert attempts == [500, 500, 500, 200]
    assert len(receiver.answered(500)) == 3 * len(expected)


def test_every_attempt_sends_the_same_id_and_body(tenant: Tenant, worker: None) -> None:
    with Receiver(fail_first(2)) as receiver:
        create_endpoint(tenant, receiver.url(), ["product.created"])
        tenant.product()
        wait_until(lambda: receiver.answered(200), "the third attempt")
    attempts = receiver.received
    assert len(attempts) == 3
    assert len({a.webhook_id for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(tenant: Tenant, worker: None) -> None:
    def behaviour(path: str, _seen: int) -> Answer:
        return Answer(302, {"location": "/elsewhere"}) if path == "/moved" else Answer(200)

    with Receiver(behaviour) as receiver:
        endpoint = create_endpoint(tenant, receiver.url("/moved"))
        tenant.product()
        wait_until(lambda: len(receiver.received) >= 3, "three attempts")
        tenant.delete(f"{API}/webhooks/{endpoint['id']}")
    assert {request.path for request in receiver.received} == {"/moved"}


def test_a_410_disables_the_endpoint_and_cancels_its_pending_deliveries(
    hooks_app: Application, tenant: Tenant
) -> None:
    with Receiver(always(410)) as receiver:
        endpoint = create_endpoint(tenant, receiver.url(), ["device.defined"])
        product = tenant.product()
        for _ in range(3):
            tenant.device(product["id"])
        dispatch_events(hooks_app.services)
        assert len(deliveries(tenant, endpoint["id"], "pending")) == 3
        run_coroutine(run_once(hooks_app.services))

    shown = tenant.get(f"{API}/webhooks/{endpoint['id']}").json()
    assert shown["enabled"] is False
    assert "410" in shown["disabled_reason"]
    statuses = sorted(d["status"] for d in deliveries(tenant, endpoint["id"]))
    assert statuses == ["cancelled", "cancelled", "failed"]
    [disabled] = events_of(tenant, type="webhook.disabled")
    assert disabled["subject_id"] == endpoint["id"]
    tenant.device(product["id"])
    dispatch_events(hooks_app.services)
    assert len(deliveries(tenant, endpoint["id"])) == 3


def test_a_delivery_is_given_up_three_days_after_it_was_made(hooks_app: Application, tenant: Tenant) -> None:
    services = hooks_app.services
    with Receiver(always(503)) as receiver:
        endpoint = create_endpoint(tenant, receiver.url(), ["product.created"])
        tenant.product()
        dispatch_events(services)
        window = services.config.webhook_retry.give_up_after
        later = replace(services, clock=lambda: datetime.now(UTC) + window + timedelta(seconds=1))
        run_coroutine(run_once(later))
    [given_up] = deliveries(tenant, endpoint["id"])
    assert given_up["status"] == "failed"
    assert given_up["last_status_code"] == 503
    assert given_up["next_attempt_at"] is None
    assert given_up["completed_at"] is not None


# -- managing -------------------------------------------------------------------------------


def test_disabling_cancels_pending_deliveries_and_a_disabled_endpoint_cannot_resend(
    hooks_app: Application, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["product.created"])
    tenant.product()
    dispatch_events(hooks_app.services)
    [pending] = deliveries(tenant, endpoint["id"], "pending")

    patched = tenant.http.patch(
        f"{API}/webhooks/{endpoint['id']}", json={"enabled": False}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False
    assert delivery(tenant, pending["id"])["status"] == "cancelled"
    assert_problem(tenant.post(f"{API}/webhook-deliveries/{pending['id']}/resend"), 409)

    enabled = tenant.http.patch(
        f"{API}/webhooks/{endpoint['id']}",
        json={"enabled": True, "event_types": ["*"], "description": "ours"},
        headers=tenant.headers,
    ).json()
    assert (enabled["enabled"], enabled["event_types"], enabled["description"]) == (True, ["*"], "ours")
    assert tenant.post(f"{API}/webhook-deliveries/{pending['id']}/resend").status_code == 202
    assert delivery(tenant, pending["id"])["status"] == "pending"


def test_a_delivery_can_be_resent_with_the_same_id_and_body(
    tenant: Tenant, receiver: Receiver, worker: None
) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["product.created"])
    tenant.product()
    [first] = wait_until(lambda: deliveries(tenant, endpoint["id"], "succeeded"), "the first delivery")

    resent = tenant.post(f"{API}/webhook-deliveries/{first['id']}/resend")
    assert resent.status_code == 202, resent.text
    assert resent.json()["status"] == "pending"
    wait_until(lambda: len(receiver.answered(200)) == 2, "the resend")
    one, two = receiver.answered(200)
    assert (one.webhook_id, one.body) == (two.webhook_id, two.body)
    done = wait_until(
        lambda: (found := delivery(tenant, first["id"]))["status"] == "succeeded" and found, "the record"
    )
    assert [a["status_code"] for a in done["attempts"]] == [200, 200]
    assert done["attempt_count"] == 2


def test_deliveries_are_paged_and_filtered_by_status(
    hooks_app: Application, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["product.created"])
    for _ in range(3):
        tenant.product()
    dispatch_events(hooks_app.services)
    page = tenant.get(f"{API}/webhooks/{endpoint['id']}/deliveries", params={"limit": "2"}).json()
    rest = tenant.get(
        f"{API}/webhooks/{endpoint['id']}/deliveries", params={"limit": "2", "cursor": page["next_cursor"]}
    ).json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert deliveries(tenant, endpoint["id"], "succeeded") == []
    bad = tenant.get(f"{API}/webhooks/{endpoint['id']}/deliveries", params={"status": "lost"})
    assert_problem(bad, 422)


def test_a_rotated_secret_signs_from_then_on(tenant: Tenant, receiver: Receiver, worker: None) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["product.created"])
    rotated = tenant.post(f"{API}/webhooks/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    secret = rotated.json()["secret"]
    assert secret != endpoint["secret"]
    tenant.product()
    request = wait_until(lambda: receiver.answered(200), "the webhook")[0]
    assert verified(secret, request)["type"] == "product.created"
    with pytest.raises(WebhookVerificationError):
        verified(endpoint["secret"], request)


def test_deleting_an_endpoint_deletes_its_deliveries(
    hooks_app: Application, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["product.created"])
    tenant.product()
    dispatch_events(hooks_app.services)
    [pending] = deliveries(tenant, endpoint["id"])

    assert tenant.delete(f"{API}/webhooks/{endpoint['id']}").status_code == 204
    assert_problem(tenant.get(f"{API}/webhooks/{endpoint['id']}"), 404)
    assert_problem(tenant.get(f"{API}/webhook-deliveries/{pending['id']}"), 404)
    assert [e["type"] for e in events_of(tenant, subject_id=endpoint["id"])] == [
        "webhook.created",
        "webhook.deleted",
    ]


def test_managing_endpoints_needs_the_admin_scope(tenant: Tenant, receiver: Receiver) -> None:
    key = tenant.created(f"{API}/api-keys", {"name": "reader", "scopes": ["read"]})["key"]
    reader = Tenant(tenant.http, tenant.organization_id, key)
    assert_problem(reader.post(f"{API}/webhooks", json={"url": receiver.url(), "event_types": ["*"]}), 403)
    endpoint = create_endpoint(tenant, receiver.url())
    assert reader.get(f"{API}/webhooks/{endpoint['id']}").status_code == 200
    assert_problem(reader.post(f"{API}/webhooks/{endpoint['id']}/rotate-secret"), 403)
    assert_problem(reader.delete(f"{API}/webhooks/{endpoint['id']}"), 403)


def test_the_worker_keeps_going_after_a_round_fails_and_stops_when_told(
    hooks_app: Application, caplog: pytest.LogCaptureFixture
) -> None:
    rounds = 0

    def broken_unit_of_work(*, write: bool = True, snapshot: bool = True) -> UnitOfWork:
        nonlocal rounds
        rounds += 1
        raise ConnectionError("the database went away")

    broken = replace(hooks_app.services, unit_of_work=broken_unit_of_work)
    running = BackgroundWorker(broken, poll_seconds=0.001)
    running.start()
    wait_until(lambda: rounds >= 3, "three failed rounds")
    running.stop(timeout=10)
    assert not running.alive
    assert "a round failed" in caplog.text
    assert "the database went away" in caplog.text


def test_the_factory_lines_events_reach_the_manufacturer(
    tenant: Tenant, receiver: Receiver, worker: None
) -> None:
    types = ["device.tested", "device.blessed", "device.failed", "device.activated"]
    endpoint = create_endpoint(tenant, receiver.url(), types)
    line = factory.factory_token(tenant, tenant.product()["id"])
    good = factory.line_unit(tenant, line, passed=True)["device"]
    factory.line_unit(tenant, line, passed=False)
    activated = factory.activate(tenant.http, factory.production_token(tenant), good["id"])
    assert activated.status_code == 200, activated.text

    wait_until(lambda: len(receiver.answered(200)) >= 5, "five webhooks")
    received = sorted(str(verified(endpoint["secret"], r)["type"]) for r in receiver.answered(200))
    assert received == sorted(
        ["device.tested", "device.tested", "device.blessed", "device.failed", "device.activated"]
    )
