"""The Xively provisioning flow, over a real socket: define, credential, authenticate,
regenerate, and the old secret is refused."""

from __future__ import annotations

from tests.support.api import Tenant, assert_problem


def test_a_device_defined_and_given_a_token_authenticates_until_the_token_is_regenerated(
    tenant: Tenant,
) -> None:
    product = tenant.product([{"name": "color", "type": "string", "required": True}])
    device = tenant.device(product["id"], "SN-0001", metadata={"color": "red"})
    assert device["state"] == "defined"

    first = tenant.token(device["id"])
    me = tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {first}"})
    assert me.status_code == 200
    identity = me.json()
    assert identity.pop("mqtt_url").startswith("mqtt://")  # where the device connects next
    assert identity == {
        "id": device["id"],
        "product_id": product["id"],
        "serial_number": "SN-0001",
        "state": "defined",
        "online": False,
        "last_seen_at": None,
    }

    second = tenant.token(device["id"])
    assert second != first
    refused = tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {first}"})
    assert_problem(refused, 401)
    accepted = tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {second}"})
    assert accepted.json()["id"] == device["id"]

    events = tenant.get("/api/v1/audit-events", params={"subject_id": device["id"]}).json()["items"]
    assert [event["type"] for event in events] == [
        "device.defined",
        "credentials.issued",
        "credentials.rotated",
    ]
    assert first not in str(events) and second not in str(events)
