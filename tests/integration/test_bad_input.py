"""Bad input of every kind, at every write endpoint, gets a 4xx problem and writes nothing.

Each row of ``BAD_REQUESTS`` is one endpoint given one kind of bad input. A row sends its
request into a fresh organization and checks the answer is an RFC 9457 problem with a
readable detail and that everything the organization can list is exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lineside.bootstrap import Application, bootstrap
from lineside.settings import Settings
from tests.support.api import Tenant, assert_problem, new_tenant, unique
from tests.support.server import http_client_for

MISSING_ID = "01900000-0000-7000-8000-000000000000"
NOT_A_UUID = "not-a-uuid"
NUL_ID = "a\x00b"
SMALL_BODY_LIMIT = 1024


@dataclass(frozen=True)
class World:
    """A tenant with one of everything, and a stranger whose things the tenant cannot see."""

    tenant: Tenant
    product_id: str
    device_id: str
    key_id: str
    foreign_product_id: str
    foreign_device_id: str
    foreign_key_id: str
    foreign_organization_id: str


def build_world(tenant: Tenant, stranger: Tenant) -> World:
    product = tenant.product([{"name": "color", "type": "string"}])
    device = tenant.device(product["id"])
    key = tenant.created("/api/v1/api-keys", {"name": "spare", "scopes": ["read"]})
    foreign_product = stranger.product()
    foreign_device = stranger.device(foreign_product["id"])
    foreign_key = stranger.created("/api/v1/api-keys", {"name": "theirs", "scopes": ["read"]})
    return World(
        tenant=tenant,
        product_id=product["id"],
        device_id=device["id"],
        key_id=key["id"],
        foreign_product_id=foreign_product["id"],
        foreign_device_id=foreign_device["id"],
        foreign_key_id=foreign_key["id"],
        foreign_organization_id=stranger.organization_id,
    )


@pytest.fixture
def world(make_tenant: Callable[[], Tenant]) -> World:
    return build_world(make_tenant(), make_tenant())


def snapshot(world: World) -> dict[str, Any]:
    """Everything the tenant can read that any write endpoint could change."""
    tenant = world.tenant
    paths = [
        "/api/v1/products",
        f"/api/v1/products/{world.product_id}/groups",
        "/api/v1/devices",
        f"/api/v1/devices/{world.device_id}/certificates",
        "/api/v1/organizations",
        "/api/v1/api-keys",
        "/api/v1/audit-events",
    ]
    state = {}
    for path in paths:
        response = tenant.get(path)
        assert response.status_code == 200, response.text
        state[path] = response.json()
    return state


# -- the table --------------------------------------------------------------------------

PathOf = Callable[[World], str]
BodyOf = Callable[[World], Any]
Send = Callable[[World], httpx.Response]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: PathOf
    body: BodyOf | None  # a valid body; None when the endpoint takes none

    def send_json(self, body: BodyOf, path: PathOf | None = None) -> Send:
        return lambda w: w.tenant.http.request(
            self.method, (path or self.path)(w), headers=w.tenant.headers, json=body(w)
        )

    def send_raw(self, content: Callable[[World], bytes], content_type: str) -> Send:
        return lambda w: w.tenant.http.request(
            self.method,
            self.path(w),
            headers={**w.tenant.headers, "Content-Type": content_type},
            content=content(w),
        )

    def with_fields(self, **changes: Any) -> BodyOf:
        """The valid body with some fields replaced (values may be functions of the world)."""
        assert self.body is not None
        body = self.body
        return lambda w: {**body(w), **{k: v(w) if callable(v) else v for k, v in changes.items()}}

    def without(self, *names: str) -> BodyOf:
        assert self.body is not None
        body = self.body
        return lambda w: {k: v for k, v in body(w).items() if k not in names}


PRODUCTS = Endpoint("POST", lambda w: "/api/v1/products", lambda w: {"name": unique("product")})
GROUPS = Endpoint(
    "POST",
    lambda w: f"/api/v1/products/{w.product_id}/groups",
    lambda w: {"name": unique("group"), "kind": "factory"},
)
DEVICES = Endpoint(
    "POST",
    lambda w: "/api/v1/devices",
    lambda w: {"product_id": w.product_id, "serial_number": unique("SN")},
)
BATCHES = Endpoint(
    "POST",
    lambda w: "/api/v1/device-batches",
    lambda w: {"product_id": w.product_id, "serial_numbers": [unique("SN")]},
)
CREDENTIALS = Endpoint(
    "POST", lambda w: f"/api/v1/devices/{w.device_id}/credentials", lambda w: {"type": "token"}
)
REVOKE = Endpoint("POST", lambda w: f"/api/v1/devices/{w.device_id}/revoke", None)
ORGANIZATIONS = Endpoint("POST", lambda w: "/api/v1/organizations", lambda w: {"name": unique("sub")})
API_KEYS = Endpoint(
    "POST", lambda w: "/api/v1/api-keys", lambda w: {"name": unique("key"), "scopes": ["read"]}
)
DELETE_KEY = Endpoint("DELETE", lambda w: f"/api/v1/api-keys/{w.key_id}", None)

BODY_ENDPOINTS = {
    "POST products": PRODUCTS,
    "POST groups": GROUPS,
    "POST devices": DEVICES,
    "POST device-batches": BATCHES,
    "POST credentials": CREDENTIALS,
    "POST organizations": ORGANIZATIONS,
    "POST api-keys": API_KEYS,
}
ALL_ENDPOINTS = {**BODY_ENDPOINTS, "POST revoke": REVOKE, "DELETE api-keys": DELETE_KEY}


def at(path: PathOf, endpoint: Endpoint) -> Send:
    """The endpoint called at another path, with its valid body if it takes one."""
    return lambda w: w.tenant.http.request(
        endpoint.method,
        path(w),
        headers=w.tenant.headers,
        json=endpoint.body(w) if endpoint.body else None,
    )


def encoded(body: BodyOf, *, in_a_list: bool = False) -> Callable[[World], bytes]:
    return lambda w: json.dumps([body(w)] if in_a_list else body(w)).encode()


def every_body_endpoint() -> Iterator[Any]:
    """Bad input that any endpoint taking a JSON object must refuse the same way."""
    for name, endpoint in BODY_ENDPOINTS.items():
        body = endpoint.body
        assert body is not None
        yield pytest.param(
            endpoint.send_raw(lambda w: b'{"name": "unterminated', "application/json"),
            400,
            id=f"{name}: malformed JSON",
        )
        yield pytest.param(
            endpoint.send_raw(lambda w: b'{"name": "caf\xe9"}', "application/json"),
            400,
            id=f"{name}: JSON that is not UTF-8",
        )
        yield pytest.param(
            endpoint.send_raw(lambda w: b"[" * 100_000 + b"]" * 100_000, "application/json"),
            400,
            id=f"{name}: JSON nested absurdly deep",
        )
        yield pytest.param(
            endpoint.send_raw(encoded(body, in_a_list=True), "application/json"),
            422,
            id=f"{name}: a JSON array instead of an object",
        )
        yield pytest.param(
            endpoint.send_raw(lambda w: b'"just a string"', "application/json"),
            422,
            id=f"{name}: a JSON string instead of an object",
        )
        yield pytest.param(
            endpoint.send_json(endpoint.with_fields(surprise="field")),
            422,
            id=f"{name}: an unknown field",
        )
        yield pytest.param(
            endpoint.send_raw(encoded(body), "text/plain"),
            422,
            id=f"{name}: valid JSON sent as text/plain",
        )
        yield pytest.param(
            endpoint.send_raw(encoded(body), "application/x-www-form-urlencoded"),
            422,
            id=f"{name}: valid JSON sent as a form",
        )


def p(send: Send, status: int, label: str) -> Any:
    return pytest.param(send, status, id=label)


SPECIFIC = [
    # POST /api/v1/products
    p(PRODUCTS.send_json(PRODUCTS.with_fields(name=42)), 422, "POST products: name is a number"),
    p(
        PRODUCTS.send_json(PRODUCTS.with_fields(metadata_fields="color")),
        422,
        "POST products: fields is a string",
    ),
    p(
        PRODUCTS.send_json(
            PRODUCTS.with_fields(metadata_fields=[{"name": "ok", "type": "boolean", "required": "true"}])
        ),
        422,
        "POST products: required is the string 'true'",
    ),
    p(
        PRODUCTS.send_json(PRODUCTS.with_fields(metadata_fields=[{"name": "ok", "type": "colour"}])),
        422,
        "POST products: unknown field type",
    ),
    p(
        PRODUCTS.send_json(PRODUCTS.with_fields(metadata_fields=[{"name": "1st", "type": "string"}])),
        422,
        "POST products: field name starting with a digit",
    ),
    p(
        PRODUCTS.send_json(
            PRODUCTS.with_fields(metadata_fields=[{"name": "serial_number", "type": "string"}])
        ),
        422,
        "POST products: reserved field name",
    ),
    p(
        PRODUCTS.send_json(
            PRODUCTS.with_fields(
                metadata_fields=[{"name": "a", "type": "string"}, {"name": "a", "type": "integer"}]
            )
        ),
        422,
        "POST products: field defined twice",
    ),
    p(
        PRODUCTS.send_json(PRODUCTS.with_fields(metadata_fields=[{"type": "string"}])),
        422,
        "POST products: field without a name",
    ),
    p(PRODUCTS.send_json(PRODUCTS.without("name")), 422, "POST products: missing name"),
    p(PRODUCTS.send_json(PRODUCTS.with_fields(name="")), 422, "POST products: empty name"),
    p(PRODUCTS.send_json(PRODUCTS.with_fields(name="   ")), 422, "POST products: blank name"),
    p(PRODUCTS.send_json(PRODUCTS.with_fields(name="x" * 201)), 422, "POST products: over-long name"),
    p(PRODUCTS.send_json(PRODUCTS.with_fields(name="bad\x00name")), 422, "POST products: NUL in the name"),
    p(
        PRODUCTS.send_json(
            PRODUCTS.with_fields(metadata_fields=[{"name": f"f{i}", "type": "string"} for i in range(101)])
        ),
        422,
        "POST products: too many fields",
    ),
    p(
        PRODUCTS.send_json(
            lambda w: {"name": w.tenant.get(f"/api/v1/products/{w.product_id}").json()["name"]}
        ),
        409,
        "POST products: duplicate name",
    ),
    # POST /api/v1/products/{id}/groups
    p(GROUPS.send_json(GROUPS.with_fields(name=7)), 422, "POST groups: name is a number"),
    p(GROUPS.send_json(GROUPS.with_fields(kind="assembly")), 422, "POST groups: unknown kind"),
    p(GROUPS.send_json(GROUPS.with_fields(kind=1)), 422, "POST groups: kind is a number"),
    p(GROUPS.send_json(GROUPS.without("kind")), 422, "POST groups: missing kind"),
    p(GROUPS.send_json(GROUPS.without("name")), 422, "POST groups: missing name"),
    p(GROUPS.send_json(GROUPS.with_fields(name="")), 422, "POST groups: empty name"),
    p(GROUPS.send_json(GROUPS.with_fields(name="g" * 201)), 422, "POST groups: over-long name"),
    p(at(lambda w: f"/api/v1/products/{MISSING_ID}/groups", GROUPS), 404, "POST groups: unknown product"),
    p(at(lambda w: f"/api/v1/products/{NOT_A_UUID}/groups", GROUPS), 404, "POST groups: non-UUID product id"),
    p(at(lambda w: "/api/v1/products/a%00b/groups", GROUPS), 400, "POST groups: NUL in the product id"),
    p(
        at(lambda w: f"/api/v1/products/{w.foreign_product_id}/groups", GROUPS),
        404,
        "POST groups: another organization's product",
    ),
    # POST /api/v1/devices
    p(DEVICES.send_json(DEVICES.with_fields(serial_number=12345)), 422, "POST devices: serial is a number"),
    p(DEVICES.send_json(DEVICES.with_fields(mac=1)), 422, "POST devices: mac is a number"),
    p(DEVICES.send_json(DEVICES.with_fields(metadata=["color"])), 422, "POST devices: metadata is a list"),
    p(DEVICES.send_json(DEVICES.with_fields(product_id=None)), 422, "POST devices: product id is null"),
    p(DEVICES.send_json(DEVICES.without("serial_number")), 422, "POST devices: missing serial"),
    p(DEVICES.send_json(DEVICES.without("product_id")), 422, "POST devices: missing product id"),
    p(DEVICES.send_json(DEVICES.with_fields(serial_number="")), 422, "POST devices: empty serial"),
    p(
        DEVICES.send_json(DEVICES.with_fields(serial_number=" SN-1")),
        422,
        "POST devices: serial with a leading space",
    ),
    p(DEVICES.send_json(DEVICES.with_fields(serial_number="S" * 129)), 422, "POST devices: over-long serial"),
    p(
        DEVICES.send_json(DEVICES.with_fields(serial_number="SN\x001")),
        422,
        "POST devices: NUL in the serial",
    ),
    p(DEVICES.send_json(DEVICES.with_fields(serial_number="SN-é")), 422, "POST devices: non-ASCII serial"),
    p(DEVICES.send_json(DEVICES.with_fields(mac="not-a-mac")), 422, "POST devices: invalid mac"),
    p(DEVICES.send_json(DEVICES.with_fields(product_id="")), 404, "POST devices: empty product id"),
    p(DEVICES.send_json(DEVICES.with_fields(product_id=MISSING_ID)), 404, "POST devices: unknown product"),
    p(
        DEVICES.send_json(DEVICES.with_fields(product_id=NOT_A_UUID)),
        404,
        "POST devices: non-UUID product id",
    ),
    p(DEVICES.send_json(DEVICES.with_fields(product_id=NUL_ID)), 404, "POST devices: NUL in the product id"),
    p(DEVICES.send_json(DEVICES.with_fields(product_id="p" * 5000)), 404, "POST devices: huge product id"),
    p(
        DEVICES.send_json(DEVICES.with_fields(product_id=lambda w: w.foreign_product_id)),
        404,
        "POST devices: another organization's product",
    ),
    p(
        DEVICES.send_json(
            DEVICES.with_fields(
                serial_number=lambda w: w.tenant.get(f"/api/v1/devices/{w.device_id}").json()["serial_number"]
            )
        ),
        409,
        "POST devices: duplicate serial",
    ),
    # POST /api/v1/device-batches (JSON; CSV has its own file)
    p(
        BATCHES.send_json(BATCHES.with_fields(serial_numbers="SN-1")),
        422,
        "POST device-batches: serials is a string",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(serial_numbers=[1, 2])),
        422,
        "POST device-batches: serials are numbers",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(devices={"serial_number": "x"})),
        422,
        "POST device-batches: devices is an object",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(issue_credentials=True)),
        422,
        "POST device-batches: credentials is true",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(issue_credentials="password")),
        422,
        "POST device-batches: unknown credential",
    ),
    p(BATCHES.send_json(BATCHES.without("product_id")), 422, "POST device-batches: missing product id"),
    p(
        BATCHES.send_json(BATCHES.without("serial_numbers")),
        422,
        "POST device-batches: neither serials nor devices",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(devices=[{"serial_number": "SN-X"}])),
        422,
        "POST device-batches: both serials and devices",
    ),
    p(BATCHES.send_json(BATCHES.with_fields(serial_numbers=[])), 422, "POST device-batches: empty batch"),
    p(BATCHES.send_json(BATCHES.with_fields(serial_numbers=[""])), 422, "POST device-batches: empty serial"),
    p(
        BATCHES.send_json(BATCHES.with_fields(serial_numbers=["S" * 129])),
        422,
        "POST device-batches: over-long serial",
    ),
    p(
        BATCHES.send_json(
            BATCHES.with_fields(devices=[{"serial_number": "SN-1", "colour": "red"}], serial_numbers=None)
        ),
        422,
        "POST device-batches: unknown field in a device",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(product_id=MISSING_ID)),
        404,
        "POST device-batches: unknown product",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(product_id=NOT_A_UUID)),
        404,
        "POST device-batches: non-UUID product id",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(product_id=NUL_ID)),
        404,
        "POST device-batches: NUL in the product id",
    ),
    p(
        BATCHES.send_json(BATCHES.with_fields(product_id=lambda w: w.foreign_product_id)),
        404,
        "POST device-batches: another organization's product",
    ),
    # POST /api/v1/devices/{id}/credentials
    p(CREDENTIALS.send_json(CREDENTIALS.with_fields(type="password")), 422, "POST credentials: unknown type"),
    p(CREDENTIALS.send_json(CREDENTIALS.with_fields(type=1)), 422, "POST credentials: type is a number"),
    p(CREDENTIALS.send_json(CREDENTIALS.with_fields(type="")), 422, "POST credentials: empty type"),
    p(CREDENTIALS.send_json(CREDENTIALS.without("type")), 422, "POST credentials: missing type"),
    p(CREDENTIALS.send_json(lambda w: {"type": "x509", "csr": 5}), 422, "POST credentials: CSR is a number"),
    p(CREDENTIALS.send_json(lambda w: {"type": "x509", "csr": "junk"}), 422, "POST credentials: garbage CSR"),
    p(CREDENTIALS.send_json(lambda w: {"type": "x509", "csr": ""}), 422, "POST credentials: empty CSR"),
    p(
        CREDENTIALS.send_json(lambda w: {"type": "x509", "csr": "A" * 70000}),
        422,
        "POST credentials: over-long CSR",
    ),
    p(
        CREDENTIALS.send_json(lambda w: {"type": "token", "csr": "junk"}),
        422,
        "POST credentials: CSR with a token",
    ),
    p(
        at(lambda w: f"/api/v1/devices/{MISSING_ID}/credentials", CREDENTIALS),
        404,
        "POST credentials: unknown device",
    ),
    p(
        at(lambda w: f"/api/v1/devices/{NOT_A_UUID}/credentials", CREDENTIALS),
        404,
        "POST credentials: non-UUID device id",
    ),
    p(
        at(lambda w: f"/api/v1/devices/{w.foreign_device_id}/credentials", CREDENTIALS),
        404,
        "POST credentials: another organization's device",
    ),
    # POST /api/v1/devices/{id}/revoke
    p(at(lambda w: f"/api/v1/devices/{MISSING_ID}/revoke", REVOKE), 404, "POST revoke: unknown device"),
    p(at(lambda w: f"/api/v1/devices/{NOT_A_UUID}/revoke", REVOKE), 404, "POST revoke: non-UUID device id"),
    p(at(lambda w: "/api/v1/devices/a%00b/revoke", REVOKE), 400, "POST revoke: NUL in the device id"),
    p(
        at(lambda w: f"/api/v1/devices/{w.foreign_device_id}/revoke", REVOKE),
        404,
        "POST revoke: another organization's device",
    ),
    # POST /api/v1/organizations
    p(
        ORGANIZATIONS.send_json(ORGANIZATIONS.with_fields(name=True)),
        422,
        "POST organizations: name is a boolean",
    ),
    p(ORGANIZATIONS.send_json(ORGANIZATIONS.without("name")), 422, "POST organizations: missing name"),
    p(ORGANIZATIONS.send_json(ORGANIZATIONS.with_fields(name="")), 422, "POST organizations: empty name"),
    p(ORGANIZATIONS.send_json(ORGANIZATIONS.with_fields(name="\t ")), 422, "POST organizations: blank name"),
    p(
        ORGANIZATIONS.send_json(ORGANIZATIONS.with_fields(name="o" * 201)),
        422,
        "POST organizations: over-long name",
    ),
    p(
        ORGANIZATIONS.send_json(ORGANIZATIONS.with_fields(name="a\x00b")),
        422,
        "POST organizations: NUL in the name",
    ),
    # POST /api/v1/api-keys
    p(API_KEYS.send_json(API_KEYS.with_fields(name=1)), 422, "POST api-keys: name is a number"),
    p(API_KEYS.send_json(API_KEYS.with_fields(scopes="admin")), 422, "POST api-keys: scopes is a string"),
    p(API_KEYS.send_json(API_KEYS.with_fields(scopes=["root"])), 422, "POST api-keys: unknown scope"),
    p(API_KEYS.send_json(API_KEYS.with_fields(scopes=[])), 422, "POST api-keys: no scopes"),
    p(API_KEYS.send_json(API_KEYS.without("scopes")), 422, "POST api-keys: missing scopes"),
    p(API_KEYS.send_json(API_KEYS.without("name")), 422, "POST api-keys: missing name"),
    p(API_KEYS.send_json(API_KEYS.with_fields(name="")), 422, "POST api-keys: empty name"),
    p(API_KEYS.send_json(API_KEYS.with_fields(name="k" * 201)), 422, "POST api-keys: over-long name"),
    p(
        API_KEYS.send_json(API_KEYS.with_fields(organization_id=5)),
        422,
        "POST api-keys: organization id is a number",
    ),
    p(
        API_KEYS.send_json(API_KEYS.with_fields(organization_id=MISSING_ID)),
        404,
        "POST api-keys: unknown organization",
    ),
    p(
        API_KEYS.send_json(API_KEYS.with_fields(organization_id=NOT_A_UUID)),
        404,
        "POST api-keys: non-UUID organization",
    ),
    p(
        API_KEYS.send_json(API_KEYS.with_fields(organization_id=NUL_ID)),
        404,
        "POST api-keys: NUL in the organization id",
    ),
    p(
        API_KEYS.send_json(API_KEYS.with_fields(organization_id=lambda w: w.foreign_organization_id)),
        404,
        "POST api-keys: another organization",
    ),
    # DELETE /api/v1/api-keys/{id}
    p(at(lambda w: f"/api/v1/api-keys/{MISSING_ID}", DELETE_KEY), 404, "DELETE api-keys: unknown key"),
    p(at(lambda w: f"/api/v1/api-keys/{NOT_A_UUID}", DELETE_KEY), 404, "DELETE api-keys: non-UUID key id"),
    p(at(lambda w: "/api/v1/api-keys/a%00b", DELETE_KEY), 400, "DELETE api-keys: NUL in the key id"),
    p(
        at(lambda w: f"/api/v1/api-keys/{w.foreign_key_id}", DELETE_KEY),
        404,
        "DELETE api-keys: another organization's key",
    ),
]


@pytest.mark.parametrize(("send", "status"), [*every_body_endpoint(), *SPECIFIC])
def test_a_bad_request_gets_a_problem_and_writes_nothing(world: World, send: Send, status: int) -> None:
    before = snapshot(world)
    assert_problem(send(world), status)
    assert snapshot(world) == before


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS.values(), ids=BODY_ENDPOINTS.keys())
def test_every_body_endpoint_accepts_its_valid_body(world: World, endpoint: Endpoint) -> None:
    """The table's bad rows differ from a good request in one thing only."""
    assert endpoint.body is not None
    response = endpoint.send_json(endpoint.body)(world)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_without_a_json_content_type_is_told_which_header_to_send(
    world: World, content_type: str | None
) -> None:
    # What curl -d sends unless told -H 'Content-Type: application/json'.
    headers = {"Authorization": f"Bearer {world.tenant.api_key}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = world.tenant.http.post("/api/v1/products", content=b'{"name": "Thermostat"}', headers=headers)
    body = assert_problem(response, 422)
    assert "send Content-Type: application/json" in body["detail"]


def test_every_validation_problem_names_the_field_at_fault(world: World) -> None:
    response = DEVICES.send_json(DEVICES.with_fields(serial_number=12345))(world)
    body = assert_problem(response, 422)
    assert "serial_number" in body["detail"]
    assert {"field": "serial_number", "reason": body["errors"][0]["reason"]} in body["errors"]


# -- bodies over the limit ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_limit_app(settings: Settings) -> Iterator[Application]:
    app = bootstrap(settings.model_copy(update={"max_body_bytes": SMALL_BODY_LIMIT}))
    yield app
    app.close()


@pytest.fixture(scope="module")
def small_limit_http(small_limit_app: Application) -> Iterator[httpx.Client]:
    with http_client_for(small_limit_app) as http:
        yield http


@pytest.fixture
def small_world(small_limit_app: Application, small_limit_http: httpx.Client) -> World:
    return build_world(
        new_tenant(small_limit_app, small_limit_http), new_tenant(small_limit_app, small_limit_http)
    )


def oversized_json(world: World) -> bytes:
    return json.dumps({"name": "x" * (2 * SMALL_BODY_LIMIT)}).encode()


def in_chunks(data: bytes) -> Iterator[bytes]:
    """No Content-Length: httpx sends a generator with chunked transfer encoding."""
    for start in range(0, len(data), 256):
        yield data[start : start + 256]


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS.values(), ids=ALL_ENDPOINTS.keys())
def test_a_body_over_the_limit_gets_413_and_writes_nothing(small_world: World, endpoint: Endpoint) -> None:
    before = snapshot(small_world)
    response = endpoint.send_raw(oversized_json, "application/json")(small_world)
    body = assert_problem(response, 413)
    assert str(SMALL_BODY_LIMIT) in body["detail"]
    assert snapshot(small_world) == before


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS.values(), ids=BODY_ENDPOINTS.keys())
def test_a_chunked_body_over_the_limit_gets_413_and_writes_nothing(
    small_world: World, endpoint: Endpoint
) -> None:
    before = snapshot(small_world)
    tenant = small_world.tenant
    response = tenant.http.request(
        endpoint.method,
        endpoint.path(small_world),
        headers={**tenant.headers, "Content-Type": "application/json"},
        content=in_chunks(oversized_json(small_world)),
    )
    assert_problem(response, 413)
    assert snapshot(small_world) == before


def test_a_csv_batch_over_the_limit_gets_413_and_writes_nothing(small_world: World) -> None:
    rows = "".join(f"SN-{i:06d}\n" for i in range(200))
    response = small_world.tenant.post(
        "/api/v1/device-batches",
        params={"product_id": small_world.product_id},
        headers={"Content-Type": "text/csv"},
        content=f"serial_number\n{rows}".encode(),
    )
    assert_problem(response, 413)
    listed = small_world.tenant.get("/api/v1/devices", params={"product_id": small_world.product_id})
    assert [d["id"] for d in listed.json()["items"]] == [small_world.device_id]


def test_a_body_just_under_the_limit_is_accepted(small_world: World) -> None:
    name = "n" * 150
    body = json.dumps({"name": name}).encode().ljust(SMALL_BODY_LIMIT, b" ")
    response = small_world.tenant.post(
        "/api/v1/organizations", headers={"Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


# -- metadata against the product's fields ---------------------------------------------------

FIELDS: list[dict[str, Any]] = [
    {"name": "color", "type": "string", "required": True},
    {"name": "count", "type": "integer"},
    {"name": "weight", "type": "number"},
    {"name": "sealed", "type": "boolean"},
]


@pytest.fixture
def typed_product(tenant: Tenant) -> dict[str, Any]:
    return tenant.product(FIELDS)


def define(tenant: Tenant, product_id: str, **extra: Any) -> httpx.Response:
    return tenant.post(
        "/api/v1/devices", json={"product_id": product_id, "serial_number": unique("SN"), **extra}
    )


def listed_devices(tenant: Tenant, product_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = tenant.get("/api/v1/devices", params={"product_id": product_id}).json()[
        "items"
    ]
    return items


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        pytest.param({}, "color", id="required field missing"),
        pytest.param({"color": None}, "color", id="required field null"),
        pytest.param({"color": 5}, "color", id="number for a string"),
        pytest.param({"color": ["red"]}, "color", id="list for a string"),
        pytest.param({"color": "x" * 1025}, "color", id="over-long string"),
        pytest.param({"color": "red\x00"}, "color", id="NUL in a string"),
        pytest.param({"color": "red", "count": "5"}, "count", id="string for an integer"),
        pytest.param({"color": "red", "count": True}, "count", id="boolean is not an integer"),
        pytest.param({"color": "red", "count": 1.5}, "count", id="fraction for an integer"),
        pytest.param({"color": "red", "weight": "1.5"}, "weight", id="string for a number"),
        pytest.param({"color": "red", "weight": "NaN"}, "weight", id="'NaN' string for a number"),
        pytest.param({"color": "red", "weight": "Infinity"}, "weight", id="'Infinity' string for a number"),
        pytest.param({"color": "red", "weight": False}, "weight", id="boolean is not a number"),
        pytest.param({"color": "red", "sealed": "true"}, "sealed", id="'true' string for a boolean"),
        pytest.param({"color": "red", "sealed": 1}, "sealed", id="1 for a boolean"),
        pytest.param({"color": "red", "shade": "dark"}, "shade", id="unknown field"),
        pytest.param({"color": "red", "count": {"n": 1}}, "count", id="object for an integer"),
    ],
)
def test_metadata_that_does_not_fit_the_product_is_refused_naming_the_field(
    tenant: Tenant, typed_product: dict[str, Any], metadata: dict[str, Any], field: str
) -> None:
    body = assert_problem(define(tenant, typed_product["id"], metadata=metadata), 422)
    assert field in body["detail"]
    assert listed_devices(tenant, typed_product["id"]) == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_json_number_is_refused_for_a_number_field(
    tenant: Tenant, typed_product: dict[str, Any], literal: str
) -> None:
    content = (
        f'{{"product_id": "{typed_product["id"]}", "serial_number": "SN-NAN", '
        f'"metadata": {{"color": "red", "weight": {literal}}}}}'
    )
    response = tenant.post("/api/v1/devices", headers={"Content-Type": "application/json"}, content=content)
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)
    assert listed_devices(tenant, typed_product["id"]) == []


def test_metadata_that_fits_is_stored_with_its_types(tenant: Tenant, typed_product: dict[str, Any]) -> None:
    metadata = {"color": "red", "count": 3, "weight": 2, "sealed": False}
    response = define(tenant, typed_product["id"], metadata=metadata)
    assert response.status_code == 201, response.text
    stored = tenant.get(f"/api/v1/devices/{response.json()['id']}").json()["metadata"]
    assert stored == metadata
    assert type(stored["count"]) is int and type(stored["sealed"]) is bool


def test_an_optional_field_given_as_null_is_stored_as_absent(
    tenant: Tenant, typed_product: dict[str, Any]
) -> None:
    response = define(tenant, typed_product["id"], metadata={"color": "red", "count": None})
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == {"color": "red"}
    stored = tenant.get(f"/api/v1/devices/{response.json()['id']}").json()
    assert stored["metadata"] == {"color": "red"}


def test_a_serial_number_defined_twice_in_one_product_is_a_409(tenant: Tenant) -> None:
    product = tenant.product()
    first = tenant.device(product["id"], "SN-TWICE")
    body = assert_problem(define(tenant, product["id"], serial_number="SN-TWICE"), 409)
    assert "SN-TWICE" in body["detail"]
    assert [d["id"] for d in listed_devices(tenant, product["id"])] == [first["id"]]


def test_the_same_serial_number_in_two_products_is_fine(tenant: Tenant) -> None:
    one, two = tenant.product(), tenant.product()
    first = tenant.device(one["id"], "SN-SHARED")
    second = tenant.device(two["id"], "SN-SHARED")
    assert first["id"] != second["id"]
    assert [d["serial_number"] for d in listed_devices(tenant, two["id"])] == ["SN-SHARED"]


def test_the_same_serial_number_in_two_organizations_is_fine(make_tenant: Callable[[], Tenant]) -> None:
    for tenant in (make_tenant(), make_tenant()):
        product = tenant.product()
        assert tenant.device(product["id"], "SN-EVERYWHERE")["serial_number"] == "SN-EVERYWHERE"


@pytest.mark.parametrize(
    "mac",
    [
        "00:1a:2b:3c:4d",
        "00:1a:2b:3c:4d:5e:6f",
        "00:1a:2b:3c:4d:zz",
        "001a2b3c4d5",
        "mac",
        "00_1a_2b_3c_4d_5e",
    ],
)
def test_an_invalid_mac_is_refused(tenant: Tenant, mac: str) -> None:
    product = tenant.product()
    body = assert_problem(define(tenant, product["id"], mac=mac), 422)
    assert "mac" in body["detail"]
    assert listed_devices(tenant, product["id"]) == []


@pytest.mark.parametrize("mac", ["00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e", "001A.2B3C.4D5E", "001a2b3c4d5e"])
def test_a_mac_is_stored_in_lower_case_colon_form(tenant: Tenant, mac: str) -> None:
    product = tenant.product()
    response = define(tenant, product["id"], mac=mac)
    assert response.status_code == 201, response.text
    assert response.json()["mac"] == "00:1a:2b:3c:4d:5e"
    assert listed_devices(tenant, product["id"])[0]["mac"] == "00:1a:2b:3c:4d:5e"
