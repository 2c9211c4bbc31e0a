"""The Blynk static-token flow end to end, over a real socket: generate, export, inject
into firmware, the device authenticates, its owner scans and claims, unclaims, claims
again, the manufacturer deletes it, and the device is refused."""

from __future__ import annotations

import csv
import io
import zipfile

import httpx

from lineside.adapters.firmware_images import DeviceSecrets, ImageFormat, inject, read_back
from tests.support.api import Tenant, assert_problem, unique

SLOT = b"LSSLOT01" + (256).to_bytes(2, "little") + bytes(256)


def sign_up_and_in(http: httpx.Client) -> dict[str, str]:
    email, password = f"{unique('owner')}@example.com", "correct horse battery"
    assert http.post("/api/v1/users", json={"email": email, "password": password}).status_code == 201
    token = http.post("/api/v1/auth/token", json={"email": email, "password": password}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def export_rows(tenant: Tenant, product_id: str, csv_text: str) -> list[dict[str, str]]:
    created = tenant.post(
        f"/api/v1/products/{product_id}/static-tokens",
        content=csv_text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["count"] == 2
    export = tenant.get(batch["export_url"])
    assert export.status_code == 200, export.text
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("tokens.csv").decode())))
        assert sorted(name for name in archive.namelist() if name.startswith("qr/")) == [
            "qr/SN-A1.png",
            "qr/SN-A2.png",
        ]
    assert_problem(tenant.get(batch["export_url"]), 410)
    return rows


def test_a_static_token_goes_from_the_factory_to_its_owner_and_back(tenant: Tenant) -> None:
    http = tenant.http
    product = tenant.product([{"name": "color", "type": "string", "required": True}])
    rows = export_rows(tenant, product["id"], "serial_number,color\nSN-A1,red\nSN-A2,blue\n")
    unit = next(row for row in rows if row["serial_number"] == "SN-A1")
    assert unit["color"] == "red"

    firmware = b"\x7fELF-common-image" + SLOT + b"tail"
    image = inject(firmware, ImageFormat.RAW, DeviceSecrets(unit["device_id"], unit["device_token"]))
    flashed = read_back(image, ImageFormat.RAW)
    device_auth = {"Authorization": f"Bearer {flashed.token}"}
    me = http.get("/device/v1/me", headers=device_auth)
    assert me.status_code == 200 and me.json()["id"] == unit["device_id"]

    code = unit["claim_url"].rsplit("/", 1)[1]
    owner = sign_up_and_in(http)
    claimed = http.post("/api/v1/claims", json={"code": code}, headers=owner)
    assert claimed.status_code == 201, claimed.text
    mine = http.get("/api/v1/devices", headers=owner).json()["items"]
    assert [device["id"] for device in mine] == [unit["device_id"]]

    assert_problem(http.post("/api/v1/claims", json={"code": code}, headers=sign_up_and_in(http)), 409)

    assert http.delete(f"/api/v1/devices/{unit['device_id']}/claim", headers=owner).status_code == 200
    assert http.get("/api/v1/devices", headers=owner).json()["items"] == []
    assert http.post("/api/v1/claims", json={"code": code}, headers=owner).status_code == 201

    assert tenant.delete(f"/api/v1/devices/{unit['device_id']}").status_code == 204
    assert_problem(http.get("/device/v1/me", headers=device_auth), 401)
    assert http.get("/api/v1/devices", headers=owner).json()["items"] == []
    assert_problem(http.post("/api/v1/claims", json={"code": code}, headers=owner), 410)

    events = tenant.get("/api/v1/audit-events", params={"subject_id": unit["device_id"]}).json()["items"]
    assert [event["type"] for event in events] == [
        "device.claimed",
        "device.unclaimed",
        "device.claimed",
        "device.deleted",
    ]
    assert all(unit["device_token"] not in str(event) and code not in str(event) for event in events)
