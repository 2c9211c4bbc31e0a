"""Just-in-time registration on the embedded broker's TLS listener (issue 16): a device whose
certificate a maker's verified CA signed connects with it (and the intermediate it came with)
and is registered, activated and online without anyone calling the API for it; disabling
the CA cuts the live session off at the next credential check; a device pending approval is
refused until approved; a CA nobody registered fails the handshake. Both databases."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from lineside.domain.factory_pki import registered_device_id
from lineside.entrypoints.mqtt import EmbeddedBroker
from tests.support.api import Tenant, unique
from tests.support.mqtt import NOT_AUTHORIZED, MqttClient, connect, wait_for
from tests.support.pki import API, Maker, device_files, new_maker, proven_ca

Address = tuple[str, int]


def tls_to(broker: EmbeddedBroker, files: tuple[Path, Path]) -> ssl.SSLContext:
    assert broker.tls is not None
    context = ssl.create_default_context(cafile=str(broker.tls.files.ca_certificate))
    context.load_cert_chain(str(files[0]), str(files[1]))
    return context


def connected(broker: EmbeddedBroker, client_id: str, files: tuple[Path, Path]) -> MqttClient:
    """Connected once the broker trusts the CA (it looks for newly verified CAs every recheck)."""
    assert broker.tls_port is not None
    attempt: list[MqttClient] = []

    def try_once() -> bool:
        # Until the listener trusts the CA the handshake fails: at once, or (TLS 1.3, where
        # the server checks the client's certificate last) as a close before any CONNACK.
        try:
            client = connect(broker.host, broker.tls_port or 0, client_id, tls=tls_to(broker, files))
        except (ssl.SSLError, OSError):
            return False
        if client.connack_rc is None:
            client.close()
            return False
        attempt[:] = [client]
        return True

    wait_for(try_once, what="the TLS listener to trust the newly verified CA")
    return attempt[0]


def state_of(tenant: Tenant, device_id: str) -> dict[str, Any]:
    return dict(tenant.get(f"{API}/devices/{device_id}").json())


@dataclass(frozen=True)
class OnTheLine:
    """A maker whose line CA is proven for a new product, and one device it signed, its
    files written as the line writes them."""

    maker: Maker
    product_id: str
    authority_id: str
    name: str
    certificate: x509.Certificate
    files: tuple[Path, Path]
    device_id: str


def on_the_line(tenant: Tenant, directory: Path) -> OnTheLine:
    maker = new_maker()
    product_id = tenant.product()["id"]
    authority = proven_ca(tenant, product_id, maker)
    name = unique("SN")
    certificate, key = maker.device(name)
    files = device_files(directory, certificate, key, [maker.intermediate])
    device_id = registered_device_id(product_id, name)
    return OnTheLine(maker, product_id, authority["id"], name, certificate, files, device_id)


def refused_again(broker: EmbeddedBroker, line: OnTheLine) -> None:
    assert broker.tls_port is not None
    again = connect(broker.host, broker.tls_port, line.device_id, tls=tls_to(broker, line.files))
    again.close()
    assert again.connack_rc == NOT_AUTHORIZED


def test_a_device_registers_on_its_first_tls_connection_and_is_cut_off_when_its_ca_is_disabled(
    tls_broker: EmbeddedBroker, tenant: Tenant, tmp_path: Path
) -> None:
    line = on_the_line(tenant, tmp_path / "device")
    device_id = line.device_id

    device = connected(tls_broker, device_id, line.files)
    try:
        assert device.connack_rc == 0
        wait_for(lambda: state_of(tenant, device_id).get("state") == "activated", what="activation")
        assert state_of(tenant, device_id)["serial_number"] == line.name
        disabled = tenant.post(f"{API}/certificate-authorities/{line.authority_id}/disable")
        assert disabled.status_code == 200
        device.wait_disconnected()
    finally:
        device.close()
    refused_again(tls_broker, line)
    types = [
        e["type"] for e in tenant.get(f"{API}/audit-events", params={"subject_id": device_id}).json()["items"]
    ]
    assert types[:3] == ["device.defined", "device.registered", "device.activated"]


def test_a_device_pending_approval_connects_once_approved(
    tls_broker: EmbeddedBroker, tenant: Tenant, tmp_path: Path
) -> None:
    line = on_the_line(tenant, tmp_path / "held")
    policy = tenant.put(f"{API}/products/{line.product_id}/registration", json={"policy": "approval"})
    assert policy.status_code == 200
    device_id = line.device_id

    held = connected(tls_broker, device_id, line.files)
    held.close()
    assert held.connack_rc == NOT_AUTHORIZED
    assert state_of(tenant, device_id)["state"] == "pending_approval"
    assert tenant.post(f"{API}/devices/{device_id}/approve").status_code == 200
    approved = connected(tls_broker, device_id, line.files)
    approved.close()
    assert approved.connack_rc == 0


def test_a_ca_nobody_registered_fails_the_handshake(
    tls_broker: EmbeddedBroker, tenant: Tenant, tmp_path: Path
) -> None:
    stranger = new_maker()
    name = unique("SN")
    files = device_files(tmp_path / "stranger", *stranger.device(name), [stranger.intermediate])
    assert tls_broker.tls_port is not None
    try:
        refused = connect(tls_broker.host, tls_broker.tls_port, name, tls=tls_to(tls_broker, files))
    except (ssl.SSLError, OSError):
        pass  # refused during the handshake
    else:
        refused.close()
        assert refused.connack_rc is None  # closed after the handshake (TLS 1.3), no CONNACK
    assert tenant.get(f"{API}/devices", params={"serial_number": name}).json()["items"] == []


def test_a_crl_that_lists_a_connected_device_cuts_it_off(
    tls_broker: EmbeddedBroker, tenant: Tenant, tmp_path: Path
) -> None:
    line = on_the_line(tenant, tmp_path / "listed")

    device = connected(tls_broker, line.device_id, line.files)
    try:
        assert device.connack_rc == 0
        crl = {"crl": line.maker.crl(line.certificate)}
        loaded = tenant.put(f"{API}/certificate-authorities/{line.authority_id}/crl", json=crl)
        assert loaded.json()["certificates_revoked"] == 1
        device.wait_disconnected()
    finally:
        device.close()
    refused_again(tls_broker, line)
