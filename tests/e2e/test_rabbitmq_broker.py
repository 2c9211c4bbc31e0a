"""A real RabbitMQ (MQTT plugin, HTTP auth backend) asks a real Lineside who may connect and
where they may publish and subscribe; real paho-mqtt devices connect to RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lineside.domain.mqtt import device_topic
from lineside.settings import Settings
from tests.support.broker_hooks import Hooks, running_hooks
from tests.support.mqtt import mqtt_client
from tests.support.rabbitmq import RabbitNode, rabbitmq_node

HOST = "127.0.0.1"
BAD_CREDENTIALS = 4  # RabbitMQ's CONNACK when its auth backend says "deny"


@dataclass
class Deployment:
    hooks: Hooks
    node: RabbitNode


@pytest.fixture(scope="module")
def deployment(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_hooks(settings) as hooks:
        auth_url = str(hooks.http.base_url).rstrip("/") + "/broker/rabbitmq"
        with rabbitmq_node(auth_url, tmp_path_factory.mktemp("rabbitmq")) as node:
            yield Deployment(hooks, node)


def test_a_device_connects_with_its_token_and_is_refused_with_a_wrong_one(deployment: Deployment) -> None:
    hooks, port = deployment.hooks, deployment.node.mqtt_port
    device_id, token = hooks.device(hooks.tenant())

    with mqtt_client(HOST, port, device_id, password=token) as device:
        assert device.connack_rc == 0
    with mqtt_client(HOST, port, device_id, password="lsd_" + "x" * 43) as impostor:
        assert impostor.connack_rc == BAD_CREDENTIALS
    other_id, _ = hooks.device(hooks.tenant())
    with mqtt_client(HOST, port, other_id, username=device_id, password=token) as foreign:
        assert foreign.connack_rc == BAD_CREDENTIALS


def test_a_device_hears_what_it_publishes_on_its_own_topics(deployment: Deployment) -> None:
    hooks, port = deployment.hooks, deployment.node.mqtt_port
    device_id, token = hooks.device(hooks.tenant())

    with mqtt_client(HOST, port, device_id, password=token) as device:
        assert device.subscribe(device_topic(device_id, "#"), qos=1) == 1
        device.publish(device_topic(device_id, "state"), b'{"on": true}', qos=1)
        message = device.wait_for_message(lambda m: m.topic == device_topic(device_id, "state"))

    assert message.payload == b'{"on": true}'


def test_a_device_may_not_subscribe_to_another_devices_topics(deployment: Deployment) -> None:
    hooks, port = deployment.hooks, deployment.node.mqtt_port
    device_id, token = hooks.device(hooks.tenant())
    other_id, _ = hooks.device(hooks.tenant())

    with mqtt_client(HOST, port, device_id, password=token) as device:
        refused = device.paho_client.subscribe(device_topic(other_id, "commands", "#"), 1)[1]
        # RabbitMQ 3.10 closes the connection rather than answer SUBACK 0x80.
        device.wait_disconnected()

    assert refused not in device.granted


def test_a_device_publishing_to_another_devices_topic_reaches_nobody(deployment: Deployment) -> None:
    hooks, port = deployment.hooks, deployment.node.mqtt_port
    tenant = hooks.tenant()
    device_id, token = hooks.device(tenant)
    victim_id, victim_token = hooks.device(tenant)
    commands = device_topic(victim_id, "commands", "open")

    with mqtt_client(HOST, port, victim_id, password=victim_token) as victim:
        assert victim.subscribe(device_topic(victim_id, "commands", "#")) == 1
        with mqtt_client(HOST, port, device_id, password=token) as attacker:
            attacker.paho_client.publish(commands, b"forged", qos=1)
            attacker.wait_disconnected()  # RabbitMQ closes a connection that publishes where it may not
        victim.publish(device_topic(victim_id, "commands", "ping"), b"own", qos=1)
        victim.wait_for_message(lambda m: m.topic.endswith("/ping"))

    assert victim.received(commands) == []


def test_connecting_through_rabbitmq_activates_the_device(deployment: Deployment) -> None:
    hooks, port = deployment.hooks, deployment.node.mqtt_port
    device_id, token = hooks.device(hooks.tenant())

    with mqtt_client(HOST, port, device_id, password=token) as device:
        assert device.connack_rc == 0
    hooks.flush()

    stored = hooks.stored(device_id)
    assert (stored.state.value, stored.online, stored.last_seen_at is not None) == ("activated", True, True)


def test_the_provisioning_user_may_only_ask_for_credentials(deployment: Deployment) -> None:
    port = deployment.node.mqtt_port

    with mqtt_client(HOST, port, "tb-provisioner", username="provision", password="x") as provisioner:
        assert provisioner.connack_rc == 0
        assert provisioner.subscribe("/provision/response") == 1
        provisioner.publish("/provision/request", b'{"provisionDeviceKey": "k"}', qos=1)
        assert provisioner.connected
        provisioner.paho_client.subscribe("devices/#", 1)
        provisioner.wait_disconnected()
    # RabbitMQ itself refuses a username without a password: provisioners must send one (any).
    with mqtt_client(HOST, port, "tb-provisioner", username="provision") as without_password:
        assert without_password.connack_rc == BAD_CREDENTIALS
