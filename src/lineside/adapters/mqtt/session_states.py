"""Sessions without a ``transitions.Machine`` each, built straight from the CONNECT.

amqtt gives every Session a state machine from the ``transitions`` package: about 16 KiB and
0.1 ms per session, a quarter of what a connected device cost the embedded broker
(bench/mqtt_activation.py). amqtt only asks it for ``state``, ``connect()``, ``disconnect()``
and ``is_connected()``, so Lineside's sessions carry SessionStates instead. Swapping the
machine out after the fact saved the memory but not the time: each dropped machine is a
cycle the garbage collector must find. So the broker builds its sessions itself, from the
CONNECT, with the checks amqtt's ``BrokerProtocolHandler.init_from_connect`` makes.
"""

from __future__ import annotations

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import (
    BAD_USERNAME_PASSWORD,
    IDENTIFIER_REJECTED,
    UNACCEPTABLE_PROTOCOL_VERSION,
    ConnackPacket,
)
from amqtt.mqtt.connect import ConnectPacket
from amqtt.session import Session
from transitions import MachineError

NEW, CONNECTED, DISCONNECTED = "new", "connected", "disconnected"
MQTT_3_1_1 = 4


class SessionStates:
    """new -> connected <-> disconnected, with amqtt's enter callbacks; ``connect()`` while
    connected raises MachineError, as the machine does (amqtt then takes the session over)."""

    __slots__ = ("_session", "state")

    def __init__(self, session: Session) -> None:
        self._session = session
        self.state = NEW

    def connect(self) -> None:
        if self.state == CONNECTED:
            raise MachineError(f"{self._session.client_id} is already connected")
        self.state = CONNECTED
        self._session._on_enter_connected()

    def disconnect(self) -> None:
        self.state = DISCONNECTED
        self._session._on_enter_disconnected()

    def is_new(self) -> bool:
        return self.state == NEW

    def is_connected(self) -> bool:
        return self.state == CONNECTED

    def is_disconnected(self) -> bool:
        return self.state == DISCONNECTED


class LeanSession(Session):
    """amqtt's Session with SessionStates in place of its state machine."""

    def _init_states(self) -> None:
        self.transitions = SessionStates(self)  # type: ignore[assignment]  # duck-typed for amqtt


async def session_from_connect(reader: ReaderAdapter, writer: WriterAdapter) -> Session:
    """Parse the CONNECT and check it as MQTT 3.1.1 requires (a refusal is answered with its
    CONNACK, then MQTTError); the session it asks for, not yet authenticated."""
    connect = await ConnectPacket.from_stream(reader)
    header, payload = connect.variable_header, connect.payload
    if header is None or payload is None or payload.client_id is None:
        raise MQTTError("CONNECT without a variable header, payload or client id")
    if header.reserved_flag or connect.proto_name != "MQTT":
        raise MQTTError(f"CONNECT refused: protocol name {connect.proto_name!r}, reserved flag set?")
    if header.will_flag and (payload.will_topic is None or payload.will_message is None):
        raise MQTTError("CONNECT with the will flag but no will topic or message")
    refusal = _refusal(connect)
    if refusal is not None:
        await ConnackPacket.build(0, refusal).to_stream(writer)
        await writer.close()
        raise MQTTError(f"CONNECT refused with return code {refusal}")
    return _session(connect, writer)


def _refusal(connect: ConnectPacket) -> int | None:
    """The CONNACK return code a CONNECT this broker cannot take gets, or None."""
    if connect.proto_level != MQTT_3_1_1:
        return UNACCEPTABLE_PROTOCOL_VERSION  # [MQTT-3.1.2-2] (MQTT 5 is answered earlier)
    if connect.password_flag and (not connect.username_flag or connect.password is None):
        return BAD_USERNAME_PASSWORD  # [MQTT-3.1.2-22]
    if connect.username_flag and connect.username is None:
        return BAD_USERNAME_PASSWORD
    payload = connect.payload
    if not connect.clean_session_flag and payload is not None and payload.client_id_is_random:
        return IDENTIFIER_REJECTED  # [MQTT-3.1.3-8] a persistent session needs a client id
    return None


def _session(connect: ConnectPacket, writer: WriterAdapter) -> Session:
    session = LeanSession()
    session.client_id = connect.client_id
    session.clean_session = connect.clean_session_flag
    session.will_flag = connect.will_flag
    session.will_retain = connect.will_retain_flag
    session.will_qos = connect.will_qos
    session.will_topic = connect.will_topic
    session.will_message = connect.will_message
    session.username = connect.username
    session.password = connect.password
    peer = writer.get_peer_info()
    if peer is not None:
        session.remote_address, session.remote_port = peer
    session.ssl_object = writer.get_ssl_info()
    session.keep_alive = max(connect.keep_alive, 0)
    return session
