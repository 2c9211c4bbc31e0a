"""MQTT passwords: issued once (lsm_), rotated, cleared on revocation, per tenant, by scope."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from lineside.bootstrap import Application
from lineside.domain.errors import Unauthenticated
from lineside.services.mqtt_access import MqttCredential, MqttIdentity, authenticate_connection
from tests.support.api import Tenant, assert_problem, ok, unique
from tests.support.factory import API, keyed
from tests.support.webhooks import events_of


def mqtt_password(tenant: Tenant, device_id: str) -> dict[str, Any]:
    return tenant.created(f"{API}/devices/{device_id}/credentials", {"type": "mqtt_password"})


def connect(application: Application, device_id: str, password: str) -> MqttIdentity:
    return authenticate_connection(
        application.services, client_id=device_id, username=device_id, password=password
    )


def refused(application: Application, device_id: str, password: str) -> bool:
    try:
        connect(application, device_id, password)
    except Unauthenticated:
        return True
    return False


def test_an_mqtt_password_is_shown_once_and_authenticates_the_device(
    application: Application, tenant: Tenant
) -> None:
    device = tenant.device(tenant.product()["id"])

    issued = mqtt_password(tenant, device["id"])

    assert issued["type"] == "mqtt_password"
    assert issued["secret"].startswith("lsm_")
    assert issued["certificate"] is None
    identity = connect(application, device["id"], issued["secret"])
    assert (identity.credential, identity.device_id) == (MqttCredential.MQTT_PASSWORD, device["id"])
    view = ok(tenant.get(f"{API}/devices/{device['id']}"))
    assert view["mqtt_password_issued_at"] is not None
    assert issued["secret"] not in str(view)
    [event] = events_of(tenant, subject_id=device["id"], type="credentials.issued")
    assert event["data"]["type"] == "mqtt_password"
    assert issued["secret"] not in str(event)


def test_the_password_and_the_device_token_both_work_independently(
    application: Application, tenant: Tenant
) -> None:
    device = tenant.device(tenant.product()["id"])
    token = tenant.token(device["id"])
    password = mqtt_password(tenant, device["id"])["secret"]

    assert connect(application, device["id"], token).credential is MqttCredential.TOKEN
    assert connect(application, device["id"], password).credential is MqttCredential.MQTT_PASSWORD


def test_a_new_password_replaces_the_old_one_at_once(application: Application, tenant: Tenant) -> None:
    device = tenant.device(tenant.product()["id"])
    old = mqtt_password(tenant, device["id"])["secret"]

    new = mqtt_password(tenant, device["id"])["secret"]

    assert new != old
    assert refused(application, device["id"], old)
    assert connect(application, device["id"], new).device_id == device["id"]
    [rotated] = events_of(tenant, subject_id=device["id"], type="credentials.rotated")
    assert rotated["data"]["type"] == "mqtt_password"


def test_a_password_only_authenticates_its_own_device_id(application: Application, tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    mine, other = tenant.device(product_id), tenant.device(product_id)
    password = mqtt_password(tenant, mine["id"])["secret"]

    assert refused(application, other["id"], password)


def test_revoking_the_device_clears_its_password(application: Application, tenant: Tenant) -> None:
    device = tenant.device(tenant.product()["id"])
    password = mqtt_password(tenant, device["id"])["secret"]

    ok(tenant.post(f"{API}/devices/{device['id']}/revoke"))

    assert refused(application, device["id"], password)
    with application.services.unit_of_work(write=False) as uow:
        assert uow.devices.find_by_secret_hashes([], [application.services.hasher.hash(password)]) == ({}, {})
    assert_problem(
        tenant.post(f"{API}/devices/{device['id']}/credentials", json={"type": "mqtt_password"}), 409
    )


def test_another_organization_cannot_issue_a_password_for_the_device(
    tenant: Tenant, make_tenant: Any
) -> None:
    device = tenant.device(tenant.product()["id"])
    stranger = make_tenant()

    assert_problem(
        stranger.post(f"{API}/devices/{device['id']}/credentials", json={"type": "mqtt_password"}), 404
    )
    assert ok(tenant.get(f"{API}/devices/{device['id']}"))["mqtt_password_issued_at"] is None


def test_a_read_only_key_cannot_issue_a_password(tenant: Tenant) -> None:
    device = tenant.device(tenant.product()["id"])
    reader = keyed(tenant, "read")

    assert_problem(
        reader.post(f"{API}/devices/{device['id']}/credentials", json={"type": "mqtt_password"}), 403
    )


def test_a_csr_goes_only_with_a_certificate(tenant: Tenant) -> None:
    device = tenant.device(tenant.product()["id"])

    response = tenant.post(
        f"{API}/devices/{device['id']}/credentials", json={"type": "mqtt_password", "csr": "-----BEGIN"}
    )

    assert_problem(response, 422)


@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
def test_a_batch_can_be_issued_mqtt_passwords(application: Application, tenant: Tenant, accept: str) -> None:
    product_id = tenant.product()["id"]
    body = {
        "product_id": product_id,
        "serial_numbers": [unique("SN"), unique("SN")],
        "issue_credentials": "mqtt_password",
    }

    response = tenant.post(f"{API}/device-batches", json=body, headers={"Accept": accept})

    assert response.status_code == 201, response.text
    if accept == "text/csv":
        rows = list(csv.DictReader(io.StringIO(response.text)))
        passwords = {row["device_id"]: row["mqtt_password"] for row in rows}
    else:
        passwords = {d["id"]: d["credential"]["secret"] for d in response.json()["devices"]}
    assert len(passwords) == 2
    for device_id, password in passwords.items():
        assert password.startswith("lsm_")
        assert connect(application, device_id, password).credential is MqttCredential.MQTT_PASSWORD
        assert ok(tenant.get(f"{API}/devices/{device_id}"))["mqtt_password_issued_at"] is not None
