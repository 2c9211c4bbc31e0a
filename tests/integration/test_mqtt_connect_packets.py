"""CONNECT packets the embedded broker checks itself (it builds its sessions straight from
the CONNECT, see ``adapters/mqtt/session_states.py``): each refusal gets the CONNACK return
code MQTT 3.1.1 gives it, over a raw socket so nothing in a client library smooths it over."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from transitions import MachineError

from lineside.adapters.mqtt.session_states import LeanSession
from lineside.bootstrap import Application
from tests.support.api import Tenant
from tests.support.mqtt import embedded_broker

Address = tuple[str, int]
USERNAME, PASSWORD, CLEAN_SESSION = 0x80, 0x40, 0x02


@pytest.fixture(scope="module")
def broker(application: Application) -> Iterator[Address]:
    with embedded_broker(application) as address:
        yield address


def string(value: str) -> bytes:
    return struct.pack("!H", len(value)) + value.encode()


def connect_packet(
    client_id: str, *, flags: int, username: str = "", password: str = "", level: int = 4, name: str = "MQTT"
) -> bytes:
    body = string(name) + bytes([level, flags]) + struct.pack("!H", 60) + string(client_id)
    if flags & USERNAME:
        body += string(username)
    if flags & PASSWORD:
        body += string(password)
    assert len(body) < 128 * 128
    length = bytes([len(body)]) if len(body) < 128 else bytes([0x80 | len(body) % 128, len(body) // 128])
    return bytes([0x10]) + length + body


def connack(broker: Address, packet: bytes) -> bytes:
    with socket.create_connection(broker, timeout=10) as raw:
        raw.sendall(packet)
        return raw.recv(4)


def return_code(answer: bytes) -> int:
    assert answer[:2] == b"\x20\x02", answer
    return answer[3]


def test_a_well_formed_connect_with_a_token_is_accepted(broker: Address, tenant: Tenant) -> None:
    device_id = tenant.device(tenant.product()["id"])["id"]
    packet = connect_packet(
        device_id,
        flags=USERNAME | PASSWORD | CLEAN_SESSION,
        username=device_id,
        password=tenant.token(device_id),
    )
    assert return_code(connack(broker, packet)) == 0


def test_mqtt_3_1_level_is_refused_as_an_unacceptable_protocol_version(broker: Address) -> None:
    packet = connect_packet("someone", flags=CLEAN_SESSION, level=3)
    assert return_code(connack(broker, packet)) == 1


def test_an_mqtt_3_1_client_gets_connack_1_as_the_docs_say(broker: Address, tenant: Tenant) -> None:
    # MQTT 3.1: protocol name MQIsdp, level 3 (paho's MQTTv31, mosquitto_pub -V mqttv31).
    device_id = tenant.device(tenant.product()["id"])["id"]
    packet = connect_packet(
        device_id,
        flags=USERNAME | PASSWORD | CLEAN_SESSION,
        username=device_id,
        password=tenant.token(device_id),
        level=3,
        name="MQIsdp",
    )
    assert return_code(connack(broker, packet)) == 1


def test_a_password_without_a_username_is_refused_as_bad_credentials(broker: Address) -> None:
    packet = connect_packet("someone", flags=PASSWORD | CLEAN_SESSION, password="lsd_x")
    assert return_code(connack(broker, packet)) == 4


def test_a_persistent_session_without_a_client_id_is_refused_as_an_identifier_rejected(
    broker: Address,
) -> None:
    assert return_code(connack(broker, connect_packet("", flags=0))) == 2


def test_a_connect_with_the_reserved_flag_set_is_dropped_without_an_answer(broker: Address) -> None:
    assert connack(broker, connect_packet("someone", flags=CLEAN_SESSION | 0x01)) == b""


def test_a_lean_session_moves_between_states_as_amqtt_expects() -> None:
    session = LeanSession()
    assert session.transitions.is_new()

    session.transitions.connect()
    assert session.transitions.is_connected() and session.last_connect_time is not None
    with pytest.raises(MachineError):  # amqtt takes a connected session over on this error
        session.transitions.connect()
    session.transitions.disconnect()
    assert session.transitions.state == "disconnected" and session.last_disconnect_time is not None
    session.transitions.connect()
    assert session.transitions.is_connected()
