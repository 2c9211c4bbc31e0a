"""The embedded MQTT broker inside ``lineside serve``: an ``AmqttBroker`` on a thread with its
own event loop, plus three loops beside it:

- the revocation watcher: every ``LINESIDE_MQTT_RECHECK_SECONDS`` it asks which connected
  devices' credentials stopped holding (revoked, deleted, credential replaced) and
  disconnects them;
- presence: connections are recorded as they happen and written every
  ``LINESIDE_PRESENCE_FLUSH_SECONDS`` (and once more at stop);
- firmware notices: deployments of a release to a group are announced on each member's
  ``devices/{id}/firmware`` topic.

One runs per ``lineside serve``, in the serving (or supervising) process only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from amqtt.errors import BrokerError

from lineside.adapters.mqtt.broker import AmqttBroker, Listeners
from lineside.adapters.mqtt.mosquitto import MosquittoError
from lineside.adapters.mqtt.tls import TlsListener, tls_listener
from lineside.bootstrap import Application
from lineside.entrypoints.loops import LoopThread, run_every
from lineside.entrypoints.mosquitto import ManagedMosquitto, uses_mosquitto
from lineside.services import authorities, firmware_notices
from lineside.services.mqtt_access import no_longer_valid
from lineside.services.presence import PresenceRecorder

log = logging.getLogger("lineside.mqtt")
STOP_DEADLINE_SECONDS = 30.0
START_DEADLINE_SECONDS = 30.0


class BrokerStartError(RuntimeError):
    """The broker could not listen (most often: the port is taken)."""


class MosquittoStartError(BrokerStartError):
    """Mosquitto or its plugin is missing, does not build, or Mosquitto does not start."""


class EmbeddedBroker(LoopThread):
    """``start()`` returns once the broker listens (or raises BrokerStartError); ``stop()``
    closes every connection and writes presence one last time."""

    def __init__(
        self,
        application: Application,
        *,
        host: str | None = None,
        port: int | None = None,
        tls_port: int | None = None,
        recheck_seconds: float | None = None,
        presence: PresenceRecorder | None = None,
    ) -> None:
        super().__init__("lineside-mqtt")
        settings = application.settings
        self._application = application
        self.host = host or settings.mqtt_host
        self.port = port or settings.mqtt_port
        self.tls_port = tls_port or settings.mqtt_tls_port
        self._recheck_seconds = recheck_seconds or settings.mqtt_recheck_seconds
        self._flush_seconds = settings.presence_flush_seconds
        self.presence = presence or PresenceRecorder()
        self.tls: TlsListener | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        # Checked here first: amqtt would log a traceback for a taken port.
        for port in (self.port, self.tls_port):
            if port is not None:
                _check_free(self.host, port)
        if self.tls_port is not None:
            self.tls = tls_listener(self._application.settings.data_dir, self.tls_port, self.host)
        if not self.start_thread(START_DEADLINE_SECONDS):
            raise BrokerStartError("the MQTT broker did not start in time")
        if self._failure is not None:
            self._thread.join()
            reason = getattr(self._failure, "strerror", None) or str(self._failure)
            raise BrokerStartError(f"cannot listen for MQTT on {self.urls}: {reason}") from self._failure

    @property
    def urls(self) -> str:
        plain = f"mqtt://{self.host}:{self.port}"
        return plain if self.tls_port is None else f"{plain} and mqtts://{self.host}:{self.tls_port}"

    def stop(self, timeout: float = STOP_DEADLINE_SECONDS) -> None:
        super().stop(timeout)

    async def serve(self, stop: asyncio.Event) -> None:
        listeners = Listeners(self.host, self.port, self.tls)
        try:
            application = self._application
            broker = AmqttBroker(application.services, self.presence, listeners, application.metrics)
            await broker.start()
        except Exception as error:  # amqtt's BrokerError wraps the OSError of a taken port
            self._failure = error.__cause__ if isinstance(error, BrokerError) and error.__cause__ else error
            self.started()
            return
        cursor = await self._firmware_cursor()
        await self._trust_registered_authorities()
        self.started()
        loops = [
            run_every(
                stop, self._recheck_seconds, lambda: self._revoke(broker), what="MQTT: the revocation check"
            ),
            run_every(
                stop, self._recheck_seconds, self._trust_registered_authorities, what="MQTT: makers' CAs"
            ),
            run_every(stop, self._flush_seconds, self._flush, what="MQTT: writing presence"),
            self._announce_firmware(stop, broker, cursor),
        ]
        tasks = [asyncio.create_task(loop) for loop in loops]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.shutdown()
        try:
            await self._flush()  # what the last connections and disconnections changed
        except Exception:
            log.exception("MQTT: the last presence flush failed")

    async def _revoke(self, broker: AmqttBroker) -> None:
        identities = broker.connected_identities()
        # no_longer_valid queries in chunks (mqtt_access.stale_proofs): one call for them all.
        gone = await asyncio.to_thread(no_longer_valid, self._application.services, identities)
        if gone:
            await broker.disconnect_stale(identity for identity in identities if identity.device_id in gone)

    async def _trust_registered_authorities(self) -> None:
        """Makers' CAs verified since the last look join the TLS listener's trust (factory PKI)."""
        if self.tls is None:
            return
        pems = await asyncio.to_thread(authorities.certificates_to_trust, self._application.services)
        added = self.tls.trust.trust_registered(pems)
        if added:
            log.info("MQTT: trusting %d more registered CA(s)", added)

    async def _flush(self) -> None:
        await asyncio.to_thread(self.presence.flush, self._application.services)

    async def _firmware_cursor(self) -> int | None:
        """The newest event now: deployments from here on are announced, none replayed."""
        try:
            return await asyncio.to_thread(firmware_notices.latest_cursor, self._application.services)
        except Exception:
            log.exception("MQTT: cannot read the event cursor yet; firmware notices start later")
            return None

    async def _announce_firmware(self, stop: asyncio.Event, broker: AmqttBroker, cursor: int | None) -> None:
        services = self._application.services

        async def step() -> None:
            nonlocal cursor
            if cursor is None:
                cursor = await asyncio.to_thread(firmware_notices.latest_cursor, services)
                return
            cursor, notices = await asyncio.to_thread(firmware_notices.notices_after, services, cursor)
            for notice in notices:
                await broker.announce(notice.topic, json.dumps(notice.payload).encode())

        await run_every(stop, self._recheck_seconds, step, what="MQTT: firmware notices")


def _check_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise BrokerStartError(f"cannot listen for MQTT on {host}:{port}: {error.strerror}") from None


@contextmanager
def running_broker(application: Application) -> Iterator[EmbeddedBroker | ManagedMosquitto | None]:
    """The broker for the block: the embedded one, or Mosquitto with LINESIDE_MQTT_BROKER=
    mosquitto; None when LINESIDE_MQTT_ENABLED=0."""
    settings = application.settings
    if not settings.mqtt_enabled:
        yield None
        return
    broker: EmbeddedBroker | ManagedMosquitto
    if uses_mosquitto(settings):
        _check_free(settings.mqtt_host, settings.mqtt_port)
        try:
            broker = ManagedMosquitto(application)
            broker.start()
        except MosquittoError as error:
            raise MosquittoStartError(str(error)) from None
    else:
        broker = EmbeddedBroker(application)
        broker.start()
    try:
        yield broker
    finally:
        broker.stop(application.settings.shutdown_seconds)
