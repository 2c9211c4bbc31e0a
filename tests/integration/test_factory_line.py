"""The factory line: factory enrollment tokens, DUT enrollment under each product policy,
test runs, and blessing (green into production) or failing (red, and retest)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lineside.bootstrap import Application
from lineside.services.quotas import set_device_quota
from tests.support.api import Tenant, assert_problem, unique
from tests.support.factory import (
    API,
    bless,
    blessed,
    enroll,
    enrolled,
    factory_token,
    hardware_id,
    keyed,
    line_unit,
    record_run,
)
from tests.support.firmware import deployed, group, release


def events_of(tenant: Tenant, subject_id: str) -> list[dict[str, Any]]:
    response = tenant.get(f"{API}/audit-events", params={"subject_id": subject_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def stored_factory_token_id(application: Application, device_id: str) -> str | None:
    with application.services.unit_of_work(write=False) as uow:
        device = uow.devices.get(device_id, within="/")
    assert device is not None
    return device.factory_token_id


# -- factory enrollment tokens ----------------------------------------------------------------


def test_a_factory_token_is_shown_once_and_listed_without_its_secret(tenant: Tenant) -> None:
    product = tenant.product()

    created = tenant.created(
        f"{API}/factory/enrollment-tokens", {"product_id": product["id"], "name": "Line 3"}
    )
    listed = tenant.get(f"{API}/factory/enrollment-tokens").json()

    assert created["token"].startswith("lsf_")
    assert created["token"].startswith(created["prefix"])
    assert (created["product_id"], created["name"], created["revoked_at"]) == (product["id"], "Line 3", None)
    assert [token["id"] for token in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert created["token"] not in str(listed)
    events = events_of(tenant, created["id"])
    assert [event["type"] for event in events] == ["factory_token.created"]
    assert created["token"] not in str(events)


def test_a_factory_token_needs_the_factory_scope_and_a_product_of_ones_own(
    tenant: Tenant, make_tenant: Any
) -> None:
    product = tenant.product()
    reader = keyed(tenant, "read")
    stranger = make_tenant()

    assert_problem(reader.post(f"{API}/factory/enrollment-tokens", json={"product_id": product["id"]}), 403)
    assert_problem(stranger.post(f"{API}/factory/enrollment-tokens", json={"product_id": product["id"]}), 404)
    factory = keyed(tenant, "factory")
    assert factory.created(f"{API}/factory/enrollment-tokens", {"product_id": product["id"]})["name"]


def test_a_revoked_factory_token_enrolls_nothing_more(tenant: Tenant) -> None:
    product = tenant.product()
    created = tenant.created(f"{API}/factory/enrollment-tokens", {"product_id": product["id"]})
    enrolled(tenant.http, created["token"])

    revoked = tenant.post(f"{API}/factory/enrollment-tokens/{created['id']}/revoke")
    again = tenant.post(f"{API}/factory/enrollment-tokens/{created['id']}/revoke")

    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    refused = assert_problem(enroll(tenant.http, created["token"], hardware_id()), 401)
    assert "revoked" in refused["detail"]
    assert [event["type"] for event in events_of(tenant, created["id"])] == [
        "factory_token.created",
        "factory_token.revoked",
    ]


@pytest.mark.parametrize("token", ["lsf_not-a-real-token", "lsk_wrong-kind-of-secret", ""])
def test_an_unknown_factory_token_is_refused(tenant: Tenant, token: str) -> None:
    assert_problem(enroll(tenant.http, token, hardware_id()), 401)


# -- enrollment ---------------------------------------------------------------------------------


def test_an_unknown_unit_becomes_a_device_under_test_in_the_factory_group(tenant: Tenant) -> None:
    product = tenant.product()
    factory_group = group(tenant, product["id"], "factory")
    token = factory_token(tenant, product["id"])

    response = enroll(tenant.http, token, "02:AA:BB:CC:DD:EE")

    assert response.status_code == 201, response.text
    device = response.json()["device"]
    assert device["state"] == "under_test"
    assert device["hardware_id"] == "02:aa:bb:cc:dd:ee"
    assert device["serial_number"] == "02:aa:bb:cc:dd:ee"
    assert device["group_id"] == factory_group["id"]
    assert device["lifecycle"]["under_test_at"] is not None
    assert response.json()["factory_firmware"] is None
    events = events_of(tenant, device["id"])
    assert [event["type"] for event in events] == ["device.defined", "device.enrolled"]
    assert token not in str(events)


def test_a_unit_enrolled_again_while_under_test_answers_the_same_device_unchanged(tenant: Tenant) -> None:
    token = factory_token(tenant, tenant.product()["id"])
    hardware = hardware_id()
    first = enrolled(tenant.http, token, hardware, serial_number="SN-RETRY-1")

    retry = enroll(tenant.http, token, hardware.upper())

    assert retry.status_code == 200, retry.text
    assert retry.json()["device"] == first["device"]
    assert len(events_of(tenant, first["device"]["id"])) == 2


def test_a_given_serial_number_names_the_new_device(tenant: Tenant) -> None:
    token = factory_token(tenant, tenant.product()["id"])

    device = enrolled(tenant.http, token, serial_number="SN-0042")["device"]

    assert device["serial_number"] == "SN-0042"


def test_a_predefined_product_admits_only_units_defined_beforehand(tenant: Tenant) -> None:
    product = tenant.created(
        f"{API}/products", {"name": unique("predefined"), "enrollment_policy": "predefined"}
    )
    assert product["enrollment_policy"] == "predefined"
    token = factory_token(tenant, product["id"])
    defined = tenant.device(product["id"], "SN-P-1", hardware_id="02:00:00:00:00:01")
    before = tenant.get(f"{API}/devices", params={"product_id": product["id"]}).json()["items"]

    refused = assert_problem(enroll(tenant.http, token, "02:00:00:00:00:02"), 403)
    admitted = enroll(tenant.http, token, "02:00:00:00:00:01")

    assert "defined beforehand" in refused["detail"]
    assert admitted.status_code == 201, admitted.text
    assert admitted.json()["device"]["id"] == defined["id"]
    assert admitted.json()["device"]["state"] == "under_test"
    after = tenant.get(f"{API}/devices", params={"product_id": product["id"]}).json()["items"]
    assert [d["id"] for d in after] == [d["id"] for d in before]


def test_a_device_defined_by_serial_alone_takes_its_hardware_id_at_enrollment(tenant: Tenant) -> None:
    product = tenant.created(
        f"{API}/products", {"name": unique("predefined"), "enrollment_policy": "predefined"}
    )
    token = factory_token(tenant, product["id"])
    defined = tenant.device(product["id"], "SN-LABEL-7")
    hardware = hardware_id()

    device = enrolled(tenant.http, token, hardware, serial_number="SN-LABEL-7")["device"]

    assert (device["id"], device["hardware_id"]) == (defined["id"], hardware)
    other = assert_problem(enroll(tenant.http, token, hardware_id(), serial_number="SN-LABEL-7"), 409)
    assert hardware in other["detail"]


def test_a_hardware_id_is_unique_within_a_product(tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    tenant.device(product_id, hardware_id="02:11:22:33:44:55")

    duplicate = tenant.post(
        f"{API}/devices",
        json={"product_id": product_id, "serial_number": "SN-2", "hardware_id": "02:11:22:33:44:55"},
    )

    assert_problem(duplicate, 409)
    assert tenant.device(tenant.product()["id"], hardware_id="02:11:22:33:44:55")["hardware_id"]


@pytest.mark.parametrize(
    "body",
    [
        {"hardware_id": ""},
        {"hardware_id": "has space"},
        {"hardware_id": "x" * 65},
        {"hardware_id": 42},
        {"hardware_id": "02:00:00:00:00:09", "colour": "red"},
        {"hardware_id": "02:00:00:00:00:09", "serial_number": " padded "},
        {"hardware_id": "02:00:00:00:00:09", "serial_number": "SN\u0000"},
        {"hardware_id": "02:00:00:\u0000"},
    ],
    ids=["empty", "space", "too long", "not a string", "unknown field", "bad serial", "NUL serial", "NUL"],
)
def test_a_bad_enrollment_is_refused_and_defines_nothing(tenant: Tenant, body: dict[str, Any]) -> None:
    product_id = tenant.product()["id"]
    token = factory_token(tenant, product_id)

    response = tenant.http.post(f"{API}/factory/duts", json={"enrollment_token": token, **body})

    assert_problem(response, 422)
    assert tenant.get(f"{API}/devices", params={"product_id": product_id}).json()["items"] == []


def test_enrollment_that_would_define_a_device_counts_against_the_quota(
    application: Application, tenant: Tenant
) -> None:
    product_id = tenant.product()["id"]
    token = factory_token(tenant, product_id)
    enrolled(tenant.http, token)
    set_device_quota(application.services, tenant.organization_id, 1)

    refused = assert_problem(enroll(tenant.http, token, hardware_id()), 403)

    assert "quota" in refused["detail"]
    assert len(tenant.get(f"{API}/devices", params={"product_id": product_id}).json()["items"]) == 1


def test_a_product_with_required_metadata_cannot_make_devices_on_the_line(tenant: Tenant) -> None:
    product_id = tenant.product([{"name": "colour", "type": "string", "required": True}])["id"]
    token = factory_token(tenant, product_id)

    refused = assert_problem(enroll(tenant.http, token, hardware_id()), 422)

    assert "colour" in refused["detail"]


def test_the_unit_is_told_the_factory_firmware_of_its_group(tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    factory_group = group(tenant, product_id, "factory")
    factory_release = release(tenant, product_id, "factory", version="f-1.0")
    deployed(tenant, factory_group["id"], factory_release["id"])

    answer = enrolled(tenant.http, factory_token(tenant, product_id))

    assert answer["factory_firmware"]["id"] == factory_release["id"]
    assert answer["factory_firmware"]["version"] == "f-1.0"
    assert answer["factory_firmware"]["url"].endswith(f"/device/v1/firmware/{factory_release['id']}/image")


# -- test runs ------------------------------------------------------------------------------


def test_test_runs_are_recorded_and_listed_newest_first(tenant: Tenant) -> None:
    token = factory_token(tenant, tenant.product()["id"])
    device = enrolled(tenant.http, token)["device"]

    first = record_run(tenant, device["id"], False, measurements={"rssi": -71}, fixture="F1", operator="Ana")
    second = record_run(tenant, device["id"], True, measurements={"rssi": -48.5, "leds": [1, 1, 1]})
    listed = tenant.get(f"{API}/devices/{device['id']}/test-runs").json()

    assert [run["id"] for run in listed] == [second["id"], first["id"]]
    assert listed[1] == first
    assert (first["passed"], first["fixture"], first["operator"]) == (False, "F1", "Ana")
    assert second["measurements"] == {"rssi": -48.5, "leds": [1, 1, 1]}
    tested_events = [e for e in events_of(tenant, device["id"]) if e["type"] == "device.tested"]
    assert [event["data"]["passed"] for event in tested_events] == [False, True]
    assert tested_events[0]["data"]["fixture"] == "F1"
    assert "rssi" not in str(tested_events)


def test_only_a_device_under_test_can_be_tested(tenant: Tenant) -> None:
    device = tenant.device(tenant.product()["id"])

    refused = tenant.post(f"{API}/devices/{device['id']}/test-runs", json={"passed": True})

    assert "under test" in assert_problem(refused, 409)["detail"]
    assert tenant.get(f"{API}/devices/{device['id']}/test-runs").json() == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"passed": "yes"},
        {"passed": True, "measurements": []},
        {"passed": True, "operator": "a\nb"},
        {"passed": True, "measurements": {"log": ["ok", "\u0000"]}},
        {"passed": True, "measurements": {"\u0000": 1}},
        {"passed": True, "measurements": {"samples": list(range(1001))}},
    ],
    ids=["no result", "string result", "list measurements", "two-line operator", "NUL", "NUL key", "huge"],
)
def test_a_bad_test_run_is_refused(tenant: Tenant, body: dict[str, Any]) -> None:
    device = enrolled(tenant.http, factory_token(tenant, tenant.product()["id"]))["device"]

    assert_problem(tenant.post(f"{API}/devices/{device['id']}/test-runs", json=body), 422)
    assert tenant.get(f"{API}/devices/{device['id']}/test-runs").json() == []


# -- blessing -------------------------------------------------------------------------------


def test_a_unit_that_passed_is_blessed_green_into_the_production_group(
    application: Application, tenant: Tenant
) -> None:
    product_id = tenant.product()["id"]
    token = factory_token(tenant, product_id)
    device = enrolled(tenant.http, token)["device"]
    run = record_run(tenant, device["id"], True)
    assert stored_factory_token_id(application, device["id"]) is not None

    blessing = blessed(tenant, device["id"])

    assert (blessing["result"], blessing["led"]) == ("blessed", "green")
    assert blessing["device"]["state"] == "blessed"
    assert blessing["application_firmware"] is None
    groups = tenant.get(f"{API}/products/{product_id}/groups").json()
    assert [(g["name"], g["kind"]) for g in groups] == [("Production", "production")]
    assert blessing["device"]["group_id"] == groups[0]["id"]
    assert stored_factory_token_id(application, device["id"]) is None
    blessed_event = events_of(tenant, device["id"])[-1]
    assert blessed_event["type"] == "device.blessed"
    assert blessed_event["data"]["test_run_id"] == run["id"]
    assert blessed_event["data"]["group_id"] == groups[0]["id"]
    assert line_unit(tenant, token)["device"]["group_id"] == groups[0]["id"]
    assert len(tenant.get(f"{API}/products/{product_id}/groups").json()) == 1


def test_blessing_joins_the_products_existing_production_group(tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    group(tenant, product_id, "development")
    production = group(tenant, product_id, "production")

    blessing = line_unit(tenant, factory_token(tenant, product_id))

    assert blessing["device"]["group_id"] == production["id"]


def test_a_production_group_is_made_even_when_another_kind_of_group_is_named_production(
    tenant: Tenant,
) -> None:
    product_id = tenant.product()["id"]
    tenant.created(f"{API}/products/{product_id}/groups", {"name": "Production", "kind": "development"})

    blessing = line_unit(tenant, factory_token(tenant, product_id))

    groups = {g["id"]: g for g in tenant.get(f"{API}/products/{product_id}/groups").json()}
    made = groups[blessing["device"]["group_id"]]
    assert made["kind"] == "production"
    assert made["name"].startswith("Production (")


def test_a_blessed_unit_is_told_its_application_firmware_when_its_group_loads_it_at_blessing(
    tenant: Tenant,
) -> None:
    product_id = tenant.product()["id"]
    production = group(tenant, product_id, "production")
    application_release = release(tenant, product_id, "application", version="a-2.0")
    deployed(tenant, production["id"], application_release["id"])

    blessing = line_unit(tenant, factory_token(tenant, product_id))

    assert blessing["application_firmware"]["id"] == application_release["id"]


def test_a_unit_that_failed_lights_red_and_can_be_enrolled_and_tested_again(tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    token = factory_token(tenant, product_id)
    hardware = hardware_id()
    device = enrolled(tenant.http, token, hardware)["device"]
    record_run(tenant, device["id"], False)

    failed = blessed(tenant, device["id"])

    assert (failed["result"], failed["led"], failed["device"]["state"]) == ("failed", "red", "failed")
    assert failed["application_firmware"] is None
    assert_problem(tenant.post(f"{API}/devices/{device['id']}/test-runs", json={"passed": True}), 409)

    again = enroll(tenant.http, token, hardware)
    assert again.status_code == 201, again.text
    assert again.json()["device"]["state"] == "under_test"
    refused = assert_problem(bless(tenant, device["id"]), 409)
    assert "record a test run first" in refused["detail"]
    record_run(tenant, device["id"], True)
    assert blessed(tenant, device["id"])["result"] == "blessed"
    types = [event["type"] for event in events_of(tenant, device["id"])]
    assert types[-4:] == ["device.failed", "device.retested", "device.tested", "device.blessed"]


def test_blessing_needs_a_test_run(tenant: Tenant) -> None:
    device = enrolled(tenant.http, factory_token(tenant, tenant.product()["id"]))["device"]

    refused = assert_problem(bless(tenant, device["id"]), 409)

    assert "record a test run first" in refused["detail"]
    assert tenant.get(f"{API}/devices/{device['id']}").json()["state"] == "under_test"


def test_blessing_is_permanent_and_happens_once(tenant: Tenant) -> None:
    token = factory_token(tenant, tenant.product()["id"])
    hardware = hardware_id()
    device = enrolled(tenant.http, token, hardware)["device"]
    record_run(tenant, device["id"], True)
    blessed(tenant, device["id"])

    twice = assert_problem(bless(tenant, device["id"]), 409)
    re_enrolled = assert_problem(enroll(tenant.http, token, hardware), 409)

    assert "already blessed" in twice["detail"]
    assert "left the factory line" in re_enrolled["detail"]
    assert_problem(tenant.post(f"{API}/devices/{device['id']}/test-runs", json={"passed": True}), 409)
    assert tenant.get(f"{API}/devices/{device['id']}").json()["state"] == "blessed"


def test_a_device_that_never_went_under_test_cannot_be_blessed(tenant: Tenant) -> None:
    device = tenant.device(tenant.product()["id"])

    assert "under test" in assert_problem(bless(tenant, device["id"]), 409)["detail"]


def test_a_bless_body_other_than_empty_is_refused(tenant: Tenant) -> None:
    device = enrolled(tenant.http, factory_token(tenant, tenant.product()["id"]))["device"]
    record_run(tenant, device["id"], True)

    assert_problem(tenant.post(f"{API}/devices/{device['id']}/bless", json={"passed": True}), 422)
    empty = tenant.post(f"{API}/devices/{device['id']}/bless")
    assert empty.status_code == 200, empty.text


@pytest.mark.parametrize("path", ["test-runs", "bless"])
def test_the_line_needs_the_factory_scope(tenant: Tenant, path: str) -> None:
    device = enrolled(tenant.http, factory_token(tenant, tenant.product()["id"]))["device"]
    reader = keyed(tenant, "read")

    refused = reader.post(
        f"{API}/devices/{device['id']}/{path}", json={"passed": True} if "test" in path else {}
    )

    assert_problem(refused, 403)
    assert reader.get(f"{API}/devices/{device['id']}/test-runs").status_code == 200


def test_concurrent_blessings_share_one_new_production_group(tenant: Tenant) -> None:
    product_id = tenant.product()["id"]
    token = factory_token(tenant, product_id)
    devices = [enrolled(tenant.http, token)["device"] for _ in range(6)]
    for device in devices:
        record_run(tenant, device["id"], True)

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        answers = list(pool.map(lambda d: bless(tenant, d["id"]), devices))

    assert [answer.status_code for answer in answers] == [200] * len(devices)
    groups = tenant.get(f"{API}/products/{product_id}/groups").json()
    assert [g["kind"] for g in groups] == ["production"]
    assert {answer.json()["device"]["group_id"] for answer in answers} == {groups[0]["id"]}


def test_concurrent_blessings_of_one_unit_bless_it_once(tenant: Tenant) -> None:
    device = enrolled(tenant.http, factory_token(tenant, tenant.product()["id"]))["device"]
    record_run(tenant, device["id"], True)

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: bless(tenant, device["id"]), range(4)))

    assert sorted(answer.status_code for answer in answers) == [200, 409, 409, 409]
    types = [event["type"] for event in events_of(tenant, device["id"])]
    assert types.count("device.blessed") == 1
