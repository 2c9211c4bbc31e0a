"""A real RabbitMQ 3.x with a TLS MQTT listener that requires client certificates and logs
clients in as their certificate's CN (``mqtt.ssl_cert_login``), asking a real Lineside through
its HTTP auth backend: a device whose certificate a maker's verified CA signed connects
with no password and uses its topics; it is refused once its CA is disabled or the CA's CRL
lists it, under another organization's device id, and before it ever registered (RabbitMQ
passes a name, not the certificate)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from lineside.domain.mqtt import device_topic
from lineside.settings import Settings
from tests.support.broker_hooks import Hooks, running_hooks
from tests.support.certificate_lines import Line, new_line
from tests.support.mqtt import mqtt_client
from tests.support.pki import certificate, key_pem, new_key, pem
from tests.support.rabbitmq import (
    RABBITMQ_BIN,
    RabbitNode,
    _environment,
    _stop,
    _wait_for_mqtt,
    require_rabbitmq,
)
from tests.support.server import free_port

HOST = "127.0.0.1"
ACCEPTED = 0
NOT_AUTHORIZED = 5  # RabbitMQ's CONNACK when the "vhost" check says "deny"


@dataclass(frozen=True)
class TlsNode:
    node: RabbitNode
    files: Path  # the server's CA, for clients


def _configuration(auth_url: str, amqp_port: int, mqtt_port: int, files: Path) -> str:
    """docs/brokers.md's RabbitMQ configuration with a certificate-only TLS listener."""
    return "\n".join(
        [
            f"listeners.tcp.default = 127.0.0.1:{amqp_port}",
            "mqtt.listeners.tcp = none",
            f"mqtt.listeners.ssl.default = 127.0.0.1:{mqtt_port}",
            "mqtt.allow_anonymous = false",
            "mqtt.ssl_cert_login = true",
            "ssl_cert_login_from = common_name",
            f"ssl_options.cacertfile = {files / 'clients-ca.pem'}",
            f"ssl_options.certfile = {files / 'server.pem'}",
            f"ssl_options.keyfile = {files / 'server.key'}",
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = true",
            "auth_backends.1 = http",
            "auth_http.http_method = post",
            f"auth_http.user_path = {auth_url}/user",
            f"auth_http.vhost_path = {auth_url}/vhost",
            f"auth_http.resource_path = {auth_url}/resource",
            f"auth_http.topic_path = {auth_url}/topic",
            "",
        ]
    )


def _server_files(directory: Path, trusted: str) -> None:
    """The listener's own certificate (from a throwaway CA) and the CAs it trusts for clients."""
    ca_key = new_key()
    ca = certificate("Broker Test CA", ca_key, ca=True, days=30)
    server_key = new_key()
    server = certificate("localhost", server_key, (ca.subject, ca_key), client_auth=False, days=30)
    (directory / "server-ca.pem").write_text(pem(ca))
    (directory / "server.pem").write_text(pem(server))
    (directory / "server.key").write_text(key_pem(server_key))
    (directory / "clients-ca.pem").write_text(trusted)


@contextmanager
def rabbitmq_tls_node(auth_url: str, scratch: Path, trusted: str) -> Iterator[TlsNode]:
    """A RabbitMQ node of the test's own (as tests.support.rabbitmq makes one) whose MQTT
    listener is TLS with required client certificates, trusting ``trusted`` (PEM)."""
    require_rabbitmq()
    base = scratch / "rabbit-tls"
    base.mkdir(parents=True)
    _server_files(base, trusted)
    amqp_port, mqtt_port = free_port(), free_port()
    (base / "rabbitmq.conf").write_text(_configuration(auth_url, amqp_port, mqtt_port, base))
    (base / "enabled_plugins").write_text("[rabbitmq_mqtt,rabbitmq_auth_backend_http].\n")
    node = RabbitNode(f"lineside-tls-{mqtt_port}@localhost", mqtt_port, base / "server.log")
    env = _environment(base, node.name, amqp_port)
    with node.log.open("wb") as output:
        process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_mqtt(node, process)
        yield TlsNode(node, base)
    finally:
        _stop(node, process, env)
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Deployment:
    hooks: Hooks
    broker: TlsNode
    line: Line  # the maker whose root the broker trusts


@pytest.fixture(scope="module")
def deployment(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_hooks(settings) as hooks:
        line = new_line(hooks)
        auth_url = str(hooks.http.base_url).rstrip("/") + "/broker/rabbitmq"
        scratch = tmp_path_factory.mktemp("rabbitmq-tls")
        with rabbitmq_tls_node(auth_url, scratch, pem(line.maker.root)) as broker:
            yield Deployment(hooks, broker, line)


def client_tls(deployment: Deployment, device: x509.Certificate, directory: Path) -> ssl.SSLContext:
    """What the line writes into a device (its certificate with the intermediate, its key),
    and the broker's CA to check the listener by."""
    directory.mkdir(parents=True, exist_ok=True)
    chain, key_file = directory / "device.pem", directory / "device.key"
    chain.write_text(pem(device) + pem(deployment.line.maker.intermediate))
    key_file.write_text(key_pem(deployment.line.keys[device.serial_number]))
    context = ssl.create_default_context(cafile=str(deployment.broker.files / "server-ca.pem"))
    context.check_hostname = False  # the listener's certificate names "localhost"
    context.load_cert_chain(str(chain), str(key_file))
    return context


def test_a_registered_device_logs_in_with_its_certificate_and_uses_its_topics(
    deployment: Deployment, tmp_path: Path
) -> None:
    line = deployment.line
    device, device_id = line.registered()
    tls = client_tls(deployment, device, tmp_path)

    with mqtt_client(HOST, deployment.broker.node.mqtt_port, device_id, tls=tls) as client:
        assert client.connack_rc == ACCEPTED
        assert client.subscribe(device_topic(device_id, "#"), qos=1) == 1
        client.publish(device_topic(device_id, "state"), b'{"on": true}', qos=1)
        message = client.wait_for_message(lambda m: m.topic == device_topic(device_id, "state"))
    assert message.payload == b'{"on": true}'
    deployment.hooks.flush()
    assert deployment.hooks.stored(device_id).state.value == "activated"


def test_revocation_reaches_the_next_login(deployment: Deployment, tmp_path: Path) -> None:
    line, port = deployment.line, deployment.broker.node.mqtt_port
    device, device_id = line.registered()
    tls = client_tls(deployment, device, tmp_path)

    line.disable()
    with mqtt_client(HOST, port, device_id, tls=tls) as disabled:
        refused_while_disabled = disabled.connack_rc
    line.enable()
    with mqtt_client(HOST, port, device_id, tls=tls) as enabled:
        accepted_again = enabled.connack_rc
    line.revoke(device)
    with mqtt_client(HOST, port, device_id, tls=tls) as listed:
        refused_when_listed = listed.connack_rc

    assert (refused_while_disabled, accepted_again, refused_when_listed) == (
        NOT_AUTHORIZED,
        ACCEPTED,
        NOT_AUTHORIZED,
    )


def test_another_organizations_device_id_and_a_never_seen_device_are_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    line, hooks, port = deployment.line, deployment.hooks, deployment.broker.node.mqtt_port
    device, _device_id = line.registered()
    tls = client_tls(deployment, device, tmp_path / "registered")
    other_tenant_device, _token = hooks.device(hooks.tenant())
    unseen, unseen_id = line.certificate()
    unseen_tls = client_tls(deployment, unseen, tmp_path / "unseen")

    with mqtt_client(HOST, port, other_tenant_device, tls=tls) as impostor:
        assert impostor.connack_rc == NOT_AUTHORIZED
    with mqtt_client(HOST, port, unseen_id, tls=unseen_tls) as first_time:
        assert first_time.connack_rc == NOT_AUTHORIZED
    assert line.tenant.get(f"/api/v1/devices/{unseen_id}").status_code == 404
