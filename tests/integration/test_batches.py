"""Batches: many devices defined at once from serial numbers, device objects or a CSV file,
optionally with credentials, all or nothing, every bad row reported."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.api import Tenant, assert_problem, unique

FIELDS: list[dict[str, Any]] = [
    {"name": "color", "type": "string", "required": True},
    {"name": "count", "type": "integer"},
    {"name": "weight", "type": "number"},
    {"name": "sealed", "type": "boolean"},
]


def post_csv(tenant: Tenant, product_id: str, text: str | bytes, **params: str) -> httpx.Response:
    return tenant.post(
        "/api/v1/device-batches",
        params={"product_id": product_id, **params},
        headers={"Content-Type": "text/csv"},
        content=text.encode() if isinstance(text, str) else text,
    )


def post_json(tenant: Tenant, body: dict[str, Any], **headers: str) -> httpx.Response:
    return tenant.post("/api/v1/device-batches", json=body, headers=headers)


def devices_of(tenant: Tenant, product_id: str, **filters: str) -> list[dict[str, Any]]:
    response = tenant.get("/api/v1/devices", params={"product_id": product_id, "limit": 1000, **filters})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def reported(problem: dict[str, Any]) -> dict[tuple[int, str], str]:
    return {(error["row"], error["column"]): error["reason"] for error in problem["errors"]}


def who_am_i(http: httpx.Client, token: str) -> httpx.Response:
    return http.get("/device/v1/me", headers={"Authorization": f"Bearer {token}"})


# -- the JSON forms -----------------------------------------------------------------------------


def test_a_list_of_serial_numbers_defines_one_device_each_in_one_batch(tenant: Tenant) -> None:
    product = tenant.product()
    response = post_json(tenant, {"product_id": product["id"], "serial_numbers": ["SN-1", "SN-2", "SN-3"]})
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["count"] == 3
    assert [d["serial_number"] for d in batch["devices"]] == ["SN-1", "SN-2", "SN-3"]
    assert all(d["credential"] is None for d in batch["devices"])
    listed = devices_of(tenant, product["id"])
    assert {d["id"] for d in listed} == {d["id"] for d in batch["devices"]}
    assert {d["batch_id"] for d in listed} == {batch["batch_id"]}
    assert {d["state"] for d in listed} == {"defined"}


def test_device_objects_carry_mac_and_metadata(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    body = {
        "product_id": product["id"],
        "devices": [
            {"serial_number": "SN-A", "mac": "00-1A-2B-3C-4D-5E", "metadata": {"color": "red", "count": 2}},
            {"serial_number": "SN-B", "metadata": {"color": "blue", "sealed": True, "weight": 1.5}},
        ],
    }
    response = post_json(tenant, body)
    assert response.status_code == 201, response.text
    by_serial = {d["serial_number"]: d for d in devices_of(tenant, product["id"])}
    assert by_serial["SN-A"]["mac"] == "00:1a:2b:3c:4d:5e"
    assert by_serial["SN-A"]["metadata"] == {"color": "red", "count": 2}
    assert by_serial["SN-B"]["mac"] is None
    assert by_serial["SN-B"]["metadata"] == {"color": "blue", "sealed": True, "weight": 1.5}


def test_a_json_batch_with_bad_rows_reports_each_and_writes_nothing(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    tenant.device(product["id"], "SN-TAKEN", metadata={"color": "red"})
    body = {
        "product_id": product["id"],
        "devices": [
            {"serial_number": "SN-1", "metadata": {"color": "red"}},
            {"serial_number": "SN-2", "metadata": {"color": "red", "count": "many"}},
            {"serial_number": "SN-3", "metadata": {}},
            {"serial_number": "SN-1", "metadata": {"color": "red"}},
            {"serial_number": "SN-TAKEN", "metadata": {"color": "red"}},
            {"serial_number": "SN-6", "metadata": {"color": "red", "shade": "dark"}},
            {"serial_number": "SN-7", "mac": "nope", "metadata": {"color": "red"}},
            {"serial_number": "SN-8", "mac": "nope", "metadata": {"color": "red"}},
        ],
    }
    problem = assert_problem(post_json(tenant, body), 422)
    assert set(reported(problem)) == {
        (2, "count"),
        (3, "color"),
        (4, "serial_number"),
        (5, "serial_number"),
        (6, "shade"),
        (7, "mac"),
        (8, "mac"),
    }
    assert [d["serial_number"] for d in devices_of(tenant, product["id"])] == ["SN-TAKEN"]


def test_serial_numbers_repeated_or_already_defined_reject_the_whole_batch(tenant: Tenant) -> None:
    product = tenant.product()
    tenant.device(product["id"], "SN-OLD")
    body = {"product_id": product["id"], "serial_numbers": ["SN-NEW", "SN-OLD", "SN-X", "SN-X", " SN-Y"]}
    problem = assert_problem(post_json(tenant, body), 422)
    errors = reported(problem)
    assert set(errors) == {(2, "serial_number"), (4, "serial_number"), (5, "serial_number")}
    assert "already defined" in errors[(2, "serial_number")]
    assert "repeats row 3" in errors[(4, "serial_number")]
    assert [d["serial_number"] for d in devices_of(tenant, product["id"])] == ["SN-OLD"]


def test_an_empty_batch_is_refused(tenant: Tenant) -> None:
    product = tenant.product()
    assert_problem(post_json(tenant, {"product_id": product["id"], "serial_numbers": []}), 422)
    assert_problem(post_json(tenant, {"product_id": product["id"], "devices": []}), 422)
    assert devices_of(tenant, product["id"]) == []


# -- CSV ----------------------------------------------------------------------------------------


def test_a_csv_defines_devices_with_mac_and_typed_metadata(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    text = (
        "serial_number,mac,color,count,weight,sealed\n"
        "SN-1,AA:BB:CC:DD:EE:FF,red,3,2.5,yes\n"
        "SN-2,,blue,,,false\n"
        'SN-3,aabbccddee00,"navy, dark",-1,1e3,TRUE\n'
    )
    response = post_csv(tenant, product["id"], text)
    assert response.status_code == 201, response.text
    assert response.json()["count"] == 3
    by_serial = {d["serial_number"]: d for d in devices_of(tenant, product["id"])}
    assert by_serial["SN-1"]["mac"] == "aa:bb:cc:dd:ee:ff"
    assert by_serial["SN-1"]["metadata"] == {"color": "red", "count": 3, "weight": 2.5, "sealed": True}
    assert by_serial["SN-2"]["mac"] is None
    assert by_serial["SN-2"]["metadata"] == {"color": "blue", "sealed": False}
    assert by_serial["SN-3"]["mac"] == "aa:bb:cc:dd:ee:00"
    assert by_serial["SN-3"]["metadata"] == {
        "color": "navy, dark",
        "count": -1,
        "weight": 1000.0,
        "sealed": True,
    }


def test_csv_columns_may_come_in_any_order_and_optional_ones_may_be_left_out(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    response = post_csv(tenant, product["id"], "color,serial_number\nred,SN-1\n")
    assert response.status_code == 201, response.text
    assert devices_of(tenant, product["id"])[0]["metadata"] == {"color": "red"}


def test_a_csv_with_several_bad_rows_reports_every_one_and_writes_nothing(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    tenant.device(product["id"], "SN-TAKEN", metadata={"color": "red"})
    text = (
        "serial_number,mac,color,count,weight,sealed\n"  # row 1
        "SN-1,,red,1,1.0,true\n"  # row 2: fine
        "SN-2,,red,abc,1.0,true\n"  # row 3: count is not an integer
        "SN-3,,,2,1.0,true\n"  # row 4: color is required
        "SN-1,,blue,3,1.0,true\n"  # row 5: repeats row 2
        "SN-TAKEN,,red,4,1.0,true\n"  # row 6: already defined
        "SN-6,,red,5\n"  # row 7: too few cells
        "SN-7,zz:zz:zz:zz:zz:zz,red,6,1.0,true\n"  # row 8: bad mac
        "SN-8,,red,7,heavy,maybe\n"  # row 9: weight and sealed
        "SN-9,,red,1.5,NaN,true\n"  # row 10: count is a fraction, weight is NaN
    )
    problem = assert_problem(post_csv(tenant, product["id"], text), 422)
    errors = reported(problem)
    assert set(errors) == {
        (3, "count"),
        (4, "color"),
        (5, "serial_number"),
        (6, "serial_number"),
        (7, ""),
        (8, "mac"),
        (9, "weight"),
        (9, "sealed"),
        (10, "count"),
        (10, "weight"),
    }
    assert "integer" in errors[(3, "count")]
    assert "required" in errors[(4, "color")]
    assert "repeats row 2" in errors[(5, "serial_number")]
    assert "already defined" in errors[(6, "serial_number")]
    assert "cells" in errors[(7, "")]
    assert "MAC" in errors[(8, "mac")]
    assert all(reason for reason in errors.values())
    assert "10 problems" in problem["detail"]
    assert [d["serial_number"] for d in devices_of(tenant, product["id"])] == ["SN-TAKEN"]


def test_a_csv_header_naming_an_unknown_column_is_refused_on_row_one(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    problem = assert_problem(post_csv(tenant, product["id"], "serial_number,colour\nSN-1,red\n"), 422)
    assert reported(problem).keys() == {(1, "colour")}
    assert devices_of(tenant, product["id"]) == []


def test_csv_headers_are_case_sensitive(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    problem = assert_problem(post_csv(tenant, product["id"], "Serial_Number,Color\nSN-1,red\n"), 422)
    errors = reported(problem)
    assert {(1, "Serial_Number"), (1, "Color"), (1, "serial_number")} <= errors.keys()
    assert "case-sensitive" in errors[(1, "Serial_Number")]
    assert devices_of(tenant, product["id"]) == []


def test_a_csv_header_naming_a_column_twice_is_refused(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    problem = assert_problem(
        post_csv(tenant, product["id"], "serial_number,color,color\nSN-1,red,blue\n"), 422
    )
    assert (1, "color") in reported(problem)
    assert devices_of(tenant, product["id"]) == []


def test_a_csv_without_a_serial_number_column_is_refused(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    problem = assert_problem(post_csv(tenant, product["id"], "color\nred\n"), 422)
    assert (1, "serial_number") in reported(problem)


def test_a_byte_order_mark_before_the_header_is_accepted(tenant: Tenant) -> None:
    product = tenant.product()
    response = post_csv(tenant, product["id"], "\ufeffserial_number\r\nSN-1\r\nSN-2\r\n".encode())
    assert response.status_code == 201, response.text
    assert sorted(d["serial_number"] for d in devices_of(tenant, product["id"])) == ["SN-1", "SN-2"]


def test_blank_lines_at_the_end_of_a_csv_are_ignored(tenant: Tenant) -> None:
    product = tenant.product()
    response = post_csv(tenant, product["id"], "serial_number,mac\nSN-1,\nSN-2,\n\n,\n  \n")
    assert response.status_code == 201, response.text
    assert response.json()["count"] == 2


def test_a_csv_that_is_not_utf8_is_refused(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    body = assert_problem(
        post_csv(tenant, product["id"], "serial_number,color\nSN-1,caf\xe9\n".encode("latin-1")), 422
    )
    assert "UTF-8" in body["detail"]
    assert devices_of(tenant, product["id"]) == []


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty body"),
        pytest.param("serial_number\n", id="header only"),
        pytest.param("serial_number\n\n\n", id="header and blank lines"),
        pytest.param("\n", id="blank line"),
    ],
)
def test_a_csv_without_devices_is_refused(tenant: Tenant, text: str) -> None:
    product = tenant.product()
    assert_problem(post_csv(tenant, product["id"], text), 422)
    assert devices_of(tenant, product["id"]) == []


def test_a_csv_with_an_unterminated_quote_is_refused(tenant: Tenant) -> None:
    product = tenant.product(FIELDS)
    assert_problem(post_csv(tenant, product["id"], 'serial_number,color\nSN-1,"red\n'), 422)
    assert devices_of(tenant, product["id"]) == []


def test_a_csv_batch_needs_a_product_it_can_see(tenant: Tenant, make_tenant: Any) -> None:
    stranger_product = make_tenant().product()
    text = "serial_number\nSN-1\n"
    no_product = tenant.post(
        "/api/v1/device-batches", headers={"Content-Type": "text/csv"}, content=text.encode()
    )
    assert_problem(no_product, 422)
    assert_problem(post_csv(tenant, stranger_product["id"], text), 404)
    assert_problem(post_csv(tenant, "not-a-product", text), 404)


def test_an_unknown_credential_kind_in_the_query_is_refused(tenant: Tenant) -> None:
    product = tenant.product()
    body = assert_problem(
        post_csv(tenant, product["id"], "serial_number\nSN-1\n", issue_credentials="password"), 422
    )
    assert "issue_credentials" in body["detail"]
    assert devices_of(tenant, product["id"]) == []


def test_a_batch_in_neither_json_nor_csv_is_refused(tenant: Tenant) -> None:
    product = tenant.product()
    response = tenant.post(
        "/api/v1/device-batches",
        params={"product_id": product["id"]},
        headers={"Content-Type": "application/xml"},
        content=b"<devices/>",
    )
    assert_problem(response, 422)
    assert devices_of(tenant, product["id"]) == []


# -- credentials in the same call ------------------------------------------------------------------


def test_a_csv_batch_with_tokens_gives_each_device_its_own_working_secret(tenant: Tenant) -> None:
    product = tenant.product()
    response = post_csv(tenant, product["id"], "serial_number\nSN-1\nSN-2\nSN-3\n", issue_credentials="token")
    assert response.status_code == 201, response.text
    devices = response.json()["devices"]
    secrets = [d["credential"]["secret"] for d in devices]
    assert all(secret.startswith("lsd_") for secret in secrets)
    assert len(set(secrets)) == 3
    for device, secret in zip(devices, secrets, strict=True):
        me = who_am_i(tenant.http, secret)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == device["id"]
        assert me.json()["serial_number"] == device["serial_number"]
    assert all(d["token_issued_at"] is not None for d in devices_of(tenant, product["id"]))


def test_a_json_batch_with_tokens_gives_each_device_its_own_working_secret(tenant: Tenant) -> None:
    product = tenant.product()
    body = {"product_id": product["id"], "serial_numbers": ["SN-1", "SN-2"], "issue_credentials": "token"}
    response = post_json(tenant, body)
    assert response.status_code == 201, response.text
    devices = response.json()["devices"]
    secrets = {d["credential"]["secret"] for d in devices}
    assert len(secrets) == 2
    assert {who_am_i(tenant.http, s).json()["id"] for s in secrets} == {d["id"] for d in devices}


def test_the_credentials_file_comes_back_as_csv_when_asked_for(tenant: Tenant) -> None:
    product = tenant.product()
    as_json = post_csv(tenant, product["id"], "serial_number\nSN-1\nSN-2\n", issue_credentials="token")
    assert as_json.status_code == 201, as_json.text
    assert as_json.headers["content-type"].startswith("application/json")

    as_csv = tenant.post(
        "/api/v1/device-batches",
        params={"product_id": product["id"], "issue_credentials": "token"},
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        content=b"serial_number\nSN-3\nSN-4\n",
    )
    assert as_csv.status_code == 201, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert list(rows[0])[:3] == ["device_id", "serial_number", "token"]
    assert [row["serial_number"] for row in rows] == ["SN-3", "SN-4"]
    assert len({row["token"] for row in rows}) == 2
    for row in rows:
        assert row["token"].startswith("lsd_")
        assert who_am_i(tenant.http, row["token"]).json()["id"] == row["device_id"]


def test_a_batch_with_certificates_gives_each_device_a_certificate_from_the_product_ca(
    tenant: Tenant,
) -> None:
    product = tenant.product()
    response = post_csv(tenant, product["id"], "serial_number\nSN-1\nSN-2\n", issue_credentials="x509")
    assert response.status_code == 201, response.text
    ca = x509.load_pem_x509_certificate(tenant.get(f"/api/v1/products/{product['id']}/ca.pem").content)
    serials = set()
    for device in response.json()["devices"]:
        credential = device["credential"]
        assert credential["type"] == "x509"
        certificate = x509.load_pem_x509_certificate(credential["certificate"].encode())
        certificate.verify_directly_issued_by(ca)
        common_name = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert common_name == device["id"]
        key = serialization.load_pem_private_key(credential["private_key"].encode(), password=None)
        assert key.public_key() == certificate.public_key()
        assert credential["serial"] == format(certificate.serial_number, "x")
        serials.add(certificate.serial_number)
        listed = tenant.get(f"/api/v1/devices/{device['id']}/certificates").json()
        assert [c["serial"] for c in listed] == [credential["serial"]]
    assert len(serials) == 2


def test_a_rejected_batch_issues_no_credentials(tenant: Tenant) -> None:
    product = tenant.product()
    response = post_csv(tenant, product["id"], "serial_number\nSN-1\nSN-1\n", issue_credentials="token")
    problem = assert_problem(response, 422)
    assert "lsd_" not in response.text
    assert reported(problem).keys() == {(3, "serial_number")}
    assert devices_of(tenant, product["id"]) == []


# -- the audit trail ------------------------------------------------------------------------------


def test_a_batch_is_one_audit_event_with_its_count_and_no_secret(tenant: Tenant) -> None:
    product = tenant.product()
    response = post_csv(tenant, product["id"], "serial_number\nSN-1\nSN-2\nSN-3\n", issue_credentials="token")
    assert response.status_code == 201, response.text
    batch = response.json()
    events = tenant.get("/api/v1/audit-events", params={"type": "devices.batch_defined"}).json()["items"]
    assert len(events) == 1
    event = events[0]
    assert event["subject_id"] == batch["batch_id"]
    assert event["data"]["count"] == 3
    assert event["data"]["product_id"] == product["id"]
    assert event["data"]["credentials"] == "token"
    everything = tenant.get("/api/v1/audit-events", params={"limit": 1000}).text
    for device in batch["devices"]:
        assert device["credential"]["secret"] not in everything


def test_a_rejected_batch_leaves_no_audit_event(tenant: Tenant) -> None:
    product = tenant.product()
    assert_problem(post_json(tenant, {"product_id": product["id"], "serial_numbers": ["A", "A"]}), 422)
    events = tenant.get("/api/v1/audit-events", params={"type": "devices.batch_defined"}).json()["items"]
    assert events == []


def test_the_batch_id_finds_exactly_the_batch_devices(tenant: Tenant) -> None:
    product = tenant.product()
    tenant.device(product["id"], unique("SN"))
    first = post_json(tenant, {"product_id": product["id"], "serial_numbers": ["B1-1", "B1-2"]}).json()
    post_json(tenant, {"product_id": product["id"], "serial_numbers": ["B2-1"]})
    found = devices_of(tenant, product["id"], batch_id=first["batch_id"])
    assert sorted(d["serial_number"] for d in found) == ["B1-1", "B1-2"]


def test_a_json_batch_refuses_query_parameters_instead_of_ignoring_them(tenant: Tenant) -> None:
    product = tenant.product()
    response = tenant.post(
        "/api/v1/device-batches",
        params={"issue_credentials": "token"},
        json={"product_id": product["id"], "serial_numbers": ["SN-1"]},
    )
    assert_problem(response, 422)
    assert tenant.get("/api/v1/devices", params={"product_id": product["id"]}).json()["items"] == []
