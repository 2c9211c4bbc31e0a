"""Provisioning over MQTT (ThingsBoard-compatible): the answers ``answer_provision_request``
gives under each policy and credentials type, one-time provisioning of pre-defined devices,
the failure budget of a key, and malformed requests. The API and CLI that configure it:
test_mqtt_provisioning_api.py."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lineside.bootstrap import Application
from lineside.services.mqtt_access import MqttCredential, authenticate_connection
from lineside.services.mqtt_provisioning import FAILURES_PER_WINDOW, answer_provision_request
from lineside.services.quotas import set_device_quota
from tests.support.api import Tenant, ok, unique
from tests.support.factory import hardware_id
from tests.support.provisioning import (
    API,
    ask,
    connects,
    event_types,
    failed,
    provisioned_product,
    succeeded,
)


def csr_pem(key: ec.EllipticCurvePrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chosen-by-the-device")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def fingerprint(certificate_pem: str) -> str:
    return x509.load_pem_x509_certificate(certificate_pem.encode()).fingerprint(hashes.SHA256()).hex()


# -- the create policy ------------------------------------------------------------------------


def test_a_new_device_gets_a_device_token_by_default(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)
    name = unique("SN")

    answer = succeeded(ask(application, settings, deviceName=name))

    assert answer["credentialsType"] == "ACCESS_TOKEN"
    assert answer["credentialsValue"].startswith("lsd_")
    device = ok(tenant.get(f"{API}/devices/{answer['deviceId']}"))
    assert device["serial_number"] == name
    assert device["product_id"] == settings["product_id"]
    assert device["provisioned_at"] is not None
    assert connects(application, answer["deviceId"], answer["credentialsValue"])
    # The same token is the device's HTTP bearer too.
    me = tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {answer['credentialsValue']}"})
    assert ok(me)["id"] == answer["deviceId"]
    assert {"device.defined", "device.provisioned", "credentials.issued"} <= set(
        event_types(tenant, answer["deviceId"])
    )


def test_a_device_without_a_name_gets_a_generated_serial_number(
    application: Application, tenant: Tenant
) -> None:
    settings = provisioned_product(tenant)

    first = succeeded(ask(application, settings))
    second = succeeded(ask(application, settings))

    serials = {ok(tenant.get(f"{API}/devices/{a['deviceId']}"))["serial_number"] for a in (first, second)}
    assert len(serials) == 2
    assert all(serial.startswith("prov-") for serial in serials)


def test_a_name_already_defined_is_refused_under_the_create_policy(
    application: Application, tenant: Tenant
) -> None:
    settings = provisioned_product(tenant)
    taken = tenant.device(settings["product_id"])["serial_number"]

    message = failed(ask(application, settings, deviceName=taken))

    assert "already defined" in message
    assert len(ok(tenant.get(f"{API}/devices", params={"product_id": settings["product_id"]}))["items"]) == 1


def test_a_device_token_proposed_by_the_device_is_not_taken(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)

    answer = succeeded(ask(application, settings, credentialsType="ACCESS_TOKEN", token="my-own-token"))

    assert answer["credentialsValue"] != "my-own-token"
    assert not connects(application, answer["deviceId"], "my-own-token")
    assert connects(application, answer["deviceId"], answer["credentialsValue"])


def test_the_organization_device_quota_holds(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)
    set_device_quota(application.services, tenant.organization_id, 0)

    assert "quota" in failed(ask(application, settings, deviceName=unique("SN")))
    assert ok(tenant.get(f"{API}/devices", params={"product_id": settings["product_id"]}))["items"] == []


def test_a_product_whose_devices_need_metadata_cannot_create_them(
    application: Application, tenant: Tenant
) -> None:
    product = tenant.product([{"name": "colour", "type": "string", "required": True}])
    settings = tenant.created(f"{API}/products/{product['id']}/provisioning", {})

    message = failed(ask(application, settings, deviceName=unique("SN")))

    assert "colour" in message


# -- credentials types ------------------------------------------------------------------------


def test_mqtt_basic_gives_an_mqtt_password_for_the_device_id(
    application: Application, tenant: Tenant
) -> None:
    settings = provisioned_product(tenant)

    answer = succeeded(
        ask(
            application,
            settings,
            credentialsType="MQTT_BASIC",
            clientId="wanted-client",
            username="wanted-user",
            password="wanted-password",
        )
    )

    value = answer["credentialsValue"]
    assert value["clientId"] == value["userName"] == answer["deviceId"]
    assert value["password"].startswith("lsm_")
    assert connects(application, answer["deviceId"], value["password"])
    assert not connects(application, answer["deviceId"], "wanted-password")
    identity = authenticate_connection(
        application.services,
        client_id=value["clientId"],
        username=value["userName"],
        password=value["password"],
    )
    assert identity.credential is MqttCredential.MQTT_PASSWORD
    assert ok(tenant.get(f"{API}/devices/{answer['deviceId']}"))["mqtt_password_issued_at"] is not None


def test_x509_without_a_csr_gives_a_new_key_and_certificate(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)

    answer = succeeded(ask(application, settings, credentialsType="X509_CERTIFICATE"))

    certificate_pem = answer["credentialsValue"]
    assert certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in answer["privateKey"]
    assert answer["caCertificate"].startswith("-----BEGIN CERTIFICATE-----")
    identity = authenticate_connection(
        application.services,
        client_id=answer["deviceId"],
        username=answer["deviceId"],
        password=None,
        certificate_sha256=fingerprint(certificate_pem),
    )
    assert identity.device_id == answer["deviceId"]


def test_x509_with_a_csr_signs_the_device_key(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)
    key = ec.generate_private_key(ec.SECP256R1())

    answer = succeeded(ask(application, settings, credentialsType="X509_CERTIFICATE", csr=csr_pem(key)))

    certificate = x509.load_pem_x509_certificate(answer["credentialsValue"].encode())
    assert certificate.public_key() == key.public_key()
    assert "privateKey" not in answer


def test_x509_with_a_device_made_certificate_is_refused_with_the_alternatives(
    application: Application, tenant: Tenant
) -> None:
    settings = provisioned_product(tenant)

    message = failed(
        ask(application, settings, credentialsType="X509_CERTIFICATE", hash="-----BEGIN CERTIFICATE-----")
    )

    assert "CSR" in message
    assert ok(tenant.get(f"{API}/devices", params={"product_id": settings["product_id"]}))["items"] == []


def test_a_bad_csr_is_a_failure_and_defines_nothing(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)

    failed(ask(application, settings, credentialsType="X509_CERTIFICATE", csr="not a CSR"))

    assert ok(tenant.get(f"{API}/devices", params={"product_id": settings["product_id"]}))["items"] == []


# -- the predefined policy: once, then only after re-provisioning -----------------------------


def test_a_predefined_device_provisions_once(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant, "predefined")
    device = tenant.device(settings["product_id"])

    answer = succeeded(ask(application, settings, deviceName=device["serial_number"]))
    again = failed(ask(application, settings, deviceName=device["serial_number"]))

    assert answer["deviceId"] == device["id"]
    assert "already provisioned" in again
    assert "re-provision" in again
    assert connects(application, device["id"], answer["credentialsValue"])
    assert event_types(tenant, device["id"]).count("device.provisioned") == 1


def test_a_predefined_device_may_be_named_by_its_hardware_id(
    application: Application, tenant: Tenant
) -> None:
    settings = provisioned_product(tenant, "predefined")
    hardware = hardware_id()
    device = tenant.device(settings["product_id"], hardware_id=hardware)

    answer = succeeded(ask(application, settings, deviceName=hardware.upper()))

    assert answer["deviceId"] == device["id"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [(None, "deviceName is missing"), ("never-defined", "No device named 'never-defined'")],
)
def test_the_predefined_policy_creates_nothing(
    application: Application, tenant: Tenant, name: str | None, expected: str
) -> None:
    settings = provisioned_product(tenant, "predefined")
    fields = {} if name is None else {"deviceName": name}

    assert expected in failed(ask(application, settings, **fields))
    assert ok(tenant.get(f"{API}/devices", params={"product_id": settings["product_id"]}))["items"] == []


def test_a_revoked_device_is_not_provisioned(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant, "predefined")
    device = tenant.device(settings["product_id"])
    ok(tenant.post(f"{API}/devices/{device['id']}/revoke"))

    assert "revoked" in failed(ask(application, settings, deviceName=device["serial_number"]))


def test_of_concurrent_requests_for_one_predefined_device_exactly_one_succeeds(
    application: Application, tenant: Tenant
) -> None:
    settings = provisioned_product(tenant, "predefined")
    device = tenant.device(settings["product_id"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(
            pool.map(lambda _: ask(application, settings, deviceName=device["serial_number"]), range(4))
        )

    assert [answer["status"] for answer in answers].count("SUCCESS") == 1


# -- key and secret ---------------------------------------------------------------------------


def test_a_wrong_secret_or_unknown_key_fails_alike(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)

    wrong_secret = failed(ask(application, {**settings, "provision_secret": "lsp_wrong"}))
    unknown_key = failed(ask(application, {**settings, "provision_key": "lpk_unknown"}))

    assert wrong_secret == unknown_key
    assert ok(tenant.get(f"{API}/devices", params={"product_id": settings["product_id"]}))["items"] == []


def test_rotating_the_secret_stops_the_old_one_and_keeps_the_key(
    application: Application, tenant: Tenant
) -> None:
    old = provisioned_product(tenant)

    new = tenant.created(f"{API}/products/{old['product_id']}/provisioning", {})

    assert new["provision_key"] == old["provision_key"]
    assert new["provision_secret"] != old["provision_secret"]
    failed(ask(application, old))
    succeeded(ask(application, new))


def test_disabled_provisioning_refuses_every_request(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)

    response = tenant.delete(f"{API}/products/{settings['product_id']}/provisioning")

    assert response.status_code == 204
    failed(ask(application, settings))
    shown = ok(tenant.get(f"{API}/products/{settings['product_id']}/provisioning"))
    assert shown == {
        "product_id": settings["product_id"],
        "provision_key": settings["provision_key"],
        "enabled": False,
        "policy": "create",
    }
    assert tenant.delete(f"{API}/products/{settings['product_id']}/provisioning").status_code == 204


def test_wrong_secrets_past_the_budget_are_told_to_wait(application: Application, tenant: Tenant) -> None:
    settings = provisioned_product(tenant)
    wrong = {**settings, "provision_secret": "lsp_guess"}
    for _ in range(FAILURES_PER_WINDOW):
        assert "Too many" not in failed(ask(application, wrong))

    message = failed(ask(application, wrong))

    assert "Too many failed provisioning attempts" in message
    assert "try again in" in message


def test_the_right_secret_provisions_even_while_wrong_ones_are_held_back(
    application: Application, tenant: Tenant
) -> None:
    """The key ships in every unit's firmware: whoever reads one must not be able to pause
    the product's factory line by spending its budget."""
    settings = provisioned_product(tenant)
    other = provisioned_product(tenant)
    for _ in range(FAILURES_PER_WINDOW + 1):
        failed(ask(application, {**settings, "provision_secret": "lsp_guess"}))

    succeeded(ask(application, settings))
    succeeded(ask(application, other))


def test_failures_after_the_secret_was_right_do_not_spend_the_budget(
    application: Application, tenant: Tenant
) -> None:
    settings = provisioned_product(tenant)
    taken = tenant.device(settings["product_id"])["serial_number"]
    for _ in range(FAILURES_PER_WINDOW + 1):
        failed(ask(application, settings, deviceName=taken))

    succeeded(ask(application, settings))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "JSON object"),
        (b"[" * 10_000, "not JSON"),
        (b'{"provisionDeviceSecret": "lsp_x"}', "provisionDeviceKey is missing"),
        (b'{"provisionDeviceKey": "k"}', "provisionDeviceSecret is missing"),
        (b'{"provisionDeviceKey": 7, "provisionDeviceSecret": "s"}', "provisionDeviceKey must be a string"),
        (
            b'{"provisionDeviceKey": "k", "provisionDeviceSecret": "s", "credentialsType": "PSK"}',
            "credentialsType",
        ),
        (b'{"provisionDeviceKey": "k\\u0000", "provisionDeviceSecret": "s"}', "without NUL"),
        (b"{" + b" " * 20_000 + b"}", "larger than"),
    ],
)
def test_a_malformed_request_gets_a_failure_that_says_why(
    application: Application, payload: bytes, expected: str
) -> None:
    assert expected in failed(answer_provision_request(application.services, payload))


def test_a_key_never_seen_is_not_counted(application: Application) -> None:
    """Failed guesses at made-up keys leave no rows behind: nothing for a stranger to fill."""
    made_up = "lpk_" + unique("nobody")
    for _ in range(FAILURES_PER_WINDOW + 1):
        request = {"provisionDeviceKey": made_up, "provisionDeviceSecret": "lsp_guess"}
        message = failed(answer_provision_request(application.services, json.dumps(request).encode()))
    assert "Too many" not in message
