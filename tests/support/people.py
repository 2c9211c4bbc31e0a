"""People for tests: sign up, sign in, and call the API as a signed-in person.

Every test client connects from 127.0.0.1, and claim attempts are rate-limited per client
address in the shared test database. So each person speaks from an address of their own,
given in ``X-Forwarded-For`` (the test settings trust the loopback as a reverse proxy,
LINESIDE_TRUSTED_PROXIES); tests about the address limit give several people one address.
"""

from __future__ import annotations

import csv
import io
import secrets
import zipfile
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.api import Tenant, unique

PASSWORD = "correct horse battery staple"


def unique_address() -> str:
    """A client address no other test uses (IPv6 documentation prefix, 64 random bits)."""
    groups = ":".join(secrets.token_hex(2) for _ in range(4))
    return f"2001:db8::{groups}"


def unique_email() -> str:
    return f"{unique('person')}@example.com"


@dataclass
class Person:
    """A signed-in person, calling the API through ``http`` from ``address``."""

    http: httpx.Client
    email: str
    password: str
    token: str
    user_id: str
    organization_id: str  # their personal organization
    address: str = field(default_factory=unique_address)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Forwarded-For": self.address}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def claim(self, code: str, **extra: Any) -> httpx.Response:
        return self.post("/api/v1/claims", json={"code": code, **extra})


def sign_up(
    http: httpx.Client, email: str | None = None, password: str = PASSWORD, address: str | None = None
) -> dict[str, Any]:
    response = http.post(
        "/api/v1/users",
        json={"email": email or unique_email(), "password": password},
        headers={"X-Forwarded-For": address or unique_address()},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def sign_in(http: httpx.Client, email: str, password: str = PASSWORD, address: str | None = None) -> str:
    response = http.post(
        "/api/v1/auth/token",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address or unique_address()},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def new_person(http: httpx.Client, address: str | None = None) -> Person:
    """A person who signed up and signed in, speaking from ``address`` (default: their own)."""
    user = sign_up(http, address=address)
    token = sign_in(http, user["email"], address=address)
    person = Person(http, user["email"], PASSWORD, token, user["id"], user["organization_id"])
    if address is not None:
        person.address = address
    return person


# -- what a person scans: the claim codes on a static-token batch's labels -------------------


def static_batch(tenant: Tenant, count: int, product_id: str | None = None) -> dict[str, Any]:
    """A batch of ``count`` static tokens (on a new product unless one is given)."""
    product = product_id or tenant.product()["id"]
    return tenant.created(f"/api/v1/products/{product}/static-tokens", {"count": count})


def label_rows(tenant: Tenant, batch: dict[str, Any]) -> list[dict[str, str]]:
    """The rows of the batch's labels.csv (no secrets), each with its ``claim_code``."""
    response = tenant.get(path_of(batch["labels_url"]))
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode("utf-8"))))
    return [{**row, "claim_code": claim_code(row["claim_url"])} for row in rows]


def path_of(url: str) -> str:
    """The path of an absolute URL the API gave: it names the public URL, which in these tests
    is not where the test server listens."""
    return httpx.URL(url).path


def claim_code(claim_url: str) -> str:
    """The code a claim URL ``{public_url}/claim/{code}`` carries."""
    base, _, code = claim_url.rpartition("/")
    assert base.endswith("/claim") and code.startswith("lsc_"), claim_url
    return code
