"""The embedded MQTT broker, driven by real paho clients over real sockets: who may connect,
which topics each may use, the session-takeover hazard, revocation, provisioning answers
and firmware notices."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator

import pytest

from lineside.bootstrap import Application
from lineside.domain.mqtt import PROVISION_REQUEST_TOPIC, PROVISION_RESPONSE_TOPIC, device_topic
from lineside.entrypoints.mqtt import BrokerStartError, EmbeddedBroker
from lineside.services.context import ServiceContext
from lineside.services.presence import Flushed, PresenceRecorder
from tests.support.api import Tenant
from tests.support.firmware import deployed, group, member, release
from tests.support.mqtt import NOT_AUTHORIZED, REFUSED, Received, embedded_broker, mqtt_client, wait_for
from tests.support.server import free_port

Address = tuple[str, int]


@pytest.fixture(scope="module")
def broker(application: Application) -> Iterator[Address]:
    with embedded_broker(application, recheck_seconds=0.2) as address:
        yield address


def device_with_token(tenant: Tenant) -> tuple[str, str]:
    product = tenant.product()
    device_id = tenant.device(product["id"])["id"]
    return device_id, tenant.token(device_id)


# -- who may connect --------------------------------------------------------------------


def test_a_device_connects_with_its_token_and_is_refused_with_a_wrong_one(
    broker: Address, tenant: Tenant
) -> None:
    device_id, token = device_with_token(tenant)
    _other, other_token = device_with_token(tenant)

    with mqtt_client(*broker, device_id, password=token) as good:
        assert good.connack_rc == 0
    for password in ("lsd_wrong", other_token, "", "not-a-token"):
        with mqtt_client(*broker, device_id, password=password) as bad:
            assert bad.connack_rc == NOT_AUTHORIZED, password
    with mqtt_client(*broker, device_id) as anonymous:
        assert anonymous.connack_rc == NOT_AUTHORIZED


def test_the_client_id_and_the_username_must_be_the_device_id(broker: Address, tenant: Tenant) -> None:
    device_id, token = device_with_token(tenant)
    other_id, _ = device_with_token(tenant)

    with mqtt_client(*broker, other_id, username=other_id, password=token) as foreign_client_id:
        assert foreign_client_id.connack_rc == NOT_AUTHORIZED
    with mqtt_client(*broker, device_id, username=other_id, password=token) as foreign_username:
        assert foreign_username.connack_rc == NOT_AUTHORIZED
    with mqtt_client(*broker, "someone", username=device_id, password=token) as mismatch:
        assert mismatch.connack_rc == NOT_AUTHORIZED


def test_a_revoked_or_deleted_device_is_refused(broker: Address, tenant: Tenant) -> None:
    revoked_id, revoked_token = device_with_token(tenant)
    deleted_id, deleted_token = device_with_token(tenant)
    assert tenant.post(f"/api/v1/devices/{revoked_id}/revoke").status_code == 200
    assert tenant.delete(f"/api/v1/devices/{deleted_id}").status_code == 204

    with mqtt_client(*broker, revoked_id, password=revoked_token) as revoked:
        assert revoked.connack_rc == NOT_AUTHORIZED
    with mqtt_client(*broker, deleted_id, password=deleted_token) as deleted:
        assert deleted.connack_rc == NOT_AUTHORIZED


# -- topics -----------------------------------------------------------------------------


def test_a_device_uses_only_its_own_topics(broker: Address, tenant: Tenant) -> None:
    device_id, token = device_with_token(tenant)
    other_id, other_token = device_with_token(tenant)
    other_commands = device_topic(other_id, "commands")

    with (
        mqtt_client(*broker, device_id, password=token) as device,
        mqtt_client(*broker, other_id, password=other_token) as other,
    ):
        assert device.subscribe(device_topic(device_id, "#")) == 1
        assert device.subscribe(device_topic(device_id, "commands", "+")) == 1
        for foreign in (other_commands, "devices/+/commands", "#", "devices/#", "$SYS/#", "elsewhere"):
            assert device.subscribe(foreign) == REFUSED, foreign
        assert other.subscribe(other_commands) == 1

        device.publish(other_commands, b"not yours")  # dropped by the broker
        device.publish(device_topic(device_id, "telemetry"), b"mine")
        other.publish(other_commands, b"marker")  # the other device may (a command to itself)

        assert other.wait_for_message(lambda m: m.payload == b"marker").topic == other_commands
        assert device.wait_for_message(lambda m: m.payload == b"mine").topic == device_topic(
            device_id, "telemetry"
        )
        assert [m.payload for m in other.received(other_commands)] == [b"marker"]


# -- the takeover hazard ----------------------------------------------------------------


def test_retained_messages_reach_only_subscribers_of_their_own_topics(
    broker: Address, tenant: Tenant
) -> None:
    device_id, token = device_with_token(tenant)
    other_id, other_token = device_with_token(tenant)
    state, other_state = device_topic(device_id, "state"), device_topic(other_id, "state")

    with mqtt_client(*broker, device_id, password=token) as device:
        assert device.subscribe(state) == 1
        device.paho_client.publish(state, b"retained", qos=1, retain=True).wait_for_publish(10)
        with mqtt_client(*broker, other_id, password=other_token) as other:
            assert other.subscribe(other_state) == 1
            other.publish(other_state, b"marker")  # arrives after anything sent at CONNECT
            other.wait_for_message(lambda m: m.payload == b"marker")
            assert [m.payload for m in other.messages] == [b"marker"]
    with mqtt_client(*broker, device_id, password=token) as again:
        assert again.subscribe(state) == 1
        assert again.wait_for_message().payload == b"retained"  # its own retained message, still


@pytest.mark.parametrize("clean_session", [True, False])
def test_a_refused_connect_with_a_live_devices_id_leaves_its_session_alone(
    broker: Address, tenant: Tenant, clean_session: bool
) -> None:
    device_id, token = device_with_token(tenant)
    commands = device_topic(device_id, "commands")

    with mqtt_client(*broker, device_id, password=token, clean_session=False) as device:
        assert device.subscribe(commands) == 1
        with mqtt_client(*broker, device_id, password="lsd_wrong", clean_session=clean_session) as attacker:
            assert attacker.connack_rc == NOT_AUTHORIZED
        assert device.connected
        device.publish(commands, b"still listening")

        assert device.wait_for_message(lambda m: m.payload == b"still listening").topic == commands
        assert device.connected


def test_the_provisioning_user_cannot_take_over_a_devices_session(broker: Address, tenant: Tenant) -> None:
    device_id, token = device_with_token(tenant)
    commands = device_topic(device_id, "commands")

    with mqtt_client(*broker, device_id, password=token) as device:
        assert device.subscribe(commands) == 1
        with mqtt_client(*broker, device_id, username="provision") as borrowed_id:
            assert borrowed_id.connack_rc == 0  # as the provisioner, in a session of its own
            assert borrowed_id.subscribe(commands) == REFUSED
        device.publish(commands, b"undisturbed")

        assert device.wait_for_message(lambda m: m.payload == b"undisturbed").topic == commands
        assert device.connected


def test_a_second_connection_with_the_right_token_takes_over(broker: Address, tenant: Tenant) -> None:
    device_id, token = device_with_token(tenant)
    commands = device_topic(device_id, "commands")

    with (
        mqtt_client(*broker, device_id, password=token) as first,
        mqtt_client(*broker, device_id, password=token) as second,
    ):
        assert second.connack_rc == 0
        first.wait_disconnected()
        assert second.subscribe(commands) == 1
        second.publish(commands, b"to the new one")
        assert second.wait_for_message().payload == b"to the new one"


# -- revocation -------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["revoke", "delete"])
def test_revoking_or_deleting_a_connected_device_disconnects_it(
    broker: Address, tenant: Tenant, ending: str
) -> None:
    device_id, token = device_with_token(tenant)
    bystander_id, bystander_token = device_with_token(tenant)

    with (
        mqtt_client(*broker, device_id, password=token) as device,
        mqtt_client(*broker, bystander_id, password=bystander_token) as bystander,
    ):
        assert device.connected
        if ending == "revoke":
            assert tenant.post(f"/api/v1/devices/{device_id}/revoke").status_code == 200
        else:
            assert tenant.delete(f"/api/v1/devices/{device_id}").status_code == 204
        device.wait_disconnected()
        assert bystander.connected


class RecordingPresence(PresenceRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[tuple[str, str]] = []
        self.flushes = 0

    def connected(self, device_id: str) -> None:
        self.changes.append(("connected", device_id))
        super().connected(device_id)

    def disconnected(self, device_id: str) -> None:
        self.changes.append(("disconnected", device_id))
        super().disconnected(device_id)

    def flush(self, ctx: ServiceContext) -> Flushed:
        self.flushes += 1
        return super().flush(ctx)


def test_presence_follows_connections_and_a_takeover_leaves_the_device_online(
    application: Application, tenant: Tenant
) -> None:
    device_id, token = device_with_token(tenant)
    presence = RecordingPresence()
    broker = EmbeddedBroker(application, host="127.0.0.1", port=free_port(), presence=presence)
    broker.start()
    try:
        address = (broker.host, broker.port)
        with mqtt_client(*address, device_id, password=token) as first:
            wait_for(lambda: presence.changes == [("connected", device_id)], what="connected")
            with mqtt_client(*address, device_id, password=token) as second:
                first.wait_disconnected()
                wait_for(lambda: len(presence.changes) == 3, what="the takeover")
                assert presence.changes[-1] == ("connected", device_id)
                assert second.connected
        wait_for(lambda: presence.changes[-1] == ("disconnected", device_id), what="disconnected")
        with mqtt_client(*address, device_id, password="lsd_wrong") as refused:
            assert refused.connack_rc == NOT_AUTHORIZED
        flushes = presence.flushes
        wait_for(lambda: presence.flushes > flushes, what="a presence flush")
    finally:
        broker.stop()
    assert presence.changes[3:] == [("disconnected", device_id)]
    assert not broker.alive


def test_replacing_a_token_disconnects_the_connection_that_used_the_old_one(
    broker: Address, tenant: Tenant
) -> None:
    device_id, token = device_with_token(tenant)

    with mqtt_client(*broker, device_id, password=token) as device:
        new_token = tenant.token(device_id)
        device.wait_disconnected()
    with mqtt_client(*broker, device_id, password=new_token) as again:
        assert again.connack_rc == 0


# -- provisioning -----------------------------------------------------------------------


def test_a_provisioning_answer_reaches_only_the_requester(broker: Address) -> None:
    with (
        mqtt_client(*broker, "prov-a", username="provision") as first,
        mqtt_client(*broker, "prov-b", username="provision") as second,
    ):
        assert (first.connack_rc, second.connack_rc) == (0, 0)
        assert first.subscribe(PROVISION_RESPONSE_TOPIC) == 1
        assert second.subscribe(PROVISION_RESPONSE_TOPIC) == 1
        assert second.subscribe(PROVISION_REQUEST_TOPIC) == REFUSED
        assert first.subscribe("devices/#") == REFUSED

        first.publish(
            PROVISION_REQUEST_TOPIC, b'{"provisionDeviceKey": "nope", "provisionDeviceSecret": "x"}'
        )
        answer = first.wait_for_message(lambda m: m.topic == PROVISION_RESPONSE_TOPIC)
        second.publish(PROVISION_REQUEST_TOPIC, b"not json")
        second.wait_for_message(lambda m: m.topic == PROVISION_RESPONSE_TOPIC)

        assert json.loads(answer.payload)["status"] != "SUCCESS"
        assert len(first.received(PROVISION_RESPONSE_TOPIC)) == 1
        assert len(second.received(PROVISION_RESPONSE_TOPIC)) == 1
        assert first.received(PROVISION_REQUEST_TOPIC) == second.received(PROVISION_REQUEST_TOPIC) == []


def test_the_provisioning_user_may_not_publish_elsewhere(broker: Address, tenant: Tenant) -> None:
    device_id, token = device_with_token(tenant)
    commands = device_topic(device_id, "commands")

    with (
        mqtt_client(*broker, device_id, password=token) as device,
        mqtt_client(*broker, "prov-c", username="provision") as provisioner,
    ):
        assert device.subscribe(commands) == 1
        provisioner.publish(commands, b"forged")
        device.publish(commands, b"marker")

        device.wait_for_message(lambda m: m.payload == b"marker")
        assert [m.payload for m in device.received(commands)] == [b"marker"]


# -- firmware notices -------------------------------------------------------------------


def test_a_deployment_is_announced_on_each_members_firmware_topic(
    broker: Address, application: Application, tenant: Tenant
) -> None:
    product = tenant.product()
    production = group(tenant, product["id"], "production")
    token = member(application, tenant, product["id"], production["id"])
    device_id = device_id_of(application, token)
    firmware = release(tenant, product["id"])

    with mqtt_client(*broker, device_id, password=token) as device:
        assert device.subscribe(device_topic(device_id, "firmware")) == 1
        deployed(tenant, production["id"], firmware["id"])
        notice = json.loads(device.wait_for_message(is_firmware_notice).payload)

    assert notice == {
        "release_id": firmware["id"],
        "version": firmware["version"],
        "kind": "application",
        "sha256": firmware["sha256"],
        "size_bytes": firmware["size_bytes"],
        "download_path": f"/device/v1/firmware/{firmware['id']}/image",
    }


def is_firmware_notice(message: Received) -> bool:
    return message.topic.endswith("/firmware")


def device_id_of(application: Application, token: str) -> str:
    services = application.services
    device = services.device_tokens.find_by_token_hash(services.hasher.hash(token))
    assert device is not None
    return device.id


# -- keep-alive -------------------------------------------------------------------------


def raw_connect(client_id: str, password: str, keep_alive: int) -> bytes:
    def string(value: str) -> bytes:
        return struct.pack("!H", len(value)) + value.encode()

    # MQTT 3.1.1, flags: username, password, clean session
    body = string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keep_alive)
    body += string(client_id) + string(client_id) + string(password)
    assert 128 <= len(body) < 128 * 128
    return bytes([0x10, 0x80 | len(body) % 128, len(body) // 128]) + body


def test_a_client_silent_for_one_and_a_half_keep_alives_is_disconnected(
    broker: Address, tenant: Tenant
) -> None:
    device_id, token = device_with_token(tenant)

    with socket.create_connection(broker, timeout=10) as raw:
        raw.sendall(raw_connect(device_id, token, keep_alive=1))
        assert raw.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
        # then silence, not even PINGREQ: the broker closes within 1.5 s (recv's deadline is 10 s)
        assert raw.recv(1) == b""


# -- the port ---------------------------------------------------------------------------


def test_a_taken_port_is_a_clear_error(application: Application, broker: Address) -> None:
    second = EmbeddedBroker(application, host=broker[0], port=broker[1])
    with pytest.raises(BrokerStartError, match="in use"):
        second.start()


# -- MQTT passwords ---------------------------------------------------------------------


def test_a_device_connects_with_its_mqtt_password(broker: Address, tenant: Tenant) -> None:
    device_id, _token = device_with_token(tenant)
    password = tenant.created(f"/api/v1/devices/{device_id}/credentials", {"type": "mqtt_password"})["secret"]
    assert password.startswith("lsm_")

    with mqtt_client(*broker, device_id, password=password) as device:
        assert device.connack_rc == 0
    with mqtt_client(*broker, device_id, password="lsm_" + "x" * 43) as wrong:
        assert wrong.connack_rc == NOT_AUTHORIZED
