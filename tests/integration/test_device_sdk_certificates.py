"""The device SDK with a certificate its maker's line signed (factory PKI, issue 16), against
the embedded broker's TLS listener on both databases: the device computes its id from its
product and serial number, connects with its certificate chain, key and the server's CA,
and is registered and activated by that first connection; bad certificate files and a CA
nobody registered are refused with the SDK's errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from lineside.device import (
    CertificateFilesError,
    ConnectionRefused,
    DeviceClient,
    DeviceError,
    Flash,
    FlashContents,
    NotProvisioned,
    ServerUnreachable,
    certificate_device_id,
)
from lineside.domain.factory_pki import registered_device_id
from lineside.entrypoints.mqtt import EmbeddedBroker
from tests.support.api import Tenant, unique
from tests.support.mqtt import wait_for
from tests.support.pki import API, Key, device_files, key_pem, new_key, new_maker, proven_ca

TRUST_DEADLINE_SECONDS = 10.0


def written(directory: Path, certificate: x509.Certificate, key: Key, chain: list[x509.Certificate]) -> Path:
    """What the line writes into the device: its certificate and the intermediate, its key."""
    device_files(directory, certificate, key, chain)
    return directory


def flash_of(broker: EmbeddedBroker, device_id: str, files: Path, **changes: Any) -> Flash:
    assert broker.tls is not None and broker.tls_port is not None
    contents = FlashContents(
        device_id=device_id,
        mqtt_host=broker.host,
        mqtt_port=broker.tls_port,
        server_ca_file=str(broker.tls.files.ca_certificate),
        certificate_file=str(files / "device-chain.pem"),
        key_file=str(files / "device.key"),
    )
    return Flash(None, FlashContents(**{**contents.__dict__, **changes}))


def connect_when_trusted(device: DeviceClient) -> None:
    """The listener trusts a newly verified CA within a recheck (0.2 s here): until then the
    handshake fails, at once or (TLS 1.3) as a close before the CONNACK."""
    deadline = time.monotonic() + TRUST_DEADLINE_SECONDS
    while True:
        try:
            device.connect()
            return
        except (ServerUnreachable, ConnectionRefused):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def state_of(tenant: Tenant, device_id: str) -> dict[str, Any]:
    return dict(tenant.get(f"{API}/devices/{device_id}").json())


def test_a_device_with_its_line_certificate_registers_by_connecting_through_the_sdk(
    tls_broker: EmbeddedBroker, tenant: Tenant, tmp_path: Path
) -> None:
    maker = new_maker()
    product_id = tenant.product()["id"]
    proven_ca(tenant, product_id, maker)
    serial = unique("SN")
    files = written(tmp_path / "device", *maker.device(serial), [maker.intermediate])
    device_id = certificate_device_id(product_id, serial)

    with DeviceClient(flash_of(tls_broker, device_id, files)) as device:
        connect_when_trusted(device)
        device.publish_telemetry({"temperature": 21.5})
        assert device.connected

    assert device_id == registered_device_id(product_id, serial)
    wait_for(lambda: state_of(tenant, device_id).get("state") == "activated", what="activation")
    assert state_of(tenant, device_id)["serial_number"] == serial


def test_a_certificate_of_a_ca_nobody_registered_is_refused(
    tls_broker: EmbeddedBroker, tenant: Tenant, tmp_path: Path
) -> None:
    stranger = new_maker()
    serial = unique("SN")
    files = written(tmp_path / "stranger", *stranger.device(serial), [stranger.intermediate])
    device_id = certificate_device_id(tenant.product()["id"], serial)

    with DeviceClient(flash_of(tls_broker, device_id, files)) as device, pytest.raises(DeviceError):
        device.connect()
    assert tenant.get(f"{API}/devices", params={"serial_number": serial}).json()["items"] == []


def test_certificate_files_that_cannot_be_used_say_which(tls_broker: EmbeddedBroker, tmp_path: Path) -> None:
    maker = new_maker()
    files = written(tmp_path / "device", *maker.device("SN-1"), [maker.intermediate])
    (tmp_path / "other.key").write_text(key_pem(new_key()))
    device_id = certificate_device_id("0190f3c2-0000-7000-8000-000000000000", "SN-1")

    cases: dict[str, dict[str, str | None]] = {
        "No such file or directory": {"certificate_file": str(tmp_path / "nope.pem")},
        "the key is not the certificate's": {"key_file": str(tmp_path / "other.key")},
        "as the server's CA: No such file": {"server_ca_file": str(tmp_path / "nope-ca.pem")},
        "not a PEM certificate and key": {"certificate_file": str(tmp_path / "other.key"), "key_file": None},
        "A key file without a certificate file": {"certificate_file": None},
    }
    for says, changes in cases.items():
        with (
            DeviceClient(flash_of(tls_broker, device_id, files, **changes)) as device,
            pytest.raises(CertificateFilesError) as refused,
        ):
            device.connect()
        assert says in refused.value.message

    with (
        DeviceClient(flash_of(tls_broker, device_id, files, certificate_file=None, key_file=None)) as device,
        pytest.raises(NotProvisioned),
    ):
        device.connect()  # TLS to check the server, but no credential at all


def test_the_flash_keeps_the_certificate_files_across_boots(tmp_path: Path) -> None:
    path = tmp_path / "lineside.json"
    Flash(
        path,
        FlashContents(
            device_id="d", server_ca_file="ca.pem", certificate_file="chain.pem", key_file="device.key"
        ),
    )

    read = Flash(path).read()

    assert (read.server_ca_file, read.certificate_file, read.key_file) == (
        "ca.pem",
        "chain.pem",
        "device.key",
    )
    assert read.mqtt_tls and read.mqtt_secret is None
