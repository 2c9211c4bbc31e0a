"""A tenant's view of the API, over an in-process client or a real socket alike."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from lineside.bootstrap import Application
from lineside.services.organizations import create_organization


def unique(prefix: str) -> str:
    # 48 random bits: a test that makes 10,000 serial numbers this way must not see two alike
    # (with 32 bits, one run in a hundred did).
    return f"{prefix}-{secrets.token_hex(6)}"


@dataclass
class Tenant:
    """An organization with an admin key, calling the API through ``http``."""

    http: httpx.Client
    organization_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.put(path, headers=self.headers, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def created(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(path, json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def product(self, fields: list[dict[str, Any]] | None = None, name: str | None = None) -> dict[str, Any]:
        return self.created(
            "/api/v1/products", {"name": name or unique("product"), "metadata_fields": fields or []}
        )

    def device(self, product_id: str, serial: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {"product_id": product_id, "serial_number": serial or unique("SN"), **extra}
        return self.created("/api/v1/devices", body)

    def token(self, device_id: str) -> str:
        secret: str = self.created(f"/api/v1/devices/{device_id}/credentials", {"type": "token"})["secret"]
        return secret

    def sub_tenant(self, name: str | None = None) -> Tenant:
        body = self.created("/api/v1/organizations", {"name": name or unique("sub")})
        return Tenant(self.http, body["id"], body["api_key"])


def new_tenant(application: Application, http: httpx.Client, name: str | None = None) -> Tenant:
    created = create_organization(application.services, name or unique("org"))
    return Tenant(http, created.organization.id, created.admin_key.secret)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def ok(response: httpx.Response) -> Any:
    """The JSON of a 200 answer (and a readable failure for anything else)."""
    assert response.status_code == 200, response.text
    return response.json()
