"""The factory line for tests: tokens, DUTs, test runs, blessing, production tokens, activation.

Each helper takes the HTTP client it speaks through, so the same steps run against the
in-process server (integration) and a real ``lineside serve`` (e2e).
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from lineside.bootstrap import Application
from lineside.domain.models import Scope
from lineside.services.activation import issue_production_token
from lineside.services.organizations import operator_principal
from tests.support.api import Tenant, unique

API = "/api/v1"
POLL_DEADLINE_SECONDS = 10.0


def hardware_id() -> str:
    """A MAC no other test uses (a locally administered one: 02:...)."""
    return "02:" + ":".join(secrets.token_hex(1) for _ in range(5))


def keyed(tenant: Tenant, *scopes: str) -> Tenant:
    """The same organization, calling with a new key of only ``scopes``."""
    key = tenant.created(f"{API}/api-keys", {"name": unique("key"), "scopes": list(scopes)})
    return Tenant(tenant.http, tenant.organization_id, key["key"])


def factory_token(tenant: Tenant, product_id: str, **extra: Any) -> str:
    created = tenant.created(f"{API}/factory/enrollment-tokens", {"product_id": product_id, **extra})
    token: str = created["token"]
    return token


def enroll(http: httpx.Client, token: str, hardware: str, **extra: Any) -> httpx.Response:
    """What a DUT (or its fixture) sends: no API key, the factory token is the credential."""
    return http.post(
        f"{API}/factory/duts", json={"enrollment_token": token, "hardware_id": hardware, **extra}
    )


def enrolled(http: httpx.Client, token: str, hardware: str | None = None, **extra: Any) -> dict[str, Any]:
    response = enroll(http, token, hardware or hardware_id(), **extra)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def record_run(tenant: Tenant, device_id: str, passed: bool, **extra: Any) -> dict[str, Any]:
    """The test run recorded for the device."""
    return tenant.created(f"{API}/devices/{device_id}/test-runs", {"passed": passed, **extra})


def bless(tenant: Tenant, device_id: str) -> httpx.Response:
    return tenant.post(f"{API}/devices/{device_id}/bless", json={})


def blessed(tenant: Tenant, device_id: str) -> dict[str, Any]:
    response = bless(tenant, device_id)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def line_unit(tenant: Tenant, token: str, passed: bool = True) -> dict[str, Any]:
    """A unit taken down the whole line: enrolled, tested, blessed (or failed); the blessing."""
    device = enrolled(tenant.http, token)["device"]
    record_run(tenant, device["id"], passed)
    return blessed(tenant, device["id"])


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}


def v5_enroll(http: httpx.Client, api_key: str, **kwargs: Any) -> httpx.Response:
    """Electric Imp's production token request, exactly as an agent sends it."""
    headers = {**basic(api_key), "Content-Type": "application/json", **kwargs.pop("headers", {})}
    content = kwargs.pop("content", b'{"type": "production_token"}')
    return http.post("/v5/enroll", headers=headers, content=content, **kwargs)


def production_token(tenant: Tenant, **body: Any) -> dict[str, Any]:
    return tenant.created(f"{API}/enrollment-tokens", body)


def activate(http: httpx.Client, token: dict[str, Any], device_id: str) -> httpx.Response:
    body = {"plan_id": token["plan_id"], "token_id": token["token_id"], "device_id": device_id}
    return http.post("/device/v1/activate", json=body)


def claim(tenant: Tenant, token_id: str) -> httpx.Response:
    return tenant.get(f"{API}/enrollment-tokens/{token_id}")


def poll_claim(tenant: Tenant, token_id: str) -> dict[str, Any]:
    """Poll as a fixture does, until the token is no longer pending (or a deadline passes)."""
    deadline = time.monotonic() + POLL_DEADLINE_SECONDS
    while True:
        response = claim(tenant, token_id)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        if answer["status"] != "pending" or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)  # polling for a condition, with a deadline


def expired_production_token(
    application: Application, organization_id: str, *, product_id: str | None = None
) -> dict[str, Any]:
    """A token issued (through the service, with a clock set back) long enough ago to have expired."""
    ctx = application.services
    issued_at = datetime.now(ctx.clock().tzinfo) - ctx.config.production_token_lifetime - timedelta(minutes=1)
    back_then = replace(ctx, clock=lambda: issued_at)
    principal = operator_principal(ctx, organization_id)
    assert principal.can(Scope.FACTORY)
    issued = issue_production_token(back_then, principal, product_id=product_id)
    return {"plan_id": issued.token.plan_id, "token_id": issued.token_id}
