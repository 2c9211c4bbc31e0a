"""Tenant isolation: another organization's resource looks exactly like a missing one.

Every route that names a resource is one row of ``FOREIGN_RESOURCE_CALLS``; a new route is
one new row. Sub-organizations see downwards only: a parent sees its children's resources,
a child never sees its parent's or a sibling's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import Tenant, assert_problem, ok, unique

API = "/api/v1"


@dataclass(frozen=True)
class Holdings:
    """One organization's product, device (with a working token and a certificate) and spare key."""

    owner: Tenant
    product_id: str
    device_id: str
    serial_number: str
    device_token: str
    spare_key_id: str
    spare_key: str

    def ids(self) -> dict[str, str]:
        return {
            "product_id": self.product_id,
            "device_id": self.device_id,
            "organization_id": self.owner.organization_id,
            "key_id": self.spare_key_id,
        }


def stock(owner: Tenant) -> Holdings:
    product_id = owner.product()["id"]
    device = owner.device(product_id)
    token = owner.token(device["id"])
    owner.created(f"{API}/devices/{device['id']}/credentials", {"type": "x509"})
    key = owner.created(f"{API}/api-keys", {"name": unique("spare"), "scopes": ["read"]})
    return Holdings(owner, product_id, device["id"], device["serial_number"], token, key["id"], key["key"])


@pytest.fixture
def holdings(tenant: Tenant) -> Holdings:
    return stock(tenant)


def fill(template: Any, ids: dict[str, str]) -> Any:
    """``template`` with every ``{name}`` in its strings replaced from ``ids``."""
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, dict):
        return {key: fill(value, ids) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(item, ids) for item in template]
    return template


def call(caller: Tenant, method: str, path: str, body: dict[str, Any] | str | None) -> httpx.Response:
    if isinstance(body, str):
        headers = {**caller.headers, "Content-Type": "text/csv"}
        return caller.http.request(method, path, headers=headers, content=body.encode())
    return caller.http.request(method, path, headers=caller.headers, json=body)


def owners_view(h: Holdings) -> dict[str, Any]:
    """Everything the owner can read about its holdings; any write by anyone changes it."""
    owner = h.owner
    return {
        "device": ok(owner.get(f"{API}/devices/{h.device_id}")),
        "devices": ok(owner.get(f"{API}/devices")),
        "products": ok(owner.get(f"{API}/products")),
        "groups": ok(owner.get(f"{API}/products/{h.product_id}/groups")),
        "certificates": ok(owner.get(f"{API}/devices/{h.device_id}/certificates")),
        "api_keys": ok(owner.get(f"{API}/api-keys")),
        "organizations": ok(owner.get(f"{API}/organizations")),
        "events": ok(owner.get(f"{API}/audit-events", params={"limit": 1000})),
    }


def assert_still_working(h: Holdings) -> None:
    me = ok(h.owner.http.get("/device/v1/me", headers={"Authorization": f"Bearer {h.device_token}"}))
    assert me["id"] == h.device_id
    assert me["state"] == "defined"
    spare = Tenant(h.owner.http, h.owner.organization_id, h.spare_key)
    assert ok(spare.get(f"{API}/products/{h.product_id}"))["id"] == h.product_id


def missing_ids() -> dict[str, str]:
    return {name: str(uuid.uuid4()) for name in ("product_id", "device_id", "organization_id", "key_id")}


# (method, path template, body template). A str body is sent as text/csv.
FOREIGN_RESOURCE_CALLS = [
    pytest.param("GET", "/api/v1/products/{product_id}", None, id="GET products/{id}"),
    pytest.param("GET", "/api/v1/products/{product_id}/groups", None, id="GET products/{id}/groups"),
    pytest.param(
        "POST",
        "/api/v1/products/{product_id}/groups",
        {"name": "stolen", "kind": "factory"},
        id="POST products/{id}/groups",
    ),
    pytest.param("GET", "/api/v1/products/{product_id}/ca.pem", None, id="GET products/{id}/ca.pem"),
    pytest.param("GET", "/api/v1/products/{product_id}/crl.pem", None, id="GET products/{id}/crl.pem"),
    pytest.param("GET", "/api/v1/devices/{device_id}", None, id="GET devices/{id}"),
    pytest.param(
        "POST",
        "/api/v1/devices/{device_id}/credentials",
        {"type": "token"},
        id="POST devices/{id}/credentials token",
    ),
    pytest.param(
        "POST",
        "/api/v1/devices/{device_id}/credentials",
        {"type": "x509"},
        id="POST devices/{id}/credentials x509",
    ),
    pytest.param("GET", "/api/v1/devices/{device_id}/certificates", None, id="GET devices/{id}/certificates"),
    pytest.param("POST", "/api/v1/devices/{device_id}/revoke", None, id="POST devices/{id}/revoke"),
    pytest.param("GET", "/api/v1/organizations/{organization_id}", None, id="GET organizations/{id}"),
    pytest.param("DELETE", "/api/v1/api-keys/{key_id}", None, id="DELETE api-keys/{id}"),
    pytest.param(
        "POST",
        "/api/v1/devices",
        {"product_id": "{product_id}", "serial_number": "SN-STOLEN-1"},
        id="POST devices naming the product",
    ),
    pytest.param(
        "POST",
        "/api/v1/device-batches",
        {"product_id": "{product_id}", "serial_numbers": ["SN-STOLEN-1", "SN-STOLEN-2"]},
        id="POST device-batches naming the product",
    ),
    pytest.param(
        "POST",
        "/api/v1/device-batches?product_id={product_id}&issue_credentials=token",
        "serial_number\nSN-STOLEN-1\n",
        id="POST device-batches CSV naming the product",
    ),
    pytest.param("GET", "/api/v1/devices?product_id={product_id}", None, id="GET devices?product_id="),
    pytest.param(
        "POST",
        "/api/v1/api-keys",
        {"name": "stolen", "scopes": ["admin"], "organization_id": "{organization_id}"},
        id="POST api-keys naming the organization",
    ),
]


@pytest.mark.parametrize(("method", "template", "body"), FOREIGN_RESOURCE_CALLS)
def test_another_organizations_key_gets_404_and_changes_nothing(
    method: str,
    template: str,
    body: dict[str, Any] | str | None,
    holdings: Holdings,
    make_tenant: Callable[[], Tenant],
) -> None:
    stranger = make_tenant()
    stock(stranger)  # the stranger has resources of its own, so nothing is empty by accident
    before = owners_view(holdings)

    response = call(stranger, method, fill(template, holdings.ids()), fill(body, holdings.ids()))

    problem = assert_problem(response, 404)
    assert owners_view(holdings) == before
    assert_still_working(holdings)
    absent = missing_ids()
    missing = assert_problem(call(stranger, method, fill(template, absent), fill(body, absent)), 404)
    detail = problem["detail"]
    for name, identifier in holdings.ids().items():
        detail = detail.replace(identifier, absent[name])
    assert (problem["title"], detail) == (missing["title"], missing["detail"])


LISTS = [
    pytest.param("/api/v1/devices", "organization_id", id="devices"),
    pytest.param("/api/v1/products", "organization_id", id="products"),
    pytest.param("/api/v1/audit-events", "organization_id", id="audit-events"),
    pytest.param("/api/v1/organizations", "id", id="organizations"),
    pytest.param("/api/v1/api-keys", "organization_id", id="api-keys"),
]


def listed(caller: Tenant, path: str, **params: Any) -> list[dict[str, Any]]:
    body = ok(caller.get(path, params={"limit": 1000, **params} if "audit" in path else params))
    items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
    return items


@pytest.mark.parametrize(("path", "organization_field"), LISTS)
def test_a_list_never_includes_another_organizations_items(
    path: str, organization_field: str, make_tenant: Callable[[], Tenant]
) -> None:
    owner, stranger = make_tenant(), make_tenant()
    stock(owner)
    stock(stranger)

    seen_by_stranger = {item[organization_field] for item in listed(stranger, path)}
    seen_by_owner = {item[organization_field] for item in listed(owner, path)}

    assert seen_by_stranger == {stranger.organization_id}
    assert seen_by_owner == {owner.organization_id}


def test_filtering_a_list_by_another_organizations_ids_finds_nothing(
    holdings: Holdings, make_tenant: Callable[[], Tenant]
) -> None:
    stranger = make_tenant()
    stock(stranger)

    assert listed(stranger, f"{API}/devices", serial_number=holdings.serial_number) == []
    assert listed(stranger, f"{API}/audit-events", subject_id=holdings.device_id) == []
    assert listed(holdings.owner, f"{API}/devices", serial_number=holdings.serial_number) != []
    assert listed(holdings.owner, f"{API}/audit-events", subject_id=holdings.device_id) != []


# -- sub-organizations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """parent -> (child -> grandchild, sibling), each with holdings of its own."""

    parent: Holdings
    child: Holdings
    sibling: Holdings
    grandchild: Holdings

    def member(self, name: str) -> Holdings:
        found: Holdings = getattr(self, name)
        return found


@pytest.fixture
def family(tenant: Tenant) -> Family:
    child = tenant.sub_tenant()
    return Family(
        parent=stock(tenant),
        child=stock(child),
        sibling=stock(tenant.sub_tenant()),
        grandchild=stock(child.sub_tenant()),
    )


def ids_in(caller: Tenant, path: str, **params: Any) -> set[str]:
    return {item["id"] for item in listed(caller, path, **params)}


def subjects_in_audit_log(caller: Tenant) -> set[str]:
    return {item["subject_id"] for item in listed(caller, f"{API}/audit-events")}


@pytest.mark.parametrize("descendant", ["child", "grandchild"])
def test_a_parent_sees_its_descendants_products_devices_and_events(family: Family, descendant: str) -> None:
    parent, below = family.parent.owner, family.member(descendant)

    assert (
        ok(parent.get(f"{API}/products/{below.product_id}"))["organization_id"] == below.owner.organization_id
    )
    assert ok(parent.get(f"{API}/devices/{below.device_id}"))["serial_number"] == below.serial_number
    assert len(ok(parent.get(f"{API}/devices/{below.device_id}/certificates"))) == 1
    assert (
        ok(parent.get(f"{API}/organizations/{below.owner.organization_id}"))["id"]
        == below.owner.organization_id
    )
    assert below.product_id in ids_in(parent, f"{API}/products")
    assert below.device_id in ids_in(parent, f"{API}/devices")
    assert below.owner.organization_id in ids_in(parent, f"{API}/organizations")
    assert below.spare_key_id in ids_in(parent, f"{API}/api-keys")
    assert {below.device_id, below.product_id} <= subjects_in_audit_log(parent)


def test_a_parent_lists_its_whole_subtree_of_organizations(family: Family) -> None:
    assert ids_in(family.parent.owner, f"{API}/organizations") == {
        family.parent.owner.organization_id,
        family.child.owner.organization_id,
        family.sibling.owner.organization_id,
        family.grandchild.owner.organization_id,
    }
    assert ids_in(family.child.owner, f"{API}/organizations") == {
        family.child.owner.organization_id,
        family.grandchild.owner.organization_id,
    }


# (viewer, relative): every organization above or beside the viewer in the family tree.
RELATIVES = [
    ("child", "parent"),
    ("child", "sibling"),
    ("grandchild", "parent"),
    ("grandchild", "child"),
    ("grandchild", "sibling"),
]
RELATIVES_ABOVE_OR_BESIDE = [pytest.param(*pair, id="-".join(pair)) for pair in RELATIVES]


@pytest.mark.parametrize(("method", "template", "body"), FOREIGN_RESOURCE_CALLS)
def test_a_sub_organization_gets_404_for_its_parents_and_siblings_resources(
    family: Family, method: str, template: str, body: dict[str, Any] | str | None
) -> None:
    # The parent sees the whole family, so its view catches a change to anyone's holdings.
    before = owners_view(family.parent)

    for viewer, relative in RELATIVES:
        caller, theirs = family.member(viewer).owner, family.member(relative)
        response = call(caller, method, fill(template, theirs.ids()), fill(body, theirs.ids()))
        assert response.status_code == 404, f"{viewer} reached its {relative}'s resource: {response.text}"
        assert_problem(response, 404)

    assert owners_view(family.parent) == before
    for relative in ("parent", "child", "sibling"):
        assert_still_working(family.member(relative))


@pytest.mark.parametrize(("viewer", "relative"), RELATIVES_ABOVE_OR_BESIDE)
def test_a_sub_organization_never_lists_its_parents_or_siblings_items(
    family: Family, viewer: str, relative: str
) -> None:
    caller, theirs = family.member(viewer).owner, family.member(relative)

    assert theirs.product_id not in ids_in(caller, f"{API}/products")
    assert theirs.device_id not in ids_in(caller, f"{API}/devices")
    assert theirs.owner.organization_id not in ids_in(caller, f"{API}/organizations")
    assert theirs.spare_key_id not in ids_in(caller, f"{API}/api-keys")
    assert not {theirs.device_id, theirs.product_id} & subjects_in_audit_log(caller)
    assert family.member(viewer).device_id in ids_in(caller, f"{API}/devices")


def test_a_parent_can_create_an_api_key_for_its_child_that_acts_as_the_child(family: Family) -> None:
    parent, child = family.parent.owner, family.child

    created = parent.created(
        f"{API}/api-keys",
        {"name": "for the factory", "scopes": ["factory"], "organization_id": child.owner.organization_id},
    )
    as_child = Tenant(parent.http, child.owner.organization_id, created["key"])

    assert created["organization_id"] == child.owner.organization_id
    assert created["id"] in ids_in(child.owner, f"{API}/api-keys")
    assert ids_in(as_child, f"{API}/products") == {child.product_id, family.grandchild.product_id}
    assert_problem(as_child.get(f"{API}/products/{family.parent.product_id}"), 404)
    defined = as_child.device(child.product_id)
    assert defined["organization_id"] == child.owner.organization_id


@pytest.mark.parametrize("relative", ["parent", "sibling"])
def test_a_child_cannot_create_an_api_key_for_its_parent_or_sibling(family: Family, relative: str) -> None:
    theirs = family.member(relative)
    keys_before = ids_in(theirs.owner, f"{API}/api-keys")

    response = family.child.owner.post(
        f"{API}/api-keys",
        json={"name": "escalate", "scopes": ["admin"], "organization_id": theirs.owner.organization_id},
    )

    assert_problem(response, 404)
    assert ids_in(theirs.owner, f"{API}/api-keys") == keys_before


def test_a_parent_can_revoke_its_childs_key(family: Family) -> None:
    child = family.child
    spare = Tenant(child.owner.http, child.owner.organization_id, child.spare_key)

    revoked = ok(family.parent.owner.delete(f"{API}/api-keys/{child.spare_key_id}"))

    assert revoked["revoked_at"] is not None
    assert_problem(spare.get(f"{API}/products"), 401)


def test_a_parent_can_define_devices_for_its_childs_product_and_they_belong_to_the_child(
    family: Family,
) -> None:
    parent, child = family.parent.owner, family.child

    device = parent.device(child.product_id)

    assert device["organization_id"] == child.owner.organization_id
    assert ok(child.owner.get(f"{API}/devices/{device['id']}"))["id"] == device["id"]
    assert_problem(family.sibling.owner.get(f"{API}/devices/{device['id']}"), 404)


def test_a_sub_organizations_product_belongs_to_it_not_to_the_parent(family: Family) -> None:
    product = family.child.owner.product()

    assert product["organization_id"] == family.child.owner.organization_id
    assert product["id"] in ids_in(family.parent.owner, f"{API}/products")
    assert product["id"] not in ids_in(family.sibling.owner, f"{API}/products")


def test_another_organization_reusing_an_idempotency_key_gets_its_own_answer(
    make_tenant: Callable[[], Tenant],
) -> None:
    owner, stranger = make_tenant(), make_tenant()
    headers = {"Idempotency-Key": unique("idem")}
    body = {"name": "same name", "metadata_fields": []}

    mine = owner.post(f"{API}/products", json=body, headers=headers)
    theirs = stranger.post(f"{API}/products", json=body, headers=headers)

    assert (mine.status_code, theirs.status_code) == (201, 201), theirs.text
    assert mine.json()["organization_id"] == owner.organization_id
    assert theirs.json()["organization_id"] == stranger.organization_id
    assert ids_in(stranger, f"{API}/products") == {theirs.json()["id"]}
