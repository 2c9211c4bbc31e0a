"""``AmqttBroker``: amqtt's MQTT 3.1.1 broker with Lineside's authority in front of it.

What it changes in amqtt (0.12), and why:

- **Authentication comes first.** amqtt looks up (clean session: deletes; persistent
  session: overwrites the credentials of) the session of a CONNECT's client id *before* it
  authenticates, and stores the new connection in its place even when authentication
  fails, so a wrong-password attempt with a live device's id silently wiped that device's
  subscriptions. Here a CONNECT is authenticated on its own (``mqtt_access``) before any
  existing session is looked at; a refused one gets CONNACK 5 ("not authorized") and
  touches nothing. The identity is kept on the session and reused, so a connection is
  authenticated once.
- **An accepted takeover really ends the old connection** (and waits for it to wind down)
  before the new one is registered, so the old connection's disconnect cannot mark the new
  one offline.
- **Topics** (publish, subscribe, delivery, and also will messages, which amqtt does not
  check) follow ``mqtt_access.may_access``.
- **Provisioning:** a ``provision`` client's request is answered on
  ``/provision/response`` to that connection alone; the request is never broadcast.
- **Presence:** connections and disconnections go to a ``PresenceRecorder``.

Database calls are synchronous: they run in threads so the event loop never waits on them.
"""

from __future__ import annotations

import _ssl
import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker, Server
from amqtt.contexts import Action, BrokerConfig, ListenerConfig, ListenerType
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.constants import QOS_1
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from lineside.adapters.metrics import PrometheusMetrics
from lineside.adapters.mqtt.authentication import BatchedAuthenticator
from lineside.adapters.mqtt.connect import UnsupportedProtocol, first_packet
from lineside.adapters.mqtt.session_states import session_from_connect
from lineside.adapters.mqtt.tls import TlsListener
from lineside.domain.mqtt import (
    PROVISION_REQUEST_TOPIC,
    PROVISION_RESPONSE_TOPIC,
    PROVISION_USERNAME,
    TopicAccess,
)
from lineside.services.context import ServiceContext
from lineside.services.mqtt_access import (
    PROVISIONER,
    ConnectAttempt,
    MqttIdentity,
    may_access,
)
from lineside.services.mqtt_provisioning import answer_provision_request, failure
from lineside.services.presence import PresenceRecorder

log = logging.getLogger("lineside.mqtt")

IDENTITY = "lineside.identity"  # key of the MqttIdentity in Session.attributes
TLS_LISTENER = "tls"
TAKEOVER_DEADLINE_SECONDS = 5.0
LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
_ACCESS = {Action.PUBLISH: TopicAccess.PUBLISH, Action.SUBSCRIBE: TopicAccess.SUBSCRIBE}


@dataclass(frozen=True)
class Listeners:
    host: str
    port: int
    tls: TlsListener | None = None


@dataclass
class _Connection:
    """One accepted connection of a client id, until its message loop ends."""

    handler: BrokerProtocolHandler
    identity: MqttIdentity
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class _Handler(BrokerProtocolHandler):
    """amqtt's broker handler ignores a read timeout, so a client that vanished without
    closing its socket (power cut, lost network) stayed "connected" for ever."""

    def handle_read_timeout(self) -> None:
        # [MQTT-3.1.2-24] nothing heard for 1.5 x keep-alive: the client is gone.
        self._gone = asyncio.ensure_future(self.handle_connection_closed())


def identity_of(session: Session | None) -> MqttIdentity | None:
    if session is None:
        return None
    identity = session.attributes.get(IDENTITY)
    return identity if isinstance(identity, MqttIdentity) else None


class AmqttBroker(Broker):
    """Start with ``await broker.start()``, stop with ``await broker.shutdown()``; both on
    the loop the broker was created on."""

    def __init__(
        self,
        ctx: ServiceContext,
        presence: PresenceRecorder,
        listeners: Listeners,
        metrics: PrometheusMetrics | None = None,
    ) -> None:
        configured = {"default": ListenerConfig(bind=f"{listeners.host}:{listeners.port}")}
        if listeners.tls is not None:
            configured[TLS_LISTENER] = ListenerConfig(bind=f"{listeners.host}:{listeners.tls.port}")
        # No amqtt plugins at all: the overrides below are the whole policy.
        super().__init__(BrokerConfig(listeners=configured, plugins={}))
        self._ctx = ctx
        self._authenticator = BatchedAuthenticator(ctx)
        self._presence = presence
        self._tls = listeners.tls
        self._connections: dict[str, _Connection] = {}
        self._answers: set[asyncio.Task[None]] = set()
        self._metrics = metrics

    # -- what the runner uses ---------------------------------------------------------

    def connected_identities(self) -> list[MqttIdentity]:
        return [connection.identity for connection in self._connections.values()]

    async def disconnect_stale(self, identities: Iterable[MqttIdentity]) -> None:
        """Close the connections that authenticated as these identities (their device was
        revoked or deleted, or that credential replaced) and forget their sessions: what was
        queued for a credential that no longer holds goes. A connection made since with a
        credential that holds is left alone."""
        await asyncio.gather(*(self._disconnect(identity) for identity in identities))

    async def _disconnect(self, stale: MqttIdentity) -> None:
        device_id = stale.device_id
        connection = self._connections.get(device_id) if device_id else None
        if device_id is None or connection is None or connection.identity != stale:
            return
        log.info("MQTT: disconnecting %s, its credential no longer holds", device_id)
        await self._take_over(device_id)
        if device_id not in self._connections:  # unless it reconnected meanwhile
            session = self._sessions.pop(device_id, (None, None))[0]
            if session is not None:
                self._drop_session(session)

    async def announce(self, topic: str, payload: bytes) -> None:
        """Publish from the server itself (QoS 1, retained so a device that subscribes later
        still hears the latest)."""
        await self.retain_message(None, topic, payload, QOS_1)
        await self.internal_message_broadcast(topic, payload, QOS_1)

    # -- listening: a backlog for reconnect storms --------------------------------------

    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: ListenerType,
        address: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> asyncio.Server:
        # Lineside configures TCP listeners only (TLS is started per connection, below).
        assert listener_type is ListenerType.TCP, listener_type
        # asyncio's default backlog of 100 overflows when a fleet reconnects at once: each SYN
        # the kernel drops costs that device a 1 s retransmit (the p99 of bench/mqtt_activation.py).
        return await asyncio.start_server(
            partial(self.stream_connected, listener_name=listener_name),
            address,
            port,
            reuse_address=True,
            ssl=ssl_context,
            backlog=LISTEN_BACKLOG,
        )

    # -- TLS: upgraded here so the product CAs can be reloaded before each handshake -----

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        if listener_name == TLS_LISTENER and self._tls is not None:
            self._tls.trust.refresh()
            try:
                await writer.start_tls(self._tls.context, ssl_handshake_timeout=10.0)
            except (OSError, TimeoutError, ConnectionError) as error:
                log.info("MQTT TLS handshake failed: %s", error)
                writer.close()
                return
        await self._client_connected(listener_name, StreamReaderAdapter(reader), StreamWriterAdapter(writer))

    # -- CONNECT: authenticate before touching any session -------------------------------

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        try:
            connect = await first_packet(reader, writer)
        except UnsupportedProtocol:
            self._count_connect("unsupported_protocol")
            raise
        except MQTTError:
            self._count_connect("malformed")
            raise
        try:
            fresh = await session_from_connect(connect, writer)
            handler = _Handler(self.plugins_manager)
        except (MQTTError, AMQTTError, NoDataError) as error:
            self._count_connect("malformed")
            await writer.close()
            raise MQTTError(f"bad CONNECT from {remote_address}:{remote_port}: {error}") from None
        identity = await self._identify(fresh)
        if identity is None:
            self._count_connect("not_authorized")
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(f"MQTT CONNECT refused from {remote_address}:{remote_port}")
        self._count_connect("accepted")
        if identity == PROVISIONER:
            # Anyone may connect as ``provision``, with any client id: give each such
            # connection a session of its own, so it can never take over (or wipe) the
            # session of a device whose id it borrowed, nor another provisioner's.
            fresh.client_id = f"{PROVISION_USERNAME}:{fresh.client_id}:{secrets.token_hex(8)}"
            fresh.clean_session = True
        else:
            await self._take_over(fresh.client_id or "")
        return handler, self._session_for(fresh, identity)

    def _count_connect(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.mqtt_connect_answered(result)

    async def _identify(self, session: Session) -> MqttIdentity | None:
        certificate, chain = _client_certificate(session)
        attempt = ConnectAttempt(
            client_id=session.client_id,
            username=session.username,
            password=session.password,
            certificate_sha256=hashlib.sha256(certificate).hexdigest() if certificate else None,
            certificate=certificate,
            chain=chain,
        )
        return await self._authenticator.identify(attempt)

    async def _take_over(self, client_id: str) -> None:
        """End a live connection with this client id, and wait until it has wound down."""
        connection = self._connections.get(client_id)
        if connection is not None:
            await self._end(connection)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.ended.wait(), TAKEOVER_DEADLINE_SECONDS)

    async def _end(self, connection: _Connection) -> None:
        await connection.handler.handle_connection_closed()
        await connection.handler.stop()

    def _session_for(self, fresh: Session, identity: MqttIdentity) -> Session:
        """amqtt's session rules, applied only now that the CONNECT is authenticated."""
        client_id = fresh.client_id or ""
        existing = self._sessions.get(client_id, (None, None))[0]
        if fresh.clean_session or existing is None:
            if existing is not None:
                # The old session's subscriptions and queued messages go (MQTT-3.1.2-6).
                self._sessions.pop(client_id, None)
                self._drop_session(existing)
            session = fresh
            session.parent = 0
        else:
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive"):
                setattr(existing, name, getattr(fresh, name))
            existing.username, existing.password = fresh.username, fresh.password
            existing.ssl_object = fresh.ssl_object
            session = existing
            session.parent = 1
        session.attributes[IDENTITY] = identity
        # The reader's timeout: one and a half keep-alive periods [MQTT-3.1.2-24].
        session.keep_alive = (fresh.keep_alive * 3 + 1) // 2
        return session

    def _drop_session(self, session: Session) -> None:
        for topic_filter in list(self._subscriptions):
            self._del_subscription(topic_filter, session)
            if not self._subscriptions[topic_filter]:
                del self._subscriptions[topic_filter]
        session.clear_queues()

    async def _authenticate(self, session: Session, _listener: ListenerConfig) -> bool:
        # Done in _initialize_client_session, before any session was touched.
        return identity_of(session) is not None

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Server,
        listener_name: str,
    ) -> None:
        identity = identity_of(client_session)
        client_id = client_session.client_id
        if identity is None or client_id is None:  # cannot happen: refused before
            await writer.close()
            return
        connection = _Connection(handler, identity)
        self._connections[client_id] = connection
        if identity.device_id is not None:
            self._presence.connected(identity.device_id)
        if self._metrics is not None:
            self._metrics.mqtt_connection_opened()
        try:
            await super()._handle_client_session(
                reader, writer, client_session, handler, server, listener_name
            )
        finally:
            if self._metrics is not None:
                self._metrics.mqtt_connection_closed()
            connection.ended.set()
            if self._connections.get(client_id) is connection:
                del self._connections[client_id]
                if identity.device_id is not None:
                    self._presence.disconnected(identity.device_id)

    # -- topics -----------------------------------------------------------------------

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        identity = identity_of(session)
        if identity is None:
            return False
        return may_access(identity, topic, _ACCESS.get(action, TopicAccess.SUBSCRIBE))

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt calls this at each CONNECT for every topic filter any client holds, which
        # sent the newcomer other devices' retained messages: only a filter of its own counts.
        holders = self._subscriptions.get(subscription[0], [])
        if any(holder.client_id == session.client_id for holder, _qos in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        if session is not None:  # a client's message (or its will), not the server's own
            identity = identity_of(session)
            if identity is None or topic is None or not may_access(identity, topic, TopicAccess.PUBLISH):
                return
            if identity == PROVISIONER and topic == PROVISION_REQUEST_TOPIC:
                self._answer_later(session, bytes(data or b""))
                return
        await super()._broadcast_message(session, topic, data, force_qos)

    async def retain_message(
        self,
        source_session: Session | None,
        topic_name: str | None,
        data: bytes | bytearray | None,
        qos: int | None = None,
    ) -> None:
        if source_session is not None:
            identity = identity_of(source_session)
            if identity is None or topic_name is None or identity == PROVISIONER:
                return
            if not may_access(identity, topic_name, TopicAccess.PUBLISH):
                return
        await super().retain_message(source_session, topic_name, data, qos)

    # -- provisioning -----------------------------------------------------------------

    def _answer_later(self, session: Session, payload: bytes) -> None:
        handler = self._get_handler(session)
        if handler is None:
            return
        task = asyncio.create_task(self._answer(handler, payload))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer(self, handler: BrokerProtocolHandler, payload: bytes) -> None:
        try:
            answer: dict[str, Any] = await asyncio.to_thread(answer_provision_request, self._ctx, payload)
        except Exception:
            log.exception("MQTT: provisioning failed with an error")
            answer = failure("Provisioning failed on the server.")
        try:
            await handler.mqtt_publish(
                PROVISION_RESPONSE_TOPIC, json.dumps(answer).encode(), QOS_1, retain=False
            )
        except Exception as error:  # the requester may be gone already
            log.info("MQTT: could not deliver a provisioning answer: %s", error)


def _client_certificate(session: Session) -> tuple[bytes | None, tuple[bytes, ...]]:
    """The client's certificate (DER) on a TLS connection, and the intermediates it sent."""
    ssl_object = session.ssl_object
    if ssl_object is None:
        return None, ()
    certificate = ssl_object.getpeercert(binary_form=True)
    return (certificate or None), _presented_intermediates(ssl_object)


def _presented_intermediates(ssl_object: ssl.SSLObject) -> tuple[bytes, ...]:
    """What the client sent after its own certificate. Python 3.13 has
    ``SSLObject.get_unverified_chain``; before, CPython's ``_ssl`` object has it (3.10+)."""
    native = getattr(ssl_object, "_sslobj", ssl_object)
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        native, "get_unverified_chain", None
    )
    if getter is None:
        return ()
    chain = getter() or []
    return tuple(_der(link) for link in chain[1:])  # the first is the client's own


def _der(certificate: Any) -> bytes:
    if isinstance(certificate, bytes):  # 3.13's public API answers DER bytes
        return certificate
    return bytes(certificate.public_bytes(_ssl.ENCODING_DER))
