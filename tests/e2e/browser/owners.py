"""Devices in their boxes, and the people who claim them, made over the HTTP API."""

from __future__ import annotations

import io
import secrets
import zipfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import zxingcpp
from PIL import Image

from tests.support.api import Tenant, unique

PASSWORD = "correct horse battery"
QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


@dataclass(frozen=True)
class BoxedDevice:
    """What the owner finds on the box: product name, serial number, and the QR label's
    claim URL as a path on the server under test."""

    device_id: str
    product_name: str
    serial_number: str
    claim_path: str

    @property
    def code(self) -> str:
        return self.claim_path.rsplit("/", 1)[1]


def scanned(png: bytes) -> str:
    """What a phone's camera reads from a QR label."""
    codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=QR_ONLY)
    assert len(codes) == 1
    return codes[0].text


def boxed_device(tenant: Tenant) -> BoxedDevice:
    """One static-token device, its claim URL read back from the QR code on its label."""
    product = tenant.product(name=unique("Kettle"))
    serial = unique("SN")
    created = tenant.post(
        f"/api/v1/products/{product['id']}/static-tokens",
        content=f"serial_number\n{serial}\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert created.status_code == 201, created.text
    labels = tenant.get(urlsplit(created.json()["labels_url"]).path)
    assert labels.status_code == 200, labels.text
    with zipfile.ZipFile(io.BytesIO(labels.content)) as archive:
        url = scanned(archive.read(f"qr/{serial}.png"))
    path = urlsplit(url).path
    assert path.startswith("/claim/lsc_"), url
    devices = tenant.get("/api/v1/devices", params={"serial_number": serial}).json()["items"]
    assert [device["serial_number"] for device in devices] == [serial]
    return BoxedDevice(devices[0]["id"], product["name"], serial, path)


def unknown_code() -> str:
    return f"lsc_{secrets.token_urlsafe(24)}"


def new_email() -> str:
    return f"{unique('owner')}@example.com"


def api_headers(http: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Sign in over the API, as an app would."""
    token = http.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def owned_devices(http: httpx.Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = http.get("/api/v1/devices", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@dataclass(frozen=True)
class Person:
    """Someone with an account, made over the API."""

    email: str
    headers: dict[str, str]
    password: str = PASSWORD

    def claim(self, http: httpx.Client, device: BoxedDevice) -> None:
        claimed = http.post("/api/v1/claims", json={"code": device.code}, headers=self.headers)
        assert claimed.status_code == 201, claimed.text


def new_person(http: httpx.Client) -> Person:
    email = new_email()
    created = http.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert created.status_code == 201, created.text
    return Person(email, api_headers(http, email))


def personal_organization(http: httpx.Client, headers: dict[str, str]) -> str:
    me = http.get("/api/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    [organization] = me.json()["organizations"]
    organization_id: str = organization["id"]
    return organization_id
