"""Factory PKI (issue 16) through the API on both databases: a maker registers their CA for a
product and proves they hold its key; devices whose certificates it signed register over
HTTPS behind a trusted proxy (open, allow-list, approval; idempotent; re-registration);
disabling, deleting the CA or loading a CRL stops them; and every bad certificate or proof
is refused with a reason, an event, no device and never a 500. Tenants never cross."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from sqlalchemy import event

from lineside.bootstrap import Application, bootstrap
from lineside.domain.errors import QuotaExceeded
from lineside.services.quotas import set_device_quota
from lineside.services.registration import Presented, Registration, register_devices
from lineside.settings import Settings
from tests.support.api import Tenant, assert_problem, unique
from tests.support.factory import keyed
from tests.support.pki import API, Maker, certificate, der, new_key, new_maker, pem
from tests.support.server import http_client_for

HEADER = "X-Client-Certificate"


@pytest.fixture(scope="module")
def proxied(settings: Settings) -> Iterator[Application]:
    """The same database, served as behind a proxy on the loopback that passes client
    certificates (LINESIDE_CLIENT_CERTIFICATE_HEADER, LINESIDE_TRUSTED_PROXIES)."""
    app = bootstrap(
        settings.model_copy(update={"client_certificate_header": HEADER, "trusted_proxies": "127.0.0.1"})
    )
    yield app
    app.close()


@pytest.fixture(scope="module")
def proxy(proxied: Application) -> Iterator[httpx.Client]:
    with http_client_for(proxied) as http:
        yield http


@pytest.fixture
def maker() -> Maker:
    return new_maker()


def registered(tenant: Tenant, product_id: str, authority: x509.Certificate) -> dict[str, Any]:
    return tenant.created(
        f"{API}/products/{product_id}/certificate-authorities", {"certificate": pem(authority)}
    )


def verified(tenant: Tenant, product_id: str, maker: Maker) -> dict[str, Any]:
    """The maker's line CA, registered for the product and proven."""
    made = registered(tenant, product_id, maker.intermediate)
    answer = tenant.post(
        f"{API}/certificate-authorities/{made['id']}/verify",
        json={"verification_certificate": maker.proof(made["challenge"])},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def register(
    proxy: httpx.Client, device: x509.Certificate, chain: Sequence[x509.Certificate] = ()
) -> httpx.Response:
    body = {"chain": [pem(link) for link in chain]} if chain else None
    return proxy.post("/device/v1/register", headers={HEADER: quote(pem(device))}, json=body)


def events_of(tenant: Tenant, event_type: str) -> list[dict[str, Any]]:
    return list(tenant.get(f"{API}/audit-events", params={"type": event_type}).json()["items"])


def test_a_maker_proves_their_ca_and_its_devices_register_once(
    tenant: Tenant, proxy: httpx.Client, maker: Maker
) -> None:
    product = tenant.product()
    made = registered(tenant, product["id"], maker.intermediate)
    assert made["status"] == "pending_verification" and made["challenge"].startswith("lsv_")
    device, _key = maker.device(unique("SN"))
    assert_problem(register(proxy, device), 422)  # not verified yet: it trusts nothing

    wrong = maker.proof(made["challenge"], key=new_key())
    assert_problem(
        tenant.post(
            f"{API}/certificate-authorities/{made['id']}/verify", json={"verification_certificate": wrong}
        ),
        422,
    )
    other_cn = maker.proof("lsv_not-the-challenge")
    assert_problem(
        tenant.post(
            f"{API}/certificate-authorities/{made['id']}/verify", json={"verification_certificate": other_cn}
        ),
        422,
    )
    proven = tenant.post(
        f"{API}/certificate-authorities/{made['id']}/verify",
        json={"verification_certificate": maker.proof(made["challenge"])},
    )
    assert proven.status_code == 200 and proven.json()["status"] == "verified"
    again = tenant.post(
        f"{API}/certificate-authorities/{made['id']}/verify",
        json={"verification_certificate": maker.proof(made["challenge"])},
    )
    assert_problem(again, 409)  # the challenge is spent

    first = register(proxy, device)
    assert first.status_code == 201, first.text
    second = register(proxy, device)
    assert second.status_code == 200 and second.json()["device_id"] == first.json()["device_id"]
    stored = tenant.get(f"{API}/devices/{first.json()['device_id']}").json()
    assert (stored["serial_number"], stored["state"], stored["product_id"]) == (
        device.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value,
        "defined",
        product["id"],
    )
    assert [e["subject_id"] for e in events_of(tenant, "device.registered")] == [stored["id"]]
    assert len(events_of(tenant, "device.registration_refused")) == 3  # two bad proofs, one early device


def test_a_root_registered_admits_a_chain_through_its_intermediate(
    tenant: Tenant, proxy: httpx.Client, maker: Maker
) -> None:
    product = tenant.product()
    made = registered(tenant, product["id"], maker.root)
    proof = maker.proof(made["challenge"], key=maker.root_key, authority=maker.root)
    assert (
        tenant.post(
            f"{API}/certificate-authorities/{made['id']}/verify", json={"verification_certificate": proof}
        ).status_code
        == 200
    )
    device, _key = maker.device(unique("SN"))
    assert_problem(register(proxy, device), 422)  # without the intermediate, no chain
    assert register(proxy, device, [maker.intermediate]).status_code == 201


@pytest.mark.parametrize(
    ("why", "make"),
    [
        ("expired", lambda m: m.device(unique("SN"), days=5, starts_in=-timedelta(days=10))[0]),
        ("not yet valid", lambda m: m.device(unique("SN"), starts_in=timedelta(days=2))[0]),
        (
            "a server's key usage",
            lambda m: m.device(
                unique("SN"),
                client_auth=False,
                extra=lambda b: b.add_extension(
                    x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
                ),
            )[0],
        ),
        ("a CN with a control character", lambda m: m.device("bad\x07name")[0]),
        ("a CN of 10 kB", lambda m: m.device("x" * 10_000)[0]),
        (
            "signed by a stranger",
            lambda m: certificate(unique("SN"), new_key(), (m.intermediate.subject, new_key())),
        ),
        ("from an unregistered CA", lambda m: new_maker().device(unique("SN"))[0]),
    ],
)
def test_a_bad_device_certificate_is_refused_and_creates_nothing(
    tenant: Tenant, proxy: httpx.Client, maker: Maker, why: str, make: Callable[[Maker], x509.Certificate]
) -> None:
    product = tenant.product()
    verified(tenant, product["id"], maker)
    problem = assert_problem(register(proxy, make(maker)), 422)
    assert "certificate" in problem["detail"].lower(), why
    assert tenant.get(f"{API}/devices", params={"product_id": product["id"]}).json()["items"] == []


def root_registered(tenant: Tenant, maker: Maker) -> None:
    product = tenant.product()
    made = registered(tenant, product["id"], maker.root)
    proof = maker.proof(made["challenge"], key=maker.root_key, authority=maker.root)
    assert (
        tenant.post(
            f"{API}/certificate-authorities/{made['id']}/verify", json={"verification_certificate": proof}
        ).status_code
        == 200
    )


def test_a_chain_past_its_path_length_is_refused(tenant: Tenant, proxy: httpx.Client) -> None:
    strict = new_maker(root_path_length=0)  # the root allows no intermediate below it
    root_registered(tenant, strict)
    device, _key = strict.device(unique("SN"))
    assert "path length" in assert_problem(register(proxy, device, [strict.intermediate]), 422)["detail"]


def test_a_chain_through_an_intermediate_without_the_ca_flag_is_refused(
    tenant: Tenant, proxy: httpx.Client, maker: Maker
) -> None:
    root_registered(tenant, maker)
    # The line CA's name and key, certified by the root without CA:TRUE.
    not_a_ca = certificate("Maker Line CA", maker.intermediate_key, (maker.root.subject, maker.root_key))
    device, _key = maker.device(unique("SN"))
    assert "does not chain" in assert_problem(register(proxy, device, [not_a_ca]), 422)["detail"]
    assert register(proxy, device, [maker.intermediate]).status_code == 201  # the real one does


def test_allow_list_and_approval_policies(tenant: Tenant, proxy: httpx.Client, maker: Maker) -> None:
    product = tenant.product()
    verified(tenant, product["id"], maker)
    listed = unique("SN")
    tenant.device(product["id"], listed)
    policy = tenant.put(f"{API}/products/{product['id']}/registration", json={"policy": "allow_list"})
    assert policy.status_code == 200, policy.text
    assert_problem(register(proxy, maker.device(unique("SN"))[0]), 422)  # not on the list
    on_list = register(proxy, maker.device(listed)[0])
    assert on_list.status_code == 200 and not on_list.json()["created"]  # the defined device, now with it

    tenant.put(f"{API}/products/{product['id']}/registration", json={"policy": "approval"})
    held = register(proxy, maker.device(unique("SN"))[0])
    assert held.status_code == 201 and held.json()["state"] == "pending_approval"
    approved = tenant.post(f"{API}/devices/{held.json()['device_id']}/approve")
    assert approved.status_code == 200 and approved.json()["state"] == "defined"
    assert_problem(tenant.post(f"{API}/devices/{held.json()['device_id']}/approve"), 409)


def test_another_certificate_for_a_known_device_needs_reregistration(
    tenant: Tenant, proxy: httpx.Client, maker: Maker
) -> None:
    product = tenant.product()
    verified(tenant, product["id"], maker)
    name = unique("SN")
    assert register(proxy, maker.device(name)[0]).status_code == 201
    replacement = maker.device(name)[0]
    assert "another certificate" in assert_problem(register(proxy, replacement), 422)["detail"]
    tenant.put(
        f"{API}/products/{product['id']}/registration", json={"policy": "open", "reregistration": True}
    )
    assert register(proxy, replacement).status_code == 200


def test_disabling_deleting_or_revoking_stops_the_ca_s_devices(
    tenant: Tenant, proxy: httpx.Client, maker: Maker
) -> None:
    product = tenant.product()
    authority = verified(tenant, product["id"], maker)
    kept, revoked = maker.device(unique("SN"))[0], maker.device(unique("SN"))[0]
    assert register(proxy, kept).status_code == 201 and register(proxy, revoked).status_code == 201

    assert (
        tenant.post(f"{API}/certificate-authorities/{authority['id']}/disable").json()["status"] == "disabled"
    )
    assert "disabled" in assert_problem(register(proxy, maker.device(unique("SN"))[0]), 422)["detail"]
    assert (
        tenant.post(f"{API}/certificate-authorities/{authority['id']}/enable").json()["status"] == "verified"
    )

    loaded = tenant.put(
        f"{API}/certificate-authorities/{authority['id']}/crl", json={"crl": maker.crl(revoked)}
    )
    assert loaded.json() == {"serials": 1, "certificates_revoked": 1}
    assert "revocation list" in assert_problem(register(proxy, revoked), 422)["detail"]
    assert register(proxy, kept).status_code == 200
    forged = new_maker().crl(kept)
    assert_problem(
        tenant.put(f"{API}/certificate-authorities/{authority['id']}/crl", json={"crl": forged}), 422
    )

    assert tenant.delete(f"{API}/certificate-authorities/{authority['id']}").status_code == 204
    assert "no registered CA" in assert_problem(register(proxy, kept), 422)["detail"]


def test_bad_cas_and_tenants(
    tenant: Tenant, make_tenant: Callable[[], Tenant], proxy: httpx.Client, maker: Maker
) -> None:
    product = tenant.product()
    leaf = maker.device(unique("SN"))[0]
    assert (
        "not a CA"
        in assert_problem(
            tenant.post(
                f"{API}/products/{product['id']}/certificate-authorities", json={"certificate": pem(leaf)}
            ),
            422,
        )["detail"]
    )
    assert_problem(
        tenant.post(
            f"{API}/products/{product['id']}/certificate-authorities", json={"certificate": "not pem"}
        ),
        422,
    )
    old = certificate("Old CA", new_key(), ca=True, days=10, starts_in=-timedelta(days=30))
    assert_problem(
        tenant.post(
            f"{API}/products/{product['id']}/certificate-authorities", json={"certificate": pem(old)}
        ),
        422,
    )
    authority = verified(tenant, product["id"], maker)
    assert_problem(
        tenant.post(
            f"{API}/products/{product['id']}/certificate-authorities",
            json={"certificate": pem(maker.intermediate)},
        ),
        409,
    )

    other = make_tenant()
    theirs = other.product()
    assert_problem(
        other.post(
            f"{API}/products/{product['id']}/certificate-authorities", json={"certificate": pem(maker.root)}
        ),
        404,
    )
    for path in ("", "/disable", "/enable"):
        method = other.get if path == "" else other.post
        assert_problem(method(f"{API}/certificate-authorities/{authority['id']}{path}"), 404)
    assert_problem(other.delete(f"{API}/certificate-authorities/{authority['id']}"), 404)
    # The same CA, proven for their product too, is refused: a CA serves one product.
    again = registered(other, theirs["id"], maker.intermediate)
    proof = maker.proof(again["challenge"])
    assert_problem(
        other.post(
            f"{API}/certificate-authorities/{again['id']}/verify", json={"verification_certificate": proof}
        ),
        409,
    )
    device = register(proxy, maker.device(unique("SN"))[0]).json()
    assert device["product_id"] == product["id"]  # never into theirs
    assert_problem(
        keyed(tenant, "read").post(f"{API}/certificate-authorities/{authority['id']}/disable"), 403
    )
    assert [
        a["id"] for a in tenant.get(f"{API}/products/{product['id']}/certificate-authorities").json()
    ] == [authority["id"]]


def test_registration_over_https_needs_a_trusted_proxy(
    application: Application, client: httpx.Client, tenant: Tenant, maker: Maker
) -> None:
    product = tenant.product()
    verified(tenant, product["id"], maker)
    device = maker.device(unique("SN"))[0]
    off = client.post("/device/v1/register", headers={HEADER: quote(pem(device))})
    assert_problem(off, 404)  # the default server has no certificate header configured
    assert application.settings.client_certificate_header == ""


def test_the_proxy_header_takes_escaped_pem_or_base64_der(
    tenant: Tenant, proxy: httpx.Client, maker: Maker
) -> None:
    product = tenant.product()
    verified(tenant, product["id"], maker)
    device = maker.device(unique("SN"))[0]
    as_der = proxy.post("/device/v1/register", headers={HEADER: base64.b64encode(der(device)).decode()})
    assert as_der.status_code == 201, as_der.text
    assert_problem(proxy.post("/device/v1/register", headers={HEADER: "%%%not a certificate"}), 401)
    assert_problem(proxy.post("/device/v1/register"), 401)


def statements_of(application: Application, work: Callable[[], object]) -> int:
    """How many statements ``work`` sends through SQLAlchemy from this thread (the COPY or
    executemany of ``add_many``'s driver fast path counts as none)."""
    sent: list[str] = []
    me = threading.get_ident()

    def counted(*_: object) -> None:
        if threading.get_ident() == me:
            sent.append("")

    event.listen(application.engine, "before_cursor_execute", counted)
    try:
        work()
    finally:
        event.remove(application.engine, "before_cursor_execute", counted)
    return len(sent)


def test_a_batch_of_first_connections_registers_together(
    application: Application, tenant: Tenant, maker: Maker
) -> None:
    """What the MQTT listener hands over at once: new devices in statements that do not grow
    with the batch; a CRL'd serial, a serial defined before and a name twice each decided as if
    it came alone."""
    product = tenant.product()
    authority = verified(tenant, product["id"], maker)
    known = tenant.device(product["id"])
    listed = maker.device(unique("SN"))[0]
    loaded = tenant.put(
        f"{API}/certificate-authorities/{authority['id']}/crl", json={"crl": maker.crl(listed)}
    )
    assert loaded.status_code == 200, loaded.text
    twice = unique("SN")
    odd = [maker.device(name)[0] for name in (twice, known["serial_number"], twice)]
    batch = [Presented(der(c)) for c in [*odd, listed]]
    outcomes: list[Registration | Exception] = []

    def register(names: int) -> None:
        new = [Presented(der(maker.device(unique("SN"))[0])) for _ in range(names)]
        outcomes[:] = register_devices(application.services, new, via="test")

    few, many = (
        statements_of(application, lambda: register(3)),
        statements_of(application, lambda: register(40)),
    )
    assert few == many and all(isinstance(o, Registration) and o.created for o in outcomes)
    made, defined, again, revoked = register_devices(application.services, batch, via="test")
    assert isinstance(made, Registration) and made.created
    assert isinstance(defined, Registration) and defined.device.id == known["id"] and not defined.created
    assert isinstance(again, Exception) and "another certificate" in str(again)
    assert isinstance(revoked, Exception) and "revocation list" in str(revoked)
    devices = tenant.get(f"{API}/devices", params={"product_id": product["id"], "limit": 100}).json()["items"]
    assert len(devices) == 1 + 3 + 40 + 1


def test_a_batch_past_the_quota_registers_what_fits_and_refuses_only_the_rest(
    application: Application, tenant: Tenant, maker: Maker
) -> None:
    product = tenant.product()
    verified(tenant, product["id"], maker)
    set_device_quota(application.services, tenant.organization_id, 2)
    batch = [Presented(der(maker.device(unique("SN"))[0])) for _ in range(3)]

    outcomes = register_devices(application.services, batch, via="test")

    assert [type(outcome) for outcome in outcomes] == [Registration, Registration, QuotaExceeded]
    devices = tenant.get(f"{API}/devices", params={"product_id": product["id"]}).json()["items"]
    assert len(devices) == 2
