"""Webhooks and tenants: another organization's endpoint or delivery looks exactly like a
missing one, and calling it changes nothing; events go only to their own organization's
endpoints (a claimed device's events stay the manufacturer's)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from lineside.bootstrap import Application
from lineside.services.webhook_delivery import dispatch_events
from tests.support.api import Tenant, assert_problem, new_tenant
from tests.support.people import label_rows, new_person, static_batch
from tests.support.webhooks import (
    API,
    Receiver,
    create_endpoint,
    deliveries,
    delivery,
)


@pytest.fixture
def make_tenant(hooks_app: Application, hooks_client: httpx.Client) -> Callable[[], Tenant]:
    return lambda: new_tenant(hooks_app, hooks_client)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def stocked(owner: Tenant, hooks_app: Application, receiver: Receiver) -> dict[str, str]:
    """An endpoint of ``owner`` with one pending delivery (no worker runs in this module)."""
    endpoint = create_endpoint(owner, receiver.url(), ["product.created"])
    owner.product()
    dispatch_events(hooks_app.services)
    [pending] = deliveries(owner, endpoint["id"])
    return {"endpoint_id": endpoint["id"], "delivery_id": pending["id"]}


def owners_view(owner: Tenant, ids: dict[str, str]) -> dict[str, Any]:
    return {
        "endpoint": owner.get(f"{API}/webhooks/{ids['endpoint_id']}").json(),
        "endpoints": owner.get(f"{API}/webhooks").json(),
        "deliveries": deliveries(owner, ids["endpoint_id"]),
        "delivery": delivery(owner, ids["delivery_id"]),
    }


FOREIGN_CALLS = [
    pytest.param("GET", "/webhooks/{endpoint_id}", None, id="GET webhooks/{id}"),
    pytest.param("PATCH", "/webhooks/{endpoint_id}", {"enabled": False}, id="PATCH webhooks/{id} disable"),
    pytest.param(
        "PATCH", "/webhooks/{endpoint_id}", {"event_types": ["*"]}, id="PATCH webhooks/{id} event types"
    ),
    pytest.param("DELETE", "/webhooks/{endpoint_id}", None, id="DELETE webhooks/{id}"),
    pytest.param(
        "POST", "/webhooks/{endpoint_id}/rotate-secret", None, id="POST webhooks/{id}/rotate-secret"
    ),
    pytest.param("GET", "/webhooks/{endpoint_id}/deliveries", None, id="GET webhooks/{id}/deliveries"),
    pytest.param("GET", "/webhook-deliveries/{delivery_id}", None, id="GET webhook-deliveries/{id}"),
    pytest.param(
        "POST", "/webhook-deliveries/{delivery_id}/resend", None, id="POST webhook-deliveries/{id}/resend"
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), FOREIGN_CALLS)
def test_another_organizations_webhook_is_not_found_and_stays_as_it_was(
    make_tenant: Callable[[], Tenant],
    hooks_app: Application,
    receiver: Receiver,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    owner, stranger = make_tenant(), make_tenant()
    ids = stocked(owner, hooks_app, receiver)
    before = owners_view(owner, ids)

    response = stranger.http.request(method, API + path.format(**ids), headers=stranger.headers, json=body)

    assert_problem(response, 404)
    assert owners_view(owner, ids) == before


@pytest.mark.parametrize(("method", "path", "body"), FOREIGN_CALLS)
def test_a_missing_webhook_answers_the_same_404(
    make_tenant: Callable[[], Tenant], method: str, path: str, body: dict[str, Any] | None
) -> None:
    tenant = make_tenant()
    ids = {"endpoint_id": str(uuid.uuid4()), "delivery_id": "not-a-uuid"}
    response = tenant.http.request(method, API + path.format(**ids), headers=tenant.headers, json=body)
    assert_problem(response, 404)


def test_the_list_shows_only_the_callers_endpoints(
    make_tenant: Callable[[], Tenant], receiver: Receiver
) -> None:
    one, two = make_tenant(), make_tenant()
    mine = create_endpoint(one, receiver.url())
    create_endpoint(two, receiver.url())
    assert [e["id"] for e in one.get(f"{API}/webhooks").json()["items"]] == [mine["id"]]


def test_a_parent_sees_its_sub_organizations_endpoints_and_not_the_other_way(
    make_tenant: Callable[[], Tenant], receiver: Receiver
) -> None:
    parent = make_tenant()
    child = parent.sub_tenant()
    childs = create_endpoint(child, receiver.url())
    parents = create_endpoint(parent, receiver.url())
    assert parent.get(f"{API}/webhooks/{childs['id']}").status_code == 200
    assert_problem(child.get(f"{API}/webhooks/{parents['id']}"), 404)
    assert [e["id"] for e in child.get(f"{API}/webhooks").json()["items"]] == [childs["id"]]


def test_events_go_only_to_endpoints_of_their_own_organization(
    make_tenant: Callable[[], Tenant], hooks_app: Application, receiver: Receiver
) -> None:
    parent, stranger = make_tenant(), make_tenant()
    child = parent.sub_tenant()
    endpoints = {
        name: create_endpoint(tenant, receiver.url(), ["product.created"])["id"]
        for name, tenant in (("parent", parent), ("child", child), ("stranger", stranger))
    }
    child.product()
    dispatch_events(hooks_app.services)
    assert len(deliveries(child, endpoints["child"])) == 1
    assert deliveries(parent, endpoints["parent"]) == []
    assert deliveries(stranger, endpoints["stranger"]) == []


def test_a_claimed_devices_events_go_to_the_manufacturer_not_the_owner(
    make_tenant: Callable[[], Tenant], hooks_app: Application, receiver: Receiver
) -> None:
    maker = make_tenant()
    label = label_rows(maker, static_batch(maker, 1))[0]
    person = new_person(maker.http)
    makers = create_endpoint(maker, receiver.url(), ["device.claimed"])
    owners = person.post(f"{API}/webhooks", json={"url": receiver.url(), "event_types": ["*"]})
    assert owners.status_code == 201, owners.text

    assert person.claim(label["claim_code"]).status_code == 201
    dispatch_events(hooks_app.services)

    [claimed] = deliveries(maker, makers["id"])
    assert claimed["event_type"] == "device.claimed"
    owner_deliveries = person.get(f"{API}/webhooks/{owners.json()['id']}/deliveries").json()["items"]
    assert [d["event_type"] for d in owner_deliveries] == ["webhook.created"]
