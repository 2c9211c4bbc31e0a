"""``GET /device/v1/me`` is answered before the framework when it succeeds (issue 13): the
answer, its headers and its metrics are the framework route's; anything else (a wrong token,
a query string) still gets the framework's problem details; a connection the database
dropped is replaced."""

from __future__ import annotations

import re

import httpx

from lineside.bootstrap import Application
from lineside.services.credentials import identify_device
from tests.support.api import Tenant, assert_problem

ME = "/device/v1/me"


def device_and_token(tenant: Tenant) -> tuple[str, str]:
    device_id = tenant.device(tenant.product()["id"])["id"]
    return device_id, tenant.token(device_id)


def me(http: httpx.Client, token: str, **kwargs: object) -> httpx.Response:
    return http.get(ME, headers={"Authorization": f"Bearer {token}"}, **kwargs)  # type: ignore[arg-type]


def test_the_answer_is_the_documented_identity_with_a_request_id(
    tenant: Tenant, application: Application
) -> None:
    device_id, token = device_and_token(tenant)
    response = me(tenant.http, token)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.json() == {
        "id": device_id,
        "product_id": tenant.get(f"/api/v1/devices/{device_id}").json()["product_id"],
        "serial_number": tenant.get(f"/api/v1/devices/{device_id}").json()["serial_number"],
        "state": "defined",
        "online": False,
        "last_seen_at": None,
        "mqtt_url": application.settings.effective_mqtt_url,
    }
    echoed = tenant.http.get(
        ME, headers={"Authorization": f"Bearer {token}", "X-Request-ID": "line-7.unit-42"}
    )
    assert echoed.headers["x-request-id"] == "line-7.unit-42"


def test_it_is_counted_under_its_route_in_the_metrics(tenant: Tenant, application: Application) -> None:
    _device_id, token = device_and_token(tenant)
    label = 'method="GET",route="/device/v1/me",status="200"'

    def answered() -> float:
        text = application.metrics.exposition().decode()
        found = [
            line
            for line in text.splitlines()
            if line.startswith("lineside_http_requests_total{") and label in line
        ]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

    before = answered()
    for _ in range(3):
        assert me(tenant.http, token).status_code == 200
    assert answered() == before + 3


def test_failures_get_the_frameworks_problem_details(tenant: Tenant) -> None:
    device_id, token = device_and_token(tenant)
    assert "unknown, revoked or replaced" in assert_problem(me(tenant.http, "lsd_wrong"), 401)["detail"]
    assert_problem(me(tenant.http, "lsk_an-api-key-is-not-a-device-token"), 401)
    assert_problem(tenant.http.get(ME), 401)
    assert_problem(me(tenant.http, token, params={"verbose": "1"}), 422)  # no query parameters here
    assert tenant.post(f"/api/v1/devices/{device_id}/revoke").status_code == 200
    assert_problem(me(tenant.http, token), 401)


def test_a_replaced_token_stops_working_at_once(tenant: Tenant) -> None:
    device_id, first = device_and_token(tenant)
    assert me(tenant.http, first).status_code == 200
    second = tenant.token(device_id)
    assert_problem(me(tenant.http, first), 401)
    assert me(tenant.http, second).json()["id"] == device_id


def test_a_connection_the_database_dropped_is_replaced(tenant: Tenant, application: Application) -> None:
    device_id, token = device_and_token(tenant)
    ctx = application.services
    assert identify_device(ctx, token).id == device_id  # this thread now holds a connection
    held = ctx.device_tokens._held.connection  # type: ignore[attr-defined]
    held.driver_connection.close()  # as a database restart or an idle timeout would

    assert identify_device(ctx, token).id == device_id
    assert ctx.device_tokens._held.connection is not held  # type: ignore[attr-defined]
