"""Electric Imp's Connected Factory over real HTTP, against a ``lineside serve`` process:
the line (enroll, test, bless), activation with a production token in the field and in the
factory, the claim a fixture polls for, and every refusal on the way."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from lineside.bootstrap import Application
from tests.support.api import Tenant, assert_problem, unique
from tests.support.factory import (
    API,
    activate,
    bless,
    blessed,
    enroll,
    enrolled,
    expired_production_token,
    factory_token,
    hardware_id,
    keyed,
    line_unit,
    poll_claim,
    production_token,
    record_run,
    v5_enroll,
)
from tests.support.firmware import deployed, group, release, set_after


@dataclass(frozen=True)
class Factory:
    """A manufacturer's setup: an admin, a factory-scoped key for the line, a product with a
    factory and a production group, each with firmware deployed."""

    admin: Tenant
    line: Tenant  # the fixtures' factory-scoped key
    product_id: str
    production_group_id: str
    factory_release_id: str
    application_release_id: str
    enrollment_token: str


def set_up_factory(tenant: Tenant, application_firmware_after: str = "blessing") -> Factory:
    product_id = tenant.product()["id"]
    factory_group, production = group(tenant, product_id, "factory"), group(tenant, product_id, "production")
    factory_release, application_release = release(tenant, product_id, "factory"), release(tenant, product_id)
    deployed(tenant, factory_group["id"], factory_release["id"])
    deployed(tenant, production["id"], application_release["id"])
    assert set_after(tenant, production["id"], application_firmware_after).status_code == 200
    line = keyed(tenant, "factory")
    return Factory(
        admin=tenant,
        line=line,
        product_id=product_id,
        production_group_id=production["id"],
        factory_release_id=factory_release["id"],
        application_release_id=application_release["id"],
        enrollment_token=factory_token(line, product_id, name="Line 1"),
    )


def device_firmware(http: httpx.Client, device_token: str) -> dict[str, Any]:
    response = http.get("/device/v1/firmware", headers={"Authorization": f"Bearer {device_token}"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def event_types(tenant: Tenant, device_id: str) -> list[str]:
    items = tenant.get(f"{API}/audit-events", params={"subject_id": device_id}).json()["items"]
    return [item["type"] for item in items]


def test_a_dut_becomes_a_production_device_and_activates_with_a_production_token(tenant: Tenant) -> None:
    factory = set_up_factory(tenant)
    line, http = factory.line, tenant.http

    # In the factory: the DUT enrolls with the fixture's token and is told its factory firmware.
    dut = enrolled(http, factory.enrollment_token, "02:0A:0B:0C:0D:0E")
    device_id = dut["device"]["id"]
    assert dut["device"]["state"] == "under_test"
    assert dut["factory_firmware"]["id"] == factory.factory_release_id
    run = record_run(line, device_id, True, measurements={"rssi": -52}, fixture="impFactory-7")
    assert run["passed"] is True
    blessing = blessed(line, device_id)
    assert (blessing["result"], blessing["led"]) == ("blessed", "green")
    assert blessing["device"]["group_id"] == factory.production_group_id
    assert blessing["application_firmware"]["id"] == factory.application_release_id

    # In the field: an app fetches a production token exactly as the BlinkUp SDK does.
    fetched = v5_enroll(http, line.api_key)
    assert fetched.status_code == 201, fetched.text
    token = fetched.json()
    activation = activate(http, token, device_id)
    assert activation.status_code == 200, activation.text
    answer = activation.json()
    assert answer["device"]["state"] == "activated"
    assert answer["configuration"]["firmware"]["id"] == factory.application_release_id

    # The fixture (or app) that handed the token over learns which device claimed it.
    claim = poll_claim(line, token["token_id"])
    assert (claim["status"], claim["device_id"]) == ("claimed", device_id)
    assert claim["device_url"].endswith(f"/api/v1/devices/{device_id}")
    device_token = answer["credentials"]["token"]
    me = http.get("/device/v1/me", headers={"Authorization": f"Bearer {device_token}"}).json()
    assert (me["id"], me["state"]) == (device_id, "activated")
    assert device_firmware(http, device_token)["release"]["id"] == factory.application_release_id
    assert event_types(tenant, device_id) == [
        "device.defined",
        "device.enrolled",
        "device.tested",
        "device.blessed",
        "device.activated",
        "credentials.issued",
    ]


def test_factory_activation_fetches_the_token_before_blessing_and_activates_on_next_power_up(
    tenant: Tenant,
) -> None:
    # Factory activation needs the production group to load application firmware only after
    # activation, so blessing does not impose it (Electric Imp's guide says the same).
    factory = set_up_factory(tenant, application_firmware_after="activation")
    line, http = factory.line, tenant.http
    device_id = enrolled(http, factory.enrollment_token)["device"]["id"]
    record_run(line, device_id, True)

    # The DUT's agent fetches the plan id and token id just before blessing...
    token = v5_enroll(http, line.api_key).json()
    assert poll_claim(line, token["token_id"])["status"] == "pending"
    blessing = blessed(line, device_id)
    # ...the blessing callback applies them, and the unit keeps its factory firmware for now.
    assert blessing["led"] == "green"
    assert blessing["application_firmware"]["id"] == factory.factory_release_id

    # Power-cycled, the unit connects and activates at once with the tokens it stored.
    activation = activate(http, token, device_id)
    assert activation.status_code == 200, activation.text
    assert activation.json()["configuration"]["firmware"]["id"] == factory.application_release_id
    claim = poll_claim(line, token["token_id"])
    assert (claim["status"], claim["device_id"]) == ("claimed", device_id)


def test_a_failed_dut_lights_red_and_passes_when_tested_again(tenant: Tenant) -> None:
    factory = set_up_factory(tenant)
    line, http = factory.line, tenant.http
    hardware = hardware_id()
    device_id = enrolled(http, factory.enrollment_token, hardware)["device"]["id"]
    record_run(line, device_id, False, measurements={"rssi": -95})

    failed = blessed(line, device_id)

    assert (failed["result"], failed["led"], failed["device"]["state"]) == ("failed", "red", "failed")
    assert_problem(activate(http, production_token(line), device_id), 409)
    again = enroll(http, factory.enrollment_token, hardware)
    assert again.status_code == 201 and again.json()["device"]["state"] == "under_test"
    record_run(line, device_id, True)
    assert blessed(line, device_id)["led"] == "green"
    assert [run["passed"] for run in line.get(f"{API}/devices/{device_id}/test-runs").json()] == [True, False]


def test_activation_refuses_an_unblessed_device_an_expired_token_and_a_used_one(
    application: Application, tenant: Tenant
) -> None:
    factory = set_up_factory(tenant)
    line, http = factory.line, tenant.http
    under_test = enrolled(http, factory.enrollment_token)["device"]["id"]
    first = line_unit(line, factory.enrollment_token)["device"]["id"]
    second = line_unit(line, factory.enrollment_token)["device"]["id"]

    unblessed = assert_problem(activate(http, v5_enroll(http, line.api_key).json(), under_test), 409)
    assert "Only blessed devices activate" in unblessed["detail"]

    expired = expired_production_token(application, tenant.organization_id)
    assert "expired" in assert_problem(activate(http, expired, first), 410)["detail"]
    assert poll_claim(line, expired["token_id"])["status"] == "expired"

    token = v5_enroll(http, line.api_key).json()
    assert activate(http, token, first).status_code == 200
    assert "already been used" in assert_problem(activate(http, token, second), 409)["detail"]
    assert line.get(f"{API}/devices/{second}").json()["state"] == "blessed"


def test_the_line_refuses_a_read_only_key_a_revoked_token_and_unknown_hardware_of_a_predefined_product(
    tenant: Tenant,
) -> None:
    factory = set_up_factory(tenant)
    reader, http = keyed(tenant, "read"), tenant.http
    device_id = enrolled(http, factory.enrollment_token)["device"]["id"]

    assert_problem(reader.post(f"{API}/devices/{device_id}/test-runs", json={"passed": True}), 403)
    assert_problem(bless(reader, device_id), 403)
    assert_problem(
        reader.post(f"{API}/factory/enrollment-tokens", json={"product_id": factory.product_id}), 403
    )
    assert_problem(v5_enroll(http, reader.api_key), 403)
    assert_problem(reader.post(f"{API}/enrollment-tokens", json={}), 403)

    tokens = factory.line.get(f"{API}/factory/enrollment-tokens").json()
    revoked = factory.line.post(f"{API}/factory/enrollment-tokens/{tokens[0]['id']}/revoke")
    assert revoked.status_code == 200
    assert_problem(enroll(http, factory.enrollment_token, hardware_id()), 401)

    predefined = tenant.created(f"{API}/products", {"name": unique("kit"), "enrollment_policy": "predefined"})
    predefined_token = factory_token(factory.line, predefined["id"])
    refused = assert_problem(enroll(http, predefined_token, hardware_id()), 403)
    assert "defined beforehand" in refused["detail"]
    known = tenant.device(predefined["id"], hardware_id="02:fe:ed:00:00:01")
    admitted = enroll(http, predefined_token, "02:FE:ED:00:00:01")
    assert admitted.status_code == 201 and admitted.json()["device"]["id"] == known["id"]


def test_of_concurrent_activations_with_one_token_exactly_one_succeeds(tenant: Tenant) -> None:
    factory = set_up_factory(tenant)
    devices = [line_unit(factory.line, factory.enrollment_token)["device"]["id"] for _ in range(8)]
    token = v5_enroll(tenant.http, factory.line.api_key).json()

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        answers = list(pool.map(lambda device_id: activate(tenant.http, token, device_id), devices))

    assert sorted(answer.status_code for answer in answers) == [200] + [409] * (len(devices) - 1)
    claim = poll_claim(factory.line, token["token_id"])
    winner = next(answer.json()["device"]["id"] for answer in answers if answer.status_code == 200)
    assert (claim["status"], claim["device_id"]) == ("claimed", winner)


def test_another_organization_reaches_none_of_the_line(tenant: Tenant, make_tenant: Any) -> None:
    factory = set_up_factory(tenant)
    stranger = make_tenant()
    device_id = enrolled(tenant.http, factory.enrollment_token)["device"]["id"]
    token = production_token(factory.line)

    assert_problem(stranger.post(f"{API}/devices/{device_id}/test-runs", json={"passed": True}), 404)
    assert_problem(stranger.get(f"{API}/devices/{device_id}/test-runs"), 404)
    assert_problem(bless(stranger, device_id), 404)
    assert_problem(stranger.get(f"{API}/enrollment-tokens/{token['token_id']}"), 404)
    assert_problem(stranger.post(f"{API}/enrollment-tokens", json={"product_id": factory.product_id}), 404)
    assert_problem(activate(tenant.http, production_token(stranger), device_id), 404)
    assert stranger.get(f"{API}/factory/enrollment-tokens").json() == []
