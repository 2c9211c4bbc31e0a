"""The API and CLI of MQTT provisioning: a product's key and secret (shown once, rotated,
disabled), re-opening a provisioned device, tenant isolation and scopes."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from lineside.bootstrap import Application
from lineside.domain.events import EventType
from lineside.domain.webhooks import KNOWN_EVENT_TYPES
from lineside.settings import Settings
from tests.integration.test_cli import lineside
from tests.integration.test_cli import succeeded as succeeded_cli
from tests.support.api import Tenant, assert_problem, ok, unique
from tests.support.provisioning import (
    API,
    ask,
    connects,
    event_types,
    failed,
    product_of,
    provisioned_product,
    succeeded,
)


def reprovision_refusal(tenant: Tenant, device_id: str) -> str:
    detail: str = assert_problem(tenant.post(f"{API}/devices/{device_id}/reprovision"), 409)["detail"]
    return detail


# -- re-provisioning --------------------------------------------------------------------------


def test_reprovisioning_revokes_the_old_credentials_and_opens_the_device_once_more(
    application: Application, tenant: Tenant
) -> None:
    settings = provisioned_product(tenant, "predefined")
    device = tenant.device(settings["product_id"])
    first = succeeded(ask(application, settings, deviceName=device["serial_number"]))

    reopened = ok(tenant.post(f"{API}/devices/{device['id']}/reprovision"))

    assert reopened["provisioned_at"] is None
    assert not connects(application, device["id"], first["credentialsValue"])
    second = succeeded(
        ask(application, settings, deviceName=device["serial_number"], credentialsType="MQTT_BASIC")
    )
    assert connects(application, device["id"], second["credentialsValue"]["password"])
    assert "already provisioned" in failed(ask(application, settings, deviceName=device["serial_number"]))
    assert {"device.reprovisioning_allowed", "credentials.revoked"} <= set(event_types(tenant, device["id"]))


def test_reprovisioning_also_stops_the_mqtt_password(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant, "predefined")
    device = tenant.device(settings["product_id"])
    answer = succeeded(
        ask(application, settings, deviceName=device["serial_number"], credentialsType="MQTT_BASIC")
    )

    ok(tenant.post(f"{API}/devices/{device['id']}/reprovision"))

    assert not connects(application, device["id"], answer["credentialsValue"]["password"])


def test_a_device_never_provisioned_cannot_be_reprovisioned(tenant: Tenant) -> None:
    product = tenant.product()
    device = tenant.device(product["id"])

    assert "not been provisioned" in reprovision_refusal(tenant, device["id"])


def test_a_revoked_device_cannot_be_reprovisioned(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant, "predefined")
    device = tenant.device(settings["product_id"])
    succeeded(ask(application, settings, deviceName=device["serial_number"]))
    ok(tenant.post(f"{API}/devices/{device['id']}/revoke"))

    assert "revoked" in reprovision_refusal(tenant, device["id"])


# -- the API ----------------------------------------------------------------------------------


def test_the_secret_is_shown_once(tenant: Tenant) -> None:
    product = tenant.product()

    created = tenant.created(f"{API}/products/{product['id']}/provisioning", {})
    shown = ok(tenant.get(f"{API}/products/{product['id']}/provisioning"))

    assert created["provision_secret"].startswith("lsp_")
    assert created["provision_key"].startswith("lpk_")
    assert created["enabled"] is True
    assert created["policy"] == "create"
    assert shown == {key: value for key, value in created.items() if key != "provision_secret"}
    audit = ok(tenant.get(f"{API}/audit-events", params={"subject_id": product["id"]}))["items"]
    assert "product.provisioning_configured" in [item["type"] for item in audit]
    assert created["provision_secret"] not in json.dumps(audit)


def test_a_product_never_configured_shows_provisioning_disabled(tenant: Tenant) -> None:
    product = tenant.product()

    shown = ok(tenant.get(f"{API}/products/{product['id']}/provisioning"))

    assert shown["enabled"] is False
    assert shown["provision_key"] is None


def test_another_organization_sees_none_of_it(make_tenant: Any, tenant: Tenant) -> None:
    settings = provisioned_product(tenant, "predefined")
    device = tenant.device(settings["product_id"])
    stranger = make_tenant()
    path = f"{API}/products/{settings['product_id']}/provisioning"

    assert_problem(stranger.post(path, json={}), 404)
    assert_problem(stranger.get(path), 404)
    assert_problem(stranger.delete(path), 404)
    assert_problem(stranger.post(f"{API}/devices/{device['id']}/reprovision"), 404)
    assert ok(tenant.get(path))["enabled"] is True


def test_scopes(tenant: Tenant) -> None:
    settings = provisioned_product(tenant)
    path = f"{API}/products/{settings['product_id']}/provisioning"
    device = tenant.device(settings["product_id"])

    def key_with(scope: str) -> Tenant:
        created = tenant.created(f"{API}/api-keys", {"name": unique("key"), "scopes": [scope]})
        return Tenant(tenant.http, tenant.organization_id, created["key"])

    reader, factory = key_with("read"), key_with("factory")
    assert_problem(reader.post(path, json={}), 403)
    assert_problem(reader.delete(path), 403)
    assert_problem(reader.post(f"{API}/devices/{device['id']}/reprovision"), 403)
    assert ok(reader.get(path))["enabled"] is True
    assert factory.created(path, {})["provision_secret"].startswith("lsp_")
    assert factory.delete(path).status_code == 204


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_ids_are_404_problems(tenant: Tenant, bad_id: str) -> None:
    assert_problem(tenant.post(f"{API}/products/{bad_id}/provisioning", json={}), 404)
    assert_problem(tenant.get(f"{API}/products/{bad_id}/provisioning"), 404)
    assert_problem(tenant.delete(f"{API}/products/{bad_id}/provisioning"), 404)
    assert_problem(tenant.post(f"{API}/devices/{bad_id}/reprovision"), 404)


def test_unauthenticated_calls_are_401(tenant: Tenant) -> None:
    product = tenant.product()

    assert_problem(tenant.http.post(f"{API}/products/{product['id']}/provisioning"), 401)


def test_provisioning_events_can_be_subscribed_to() -> None:
    assert EventType.DEVICE_PROVISIONED in KNOWN_EVENT_TYPES
    assert EventType.DEVICE_REPROVISIONING_ALLOWED in KNOWN_EVENT_TYPES


def test_the_command_line_enables_shows_rotates_and_disables(
    application: Application, settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    product = product_of(tenant, "predefined")
    device = tenant.device(product["id"])

    def provisioning(*args: str) -> str:
        return succeeded_cli(lineside(settings, "provisioning", *args, cwd=tmp_path))

    enabled = json.loads(provisioning("enable", product["id"]))
    request = {"provision_key": enabled["provision_key"], "provision_secret": enabled["provision_secret"]}
    succeeded(ask(application, request, deviceName=device["serial_number"]))
    shown = json.loads(provisioning("show", product["id"]))
    reopened = provisioning("reprovision", device["id"])
    disabled = provisioning("disable", product["id"])

    assert enabled["provision_secret"].startswith("lsp_")
    assert enabled["policy"] == "predefined"
    assert shown == {
        "product_id": product["id"],
        "provision_key": enabled["provision_key"],
        "enabled": True,
        "policy": "predefined",
    }
    assert "may provision once more" in reopened
    assert "disabled" in disabled
    assert "wrong provision secret" in failed(ask(application, request, deviceName=device["serial_number"]))


def test_the_command_line_says_what_is_wrong_in_one_line(settings: Settings, tmp_path: Path) -> None:
    result = lineside(settings, "provisioning", "reprovision", "not-a-device", cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "No device with id 'not-a-device'" in result.stderr


def test_the_command_line_writes_the_key_and_secret_to_a_private_file_that_provisions(
    application: Application, settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    product = product_of(tenant, "predefined")
    device = tenant.device(product["id"])
    out = tmp_path / "provisioning.json"

    printed = succeeded_cli(
        lineside(settings, "provisioning", "enable", product["id"], "--out", str(out), cwd=tmp_path)
    )
    again = lineside(settings, "provisioning", "enable", product["id"], "--out", str(out), cwd=tmp_path)

    written = json.loads(out.read_text())
    assert written["provision_secret"] not in printed
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert again.returncode == 2 and "exists" in again.stderr  # nothing rotated behind the file
    request = {"provision_key": written["provision_key"], "provision_secret": written["provision_secret"]}
    succeeded(ask(application, request, deviceName=device["serial_number"]))
