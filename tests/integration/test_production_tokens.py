"""Production enrollment tokens (Electric Imp's /v5/enroll and the native route), activation
with them, and the claim a fixture polls for."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from lineside.bootstrap import Application
from tests.support.api import Tenant, assert_problem
from tests.support.factory import (
    API,
    activate,
    basic,
    claim,
    enrolled,
    expired_production_token,
    factory_token,
    keyed,
    line_unit,
    production_token,
    record_run,
    v5_enroll,
)
from tests.support.firmware import deployed, group, release, set_after

HEX_PLAN_ID = re.compile(r"^[0-9a-f]{32}$")
HEX_TOKEN_ID = re.compile(r"^[0-9a-f]{64}$")


def blessed_device(tenant: Tenant, product_id: str | None = None) -> dict[str, Any]:
    token = factory_token(tenant, product_id or tenant.product()["id"])
    device: dict[str, Any] = line_unit(tenant, token)["device"]
    assert device["state"] == "blessed"
    return device


def as_device(http: httpx.Client, device_token: str) -> httpx.Response:
    return http.get("/device/v1/me", headers={"Authorization": f"Bearer {device_token}"})


# -- /v5/enroll -------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", ["{key}", "{key}:"], ids=["key", "key and empty password"])
def test_v5_enroll_answers_a_plan_id_and_a_token_id_in_hex(tenant: Tenant, credentials: str) -> None:
    factory = keyed(tenant, "factory")

    response = v5_enroll(tenant.http, "", headers=basic(credentials.format(key=factory.api_key)))

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"plan_id", "token_id"}
    assert HEX_PLAN_ID.match(body["plan_id"]) and HEX_TOKEN_ID.match(body["token_id"])
    assert claim(tenant, body["token_id"]).json()["status"] == "pending"
    events = tenant.get(f"{API}/audit-events", params={"type": "production_token.created"}).json()["items"]
    assert len(events) == 1
    assert body["token_id"] not in str(events)


def test_every_token_is_new(tenant: Tenant) -> None:
    answers = [v5_enroll(tenant.http, tenant.api_key).json() for _ in range(3)]

    assert len({answer["token_id"] for answer in answers}) == 3
    assert len({answer["plan_id"] for answer in answers}) == 3


BAD_CREDENTIALS = [
    pytest.param(lambda key: {}, id="none"),
    pytest.param(lambda key: {"Authorization": f"Bearer {key}"}, id="bearer"),
    pytest.param(lambda key: {"Authorization": "Basic not base64!"}, id="not base64"),
    pytest.param(lambda key: basic("lsk_unknown-key"), id="unknown key"),
    pytest.param(lambda key: basic(f"{key}:a-password"), id="with a password"),
    pytest.param(lambda key: basic(f":{key}"), id="key as password"),
]


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
def test_v5_enroll_refuses_bad_credentials_with_a_basic_challenge(tenant: Tenant, credentials: Any) -> None:
    headers = {"Content-Type": "application/json", **credentials(tenant.api_key)}

    response = tenant.http.post("/v5/enroll", headers=headers, content=b'{"type": "production_token"}')

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Basic")


def test_v5_enroll_needs_the_factory_scope(tenant: Tenant) -> None:
    assert_problem(v5_enroll(tenant.http, keyed(tenant, "read").api_key), 403)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"type": "factory_token"}', "application/json"),
        (b'{"type": "production_token", "extra": 1}', "application/json"),
        (b'["production_token"]', "application/json"),
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b'{"type": "production_token"}', "text/plain"),
    ],
    ids=["wrong type", "extra field", "a list", "bad json", "no body", "not json"],
)
def test_v5_enroll_refuses_a_bad_body_with_400(tenant: Tenant, content: bytes, content_type: str) -> None:
    response = v5_enroll(tenant.http, tenant.api_key, content=content, headers={"Content-Type": content_type})

    assert_problem(response, 400)
    events = tenant.get(f"{API}/audit-events", params={"type": "production_token.created"}).json()["items"]
    assert events == []


# -- the native route --------------------------------------------------------------------------


def test_the_native_route_issues_a_token_for_a_product_lasting_the_configured_lifetime(
    application: Application, tenant: Tenant
) -> None:
    product_id = tenant.product()["id"]

    token = production_token(tenant, product_id=product_id)
    anywhere = production_token(tenant)

    assert token["product_id"] == product_id and anywhere["product_id"] is None
    assert HEX_PLAN_ID.match(token["plan_id"]) and HEX_TOKEN_ID.match(token["token_id"])
    events = tenant.get(f"{API}/audit-events", params={"type": "production_token.created"}).json()["items"]
    issued_at = datetime.fromisoformat(events[0]["occurred_at"])
    lifetime = application.services.config.production_token_lifetime
    assert lifetime == timedelta(minutes=10)
    assert datetime.fromisoformat(token["expires_at"]) - issued_at == lifetime


def test_the_native_route_needs_the_factory_scope_and_ones_own_product(
    tenant: Tenant, make_tenant: Any
) -> None:
    product_id = tenant.product()["id"]

    assert_problem(keyed(tenant, "read").post(f"{API}/enrollment-tokens", json={}), 403)
    assert_problem(make_tenant().post(f"{API}/enrollment-tokens", json={"product_id": product_id}), 404)
    assert_problem(tenant.post(f"{API}/enrollment-tokens", json={"product_id": product_id, "x": 1}), 422)


# -- activation -------------------------------------------------------------------------------


def test_a_blessed_device_activates_once_and_gets_its_credentials(tenant: Tenant) -> None:
    device = blessed_device(tenant)
    token = production_token(tenant)

    response = activate(tenant.http, token, device["id"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["device"].pop("mqtt_url").startswith("mqtt://")
    assert body["device"] == {
        "id": device["id"],
        "product_id": device["product_id"],
        "serial_number": device["serial_number"],
        "state": "activated",
        "online": False,
        "last_seen_at": None,
    }
    assert body["credentials"]["type"] == "token"
    assert body["credentials"]["token"].startswith("lsd_")
    assert body["configuration"]["api_url"].endswith("/device/v1")
    assert body["configuration"]["firmware"] is None
    assert as_device(tenant.http, body["credentials"]["token"]).json()["state"] == "activated"
    polled = claim(tenant, token["token_id"]).json()
    assert (polled["status"], polled["device_id"]) == ("claimed", device["id"])
    assert polled["device_url"].endswith(f"/api/v1/devices/{device['id']}")
    events = tenant.get(f"{API}/audit-events", params={"subject_id": device["id"]}).json()["items"]
    assert [event["type"] for event in events][-2:] == ["device.activated", "credentials.issued"]
    assert token["token_id"] not in str(events) and body["credentials"]["token"] not in str(events)


def test_activation_replaces_a_device_token_issued_before(tenant: Tenant) -> None:
    device = blessed_device(tenant)
    old = tenant.token(device["id"])

    new = activate(tenant.http, production_token(tenant), device["id"]).json()["credentials"]["token"]

    assert_problem(as_device(tenant.http, old), 401)
    assert as_device(tenant.http, new).status_code == 200


@pytest.mark.parametrize("state", ["defined", "under_test", "failed"])
def test_only_a_blessed_device_activates_and_a_refusal_spends_no_token(tenant: Tenant, state: str) -> None:
    product_id = tenant.product()["id"]
    line = factory_token(tenant, product_id)
    if state == "defined":
        device = tenant.device(product_id)
    elif state == "under_test":
        device = enrolled(tenant.http, line)["device"]
    else:
        device = line_unit(tenant, line, passed=False)["device"]
    token = production_token(tenant)

    refused = assert_problem(activate(tenant.http, token, device["id"]), 409)

    assert "Only blessed devices activate" in refused["detail"]
    assert tenant.get(f"{API}/devices/{device['id']}").json()["state"] == state
    assert claim(tenant, token["token_id"]).json()["status"] == "pending"


def test_a_used_token_is_refused(tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    first, second = blessed_device(tenant, product_id), blessed_device(tenant, product_id)
    token = production_token(tenant)
    assert activate(tenant.http, token, first["id"]).status_code == 200

    refused = assert_problem(activate(tenant.http, token, second["id"]), 409)

    assert "already been used" in refused["detail"]
    assert tenant.get(f"{API}/devices/{second['id']}").json()["state"] == "blessed"


def test_an_activated_device_cannot_activate_again(tenant: Tenant) -> None:
    device = blessed_device(tenant)
    assert activate(tenant.http, production_token(tenant), device["id"]).status_code == 200

    assert_problem(activate(tenant.http, production_token(tenant), device["id"]), 409)


def test_an_expired_token_is_refused_with_410_and_polls_as_expired(
    application: Application, tenant: Tenant
) -> None:
    device = blessed_device(tenant)
    token = expired_production_token(application, tenant.organization_id)

    refused = assert_problem(activate(tenant.http, token, device["id"]), 410)

    assert "expired" in refused["detail"]
    assert claim(tenant, token["token_id"]).json()["status"] == "expired"
    assert tenant.get(f"{API}/devices/{device['id']}").json()["state"] == "blessed"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: {**t, "token_id": "0" * 64},
        lambda t: {**t, "plan_id": "0" * 32},
        lambda t: {**t, "token_id": "not hex"},
        lambda t: {**t, "plan_id": ""},
    ],
    ids=["unknown token", "wrong plan", "token not hex", "no plan"],
)
def test_an_unknown_token_or_a_wrong_plan_is_refused_with_401(tenant: Tenant, tamper: Any) -> None:
    device = blessed_device(tenant)
    token = production_token(tenant)

    assert_problem(activate(tenant.http, tamper(token), device["id"]), 401)
    assert claim(tenant, token["token_id"]).json()["status"] == "pending"


def test_a_token_activates_only_devices_of_its_organization_and_product(
    tenant: Tenant, make_tenant: Any
) -> None:
    stranger = make_tenant()
    theirs = blessed_device(stranger)
    mine = blessed_device(tenant)
    for_another_product = production_token(tenant, product_id=tenant.product()["id"])
    token = production_token(tenant)

    assert_problem(activate(tenant.http, token, theirs["id"]), 404)
    assert_problem(activate(tenant.http, for_another_product, mine["id"]), 404)
    assert_problem(activate(tenant.http, token, "not-a-uuid"), 404)
    assert stranger.get(f"{API}/devices/{theirs['id']}").json()["state"] == "blessed"
    assert activate(tenant.http, token, mine["id"]).status_code == 200


def test_a_parents_token_activates_a_sub_organizations_device(tenant: Tenant) -> None:
    child = tenant.sub_tenant()
    device = blessed_device(child)

    assert activate(tenant.http, production_token(tenant), device["id"]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"plan_id": "a", "token_id": "b"}, {"plan_id": 1, "token_id": "b", "device_id": "c"}],
    ids=["empty", "no device", "number"],
)
def test_a_bad_activation_body_is_refused(tenant: Tenant, body: dict[str, Any]) -> None:
    assert_problem(tenant.http.post("/device/v1/activate", json=body), 422)


def test_of_concurrent_activations_with_one_token_exactly_one_succeeds(tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    devices = [blessed_device(tenant, product_id) for _ in range(6)]
    token = production_token(tenant)

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        answers = list(pool.map(lambda device: activate(tenant.http, token, device["id"]), devices))

    assert sorted(answer.status_code for answer in answers) == [200] + [409] * (len(devices) - 1)
    winner = next(answer.json() for answer in answers if answer.status_code == 200)
    states = [tenant.get(f"{API}/devices/{d['id']}").json()["state"] for d in devices]
    assert sorted(states) == ["activated"] + ["blessed"] * (len(devices) - 1)
    assert claim(tenant, token["token_id"]).json()["device_id"] == winner["device"]["id"]


def test_a_group_loading_application_firmware_after_activation_keeps_factory_firmware_until_then(
    tenant: Tenant,
) -> None:
    product_id = tenant.product()["id"]
    factory_group, production = group(tenant, product_id, "factory"), group(tenant, product_id, "production")
    factory_release = release(tenant, product_id, "factory")
    application_release = release(tenant, product_id, "application")
    deployed(tenant, factory_group["id"], factory_release["id"])
    deployed(tenant, production["id"], application_release["id"])
    assert set_after(tenant, production["id"], "activation").status_code == 200
    device = enrolled(tenant.http, factory_token(tenant, product_id))["device"]
    record_run(tenant, device["id"], True)

    blessing = tenant.post(f"{API}/devices/{device['id']}/bless").json()
    activation = activate(tenant.http, production_token(tenant), device["id"]).json()

    assert blessing["application_firmware"]["id"] == factory_release["id"]
    assert activation["configuration"]["firmware"]["id"] == application_release["id"]


# -- claim polling -------------------------------------------------------------------------------


def test_polling_needs_only_the_read_scope_and_sees_only_ones_own_tokens(
    tenant: Tenant, make_tenant: Any
) -> None:
    token = production_token(tenant)
    reader = keyed(tenant, "read")

    assert reader.get(f"{API}/enrollment-tokens/{token['token_id']}").json()["status"] == "pending"
    assert_problem(make_tenant().get(f"{API}/enrollment-tokens/{token['token_id']}"), 404)
    assert_problem(tenant.sub_tenant().get(f"{API}/enrollment-tokens/{token['token_id']}"), 404)
    assert_problem(tenant.get(f"{API}/enrollment-tokens/{'0' * 64}"), 404)
    not_hex = assert_problem(tenant.get(f"{API}/enrollment-tokens/nothex"), 404)
    assert "nothex" not in not_hex["detail"]
