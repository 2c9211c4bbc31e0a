"""The embedded broker's TLS listener: a device authenticates with a client certificate of
its product's CA (products made after the broker started included), or with its token."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineside.bootstrap import Application
from lineside.domain.mqtt import device_topic
from lineside.entrypoints.mqtt import EmbeddedBroker
from tests.support.api import Tenant
from tests.support.mqtt import NOT_AUTHORIZED, mqtt_client
from tests.support.server import free_port

Address = tuple[str, int]


def device_with_token(tenant: Tenant) -> tuple[str, str]:
    device_id = tenant.device(tenant.product()["id"])["id"]
    return device_id, tenant.token(device_id)


@pytest.fixture(scope="module")
def tls_broker(application: Application) -> Iterator[tuple[EmbeddedBroker, Address]]:
    broker = EmbeddedBroker(
        application, host="127.0.0.1", port=free_port(), tls_port=free_port(), recheck_seconds=0.2
    )
    broker.start()
    assert broker.tls is not None and broker.tls_port is not None
    try:
        yield broker, ("127.0.0.1", broker.tls_port)
    finally:
        broker.stop()


def client_tls(
    broker: EmbeddedBroker, certificate: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    assert broker.tls is not None
    context = ssl.create_default_context(cafile=str(broker.tls.files.ca_certificate))
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(key))
    return context


def x509_credential(tenant: Tenant, device_id: str, directory: Path) -> tuple[Path, Path]:
    issued = tenant.created(f"/api/v1/devices/{device_id}/credentials", {"type": "x509"})
    directory.mkdir(exist_ok=True)
    certificate, key = directory / f"{device_id}.crt", directory / f"{device_id}.key"
    certificate.write_text(issued["certificate"])
    key.write_text(issued["private_key"])
    return certificate, key


def test_over_tls_a_device_connects_with_a_certificate_of_its_products_ca(
    tls_broker: tuple[EmbeddedBroker, Address], tenant: Tenant, tmp_path: Path
) -> None:
    broker, address = tls_broker
    product = tenant.product()  # made after the broker started: its CA is trusted all the same
    device_id = tenant.device(product["id"])["id"]
    other_id = tenant.device(product["id"])["id"]
    certificate, key = x509_credential(tenant, device_id, tmp_path)
    commands = device_topic(device_id, "commands")

    with mqtt_client(*address, device_id, tls=client_tls(broker, certificate, key)) as device:
        assert device.connack_rc == 0
        assert device.subscribe(commands) == 1
        device.publish(commands, b"over tls")
        assert device.wait_for_message().payload == b"over tls"
    with mqtt_client(*address, other_id, tls=client_tls(broker, certificate, key)) as impostor:
        assert impostor.connack_rc == NOT_AUTHORIZED
    with mqtt_client(*address, device_id, tls=client_tls(broker)) as no_certificate:
        assert no_certificate.connack_rc == NOT_AUTHORIZED


def test_over_tls_a_certificate_stops_working_when_its_device_is_revoked(
    tls_broker: tuple[EmbeddedBroker, Address], tenant: Tenant, tmp_path: Path
) -> None:
    broker, address = tls_broker
    product = tenant.product()
    device_id = tenant.device(product["id"])["id"]
    certificate, key = x509_credential(tenant, device_id, tmp_path)

    with mqtt_client(*address, device_id, tls=client_tls(broker, certificate, key)) as device:
        assert device.connack_rc == 0
        assert tenant.post(f"/api/v1/devices/{device_id}/revoke").status_code == 200
        device.wait_disconnected()
    with mqtt_client(*address, device_id, tls=client_tls(broker, certificate, key)) as again:
        assert again.connack_rc == NOT_AUTHORIZED


def test_over_tls_a_new_certificate_disconnects_and_retires_the_old_one(
    tls_broker: tuple[EmbeddedBroker, Address], tenant: Tenant, tmp_path: Path
) -> None:
    broker, address = tls_broker
    device_id = tenant.device(tenant.product()["id"])["id"]
    old_certificate, old_key = x509_credential(tenant, device_id, tmp_path / "old")

    with mqtt_client(*address, device_id, tls=client_tls(broker, old_certificate, old_key)) as device:
        assert device.connack_rc == 0
        new_certificate, new_key = x509_credential(tenant, device_id, tmp_path / "new")
        device.wait_disconnected()
    with mqtt_client(*address, device_id, tls=client_tls(broker, old_certificate, old_key)) as old:
        assert old.connack_rc == NOT_AUTHORIZED
    with mqtt_client(*address, device_id, tls=client_tls(broker, new_certificate, new_key)) as new:
        assert new.connack_rc == 0


def test_over_tls_a_token_works_too(tls_broker: tuple[EmbeddedBroker, Address], tenant: Tenant) -> None:
    broker, address = tls_broker
    device_id, token = device_with_token(tenant)

    with mqtt_client(*address, device_id, password=token, tls=client_tls(broker)) as device:
        assert device.connack_rc == 0
    with mqtt_client(*address, device_id, password="lsd_wrong", tls=client_tls(broker)) as wrong:
        assert wrong.connack_rc == NOT_AUTHORIZED
