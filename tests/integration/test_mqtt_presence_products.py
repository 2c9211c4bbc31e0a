"""A product's ``requires_blessing`` (set on creation, changed with PATCH) and the presence
fields of device views."""

from __future__ import annotations

from typing import Any

from lineside.bootstrap import Application
from lineside.services.presence import PresenceRecorder
from tests.support.api import Tenant, assert_problem, ok, unique
from tests.support.factory import API, keyed
from tests.support.webhooks import events_of


def patch(tenant: Tenant, path: str, body: dict[str, Any]) -> Any:
    return tenant.http.patch(path, json=body, headers=tenant.headers)


def test_a_product_does_not_require_blessing_unless_told(tenant: Tenant) -> None:
    default = tenant.product()
    strict = tenant.created(f"{API}/products", {"name": unique("product"), "requires_blessing": True})

    assert (default["requires_blessing"], strict["requires_blessing"]) == (False, True)
    assert ok(tenant.get(f"{API}/products/{strict['id']}"))["requires_blessing"] is True
    listed = {p["id"]: p["requires_blessing"] for p in ok(tenant.get(f"{API}/products"))["items"]}
    assert listed == {default["id"]: False, strict["id"]: True}
    [created] = events_of(tenant, subject_id=strict["id"], type="product.created")
    assert created["data"]["requires_blessing"] is True


def test_requires_blessing_must_be_a_boolean(tenant: Tenant) -> None:
    response = tenant.post(f"{API}/products", json={"name": unique("product"), "requires_blessing": "yes"})

    assert_problem(response, 422)


def test_patching_requires_blessing_changes_whether_defined_devices_activate(
    application: Application, tenant: Tenant
) -> None:
    product = tenant.product()
    device = tenant.device(product["id"])

    patched = patch(tenant, f"{API}/products/{product['id']}", {"requires_blessing": True})

    assert ok(patched)["requires_blessing"] is True
    assert ok(tenant.get(f"{API}/products/{product['id']}"))["requires_blessing"] is True
    [updated] = events_of(tenant, subject_id=product["id"], type="product.updated")
    assert updated["data"] == {"requires_blessing": True}
    recorder = PresenceRecorder()
    recorder.connected(device["id"])
    assert recorder.flush(application.services).activated == 0
    assert ok(tenant.get(f"{API}/devices/{device['id']}"))["state"] == "defined"


def test_a_patch_that_changes_nothing_records_no_event(tenant: Tenant) -> None:
    product = tenant.product()

    assert ok(patch(tenant, f"{API}/products/{product['id']}", {}))["requires_blessing"] is False
    assert ok(patch(tenant, f"{API}/products/{product['id']}", {"requires_blessing": False}))

    assert events_of(tenant, subject_id=product["id"], type="product.updated") == []


def test_patching_a_product_needs_the_admin_scope_and_a_product_of_ones_own(
    tenant: Tenant, make_tenant: Any
) -> None:
    product = tenant.product()
    body = {"requires_blessing": True}

    assert_problem(patch(keyed(tenant, "factory"), f"{API}/products/{product['id']}", body), 403)
    assert_problem(patch(make_tenant(), f"{API}/products/{product['id']}", body), 404)
    assert_problem(patch(tenant, f"{API}/products/{product['id']}", {"enrollment_policy": "predefined"}), 422)
    assert ok(tenant.get(f"{API}/products/{product['id']}"))["requires_blessing"] is False


def test_a_device_view_shows_presence_provisioning_and_its_mqtt_password(
    application: Application, tenant: Tenant
) -> None:
    device = tenant.device(tenant.product()["id"])
    fresh = ok(tenant.get(f"{API}/devices/{device['id']}"))
    tenant.created(f"{API}/devices/{device['id']}/credentials", {"type": "mqtt_password"})
    recorder = PresenceRecorder()
    recorder.connected(device["id"])
    recorder.flush(application.services)

    view = ok(tenant.get(f"{API}/devices/{device['id']}"))

    assert (device["online"], device["last_seen_at"], device["mqtt_password_issued_at"]) == (
        False,
        None,
        None,
    )
    assert (fresh["provisioned_at"], view["provisioned_at"]) == (None, None)
    assert view["online"] is True
    assert view["last_seen_at"] is not None
    assert view["mqtt_password_issued_at"] is not None
    listed = ok(tenant.get(f"{API}/devices"))["items"]
    assert [(d["id"], d["online"]) for d in listed] == [(device["id"], True)]
