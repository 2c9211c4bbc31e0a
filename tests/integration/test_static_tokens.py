"""Static tokens (issue 3): a batch of devices made from a count or a CSV, the one download
that shows their device tokens, labels that print again and again, regenerating the tokens,
the quota, bad input, and other organizations kept out of all of it."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import update

from lineside.adapters.db import tables
from lineside.bootstrap import Application
from lineside.services.quotas import set_device_quota
from tests.support.api import Tenant, assert_problem, unique
from tests.support.people import claim_code, label_rows, new_person, path_of, static_batch

API = "/api/v1"
BLYNK_SAMPLE = (
    "Serial Number,MAC address,Device Name\n"
    "SN000001,2C:54:91:88:C9:E3,Temperature Sense Node AGHJ\n"
    "SN000002,5C:62:91:82:C9:E8,Temperature Sense Node KJGF\n"
    "SN000003,4A:33:54:68:K9:F1,Temperature Sense Node CVBN\n"
)
BLYNK_MAPPING = {"Serial Number": "serial_number", "MAC address": "mac", "Device Name": "device_name"}
COLOR_AND_WEIGHT: list[dict[str, Any]] = [
    {"name": "color", "type": "string", "required": True},
    {"name": "weight", "type": "integer"},
]


# -- helpers ------------------------------------------------------------------------------


def create(tenant: Tenant, product_id: str, **kwargs: Any) -> httpx.Response:
    return tenant.post(f"{API}/products/{product_id}/static-tokens", **kwargs)


def create_from_csv(
    tenant: Tenant, product_id: str, text: str, mapping: dict[str, str] | None = None
) -> httpx.Response:
    params = {"mapping": json.dumps(mapping)} if mapping else None
    return create(
        tenant, product_id, content=text.encode(), headers={"Content-Type": "text/csv"}, params=params
    )


def upload_csv(
    tenant: Tenant, product_id: str, text: str, mapping: dict[str, str] | None = None
) -> httpx.Response:
    data = {"mapping": json.dumps(mapping)} if mapping else None
    files = {"file": ("devices.csv", text.encode(), "text/csv")}
    return create(tenant, product_id, files=files, data=data)


def devices_of(tenant: Tenant, **filters: str) -> list[dict[str, Any]]:
    response = tenant.get(f"{API}/devices", params={**filters, "limit": 1000})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def events_of(tenant: Tenant, event_type: str) -> list[dict[str, Any]]:
    response = tenant.get(f"{API}/audit-events", params={"type": event_type})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def opened(response: httpx.Response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content))


def table(archive: zipfile.ZipFile, name: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(archive.read(name).decode("utf-8")))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def decoded(png: bytes) -> str:
    """The one QR code in ``png``, read by a real decoder."""
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(results) == 1, f"{len(results)} barcodes in one image"
    return results[0].text


def qr_codes(archive: zipfile.ZipFile) -> dict[str, str]:
    """Entry name -> the text its QR code decodes to, for every ``qr/`` entry."""
    return {name: decoded(archive.read(name)) for name in archive.namelist() if name.startswith("qr/")}


def export(tenant: Tenant, batch: dict[str, Any]) -> tuple[list[str], list[dict[str, str]], dict[str, str]]:
    """The export's tokens.csv header and rows, and its QR codes decoded."""
    with opened(tenant.get(path_of(batch["export_url"]))) as archive:
        header, rows = table(archive, "tokens.csv")
        return header, rows, qr_codes(archive)


def identity(http: httpx.Client, device_token: str) -> httpx.Response:
    return http.get("/device/v1/me", headers={"Authorization": f"Bearer {device_token}"})


def mark_activated(application: Application, device_id: str) -> None:
    """As if the device had connected for the first time."""
    with application.engine.begin() as connection:
        connection.execute(
            update(tables.devices)
            .where(tables.devices.c.id == device_id)
            .values(activated_at=datetime.now(UTC), state="activated")
        )


def color_product(tenant: Tenant) -> dict[str, Any]:
    return tenant.product(COLOR_AND_WEIGHT)


# -- making a batch -------------------------------------------------------------------------


def test_a_count_makes_that_many_defined_devices_each_named_by_its_id(
    application: Application, tenant: Tenant
) -> None:
    product = tenant.product()
    response = create(tenant, product["id"], json={"count": 5})
    assert response.status_code == 201, response.text
    batch = response.json()
    path = f"/api/v1/static-token-batches/{batch['batch_id']}"
    base = application.settings.effective_public_url + path
    assert batch["count"] == 5 and batch["product_id"] == product["id"] and batch["exported_at"] is None
    assert batch["export_url"] == f"{base}/export.zip"
    assert batch["labels_url"] == f"{base}/labels.zip"
    assert batch["labels_pdf_url"] == f"{base}/labels.pdf"

    devices = devices_of(tenant, batch_id=batch["batch_id"])
    assert len(devices) == 5
    for device in devices:
        assert device["state"] == "defined"
        assert device["serial_number"] == device["id"]
        assert device["product_id"] == product["id"]
        assert device["owner_organization_id"] is None
        assert device["token_issued_at"] is None  # tokens are made by the export, not before
    read = tenant.get(path)
    assert read.status_code == 200 and read.json()["batch_id"] == batch["batch_id"]
    assert [event["subject_id"] for event in events_of(tenant, "static_tokens.created")] == [
        batch["batch_id"]
    ]


def test_a_csv_body_makes_one_device_per_row_with_its_metadata(tenant: Tenant) -> None:
    product = color_product(tenant)
    response = create_from_csv(tenant, product["id"], "serial_number,color,weight\nSN-1,red,10\nSN-2,blue,\n")
    assert response.status_code == 201, response.text
    assert response.json()["count"] == 2
    devices = {d["serial_number"]: d for d in devices_of(tenant, batch_id=response.json()["batch_id"])}
    assert devices.keys() == {"SN-1", "SN-2"}
    assert devices["SN-1"]["metadata"] == {"color": "red", "weight": 10}
    assert devices["SN-2"]["metadata"] == {"color": "blue"}
    assert all(device["state"] == "defined" for device in devices.values())


def test_a_multipart_upload_with_a_mapping_takes_blynks_own_sample_file(tenant: Tenant) -> None:
    product = tenant.product([{"name": "device_name", "type": "string"}])
    # The sample in Blynk's documentation has a MAC address with a K in it.
    refused = upload_csv(tenant, product["id"], BLYNK_SAMPLE, BLYNK_MAPPING)
    body = assert_problem(refused, 422)
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(4, "mac")]
    assert devices_of(tenant, product_id=product["id"]) == []

    fixed = BLYNK_SAMPLE.replace("K9:F1", "A9:F1")
    response = upload_csv(tenant, product["id"], fixed, BLYNK_MAPPING)
    assert response.status_code == 201, response.text
    devices = {d["serial_number"]: d for d in devices_of(tenant, product_id=product["id"])}
    assert devices.keys() == {"SN000001", "SN000002", "SN000003"}
    assert devices["SN000001"]["mac"] == "2c:54:91:88:c9:e3"
    assert devices["SN000003"]["metadata"] == {"device_name": "Temperature Sense Node CVBN"}


def test_a_mapping_in_the_query_renames_the_headers_of_a_csv_body(tenant: Tenant) -> None:
    product = color_product(tenant)
    mapping = {"Serial Number": "serial_number", "Colour": "color"}
    response = create_from_csv(tenant, product["id"], "Serial Number,Colour\nSN-9,green\n", mapping)
    assert response.status_code == 201, response.text
    [device] = devices_of(tenant, product_id=product["id"])
    assert (device["serial_number"], device["metadata"]) == ("SN-9", {"color": "green"})


@pytest.mark.parametrize(
    ("csv_text", "bad_columns"),
    [
        ("Serial_Number,color\nSN-1,red\n", {"Serial_Number", "serial_number"}),
        ("serial_number,Color\nSN-1,red\n", {"Color"}),
        ("serial_number,colour\nSN-1,red\n", {"colour"}),
        ("serial_number,color,color\nSN-1,red,red\n", {"color"}),
    ],
    ids=["serial number capitalised", "field capitalised", "unknown field", "column given twice"],
)
def test_a_csv_header_must_name_the_products_fields_exactly(
    tenant: Tenant, csv_text: str, bad_columns: set[str]
) -> None:
    product = color_product(tenant)
    body = assert_problem(create_from_csv(tenant, product["id"], csv_text), 422)
    assert {error["column"] for error in body["errors"]} == bad_columns
    assert all(error["row"] == 1 and error["reason"] for error in body["errors"])
    assert devices_of(tenant, product_id=product["id"]) == []


BAD_ROWS = (
    "serial_number,color,weight\n"
    "SN-GOOD,red,10\n"  # row 2: fine
    "SN-BARE,,5\n"  # row 3: the required color is missing
    "SN-HEAVY,blue,heavy\n"  # row 4: weight is not an integer
    "SN-GOOD,green,1\n"  # row 5: repeats row 2
    "SN-OLD,black,2\n"  # row 6: defined before this batch
    "SN-SHORT,white\n"  # row 7: a cell missing
)


@pytest.mark.parametrize("send", [create_from_csv, upload_csv], ids=["text/csv", "multipart"])
def test_a_bad_csv_creates_nothing_and_names_every_bad_row(
    tenant: Tenant, send: Callable[[Tenant, str, str], httpx.Response]
) -> None:
    product = color_product(tenant)
    tenant.device(product["id"], "SN-OLD", metadata={"color": "black"})
    body = assert_problem(send(tenant, product["id"], BAD_ROWS), 422)
    found = {(error["row"], error["column"]): error["reason"] for error in body["errors"]}
    assert found.keys() == {(3, "color"), (4, "weight"), (5, "serial_number"), (6, "serial_number"), (7, "")}
    assert "row 2" in found[(5, "serial_number")]
    assert "already defined" in found[(6, "serial_number")]
    assert "integer" in found[(4, "weight")]
    assert [d["serial_number"] for d in devices_of(tenant, product_id=product["id"])] == ["SN-OLD"]
    assert events_of(tenant, "static_tokens.created") == []


@pytest.mark.parametrize(
    "count", [0, -1, "5", 10**9, True, 2.5, None], ids=["0", "-1", "'5'", "10**9", "true", "2.5", "null"]
)
def test_a_bad_count_is_refused_and_creates_nothing(tenant: Tenant, count: object) -> None:
    product = tenant.product()
    body = assert_problem(create(tenant, product["id"], json={"count": count}), 422)
    assert "count" in body["detail"]
    assert devices_of(tenant, product_id=product["id"]) == []


@pytest.mark.parametrize(
    ("content", "content_type", "params"),
    [
        (b"", "text/csv", None),
        (b"serial_number\n", "text/csv", None),
        (b"serial_number\nSN-caf\xe9\n", "text/csv", None),
        (b"serial_number\nSN-1\n", "text/csv", {"mapping": "{not json"}),
        (b"serial_number\nSN-1\n", "text/csv", {"mapping": '{"a": 1}'}),
        (b"serial_number\nSN-1\n", "text/plain", None),
        (b'{"count": 2, "extra": true}', "application/json", None),
        (b"{}", "application/json", None),
    ],
    ids=[
        "empty CSV",
        "header only",
        "not UTF-8",
        "mapping not JSON",
        "mapping to a non-string",
        "text/plain",
        "unknown JSON field",
        "no count",
    ],
)
def test_a_body_that_is_neither_a_count_nor_a_csv_of_devices_creates_nothing(
    tenant: Tenant, content: bytes, content_type: str, params: dict[str, str] | None
) -> None:
    product = tenant.product()
    response = create(
        tenant, product["id"], content=content, headers={"Content-Type": content_type}, params=params
    )
    assert_problem(response, 422)
    assert devices_of(tenant, product_id=product["id"]) == []


def test_a_multipart_upload_without_a_file_creates_nothing(tenant: Tenant) -> None:
    product = tenant.product()
    response = create(
        tenant, product["id"], data={"mapping": "{}"}, files={"other": ("x.csv", b"serial_number\nA\n")}
    )
    assert "file" in assert_problem(response, 422)["detail"]
    assert devices_of(tenant, product_id=product["id"]) == []


def test_the_quota_refuses_a_batch_that_would_pass_it_and_makes_nothing(
    application: Application, tenant: Tenant
) -> None:
    product = tenant.product()
    set_device_quota(application.services, tenant.organization_id, 3)

    refused = assert_problem(create(tenant, product["id"], json={"count": 4}), 403)
    assert "quota is 3" in refused["detail"]
    assert devices_of(tenant) == []

    assert create(tenant, product["id"], json={"count": 3}).status_code == 201
    again = assert_problem(create(tenant, product["id"], json={"count": 1}), 403)
    assert "quota is 3" in again["detail"]
    csv_refused = assert_problem(create_from_csv(tenant, product["id"], "serial_number\nSN-4\n"), 403)
    assert "quota" in csv_refused["detail"]
    assert len(devices_of(tenant)) == 3


# -- the one-time export --------------------------------------------------------------------


def test_the_export_holds_every_device_token_and_a_qr_code_of_its_claim_url(
    application: Application, tenant: Tenant
) -> None:
    batch = static_batch(tenant, 4)
    header, rows, codes = export(tenant, batch)

    assert header == ["device_id", "serial_number", "device_token", "claim_url"]
    ids = {device["id"] for device in devices_of(tenant, batch_id=batch["batch_id"])}
    assert {row["device_id"] for row in rows} == ids and len(rows) == 4
    assert codes.keys() == {f"qr/{row['serial_number']}.png" for row in rows}
    claim_prefix = f"{application.settings.effective_public_url}/claim/lsc_"
    for row in rows:
        assert row["serial_number"] == row["device_id"]
        assert row["claim_url"].startswith(claim_prefix)
        assert codes[f"qr/{row['serial_number']}.png"] == row["claim_url"]
        assert row["device_token"].startswith("lsd_")
        me = identity(tenant.http, row["device_token"])
        assert me.status_code == 200, me.text
        assert me.json()["id"] == row["device_id"]
    assert len({row["device_token"] for row in rows}) == len({row["claim_url"] for row in rows}) == 4


def test_a_csv_batch_exports_its_metadata_columns_and_names_qr_codes_by_serial_number(
    tenant: Tenant,
) -> None:
    product = color_product(tenant)
    created = create_from_csv(tenant, product["id"], "serial_number,color,weight\nSN-A,red,3\nSN-B,blue,4\n")
    assert created.status_code == 201, created.text
    header, rows, codes = export(tenant, created.json())
    assert header == ["device_id", "serial_number", "color", "weight", "device_token", "claim_url"]
    by_serial = {row["serial_number"]: row for row in rows}
    assert (by_serial["SN-A"]["color"], by_serial["SN-A"]["weight"]) == ("red", "3")
    assert codes == {
        "qr/SN-A.png": by_serial["SN-A"]["claim_url"],
        "qr/SN-B.png": by_serial["SN-B"]["claim_url"],
    }


def test_the_export_can_be_downloaded_only_once(tenant: Tenant) -> None:
    batch = static_batch(tenant, 2)
    export(tenant, batch)
    body = assert_problem(tenant.get(path_of(batch["export_url"])), 410)
    assert "regenerate" in body["detail"].lower()
    assert tenant.get(f"{API}/static-token-batches/{batch['batch_id']}").json()["exported_at"] is not None


def test_regenerating_voids_the_old_tokens_at_once_and_allows_one_new_export(tenant: Tenant) -> None:
    batch = static_batch(tenant, 3)
    _, old_rows, _ = export(tenant, batch)

    regenerated = tenant.post(f"{API}/static-token-batches/{batch['batch_id']}/regenerate")
    assert regenerated.status_code == 200, regenerated.text
    assert regenerated.json()["exported_at"] is None
    for row in old_rows:
        assert_problem(identity(tenant.http, row["device_token"]), 401)

    _, new_rows, codes = export(tenant, batch)
    assert {row["device_token"] for row in new_rows}.isdisjoint(row["device_token"] for row in old_rows)
    for row in new_rows:
        me = identity(tenant.http, row["device_token"])
        assert me.status_code == 200 and me.json()["id"] == row["device_id"]
    # The printed QR labels stay valid: only the device tokens were replaced.
    assert sorted(row["claim_url"] for row in new_rows) == sorted(row["claim_url"] for row in old_rows)
    assert sorted(codes.values()) == sorted(row["claim_url"] for row in old_rows)
    assert_problem(tenant.get(path_of(batch["export_url"])), 410)


def test_a_batch_cannot_be_regenerated_once_one_of_its_devices_has_activated(
    application: Application, tenant: Tenant
) -> None:
    batch = static_batch(tenant, 2)
    _, rows, _ = export(tenant, batch)
    mark_activated(application, rows[0]["device_id"])

    assert_problem(tenant.post(f"{API}/static-token-batches/{batch['batch_id']}/regenerate"), 409)
    for row in rows:  # nobody was cut off
        assert identity(tenant.http, row["device_token"]).status_code == 200
    assert_problem(tenant.get(path_of(batch["export_url"])), 410)


# -- labels: no secrets, as often as wanted ----------------------------------------------


def test_labels_carry_no_secret_and_can_be_downloaded_again_and_again(tenant: Tenant) -> None:
    batch = static_batch(tenant, 3)
    first = tenant.get(path_of(batch["labels_url"]))
    _, exported, export_codes = export(tenant, batch)
    second = tenant.get(path_of(batch["labels_url"]))

    for response in (first, second):
        with opened(response) as archive:
            header, rows = table(archive, "labels.csv")
            assert header == ["device_id", "serial_number", "claim_url"]
            assert all(b"lsd_" not in archive.read(name) for name in archive.namelist())
            assert b"lsd_" not in response.content
            assert qr_codes(archive) == export_codes
            assert sorted(row["claim_url"] for row in rows) == sorted(row["claim_url"] for row in exported)


def test_the_labels_pdf_shows_every_serial_number_and_the_product_name(tenant: Tenant) -> None:
    name = unique("kettle")
    product = tenant.product([{"name": "color", "type": "string"}], name=name)
    serials = [f"KT-{number:03}" for number in range(25)]
    created = create_from_csv(tenant, product["id"], "serial_number\n" + "\n".join(serials) + "\n")
    assert created.status_code == 201, created.text
    batch = created.json()

    for _ in range(2):
        response = tenant.get(path_of(batch["labels_pdf_url"]))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        assert response.content.startswith(b"%PDF")
        reader = PdfReader(io.BytesIO(response.content))
        assert len(reader.pages) == 2  # 24 labels a page
        text = "\n".join(page.extract_text() for page in reader.pages)
        assert all(serial in text for serial in serials)
        assert text.count(name) == len(serials)
        assert b"lsd_" not in response.content


def test_hostile_serial_numbers_stay_inside_the_archive_and_spreadsheets_do_not_run_them(
    tenant: Tenant,
) -> None:
    product = tenant.product([{"name": "note", "type": "string"}])
    text = 'serial_number,note\n../x,@SUM(A1)\n=cmd,+1\n/etc/passwd,-2\n"..\\win",ok\n'
    created = create_from_csv(tenant, product["id"], text)
    assert created.status_code == 201, created.text
    batch = created.json()

    for url, csv_name in ((batch["labels_url"], "labels.csv"), (batch["export_url"], "tokens.csv")):
        with opened(tenant.get(path_of(url))) as archive:
            names = archive.namelist()
            assert names.count(csv_name) == 1 and len(names) == 5
            for name in names:
                assert not name.startswith("/") and ".." not in name and "\\" not in name, name
                assert name == csv_name or (name.startswith("qr/") and name.count("/") == 1), name
            _, rows = table(archive, csv_name)
            assert sorted(row["serial_number"] for row in rows) == sorted(
                ["../x", "'=cmd", "/etc/passwd", "..\\win"]
            )
            assert sorted(row["note"] for row in rows) == ["'+1", "'-2", "'@SUM(A1)", "ok"]
            assert sorted(qr_codes(archive).values()) == sorted(row["claim_url"] for row in rows)
    stored = {device["serial_number"] for device in devices_of(tenant, product_id=product["id"])}
    assert stored == {"../x", "=cmd", "/etc/passwd", "..\\win"}  # only the output is neutralised


# -- tenant isolation -------------------------------------------------------------------------


FOREIGN_CALLS = {
    "make static tokens for its product": ("POST", "/products/{product_id}/static-tokens", {"count": 1}),
    "read its batch": ("GET", "/static-token-batches/{batch_id}", None),
    "download its export": ("GET", "/static-token-batches/{batch_id}/export.zip", None),
    "download its labels": ("GET", "/static-token-batches/{batch_id}/labels.zip", None),
    "download its labels PDF": ("GET", "/static-token-batches/{batch_id}/labels.pdf", None),
    "regenerate its batch": ("POST", "/static-token-batches/{batch_id}/regenerate", None),
    "read its device": ("GET", "/devices/{device_id}", None),
    "disclaim its device": ("POST", "/devices/{device_id}/disclaim", None),
    "unclaim its device": ("DELETE", "/devices/{device_id}/claim", None),
    "delete its device": ("DELETE", "/devices/{device_id}", None),
}
OUTSIDERS: dict[str, Callable[[Tenant, Callable[[], Tenant]], Tenant]] = {
    "another organization": lambda maker, make_tenant: make_tenant(),
    "a sub-organization of the maker": lambda maker, make_tenant: maker.sub_tenant(),
}


@pytest.mark.parametrize("outsider", OUTSIDERS.values(), ids=OUTSIDERS.keys())
@pytest.mark.parametrize(("method", "path", "body"), FOREIGN_CALLS.values(), ids=FOREIGN_CALLS.keys())
def test_an_outsider_cannot_touch_a_makers_static_tokens_and_the_maker_notices_nothing(
    tenant: Tenant,
    make_tenant: Callable[[], Tenant],
    outsider: Callable[[Tenant, Callable[[], Tenant]], Tenant],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    product = tenant.product()
    batch = static_batch(tenant, 2, product["id"])
    claimed, _ = label_rows(tenant, batch)
    owner = new_person(tenant.http)
    assert owner.claim(claimed["claim_code"]).status_code == 201
    stranger = outsider(tenant, make_tenant)
    ids = {"product_id": product["id"], "batch_id": batch["batch_id"], "device_id": claimed["device_id"]}

    response = stranger.http.request(method, API + path.format(**ids), headers=stranger.headers, json=body)
    assert_problem(response, 404)

    devices = {device["id"]: device for device in devices_of(tenant, product_id=product["id"])}
    assert len(devices) == 2
    assert devices[claimed["device_id"]]["owner_organization_id"] == owner.organization_id
    assert tenant.get(f"{API}/static-token-batches/{batch['batch_id']}").json()["exported_at"] is None
    _, rows, _ = export(tenant, batch)  # the one export was not used up by the outsider
    assert all(identity(tenant.http, row["device_token"]).status_code == 200 for row in rows)
    assert claim_code(rows[0]["claim_url"]).startswith("lsc_")


def test_a_batch_by_count_of_a_product_with_required_metadata_is_refused_as_a_single_define_is(
    tenant: Tenant,
) -> None:
    product_id = tenant.product(COLOR_AND_WEIGHT)["id"]

    by_count = create(tenant, product_id, json={"count": 3})
    one = tenant.post(f"{API}/devices", json={"product_id": product_id, "serial_number": "SN-1"})

    assert "'color'" in assert_problem(by_count, 422)["detail"]
    assert_problem(one, 422)
    assert devices_of(tenant, product_id=product_id) == []
