"""MQTT provisioning for tests: products with provisioning enabled, requests answered by
the service, and whether credentials authenticate on the broker."""

from __future__ import annotations

import json
from typing import Any

from lineside.bootstrap import Application
from lineside.domain.errors import Unauthenticated
from lineside.services.mqtt_access import authenticate_connection
from lineside.services.mqtt_provisioning import answer_provision_request
from tests.support.api import Tenant, ok, unique

API = "/api/v1"


def product_of(tenant: Tenant, policy: str) -> dict[str, Any]:
    body = {"name": unique("product"), "enrollment_policy": policy, "metadata_fields": []}
    return tenant.created(f"{API}/products", body)


def provisioned_product(tenant: Tenant, policy: str = "create") -> dict[str, Any]:
    """A product of ``policy`` with provisioning enabled: its settings, secret included."""
    product = product_of(tenant, policy)
    return tenant.created(f"{API}/products/{product['id']}/provisioning", {})


def ask(application: Application, settings: dict[str, Any], **fields: Any) -> dict[str, Any]:
    request = {
        "provisionDeviceKey": settings["provision_key"],
        "provisionDeviceSecret": settings["provision_secret"],
        **fields,
    }
    return answer_provision_request(application.services, json.dumps(request).encode())


def succeeded(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["status"] == "SUCCESS", answer
    return answer


def failed(answer: dict[str, Any]) -> str:
    assert answer["status"] == "FAILURE", answer
    assert set(answer) == {"status", "errorMsg"}, "a failure gives nothing away"
    message: str = answer["errorMsg"]
    return message


def connects(application: Application, device_id: str, password: str) -> bool:
    try:
        identity = authenticate_connection(
            application.services, client_id=device_id, username=device_id, password=password
        )
    except Unauthenticated:
        return False
    return identity.device_id == device_id


def event_types(tenant: Tenant, subject_id: str) -> list[str]:
    items = ok(tenant.get(f"{API}/audit-events", params={"subject_id": subject_id}))["items"]
    return [item["type"] for item in items]
