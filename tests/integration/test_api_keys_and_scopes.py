"""API keys: scopes (read < factory < admin), listing without secrets, revocation, and the
401 every unauthenticated call gets."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import Tenant, assert_problem, ok, unique

API = "/api/v1"


@dataclass(frozen=True)
class Shop:
    """An organization with a product, a device holding a token, and a spare key to revoke."""

    admin: Tenant
    product_id: str
    device_id: str
    device_token: str
    spare_key_id: str

    def ids(self) -> dict[str, str]:
        return {"product_id": self.product_id, "device_id": self.device_id, "key_id": self.spare_key_id}

    def key_with(self, *scopes: str) -> Tenant:
        created = self.admin.created(f"{API}/api-keys", {"name": unique("key"), "scopes": list(scopes)})
        return Tenant(self.admin.http, self.admin.organization_id, created["key"])


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    product_id = tenant.product()["id"]
    device_id = tenant.device(product_id)["id"]
    token = tenant.token(device_id)
    spare = tenant.created(f"{API}/api-keys", {"name": "spare", "scopes": ["read"]})
    return Shop(tenant, product_id, device_id, token, spare["id"])


def call(caller: Tenant, method: str, path: str, body: dict[str, Any] | str | None) -> httpx.Response:
    if isinstance(body, str):
        headers = {**caller.headers, "Content-Type": "text/csv"}
        return caller.http.request(method, path, headers=headers, content=body.encode())
    return caller.http.request(method, path, headers=caller.headers, json=body)


def audit_log(shop: Shop) -> list[dict[str, Any]]:
    """Every write records an event, so an unchanged log means nothing was written."""
    items: list[dict[str, Any]] = ok(shop.admin.get(f"{API}/audit-events", params={"limit": 1000}))["items"]
    return items


def assert_device_untouched(shop: Shop) -> None:
    me = ok(shop.admin.http.get("/device/v1/me", headers={"Authorization": f"Bearer {shop.device_token}"}))
    assert me["state"] == "defined"


# -- scopes ---------------------------------------------------------------------------------

# (method, path template, body, the least scope that may, status on success)
WRITES = [
    pytest.param("POST", "/api/v1/products", {"name": "new product"}, "admin", 201, id="create product"),
    pytest.param(
        "POST",
        "/api/v1/products/{product_id}/groups",
        {"name": "line 1", "kind": "factory"},
        "admin",
        201,
        id="create group",
    ),
    pytest.param("POST", "/api/v1/organizations", {"name": "factory"}, "admin", 201, id="create sub-org"),
    pytest.param(
        "POST", "/api/v1/api-keys", {"name": "k", "scopes": ["read"]}, "admin", 201, id="create API key"
    ),
    pytest.param("DELETE", "/api/v1/api-keys/{key_id}", None, "admin", 200, id="revoke API key"),
    pytest.param("POST", "/api/v1/devices/{device_id}/revoke", None, "admin", 200, id="revoke device"),
    pytest.param(
        "POST",
        "/api/v1/devices",
        {"product_id": "{product_id}", "serial_number": "SN-NEW-1"},
        "factory",
        201,
        id="define device",
    ),
    pytest.param(
        "POST",
        "/api/v1/device-batches",
        {"product_id": "{product_id}", "serial_numbers": ["SN-NEW-1", "SN-NEW-2"]},
        "factory",
        201,
        id="define batch",
    ),
    pytest.param(
        "POST",
        "/api/v1/device-batches?product_id={product_id}&issue_credentials=token",
        "serial_number\nSN-NEW-1\nSN-NEW-2\n",
        "factory",
        201,
        id="define batch from CSV",
    ),
    pytest.param(
        "POST",
        "/api/v1/devices/{device_id}/credentials",
        {"type": "token"},
        "factory",
        201,
        id="issue token",
    ),
    pytest.param(
        "POST",
        "/api/v1/devices/{device_id}/credentials",
        {"type": "x509"},
        "factory",
        201,
        id="issue certificate",
    ),
]
WRITE_ARGS = ("method", "template", "body", "least_scope", "success")
ADMIN_ONLY_WRITES = [row for row in WRITES if row.values[3] == "admin"]
FACTORY_WRITES = [row for row in WRITES if row.values[3] == "factory"]

READS = [
    "/api/v1/products",
    "/api/v1/products/{product_id}",
    "/api/v1/products/{product_id}/groups",
    "/api/v1/products/{product_id}/ca.pem",
    "/api/v1/products/{product_id}/crl.pem",
    "/api/v1/devices",
    "/api/v1/devices?product_id={product_id}",
    "/api/v1/devices/{device_id}",
    "/api/v1/devices/{device_id}/certificates",
    "/api/v1/organizations",
    "/api/v1/organizations/{organization_id}",
    "/api/v1/audit-events",
]


def fill(template: Any, shop: Shop) -> Any:
    ids = {**shop.ids(), "organization_id": shop.admin.organization_id}
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, dict):
        return {key: fill(value, shop) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(item, shop) for item in template]
    return template


@pytest.mark.parametrize("scope", ["read", "factory", "admin"])
def test_every_scope_can_read_everything_but_the_key_list(shop: Shop, scope: str) -> None:
    key = shop.key_with(scope)

    for template in READS:
        response = key.get(fill(template, shop))
        assert response.status_code == 200, f"{scope} key on {template}: {response.text}"


@pytest.mark.parametrize(WRITE_ARGS, WRITES)
def test_a_read_key_gets_403_on_every_write(
    shop: Shop, method: str, template: str, body: Any, least_scope: str, success: int
) -> None:
    reader = shop.key_with("read")
    before = audit_log(shop)

    response = call(reader, method, fill(template, shop), fill(body, shop))

    assert least_scope in assert_problem(response, 403)["detail"]
    assert audit_log(shop) == before
    assert_device_untouched(shop)


@pytest.mark.parametrize(WRITE_ARGS, ADMIN_ONLY_WRITES)
def test_a_factory_key_gets_403_on_admin_writes(
    shop: Shop, method: str, template: str, body: Any, least_scope: str, success: int
) -> None:
    factory = shop.key_with("factory")
    before = audit_log(shop)

    response = call(factory, method, fill(template, shop), fill(body, shop))

    assert "admin" in assert_problem(response, 403)["detail"]
    assert audit_log(shop) == before
    assert_device_untouched(shop)


@pytest.mark.parametrize(WRITE_ARGS, FACTORY_WRITES)
def test_a_factory_key_can_define_devices_batches_and_credentials(
    shop: Shop, method: str, template: str, body: Any, least_scope: str, success: int
) -> None:
    factory = shop.key_with("factory")
    before = audit_log(shop)

    response = call(factory, method, fill(template, shop), fill(body, shop))

    assert response.status_code == success, response.text
    assert len(audit_log(shop)) > len(before)


@pytest.mark.parametrize(WRITE_ARGS, WRITES)
def test_an_admin_key_can_do_every_write(
    shop: Shop, method: str, template: str, body: Any, least_scope: str, success: int
) -> None:
    admin = shop.key_with("admin")
    before = audit_log(shop)

    response = call(admin, method, fill(template, shop), fill(body, shop))

    assert response.status_code == success, response.text
    assert len(audit_log(shop)) > len(before)


@pytest.mark.parametrize("scope", ["read", "factory"])
def test_listing_api_keys_needs_the_admin_scope(shop: Shop, scope: str) -> None:
    # Key administration is an admin's business, reads included: the list names every
    # key and its scopes, which tells an attacker which key to go after.
    assert "admin" in assert_problem(shop.key_with(scope).get(f"{API}/api-keys"), 403)["detail"]


def test_a_key_with_several_scopes_has_the_powers_of_the_highest(shop: Shop) -> None:
    key = shop.key_with("read", "factory")

    assert (
        key.post(f"{API}/devices", json={"product_id": shop.product_id, "serial_number": "SN-X"}).status_code
        == 201
    )
    assert_problem(key.post(f"{API}/products", json={"name": "not allowed"}), 403)


def test_an_organization_created_through_the_api_comes_with_an_admin_key(shop: Shop) -> None:
    child = shop.admin.sub_tenant()

    listed = ok(child.get(f"{API}/api-keys"))

    assert [key["scopes"] for key in listed] == [["admin"]]
    assert child.api_key.startswith("lsk_")


# -- creating, listing and revoking keys ------------------------------------------------------


@pytest.mark.parametrize("scopes", [["read"], ["factory"], ["admin"], ["read", "factory"]])
def test_a_new_key_has_the_scopes_asked_for_and_its_secret_is_shown_once(
    shop: Shop, scopes: list[str]
) -> None:
    created = shop.admin.created(f"{API}/api-keys", {"name": "rig 7", "scopes": scopes})

    assert created["key"].startswith("lsk_")
    assert created["key"].startswith(created["prefix"])
    assert sorted(created["scopes"]) == sorted(scopes)
    assert created["organization_id"] == shop.admin.organization_id
    assert created["revoked_at"] is None
    listed = {key["id"]: key for key in ok(shop.admin.get(f"{API}/api-keys"))}
    assert "key" not in listed[created["id"]]
    assert listed[created["id"]]["name"] == "rig 7"


def test_keys_are_listed_without_their_secrets_only_a_prefix(shop: Shop) -> None:
    made = [shop.admin.created(f"{API}/api-keys", {"name": f"k{i}", "scopes": ["read"]}) for i in range(3)]
    secrets_of_listed = [shop.admin.api_key] + [key["key"] for key in made]

    response = shop.admin.get(f"{API}/api-keys")

    listed = ok(response)
    assert {key["id"] for key in made} <= {key["id"] for key in listed}
    for secret in secrets_of_listed:
        assert secret not in response.text
        assert secret[-20:] not in response.text
    for key in listed:
        assert set(key) == {"id", "organization_id", "name", "scopes", "prefix", "created_at", "revoked_at"}
        assert key["prefix"].startswith("lsk_")
        assert len(key["prefix"]) <= 12
    by_id = {key["id"]: key for key in listed}
    for created in made:
        assert created["key"].startswith(by_id[created["id"]]["prefix"])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "k", "scopes": []}, id="no scope"),
        pytest.param({"name": "k", "scopes": ["root"]}, id="unknown scope"),
        pytest.param({"name": "", "scopes": ["read"]}, id="empty name"),
        pytest.param({"name": "k", "scopes": "admin"}, id="scopes not a list"),
        pytest.param({"name": "k", "scopes": ["read"], "expires": "never"}, id="unknown field"),
    ],
)
def test_an_invalid_key_request_gets_422_and_creates_nothing(shop: Shop, body: dict[str, Any]) -> None:
    before = ok(shop.admin.get(f"{API}/api-keys"))

    assert_problem(shop.admin.post(f"{API}/api-keys", json=body), 422)
    assert ok(shop.admin.get(f"{API}/api-keys")) == before


def test_a_revoked_key_gets_401_at_once(shop: Shop) -> None:
    key = shop.key_with("factory")
    assert ok(key.get(f"{API}/products/{shop.product_id}"))["id"] == shop.product_id
    key_id = next(
        k["id"] for k in ok(shop.admin.get(f"{API}/api-keys")) if key.api_key.startswith(k["prefix"])
    )

    revoked = ok(shop.admin.delete(f"{API}/api-keys/{key_id}"))

    assert revoked["revoked_at"] is not None
    response = key.get(f"{API}/products/{shop.product_id}")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(
        key.post(f"{API}/devices", json={"product_id": shop.product_id, "serial_number": "X"}), 401
    )
    assert ok(shop.admin.get(f"{API}/products/{shop.product_id}"))["id"] == shop.product_id


def test_a_revoked_key_stays_listed_with_its_revocation_time(shop: Shop) -> None:
    revoked = ok(shop.admin.delete(f"{API}/api-keys/{shop.spare_key_id}"))

    listed = {key["id"]: key for key in ok(shop.admin.get(f"{API}/api-keys"))}

    assert listed[shop.spare_key_id]["revoked_at"] == revoked["revoked_at"]
    assert listed[next(iter(set(listed) - {shop.spare_key_id}))]["revoked_at"] is None


def test_revoking_a_key_twice_is_harmless(shop: Shop) -> None:
    first = ok(shop.admin.delete(f"{API}/api-keys/{shop.spare_key_id}"))

    second = ok(shop.admin.delete(f"{API}/api-keys/{shop.spare_key_id}"))

    assert second == first
    revocations = ok(
        shop.admin.get(
            f"{API}/audit-events", params={"type": "api_key.revoked", "subject_id": shop.spare_key_id}
        )
    )["items"]
    assert len(revocations) == 1


def test_an_admin_key_can_revoke_itself_and_is_refused_at_once(shop: Shop) -> None:
    admin = shop.key_with("admin")
    own_id = next(k["id"] for k in ok(admin.get(f"{API}/api-keys")) if admin.api_key.startswith(k["prefix"]))

    assert ok(admin.delete(f"{API}/api-keys/{own_id}"))["revoked_at"] is not None

    assert_problem(admin.get(f"{API}/products"), 401)
    assert ok(shop.admin.get(f"{API}/products"))["items"]


def test_revoking_a_key_that_does_not_exist_gets_404(shop: Shop) -> None:
    assert_problem(shop.admin.delete(f"{API}/api-keys/0190a000-0000-7000-8000-000000000000"), 404)
    assert_problem(shop.admin.delete(f"{API}/api-keys/not-an-id"), 404)


# -- authentication --------------------------------------------------------------------------


def _basic() -> str:
    return "Basic " + base64.b64encode(b"admin:admin").decode()


# Each is a function of (a working API key, a working device token) giving the headers sent.
BAD_CREDENTIALS = [
    pytest.param(lambda key, token: {}, id="missing header"),
    pytest.param(lambda key, token: {"Authorization": ""}, id="empty header"),
    pytest.param(lambda key, token: {"Authorization": "Bearer"}, id="scheme without token"),
    pytest.param(lambda key, token: {"Authorization": _basic()}, id="basic auth"),
    pytest.param(lambda key, token: {"Authorization": f"Token {key}"}, id="wrong scheme with a good key"),
    pytest.param(lambda key, token: {"Authorization": key}, id="key without scheme"),
    pytest.param(lambda key, token: {"Authorization": "Bearer garbage"}, id="garbage token"),
    pytest.param(
        lambda key, token: {"Authorization": f"Bearer lsk_{secrets.token_urlsafe(32)}"}, id="unknown key"
    ),
    pytest.param(lambda key, token: {"Authorization": f"Bearer {key}x"}, id="key with a byte too many"),
    pytest.param(lambda key, token: {"Authorization": f"Bearer {key[:-1]}"}, id="truncated key"),
    pytest.param(lambda key, token: {"Authorization": f"Bearer {token}"}, id="device token as API key"),
]

# (method, path template, body): reads and writes, with and without a resource id.
PROTECTED = [
    ("GET", "/api/v1/products", None),
    ("POST", "/api/v1/products", {"name": "p"}),
    ("GET", "/api/v1/devices/{device_id}", None),
    ("POST", "/api/v1/devices/{device_id}/revoke", None),
    ("POST", "/api/v1/devices/{device_id}/credentials", {"type": "token"}),
    ("DELETE", "/api/v1/api-keys/{key_id}", None),
    ("POST", "/api/v1/organizations", {"name": "o"}),
    ("GET", "/api/v1/audit-events", None),
]


def assert_unauthenticated(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("headers_for", BAD_CREDENTIALS)
def test_a_call_without_a_valid_api_key_gets_401_and_changes_nothing(shop: Shop, headers_for: Any) -> None:
    headers = headers_for(shop.admin.api_key, shop.device_token)
    before = audit_log(shop)

    for method, template, body in PROTECTED:
        response = shop.admin.http.request(method, fill(template, shop), headers=headers, json=body)
        assert response.status_code == 401, f"{method} {template}: {response.text}"
        assert_unauthenticated(response)

    assert audit_log(shop) == before
    assert_device_untouched(shop)


def test_the_bearer_scheme_is_case_insensitive(shop: Shop) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} {shop.admin.api_key}"}
        assert shop.admin.http.get(f"{API}/products", headers=headers).status_code == 200, scheme


@pytest.mark.parametrize(
    "headers_for",
    [
        pytest.param(lambda key, token: {}, id="missing header"),
        pytest.param(lambda key, token: {"Authorization": f"Bearer {key}"}, id="API key"),
        pytest.param(lambda key, token: {"Authorization": "Bearer garbage"}, id="garbage token"),
        pytest.param(lambda key, token: {"Authorization": f"Basic {token}"}, id="wrong scheme"),
        pytest.param(lambda key, token: {"Authorization": f"Bearer {token[:-1]}"}, id="truncated token"),
    ],
)
def test_the_device_api_refuses_anything_but_a_device_token(shop: Shop, headers_for: Any) -> None:
    me = "/device/v1/me"
    good = {"Authorization": f"Bearer {shop.device_token}"}
    assert ok(shop.admin.http.get(me, headers=good))["id"] == shop.device_id

    assert_unauthenticated(
        shop.admin.http.get(me, headers=headers_for(shop.admin.api_key, shop.device_token))
    )


def test_a_revoked_devices_token_gets_401_on_the_device_api(shop: Shop) -> None:
    ok(shop.admin.post(f"{API}/devices/{shop.device_id}/revoke"))

    response = shop.admin.http.get("/device/v1/me", headers={"Authorization": f"Bearer {shop.device_token}"})

    assert_unauthenticated(response)


def test_a_revoked_key_gets_401_even_when_replaying_an_idempotent_create(shop: Shop) -> None:
    key = shop.key_with("admin")
    headers = {"Idempotency-Key": unique("idem")}
    body = {"name": "rig key", "scopes": ["factory"]}
    first = key.post(f"{API}/api-keys", json=body, headers=headers)
    assert first.status_code == 201, first.text
    own_id = next(k["id"] for k in ok(key.get(f"{API}/api-keys")) if key.api_key.startswith(k["prefix"]))
    ok(shop.admin.delete(f"{API}/api-keys/{own_id}"))

    replay = key.post(f"{API}/api-keys", json=body, headers=headers)

    assert_unauthenticated(replay)
    assert first.json()["key"] not in replay.text
