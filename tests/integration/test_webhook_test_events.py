"""A test event for one webhook endpoint (issue 15): `POST /api/v1/webhooks/{id}/test` queues a
`webhook.test` delivery to that endpoint alone, whatever it subscribes to, signed and retried
like any other; a disabled endpoint is refused with 409, another organization's endpoint is a
404, and only the admin scope (or role) may send one."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from lineside.bootstrap import Application
from lineside.entrypoints.worker import BackgroundWorker
from lineside.services.webhook_delivery import dispatch_events
from tests.support.api import Tenant, assert_problem, new_tenant
from tests.support.people import new_person
from tests.support.webhooks import (
    API,
    Receiver,
    create_endpoint,
    deliveries,
    delivery,
    events_of,
    fail_first,
    wait_until,
)


@pytest.fixture
def make_tenant(hooks_app: Application, hooks_client: httpx.Client) -> Callable[[], Tenant]:
    return lambda: new_tenant(hooks_app, hooks_client)


@pytest.fixture
def tenant(make_tenant: Callable[[], Tenant]) -> Tenant:
    return make_tenant()


@pytest.fixture
def worker(hooks_app: Application) -> Iterator[None]:
    running = BackgroundWorker(hooks_app.services, poll_seconds=0.02)
    running.start()
    yield
    running.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def send_test(tenant: Tenant, endpoint_id: str) -> httpx.Response:
    return tenant.post(f"{API}/webhooks/{endpoint_id}/test")


def test_a_test_event_reaches_that_endpoint_alone_signed_whatever_it_subscribes_to(
    hooks_app: Application, tenant: Tenant, worker: None
) -> None:
    with Receiver() as tested, Receiver() as other:
        endpoint = create_endpoint(tenant, tested.url(), ["device.blessed"])
        everything = create_endpoint(tenant, other.url(), ["*"])
        wait_until(lambda: other.answered(200), "the wildcard endpoint's own webhook.created")

        sent = send_test(tenant, endpoint["id"])

        assert sent.status_code == 202, sent.text
        queued = sent.json()
        assert (queued["endpoint_id"], queued["event_type"], queued["status"]) == (
            endpoint["id"],
            "webhook.test",
            "pending",
        )
        request = wait_until(lambda: tested.answered(200), "the test event")[0]
        payload: dict[str, Any] = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert request.webhook_id == queued["id"]
        [event] = events_of(tenant, type="webhook.test")
        assert payload["type"] == "webhook.test"
        assert payload["data"] == {
            "event_id": event["id"],
            "subject_type": "webhook_endpoint",
            "subject_id": endpoint["id"],
            "organization_id": tenant.organization_id,
            "actor": event["actor"],
        }
        done = wait_until(
            lambda: (found := delivery(tenant, queued["id"]))["status"] == "succeeded" and found,
            "the delivery's record",
        )
        assert [attempt["status_code"] for attempt in done["attempts"]] == [200]
        dispatch_events(hooks_app.services)  # whatever the outbox still holds: nothing for the test
        assert len(other.received) == 1
    assert [d["event_type"] for d in deliveries(tenant, everything["id"])] == ["webhook.created"]
    assert [d["event_type"] for d in deliveries(tenant, endpoint["id"])] == ["webhook.test"]


def test_a_test_event_is_retried_with_the_same_id_and_body(tenant: Tenant, worker: None) -> None:
    with Receiver(fail_first(2)) as failing:
        endpoint = create_endpoint(tenant, failing.url(), ["device.blessed"])
        queued = send_test(tenant, endpoint["id"]).json()
        wait_until(lambda: failing.answered(200), "the third attempt")
    attempts = failing.received
    assert [a.status for a in attempts] == [500, 500, 200]
    assert {a.webhook_id for a in attempts} == {queued["id"]}
    assert len({a.body for a in attempts}) == 1


def test_a_disabled_endpoint_gets_no_test_event_until_enabled_again(
    tenant: Tenant, receiver: Receiver
) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["device.blessed"])
    path = f"{API}/webhooks/{endpoint['id']}"
    assert tenant.http.patch(path, json={"enabled": False}, headers=tenant.headers).status_code == 200

    refused = assert_problem(send_test(tenant, endpoint["id"]), 409)

    assert "disabled" in refused["detail"]
    assert deliveries(tenant, endpoint["id"]) == []
    assert events_of(tenant, type="webhook.test") == []
    assert tenant.http.patch(path, json={"enabled": True}, headers=tenant.headers).status_code == 200
    assert send_test(tenant, endpoint["id"]).status_code == 202
    assert [d["event_type"] for d in deliveries(tenant, endpoint["id"])] == ["webhook.test"]


def test_another_organizations_endpoint_or_a_missing_one_is_not_found(
    make_tenant: Callable[[], Tenant], receiver: Receiver
) -> None:
    owner, stranger = make_tenant(), make_tenant()
    endpoint = create_endpoint(owner, receiver.url(), ["device.blessed"])

    for endpoint_id in (endpoint["id"], str(uuid.uuid4()), "not-a-uuid"):
        assert_problem(send_test(stranger, endpoint_id), 404)

    assert deliveries(owner, endpoint["id"]) == []
    assert events_of(owner, type="webhook.test") == []


def test_sending_a_test_event_needs_the_admin_scope_or_role(tenant: Tenant, receiver: Receiver) -> None:
    endpoint = create_endpoint(tenant, receiver.url(), ["device.blessed"])
    key = tenant.created(f"{API}/api-keys", {"name": "reader", "scopes": ["read"]})["key"]
    reader = Tenant(tenant.http, tenant.organization_id, key)
    assert_problem(send_test(reader, endpoint["id"]), 403)

    viewer = new_person(tenant.http)
    invited = tenant.created(
        f"{API}/organizations/{tenant.organization_id}/invitations", {"email": viewer.email, "role": "viewer"}
    )
    assert viewer.post(f"{API}/invitations/accept", json={"code": invited["code"]}).status_code == 200
    acting = {"Lineside-Organization": tenant.organization_id}
    refused = assert_problem(viewer.post(f"{API}/webhooks/{endpoint['id']}/test", headers=acting), 403)
    assert "viewer" in refused["detail"]
    assert deliveries(tenant, endpoint["id"]) == []
