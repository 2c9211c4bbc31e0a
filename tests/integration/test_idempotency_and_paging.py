"""Idempotency-Key replay of create calls, and cursor pagination and filters of device lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from lineside.adapters.db.tables import idempotency_keys
from lineside.bootstrap import Application
from tests.support.api import Tenant, assert_problem, unique


def define_with_key(tenant: Tenant, key: str, body: dict[str, Any]) -> httpx.Response:
    return tenant.post("/api/v1/devices", json=body, headers={"Idempotency-Key": key})


def devices_with_serial(tenant: Tenant, serial: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = tenant.get("/api/v1/devices", params={"serial_number": serial}).json()[
        "items"
    ]
    return items


# -- idempotency ----------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(tenant: Tenant) -> None:
    product = tenant.product()
    key = unique("key")
    body = {"product_id": product["id"], "serial_number": "SN-ONCE"}
    first = define_with_key(tenant, key, body)
    second = define_with_key(tenant, key, body)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 201, second.text
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert [d["id"] for d in devices_with_serial(tenant, "SN-ONCE")] == [first.json()["id"]]


def test_a_retry_of_a_batch_replays_the_batch_instead_of_defining_it_again(tenant: Tenant) -> None:
    product = tenant.product()
    key = unique("key")
    body = {"product_id": product["id"], "serial_numbers": ["SN-1", "SN-2"]}
    first = tenant.post("/api/v1/device-batches", json=body, headers={"Idempotency-Key": key})
    second = tenant.post("/api/v1/device-batches", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert second.json()["batch_id"] == first.json()["batch_id"]
    listed = tenant.get("/api/v1/devices", params={"product_id": product["id"]}).json()["items"]
    assert len(listed) == 2


def test_a_remembered_answer_holding_a_secret_is_stored_sealed_and_still_replays(
    tenant: Tenant, application: Application
) -> None:
    headers = {"Idempotency-Key": unique("key")}
    body = {"name": "line 1", "scopes": ["factory"]}
    first = tenant.post("/api/v1/api-keys", json=body, headers=headers)
    assert first.status_code == 201
    secret = first.json()["key"]

    with application.engine.connect() as connection:
        stored = [row.body for row in connection.execute(select(idempotency_keys))]
    assert stored and all(secret not in (text or "") for text in stored)
    assert all("lsk_" not in (text or "") for text in stored)

    again = tenant.post("/api/v1/api-keys", json=body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["key"] == secret


def test_the_same_key_with_a_different_body_is_refused(tenant: Tenant) -> None:
    product = tenant.product()
    key = unique("key")
    first = define_with_key(tenant, key, {"product_id": product["id"], "serial_number": "SN-A"})
    assert first.status_code == 201, first.text
    body = assert_problem(
        define_with_key(tenant, key, {"product_id": product["id"], "serial_number": "SN-B"}), 422
    )
    assert "Idempotency-Key" in body["detail"]
    assert devices_with_serial(tenant, "SN-B") == []
    assert len(devices_with_serial(tenant, "SN-A")) == 1


def test_the_same_key_on_another_path_is_refused(tenant: Tenant) -> None:
    product = tenant.product()
    key = unique("key")
    assert (
        define_with_key(tenant, key, {"product_id": product["id"], "serial_number": "SN-A"}).status_code
        == 201
    )
    reused = tenant.post(
        "/api/v1/products", json={"name": unique("product")}, headers={"Idempotency-Key": key}
    )
    assert_problem(reused, 422)


def test_the_same_key_from_another_organization_is_independent(make_tenant: Callable[[], Tenant]) -> None:
    ours, theirs = make_tenant(), make_tenant()
    key = unique("shared-key")
    our_device = define_with_key(ours, key, {"product_id": ours.product()["id"], "serial_number": "SN-1"})
    their_device = define_with_key(
        theirs, key, {"product_id": theirs.product()["id"], "serial_number": "SN-1"}
    )
    assert our_device.status_code == their_device.status_code == 201
    assert "idempotent-replayed" not in their_device.headers
    assert our_device.json()["id"] != their_device.json()["id"]
    assert [d["id"] for d in devices_with_serial(theirs, "SN-1")] == [their_device.json()["id"]]


def test_the_same_key_from_another_api_key_of_the_organization_is_independent(tenant: Tenant) -> None:
    product = tenant.product()
    other = tenant.created("/api/v1/api-keys", {"name": "line 2", "scopes": ["factory"]})
    colleague = Tenant(tenant.http, tenant.organization_id, other["key"])
    key = unique("key")
    first = define_with_key(tenant, key, {"product_id": product["id"], "serial_number": "SN-1"})
    second = define_with_key(colleague, key, {"product_id": product["id"], "serial_number": "SN-2"})
    assert first.status_code == second.status_code == 201
    assert {d["serial_number"] for d in tenant.get("/api/v1/devices").json()["items"]} == {"SN-1", "SN-2"}


def test_a_failed_first_attempt_is_not_remembered_so_a_corrected_retry_succeeds(tenant: Tenant) -> None:
    product = tenant.product([{"name": "color", "type": "string", "required": True}])
    key = unique("key")
    wrong = define_with_key(tenant, key, {"product_id": product["id"], "serial_number": "SN-1"})
    assert_problem(wrong, 422)
    missing_product = define_with_key(tenant, key, {"product_id": unique("nope"), "serial_number": "SN-1"})
    assert_problem(missing_product, 404)
    right = define_with_key(
        tenant, key, {"product_id": product["id"], "serial_number": "SN-1", "metadata": {"color": "red"}}
    )
    assert right.status_code == 201, right.text
    assert "idempotent-replayed" not in right.headers
    again = define_with_key(
        tenant, key, {"product_id": product["id"], "serial_number": "SN-1", "metadata": {"color": "red"}}
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == right.json()["id"]


def test_a_failed_attempt_does_not_replay_its_error(tenant: Tenant) -> None:
    product = tenant.product()
    tenant.device(product["id"], "SN-DUP")
    key = unique("key")
    body = {"product_id": product["id"], "serial_number": "SN-DUP"}
    for _ in range(2):
        response = define_with_key(tenant, key, body)
        assert_problem(response, 409)
        assert "idempotent-replayed" not in response.headers


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_idempotency_key_of_unusable_length_is_refused(tenant: Tenant, key: str) -> None:
    product = tenant.product()
    response = define_with_key(tenant, key, {"product_id": product["id"], "serial_number": "SN-1"})
    assert_problem(response, 422)
    assert devices_with_serial(tenant, "SN-1") == []


# -- pagination -------------------------------------------------------------------------------------


def every_page(tenant: Tenant, limit: int, **filters: str) -> list[list[dict[str, Any]]]:
    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **filters}
        if cursor is not None:
            params["cursor"] = cursor
        response = tenant.get("/api/v1/devices", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor never ran out"


def test_paging_through_devices_returns_each_once_in_creation_order(tenant: Tenant) -> None:
    product = tenant.product()
    created = [tenant.device(product["id"], f"SN-{n:02d}")["id"] for n in range(25)]
    pages = every_page(tenant, 10)
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [device["id"] for page in pages for device in page] == created


def test_a_last_page_that_is_exactly_full_ends_the_list(tenant: Tenant) -> None:
    product = tenant.product()
    tenant.post(
        "/api/v1/device-batches", json={"product_id": product["id"], "serial_numbers": list("ABCDEF")}
    )
    pages = every_page(tenant, 3)
    assert [len(page) for page in pages] == [3, 3]
    assert sorted(d["serial_number"] for page in pages for d in page) == list("ABCDEF")


def test_a_list_with_nothing_in_it_is_one_empty_page(tenant: Tenant) -> None:
    assert every_page(tenant, 10) == [[]]


def test_paging_with_a_filter_pages_only_the_matching_devices(tenant: Tenant) -> None:
    wanted, other = tenant.product(), tenant.product()
    created = []
    for n in range(7):
        created.append(tenant.device(wanted["id"], f"W-{n}")["id"])
        tenant.device(other["id"], f"O-{n}")
    pages = every_page(tenant, 3, product_id=wanted["id"])
    assert [d["id"] for page in pages for d in page] == created


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "YWJj", "", "x" * 500])
def test_a_cursor_the_server_did_not_hand_out_is_refused(tenant: Tenant, cursor: str) -> None:
    body = assert_problem(tenant.get("/api/v1/devices", params={"cursor": cursor}), 422)
    assert "cursor" in body["detail"]


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "1.5"])
def test_a_page_size_out_of_range_is_refused(tenant: Tenant, limit: str) -> None:
    body = assert_problem(tenant.get("/api/v1/devices", params={"limit": limit}), 422)
    assert "limit" in body["detail"]


def test_one_organization_never_pages_into_anothers_devices(make_tenant: Callable[[], Tenant]) -> None:
    ours, theirs = make_tenant(), make_tenant()
    product = ours.product()
    for n in range(3):
        ours.device(product["id"], f"SN-{n}")
    cursor = ours.get("/api/v1/devices", params={"limit": 1}).json()["next_cursor"]
    assert cursor is not None
    assert theirs.get("/api/v1/devices", params={"cursor": cursor}).json()["items"] == []


# -- filters ------------------------------------------------------------------------------------------


def ids_of(tenant: Tenant, **filters: str) -> list[str]:
    response = tenant.get("/api/v1/devices", params=filters)
    assert response.status_code == 200, response.text
    return [device["id"] for device in response.json()["items"]]


def test_devices_filter_by_product(tenant: Tenant) -> None:
    one, two = tenant.product(), tenant.product()
    first = tenant.device(one["id"])
    second = tenant.device(two["id"])
    assert ids_of(tenant, product_id=one["id"]) == [first["id"]]
    assert ids_of(tenant, product_id=two["id"]) == [second["id"]]


def test_devices_filter_by_state(tenant: Tenant) -> None:
    product = tenant.product()
    kept = tenant.device(product["id"])
    revoked = tenant.device(product["id"])
    assert tenant.post(f"/api/v1/devices/{revoked['id']}/revoke").status_code == 200
    assert ids_of(tenant, state="defined") == [kept["id"]]
    assert ids_of(tenant, state="revoked") == [revoked["id"]]
    assert ids_of(tenant, state="blessed") == []


def test_devices_filter_by_serial_number_across_products(tenant: Tenant) -> None:
    one, two = tenant.product(), tenant.product()
    first = tenant.device(one["id"], "SN-SAME")
    second = tenant.device(two["id"], "SN-SAME")
    tenant.device(one["id"], "SN-OTHER")
    assert ids_of(tenant, serial_number="SN-SAME") == [first["id"], second["id"]]
    assert ids_of(tenant, serial_number="SN-SAME", product_id=two["id"]) == [second["id"]]
    assert ids_of(tenant, serial_number="SN-NONE") == []


def test_devices_filter_by_batch(tenant: Tenant) -> None:
    product = tenant.product()
    tenant.device(product["id"])
    batch = tenant.post(
        "/api/v1/device-batches", json={"product_id": product["id"], "serial_numbers": ["B-1", "B-2"]}
    ).json()
    assert sorted(ids_of(tenant, batch_id=batch["batch_id"])) == sorted(d["id"] for d in batch["devices"])
    assert ids_of(tenant, batch_id=unique("no-batch")) == []


def test_an_unknown_state_filter_is_refused(tenant: Tenant) -> None:
    body = assert_problem(tenant.get("/api/v1/devices", params={"state": "sleeping"}), 422)
    assert "state" in body["detail"]


def test_a_product_filter_naming_an_unseen_product_is_a_404(make_tenant: Callable[[], Tenant]) -> None:
    ours, theirs = make_tenant(), make_tenant()
    their_product = theirs.product()
    theirs.device(their_product["id"])
    assert_problem(ours.get("/api/v1/devices", params={"product_id": their_product["id"]}), 404)
    assert_problem(ours.get("/api/v1/devices", params={"product_id": "not-a-uuid"}), 404)
