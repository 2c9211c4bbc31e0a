"""One MQTT connection (paho-mqtt 2.x, MQTT 3.1.1) with blocking, timed calls on top.

paho runs its network loop in a thread of its own; this wrapper turns its callbacks into
calls that wait for the broker's answer (CONNACK, SUBACK, PUBACK) with a deadline and raise
the SDK's errors, and collects incoming messages in a queue (and an optional callback).
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from lineside.device.errors import (
    CertificateFilesError,
    ConnectionRefused,
    NotConnected,
    ServerUnreachable,
    TimedOut,
)

DEFAULT_TIMEOUT_SECONDS = 10.0
KEEPALIVE_SECONDS = 60
_SUBACK_FAIL = 0x80


@dataclass(frozen=True)
class Message:
    """A message the broker delivered to this connection."""

    topic: str
    payload: bytes

    def json(self) -> Any:
        """The payload parsed as JSON (``ValueError`` if it is not)."""
        return json.loads(self.payload)


MessageHandler = Callable[[Message], None]


@dataclass(frozen=True)
class MqttEndpoint:
    """Where the broker is: host, port, and a TLS context for a TLS listener."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None


def tls_context(
    server_ca_file: str | None, certificate_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A client's TLS: the server checked against ``server_ca_file`` (None: the system's CAs)
    and, when given, the client certificate (its chain file: the certificate, then the
    intermediates) with its key."""
    try:
        context = ssl.create_default_context(cafile=server_ca_file)
    except (OSError, ssl.SSLError) as error:
        raise CertificateFilesError(
            f"Cannot use {server_ca_file} as the server's CA: {_why(error)}"
        ) from None
    if certificate_file is None:
        if key_file is not None:
            raise CertificateFilesError("A key file without a certificate file: name both, or neither.")
        return context
    try:
        context.load_cert_chain(certificate_file, key_file)
    except (OSError, ssl.SSLError) as error:
        raise CertificateFilesError(
            f"Cannot use {certificate_file} (key {key_file or 'in the same file'}) as the client "
            f"certificate: {_why(error)}"
        ) from None
    return context


_SSL_REASONS = {
    "KEY_VALUES_MISMATCH": "the key is not the certificate's",
    "NO_CERTIFICATE_OR_CRL_FOUND": "it holds no PEM certificate",
}


def _why(error: OSError | ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLError):
        # OpenSSL names no reason when a file is not PEM at all ("PEM lib").
        return _SSL_REASONS.get(error.reason or "", error.reason or "not a PEM certificate and key")
    return error.strerror or str(error)


class MqttLink:
    """A connection as ``client_id`` / ``username`` with ``password``; not connected yet."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        client_id: str,
        username: str,
        password: str | None,
        on_message: MessageHandler | None = None,
        reconnect: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.messages: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._on_message = on_message
        self._connack: queue.SimpleQueue[ReasonCode | str] = queue.SimpleQueue()
        self._subacks: dict[int, queue.SimpleQueue[list[ReasonCode]]] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._resubscribe: list[tuple[str, int]] = []
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
            reconnect_on_failure=reconnect,
        )
        self._client.username_pw_set(username, password)
        if endpoint.tls is not None:
            self._client.tls_set_context(endpoint.tls)
        self._client.on_connect = self._connected_callback
        self._client.on_disconnect = self._disconnected_callback
        self._client.on_subscribe = self._subscribed_callback
        self._client.on_message = self._message_callback

    def __repr__(self) -> str:
        return f"MqttLink({self.client_id!r} at {self.endpoint.host}:{self.endpoint.port})"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def connect(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """Connect and wait for the CONNACK; a refusal stops the network loop and raises."""
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            self._client.connect(self.endpoint.host, self.endpoint.port, KEEPALIVE_SECONDS)
        except (OSError, ssl.SSLError) as error:
            raise ServerUnreachable(f"Cannot connect to the MQTT broker at {where}: {error}") from None
        self._client.loop_start()
        try:
            answer = self._connack.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise TimedOut(f"The MQTT broker at {where} sent no CONNACK in {timeout:g} s.") from None
        if isinstance(answer, str) or answer.is_failure:
            self.close()
            raise ConnectionRefused(str(answer))

    def subscribe(self, topics: list[str], qos: int = 1, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """Subscribe and wait for the SUBACK; a refused filter raises ``ConnectionRefused``.

        The subscriptions are made again after an automatic reconnection (clean session)."""
        wanted = [(topic, qos) for topic in topics]
        granted = self._subscribe(wanted, timeout)
        refused = [topic for topic, code in zip(topics, granted, strict=False) if code.value >= _SUBACK_FAIL]
        if refused:
            raise ConnectionRefused(f"subscription refused for {', '.join(refused)}")
        with self._lock:
            self._resubscribe.extend(wanted)

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        """Publish; with QoS 1 or 2, wait until the broker acknowledged it."""
        if not self.connected:
            raise NotConnected(f"{self.client_id} is not connected to the MQTT broker.")
        info = self._client.publish(topic, payload, qos=qos)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as error:
            raise NotConnected(f"Publishing to {topic} failed: {error}") from None
        if not info.is_published():
            raise TimedOut(f"The broker did not acknowledge a publish to {topic} in {timeout:g} s.")

    def next_message(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Message:
        """The next message received (waits up to ``timeout``)."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise TimedOut(f"No message arrived for {self.client_id} in {timeout:g} s.") from None

    def close(self) -> None:
        """Disconnect (politely when connected) and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # -- paho's callbacks (its network thread) ----------------------------------------------

    def _subscribe(self, wanted: list[tuple[str, int]], timeout: float) -> list[ReasonCode]:
        if not self.connected:
            raise NotConnected(f"{self.client_id} is not connected to the MQTT broker.")
        answer: queue.SimpleQueue[list[ReasonCode]] = queue.SimpleQueue()
        with self._lock:  # the SUBACK may arrive before subscribe() returns its message id
            result, mid = self._client.subscribe(wanted)
            if result != paho.MQTT_ERR_SUCCESS or mid is None:
                raise NotConnected(f"Subscribing failed: {paho.error_string(result)}")
            self._subacks[mid] = answer
        try:
            return answer.get(timeout=timeout)
        except queue.Empty:
            raise TimedOut(f"The broker sent no SUBACK in {timeout:g} s.") from None
        finally:
            with self._lock:
                self._subacks.pop(mid, None)

    def _connected_callback(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        if not reason.is_failure:
            self._connected.set()
            with self._lock:
                again = list(self._resubscribe)
            if again:
                client.subscribe(again)
        self._connack.put(reason)

    def _disconnected_callback(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if not was_connected:
            # Closed before any CONNACK: a broker that drops refused clients does this.
            self._connack.put(f"connection closed before CONNACK ({reason})")

    def _subscribed_callback(
        self, _client: paho.Client, _userdata: Any, mid: int, codes: list[ReasonCode], _properties: Any
    ) -> None:
        with self._lock:
            waiting = self._subacks.get(mid)
        if waiting is not None:
            waiting.put(codes)

    def _message_callback(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        received = Message(message.topic, bytes(message.payload))
        self.messages.put(received)
        if self._on_message is not None:
            self._on_message(received)
