"""MQTT for tests: the embedded broker on a free port, and real paho-mqtt clients.

Usage::

    with embedded_broker(application) as (host, port):
        with mqtt_client(host, port, device_id, password=token) as device:
            assert device.connack_rc == 0  # 5 = not authorized
            assert device.subscribe(device_topic(device_id, "commands")) == 1  # granted QoS; 0x80 = refused
            device.publish(device_topic(device_id, "telemetry"), b"{}")
            message = device.wait_for_message(lambda m: m.topic.endswith("/commands"))

``mqtt_client`` always returns once the CONNACK arrived (or the connection was closed),
whatever its return code: a refused client is a normal test outcome. Every wait polls a
condition against a deadline (``wait_for``) and raises AssertionError when it runs out.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from lineside.bootstrap import Application
from lineside.entrypoints.mqtt import EmbeddedBroker
from tests.support.server import free_port

DEADLINE_SECONDS = 10.0
POLL_SECONDS = 0.01
REFUSED = 0x80  # SUBACK return code of a refused subscription
NOT_AUTHORIZED = 5  # CONNACK return code


def wait_for(
    predicate: Callable[[], bool], timeout: float = DEADLINE_SECONDS, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it holds; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_SECONDS)  # polling a condition, with a deadline


@contextmanager
def embedded_broker(
    application: Application, *, recheck_seconds: float | None = None
) -> Iterator[tuple[str, int]]:
    """The embedded broker (with its revocation watcher, presence and firmware notices) on a
    free loopback port for the duration; yields ``(host, port)``."""
    broker = EmbeddedBroker(application, host="127.0.0.1", port=free_port(), recheck_seconds=recheck_seconds)
    broker.start()
    try:
        yield broker.host, broker.port
    finally:
        broker.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes


@dataclass
class MqttClient:
    """A connected (or refused) paho client whose network loop runs in its own thread."""

    paho_client: paho.Client
    connack_rc: int | None = None
    messages: list[Received] = field(default_factory=list)
    granted: dict[int, list[int]] = field(default_factory=dict)  # SUBSCRIBE mid -> SUBACK codes
    published: dict[int, int] = field(default_factory=dict)  # mid -> PUBACK reason (0: accepted)
    connected: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, topic: str, qos: int = 1) -> int:
        """The SUBACK code for ``topic``: the granted QoS, or REFUSED (0x80)."""
        result, mid = self.paho_client.subscribe(topic, qos)
        if mid is None:  # paho sent nothing: the client is not connected
            raise AssertionError(f"SUBSCRIBE to {topic} not sent: {result}")
        wait_for(lambda: mid in self.granted, what=f"SUBACK for {topic}")
        return self.granted[mid][0]

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 1) -> int | None:
        """Publish and wait for the broker's PUBACK (QoS 1) or the write (QoS 0); the PUBACK's
        reason code (MQTT 5: 0x87 when refused; always 0 in 3.1.1), None if disconnected."""
        info = self.paho_client.publish(topic, payload, qos)
        wait_for(lambda: info.mid in self.published or not self.connected, what=f"PUBACK on {topic}")
        return self.published.get(info.mid)

    def wait_for_message(
        self, predicate: Callable[[Received], bool] = lambda _m: True, timeout: float = DEADLINE_SECONDS
    ) -> Received:
        """The first message received so far or until ``timeout`` that satisfies ``predicate``."""
        found: list[Received] = []

        def arrived() -> bool:
            with self._lock:
                found.extend(message for message in self.messages if predicate(message))
            return bool(found)

        wait_for(arrived, timeout, "an MQTT message")
        return found[0]

    def received(self, topic: str) -> list[Received]:
        with self._lock:
            return [message for message in self.messages if message.topic == topic]

    def wait_disconnected(self, timeout: float = DEADLINE_SECONDS) -> None:
        wait_for(lambda: not self.connected, timeout, "the broker to close the connection")

    def close(self) -> None:
        if self.connected:
            self.paho_client.disconnect()
        self.paho_client.loop_stop()


# paho 2 reports a 3.1.1 CONNACK return code as an MQTT 5 reason code: map it back.
_CONNACK_RC = {0: 0, 132: 1, 133: 2, 136: 3, 134: 4, 135: 5}


def _code(value: ReasonCode | int) -> int:
    return value.value if isinstance(value, ReasonCode) else int(value)


def connect(
    host: str,
    port: int,
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    clean_session: bool = True,
    tls: ssl.SSLContext | None = None,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311,
) -> MqttClient:
    """A paho client connected as ``client_id`` (username defaults to the client id), once
    the CONNACK arrived; check ``connack_rc`` (MQTT 5 reason codes are mapped to 3.1.1's:
    "not authorized" is 5 either way). Close it with ``close()``."""
    version_5 = protocol == MQTTProtocolVersion.MQTTv5
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if version_5 else clean_session,
        protocol=protocol,
    )
    state = MqttClient(client)
    answered = threading.Event()

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        state.connack_rc = _CONNACK_RC.get(_code(reason), _code(reason))
        state.connected = state.connack_rc == 0
        answered.set()

    def on_disconnect(_c: paho.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        state.connected = False
        answered.set()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        with state._lock:
            state.messages.append(Received(message.topic, bytes(message.payload)))

    def on_subscribe(_c: paho.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object) -> None:
        state.granted[mid] = [_code(code) for code in codes]

    def on_publish(_c: paho.Client, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
        state.published[mid] = _code(reason)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    # paho would otherwise retry a refused connection for ever in loop_start's thread
    client.reconnect_delay_set(min_delay=3600, max_delay=3600)
    if username is not None or password is not None:
        client.username_pw_set(username if username is not None else client_id, password)
    if tls is not None:
        client.tls_set_context(tls)
    if version_5:
        client.connect(host, port, keepalive=30, clean_start=clean_session)
    else:
        client.connect(host, port, keepalive=30)
    client.loop_start()
    wait_for(answered.is_set, what=f"CONNACK for {client_id}")
    if state.connack_rc != 0:
        client.loop_stop()
    return state


@contextmanager
def mqtt_client(
    host: str,
    port: int,
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    clean_session: bool = True,
    tls: ssl.SSLContext | None = None,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311,
) -> Iterator[MqttClient]:
    """``connect``, closed at the end of the block."""
    client = connect(
        host,
        port,
        client_id,
        username=username,
        password=password,
        clean_session=clean_session,
        tls=tls,
        protocol=protocol,
    )
    try:
        yield client
    finally:
        client.close()
