"""Tenant isolation of the connected factory: another organization's product, DUT, factory
token or production token answers exactly like a missing one (404), and nothing changes.

Every new route that names a resource is one row of ``FOREIGN_CALLS``."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import Tenant, assert_problem, ok
from tests.support.factory import (
    API,
    activate,
    enroll,
    enrolled,
    hardware_id,
    line_unit,
    production_token,
    record_run,
)


@dataclass(frozen=True)
class Line:
    """One organization's factory line: a product, its factory token, a DUT under test with a
    passed run, a blessed unit, and a pending production token."""

    owner: Tenant
    product_id: str
    factory_token_id: str
    factory_token: str
    dut_id: str
    dut_hardware_id: str
    blessed_id: str
    production_token: dict[str, Any]

    def ids(self) -> dict[str, str]:
        return {
            "product_id": self.product_id,
            "factory_token_id": self.factory_token_id,
            "device_id": self.dut_id,
            "token_id": self.production_token["token_id"],
        }


def line_of(owner: Tenant) -> Line:
    product_id = owner.product()["id"]
    created = owner.created(f"{API}/factory/enrollment-tokens", {"product_id": product_id})
    hardware = hardware_id()
    dut = enrolled(owner.http, created["token"], hardware)["device"]
    record_run(owner, dut["id"], True)
    blessed = line_unit(owner, created["token"])["device"]
    return Line(
        owner=owner,
        product_id=product_id,
        factory_token_id=created["id"],
        factory_token=created["token"],
        dut_id=dut["id"],
        dut_hardware_id=hardware,
        blessed_id=blessed["id"],
        production_token=production_token(owner, product_id=product_id),
    )


def owners_view(line: Line) -> dict[str, Any]:
    """What the owner can read of its line; any write by anyone changes it."""
    owner = line.owner
    return {
        "tokens": ok(owner.get(f"{API}/factory/enrollment-tokens")),
        "dut": ok(owner.get(f"{API}/devices/{line.dut_id}")),
        "blessed": ok(owner.get(f"{API}/devices/{line.blessed_id}")),
        "runs": ok(owner.get(f"{API}/devices/{line.dut_id}/test-runs")),
        "claim": ok(owner.get(f"{API}/enrollment-tokens/{line.production_token['token_id']}")),
        "groups": ok(owner.get(f"{API}/products/{line.product_id}/groups")),
        "events": ok(owner.get(f"{API}/audit-events", params={"limit": 1000})),
    }


def missing_ids() -> dict[str, str]:
    ids = {name: str(uuid.uuid4()) for name in ("product_id", "factory_token_id", "device_id")}
    return {**ids, "token_id": secrets.token_hex(32)}


def fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, dict):
        return {key: fill(value, ids) for key, value in template.items()}
    return template


FOREIGN_CALLS = [
    pytest.param(
        "POST", "/api/v1/factory/enrollment-tokens", {"product_id": "{product_id}"}, id="POST factory tokens"
    ),
    pytest.param(
        "POST", "/api/v1/factory/enrollment-tokens/{factory_token_id}/revoke", None, id="POST revoke"
    ),
    pytest.param("POST", "/api/v1/devices/{device_id}/test-runs", {"passed": False}, id="POST test-runs"),
    pytest.param("GET", "/api/v1/devices/{device_id}/test-runs", None, id="GET test-runs"),
    pytest.param("POST", "/api/v1/devices/{device_id}/bless", {}, id="POST bless"),
    pytest.param(
        "POST", "/api/v1/enrollment-tokens", {"product_id": "{product_id}"}, id="POST enrollment-tokens"
    ),
    pytest.param("GET", "/api/v1/enrollment-tokens/{token_id}", None, id="GET enrollment-tokens/{token_id}"),
]


def call(caller: Tenant, method: str, template: str, body: Any, ids: dict[str, str]) -> httpx.Response:
    return caller.http.request(method, fill(template, ids), headers=caller.headers, json=fill(body, ids))


@pytest.mark.parametrize(("method", "template", "body"), FOREIGN_CALLS)
def test_another_organizations_factory_resources_answer_404_and_change_nothing(
    method: str, template: str, body: Any, make_tenant: Callable[[], Tenant]
) -> None:
    owner, stranger = make_tenant(), make_tenant()
    line = line_of(owner)
    line_of(stranger)  # the stranger has a line of its own, so nothing is empty by accident
    before = owners_view(line)

    problem = assert_problem(call(stranger, method, template, body, line.ids()), 404)

    assert owners_view(line) == before
    absent = missing_ids()
    missing = assert_problem(call(stranger, method, template, body, absent), 404)
    detail = problem["detail"]
    for name, identifier in line.ids().items():
        detail = detail.replace(identifier, absent[name])
    assert (problem["title"], detail) == (missing["title"], missing["detail"])


@pytest.mark.parametrize(("method", "template", "body"), FOREIGN_CALLS)
def test_a_sub_organization_cannot_reach_its_parents_line(
    method: str, template: str, body: Any, tenant: Tenant
) -> None:
    line = line_of(tenant)
    child = tenant.sub_tenant()
    before = owners_view(line)

    assert_problem(call(child, method, template, body, line.ids()), 404)

    assert owners_view(line) == before


def test_a_parent_runs_its_childs_line(tenant: Tenant) -> None:
    child = tenant.sub_tenant()
    line = line_of(child)

    assert line.factory_token_id in {t["id"] for t in ok(tenant.get(f"{API}/factory/enrollment-tokens"))}
    assert ok(tenant.post(f"{API}/devices/{line.dut_id}/bless"))["result"] == "blessed"
    claim = ok(tenant.get(f"{API}/enrollment-tokens/{line.production_token['token_id']}"))
    assert claim["status"] == "pending"
    assert line.factory_token_id not in {
        t["id"] for t in ok(tenant.sub_tenant().get(f"{API}/factory/enrollment-tokens"))
    }


def test_lists_of_factory_tokens_never_show_another_organizations(make_tenant: Callable[[], Tenant]) -> None:
    first, second = line_of(make_tenant()), line_of(make_tenant())

    assert [t["id"] for t in ok(first.owner.get(f"{API}/factory/enrollment-tokens"))] == [
        first.factory_token_id
    ]
    assert [t["id"] for t in ok(second.owner.get(f"{API}/factory/enrollment-tokens"))] == [
        second.factory_token_id
    ]


def test_a_factory_token_enrolls_only_into_its_own_product(make_tenant: Callable[[], Tenant]) -> None:
    owner, stranger = line_of(make_tenant()), line_of(make_tenant())

    # The stranger's token, presenting the owner's unit, makes a device of the stranger's own.
    response = enroll(stranger.owner.http, stranger.factory_token, owner.dut_hardware_id)

    assert response.status_code == 201, response.text
    theirs = response.json()["device"]
    assert (theirs["product_id"], theirs["organization_id"]) == (
        stranger.product_id,
        stranger.owner.organization_id,
    )
    assert theirs["id"] != owner.dut_id
    assert ok(owner.owner.get(f"{API}/devices/{owner.dut_id}"))["state"] == "under_test"


def test_a_factory_token_is_no_api_key(tenant: Tenant) -> None:
    line = line_of(tenant)
    as_key = {"Authorization": f"Bearer {line.factory_token}"}

    assert_problem(tenant.http.get(f"{API}/products", headers=as_key), 401)
    assert_problem(tenant.http.post(f"{API}/devices/{line.dut_id}/bless", headers=as_key), 401)
    assert_problem(tenant.http.get("/device/v1/me", headers=as_key), 401)


def test_a_production_token_activates_no_other_organizations_device(
    make_tenant: Callable[[], Tenant],
) -> None:
    owner, stranger = line_of(make_tenant()), line_of(make_tenant())

    refused = activate(stranger.owner.http, stranger.production_token, owner.blessed_id)

    assert_problem(refused, 404)
    assert ok(owner.owner.get(f"{API}/devices/{owner.blessed_id}"))["state"] == "blessed"
    claim = ok(stranger.owner.get(f"{API}/enrollment-tokens/{stranger.production_token['token_id']}"))
    assert claim["status"] == "pending"
