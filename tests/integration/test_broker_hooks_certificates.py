"""Devices with TLS client certificates behind production brokers (issue 16), on both
databases, in each broker's own contract: what the broker passes about the certificate it
verified, and what Lineside answers.

- The certificate itself (EMQX 5.8 ``${cert_pem}``, VerneMQ 2.1 ``client_cert``): found by
  fingerprint, or registered just in time.
- Its name only (EMQX ``${cert_common_name}``, Mosquitto ``use_identity_as_username`` /
  ``use_subject_as_username``, VerneMQ ``use_identity_as_username``, RabbitMQ
  ``ssl_cert_login``): the device the client id names must hold an active certificate of
  that name; nothing registers.

Each contract lets a registered device in and to its topics, and refuses it after its CA is
disabled or deleted, after the CA's CRL lists its serial, and under another organization's
device id."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lineside.settings import Settings
from tests.support.broker_hooks import Hooks, running_hooks
from tests.support.certificate_lines import Line, new_line
from tests.support.pki import API, der, pem


@pytest.fixture(scope="module")
def hooks(settings: Settings) -> Iterator[Hooks]:
    with running_hooks(settings) as running:
        yield running


@pytest.fixture
def line(hooks: Hooks) -> Line:
    return new_line(hooks)


def common_name(certificate: x509.Certificate) -> str:
    value = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    return value


def distinguished_name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()  # as OpenSSL (RFC 2253) and RabbitMQ print it


def own_topic(device_id: str) -> str:
    return f"devices/{device_id}/telemetry"


# -- Each broker's requests, as its documented configuration renders them ---------------------


@dataclass(frozen=True)
class Contract:
    """One broker configuration: whether a CONNECT with ``certificate`` as client ``client_id``
    is let in, and whether that connection may then publish to its own topic."""

    name: str
    connects: Callable[[Hooks, str, x509.Certificate], bool]
    publishes: Callable[[Hooks, str, x509.Certificate], bool]
    full_certificate: bool  # the broker passes the certificate itself: registration just in time


def _json(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _emqx_authn(hooks: Hooks, client_id: str, certificate: x509.Certificate, *, with_pem: bool) -> bool:
    body = {
        "clientid": client_id,
        "username": "",
        "password": "",
        "peerhost": "10.0.0.7",
        "cert_common_name": common_name(certificate),
        "cert_subject": distinguished_name(certificate),
        "cert_pem": pem(certificate) if with_pem else "${cert_pem}",  # before 5.8: left as is
    }
    return bool(_json(hooks.http.post("/broker/emqx/authenticate", json=body))["result"] == "allow")


def _emqx_authz(hooks: Hooks, client_id: str, certificate: x509.Certificate) -> bool:
    body = {
        "clientid": client_id,
        "username": "",
        "cert_common_name": common_name(certificate),
        "topic": own_topic(client_id),
        "action": "publish",
    }
    return bool(_json(hooks.http.post("/broker/emqx/authorize", json=body))["result"] == "allow")


def _mosquitto_acl(name: Callable[[x509.Certificate], str]) -> Callable[[Hooks, str, x509.Certificate], bool]:
    def check(hooks: Hooks, client_id: str, certificate: x509.Certificate) -> bool:
        # Mosquitto asks nothing at CONNECT on such a listener: the first ACL check is all.
        body = {"username": name(certificate), "clientid": client_id, "topic": own_topic(client_id), "acc": 2}
        response = hooks.http.post("/broker/mosquitto/acl", json=body)
        assert response.status_code in (200, 403), response.text
        return response.status_code == 200

    return check


def _vernemq_register(*, with_certificate: bool) -> Callable[[Hooks, str, x509.Certificate], bool]:
    def register(hooks: Hooks, client_id: str, certificate: x509.Certificate) -> bool:
        payload: dict[str, Any] = {
            "peer_addr": "10.0.0.7",
            "peer_port": 50123,
            "mountpoint": "",
            "client_id": client_id,
            "username": common_name(certificate),  # use_identity_as_username = on
            "password": None,
            "clean_session": True,
        }
        params = None
        if with_certificate:  # forward_connection_opts = on (VerneMQ 2.1)
            payload |= {
                "client_cert": base64.b64encode(der(certificate)).decode(),
                "listener_addr": "0.0.0.0",
                "listener_port": 8883,
                "listener_type": "ssl",
            }
        else:
            params = {"usernames_from": "certificates"}
        response = hooks.http.post("/broker/vernemq/auth_on_register", json=payload, params=params)
        return bool(_json(response) == {"result": "ok"})

    return register


def _vernemq_publish(hooks: Hooks, client_id: str, certificate: x509.Certificate) -> bool:
    payload = {
        "username": common_name(certificate),
        "client_id": client_id,
        "mountpoint": "",
        "qos": 1,
        "topic": own_topic(client_id),
        "payload": "e30=",
        "retain": False,
    }
    return bool(_json(hooks.http.post("/broker/vernemq/auth_on_publish", json=payload)) == {"result": "ok"})


def _rabbit(hooks: Hooks, path: str, **params: str) -> bool:
    response = hooks.http.post(f"/broker/rabbitmq/{path}", data=params)
    assert response.status_code == 200 and response.text in ("allow", "deny"), response.text
    return response.text == "allow"


def _rabbitmq_login(*, sends_client_id: bool) -> Callable[[Hooks, str, x509.Certificate], bool]:
    def login(hooks: Hooks, client_id: str, certificate: x509.Certificate) -> bool:
        username = distinguished_name(certificate)  # ssl_cert_login_from's default
        user = {"username": username} | ({"vhost": "/", "client_id": client_id} if sends_client_id else {})
        vhost = {"username": username, "vhost": "/", "ip": "10.0.0.7", "client_id": client_id}
        return _rabbit(hooks, "user", **user) and _rabbit(hooks, "vhost", **vhost)

    return login


def _rabbitmq_topic(hooks: Hooks, client_id: str, certificate: x509.Certificate) -> bool:
    return _rabbit(
        hooks,
        "topic",
        username=distinguished_name(certificate),
        vhost="/",
        resource="topic",
        name="amq.topic",
        permission="write",
        routing_key=own_topic(client_id).replace("/", "."),
        **{"variable_map.client_id": client_id, "variable_map.vhost": "/"},
    )


CONTRACTS = [
    Contract(
        "emqx-cert-pem",
        lambda h, c, cert: _emqx_authn(h, c, cert, with_pem=True),
        _emqx_authz,
        full_certificate=True,
    ),
    Contract(
        "emqx-common-name",
        lambda h, c, cert: _emqx_authn(h, c, cert, with_pem=False),
        _emqx_authz,
        full_certificate=False,
    ),
    Contract(
        "mosquitto-identity",
        _mosquitto_acl(common_name),
        _mosquitto_acl(common_name),
        full_certificate=False,
    ),
    Contract(
        "mosquitto-subject",
        _mosquitto_acl(distinguished_name),
        _mosquitto_acl(distinguished_name),
        full_certificate=False,
    ),
    Contract(
        "vernemq-client-cert",
        _vernemq_register(with_certificate=True),
        _vernemq_publish,
        full_certificate=True,
    ),
    Contract(
        "vernemq-identity",
        _vernemq_register(with_certificate=False),
        _vernemq_publish,
        full_certificate=False,
    ),
    Contract(
        "rabbitmq-3.10", _rabbitmq_login(sends_client_id=False), _rabbitmq_topic, full_certificate=False
    ),
    Contract("rabbitmq-3.13", _rabbitmq_login(sends_client_id=True), _rabbitmq_topic, full_certificate=False),
]


@pytest.fixture(params=CONTRACTS, ids=lambda contract: contract.name)
def contract(request: pytest.FixtureRequest) -> Contract:
    chosen: Contract = request.param
    return chosen


# -- Every contract ---------------------------------------------------------------------------


def test_a_registered_device_connects_with_its_certificate_and_uses_its_topics(
    hooks: Hooks, line: Line, contract: Contract
) -> None:
    certificate, device_id = line.registered()
    stranger_id = line.certificate()[1]

    assert contract.connects(hooks, device_id, certificate)
    assert contract.publishes(hooks, device_id, certificate)
    assert not contract.connects(hooks, stranger_id, certificate)  # its certificate, not its id
    hooks.flush()
    assert hooks.stored(device_id).state.value == "activated"


def test_a_disabled_ca_refuses_its_devices_until_enabled_again(
    hooks: Hooks, line: Line, contract: Contract
) -> None:
    certificate, device_id = line.registered()
    assert contract.connects(hooks, device_id, certificate)

    line.disable()
    refused = (
        contract.connects(hooks, device_id, certificate),
        contract.publishes(hooks, device_id, certificate),
    )
    line.enable()

    assert refused == (False, False)
    assert contract.connects(hooks, device_id, certificate)


def test_a_deleted_ca_refuses_its_devices(hooks: Hooks, line: Line, contract: Contract) -> None:
    certificate, device_id = line.registered()

    line.delete()

    assert not contract.connects(hooks, device_id, certificate)
    assert not contract.publishes(hooks, device_id, certificate)


def test_a_serial_on_the_cas_crl_is_refused_at_the_next_connection(
    hooks: Hooks, line: Line, contract: Contract
) -> None:
    certificate, device_id = line.registered()
    neighbour, neighbour_id = line.registered()
    assert contract.connects(hooks, device_id, certificate)

    line.revoke(certificate)

    assert not contract.connects(hooks, device_id, certificate)
    assert not contract.publishes(hooks, device_id, certificate)
    assert contract.connects(hooks, neighbour_id, neighbour)  # only the listed serial


def test_another_organizations_device_id_is_refused(hooks: Hooks, line: Line, contract: Contract) -> None:
    certificate, device_id = line.registered()
    theirs = new_line(hooks)
    their_certificate, their_id = theirs.registered()
    token_device_id, _token = hooks.device(hooks.tenant())

    assert not contract.connects(hooks, their_id, certificate)
    assert not contract.publishes(hooks, their_id, certificate)
    assert not contract.connects(hooks, token_device_id, certificate)
    assert not contract.connects(hooks, device_id, their_certificate)
    # Their own device: a different name and certificate, let in as itself only.
    assert contract.connects(hooks, their_id, their_certificate)


def test_a_device_never_seen_registers_only_where_the_broker_passes_its_certificate(
    hooks: Hooks, line: Line, contract: Contract
) -> None:
    certificate, device_id = line.certificate()

    connected = contract.connects(hooks, device_id, certificate)

    assert connected is contract.full_certificate
    found = line.tenant.get(f"{API}/devices/{device_id}")
    assert found.status_code == (200 if contract.full_certificate else 404)
    if contract.full_certificate:
        assert found.json()["serial_number"] == common_name(certificate)
        assert contract.publishes(hooks, device_id, certificate)


# -- Lineside's own product CA: the certificate's CN is the device id -------------------------

NAME_CONTRACTS = [
    c for c in CONTRACTS if c.name in ("emqx-common-name", "mosquitto-subject", "rabbitmq-3.10")
]


@pytest.mark.parametrize("contract", NAME_CONTRACTS, ids=lambda contract: contract.name)
def test_a_certificate_of_the_products_own_ca_works_until_revoked(hooks: Hooks, contract: Contract) -> None:
    tenant = hooks.tenant()
    device_id = tenant.device(tenant.product()["id"])["id"]
    issued = tenant.created(f"{API}/devices/{device_id}/credentials", {"type": "x509"})
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    assert common_name(certificate) == device_id

    accepted = (
        contract.connects(hooks, device_id, certificate),
        contract.publishes(hooks, device_id, certificate),
    )
    assert tenant.delete(f"{API}/devices/{device_id}/credentials").status_code == 204

    assert accepted == (True, True)
    assert not contract.connects(hooks, device_id, certificate)
    assert not contract.publishes(hooks, device_id, certificate)


def test_rabbitmq_before_3_13_checks_a_device_id_login_at_once(hooks: Hooks) -> None:
    """With ``ssl_cert_login_from = common_name`` a product-CA certificate logs in as its device
    id, which ``vhost`` would take for a password login: ``user`` checks it itself."""
    tenant = hooks.tenant()
    device_id = tenant.device(tenant.product()["id"])["id"]
    tenant.created(f"{API}/devices/{device_id}/credentials", {"type": "x509"})
    other_id = tenant.device(tenant.product()["id"])["id"]

    assert _rabbit(hooks, "user", username=device_id)
    assert not _rabbit(hooks, "user", username=other_id)  # no certificate at all
    assert tenant.delete(f"{API}/devices/{device_id}/credentials").status_code == 204
    assert not _rabbit(hooks, "user", username=device_id)


# -- What each contract does not do -----------------------------------------------------------


def test_mosquitto_never_lets_a_certificate_name_in_at_user(hooks: Hooks, line: Line) -> None:
    """Mosquitto lets certificate clients in without asking /user: a password-less /user is a
    client that typed a name, and is refused."""
    certificate, device_id = line.registered()
    body = {"username": common_name(certificate), "password": "", "clientid": device_id}

    assert hooks.http.post("/broker/mosquitto/user", json=body).status_code == 403


def test_vernemq_takes_a_username_for_a_certificate_name_only_when_the_endpoint_says_so(
    hooks: Hooks, line: Line
) -> None:
    certificate, device_id = line.registered()
    payload = {
        "client_id": device_id,
        "username": common_name(certificate),
        "password": None,
        "mountpoint": "",
    }

    typed = _json(hooks.http.post("/broker/vernemq/auth_on_register", json=payload))
    vouched = _json(
        hooks.http.post(
            "/broker/vernemq/auth_on_register", json=payload, params={"usernames_from": "certificates"}
        )
    )
    spoofed = _json(  # the body cannot say it: only the endpoint URL, written by the operator
        hooks.http.post("/broker/vernemq/auth_on_register", json=payload | {"usernames_from": "certificates"})
    )

    assert (typed, vouched, spoofed) == ({"result": {"error": "not_allowed"}}, {"result": "ok"}, typed)


def test_a_client_certificate_does_not_stand_in_for_a_wrong_password(hooks: Hooks, line: Line) -> None:
    certificate, device_id = line.registered()
    body = {
        "clientid": device_id,
        "username": device_id,
        "password": "lsd_" + "x" * 43,
        "cert_common_name": common_name(certificate),
        "cert_pem": pem(certificate),
    }

    assert _json(hooks.http.post("/broker/emqx/authenticate", json=body)) == {"result": "deny"}


def test_emqx_certificate_devices_with_their_id_as_username_need_no_lookup_to_publish(
    hooks: Hooks, line: Line
) -> None:
    certificate, device_id = line.certificate()
    authn = {"clientid": device_id, "username": device_id, "password": "", "cert_pem": pem(certificate)}
    authz = {"clientid": device_id, "username": device_id, "topic": own_topic(device_id), "action": "publish"}

    assert _json(hooks.http.post("/broker/emqx/authenticate", json=authn))["result"] == "allow"
    assert _json(hooks.http.post("/broker/emqx/authorize", json=authz)) == {"result": "allow"}


def test_rabbitmq_certificate_logins_get_their_own_subscription_queues_only(hooks: Hooks, line: Line) -> None:
    certificate, device_id = line.registered()
    who = {"username": distinguished_name(certificate), "vhost": "/", "client_id": device_id}

    def queue(name: str, **override: str) -> bool:
        return _rabbit(hooks, "resource", **(who | override), resource="queue", name=name, permission="read")

    assert queue(f"mqtt-subscription-{device_id}qos1")
    assert not queue("mqtt-subscription-otherqos1")
    other_id = line.certificate()[1]
    assert not queue(f"mqtt-subscription-{other_id}qos1", client_id=other_id)


@pytest.mark.parametrize(
    "garbage",
    ["", "${cert_pem}", "not base64!", base64.b64encode(b"not a certificate").decode(), "-----BEGIN x"],
)
def test_an_unreadable_certificate_is_refused_not_a_500(hooks: Hooks, garbage: str) -> None:
    device_id, _token = hooks.device(hooks.tenant())
    emqx = {"clientid": device_id, "username": "", "password": "", "cert_pem": garbage}
    vernemq = {"client_id": device_id, "username": None, "password": None, "client_cert": garbage}

    assert _json(hooks.http.post("/broker/emqx/authenticate", json=emqx)) == {"result": "deny"}
    assert _json(hooks.http.post("/broker/vernemq/auth_on_register", json=vernemq)) == {
        "result": {"error": "not_allowed"}
    }


def test_odd_certificate_names_are_refused(hooks: Hooks, line: Line) -> None:
    _certificate, device_id = line.registered()
    names = ["", "CN=", "CN=\\", "x" * 5000, "CN=\\ff\\fe", "=", ",,,", "CN=a,CN=b"]

    statuses = [
        hooks.http.post(
            "/broker/mosquitto/acl",
            json={"username": name, "clientid": device_id, "topic": own_topic(device_id), "acc": 2},
        ).status_code
        for name in names
    ]

    assert statuses == [403] * len(names)
    assert _rabbit(hooks, "vhost", username="CN=x", vhost="/", ip="10.0.0.7", client_id="not-a-uuid") is False


def test_one_certificate_is_one_device_whether_passed_as_pem_or_der(hooks: Hooks, line: Line) -> None:
    """EMQX passes PEM, VerneMQ base64 DER: the second finds the device the first registered."""
    certificate, device_id = line.certificate()
    as_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    emqx = {"clientid": device_id, "username": "", "password": "", "cert_pem": as_pem}

    assert _json(hooks.http.post("/broker/emqx/authenticate", json=emqx))["result"] == "allow"
    assert _vernemq_register(with_certificate=True)(hooks, device_id, certificate)
