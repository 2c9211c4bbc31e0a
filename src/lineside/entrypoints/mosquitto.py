"""``LINESIDE_MQTT_BROKER=mosquitto``: ``lineside serve`` runs Mosquitto 2 beside its HTTP
server instead of the embedded broker.

Mosquitto speaks MQTT 5 as well as 3.1.1, holds a connection in about a kilobyte, and leaves
every decision to Lineside's plugin. A device's own token or MQTT password the plugin checks
itself (the keyed hash under the server key, one read of Lineside's database): no round trip
on Mosquitto's only thread, so devices come online at close to Mosquitto's own pace. The
plugin then reports them (``/arrivals``: presence, and activation on the first connection).
Everything else it asks Lineside: any other CONNECT and every refusal (``/user``:
authentication first, then Mosquitto's own takeover), topics of non-devices (``/acl``), and
every recheck interval a tick (``/tick``) that reports disconnections, gets back the
connections whose credential stopped holding (cut off) and the firmware notices to publish.
"""

from __future__ import annotations

import os
import secrets

from pydantic import SecretStr

from lineside.adapters.mqtt.mosquitto import (
    PID_FILE,
    MosquittoConfig,
    MosquittoError,
    MosquittoProcess,
    missing_for_mosquitto,
    plugin_path,
)
from lineside.bootstrap import Application, mosquitto_own_check
from lineside.settings import Settings

HOOK_SECRET_VARIABLE = "LINESIDE_BROKER_HOOK_SECRET"
BROKER_VARIABLE = "LINESIDE_MQTT_BROKER"
# Listening on every interface: Mosquitto reaches the HTTP server over loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def uses_mosquitto(settings: Settings) -> bool:
    return settings.mqtt_enabled and chosen_broker(settings) == "mosquitto"


def chosen_broker(settings: Settings) -> str:
    """``LINESIDE_MQTT_BROKER`` with 'auto' decided: Mosquitto when this machine can run it with
    its plugin and no TLS listener is asked for (the embedded broker's alone), else embedded."""
    if settings.mqtt_broker != "auto":
        return settings.mqtt_broker
    if settings.mqtt_tls_port is not None or missing_for_mosquitto(settings.mosquitto_binary):
        return "embedded"
    return "mosquitto"


def with_broker_chosen(settings: Settings) -> Settings:
    """The settings with 'auto' decided once, also in the environment, where worker processes
    read their settings: the broker and the HTTP workers agree on which one runs."""
    broker = chosen_broker(settings)
    if broker == settings.mqtt_broker:
        return settings
    os.environ[BROKER_VARIABLE] = broker
    return settings.model_copy(update={"mqtt_broker": broker})


def with_hook_secret(settings: Settings) -> Settings:
    """The plugin's calls carry the hook secret: one made for this run when none is set (and
    put in the environment, where worker processes read their settings)."""
    if not uses_mosquitto(settings) or settings.broker_hook_secret is not None:
        return settings
    secret = secrets.token_urlsafe(32)
    os.environ[HOOK_SECRET_VARIABLE] = secret
    return settings.model_copy(update={"broker_hook_secret": SecretStr(secret)})


def lineside_url(settings: Settings) -> str:
    """Where Mosquitto, on this machine, reaches Lineside's HTTP server."""
    host = _WILDCARDS.get(settings.host, settings.host)
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


class ManagedMosquitto:
    """Mosquitto as a child process of ``lineside serve``: ``start()`` returns once it
    listens (MosquittoError otherwise), ``stop()`` ends it and every connection with it."""

    def __init__(self, application: Application) -> None:
        settings = application.settings
        if settings.mqtt_tls_port is not None:
            raise MosquittoError(
                "LINESIDE_MQTT_TLS_PORT is served by the embedded broker only; with Mosquitto, "
                "add a TLS listener to a Mosquitto of your own (docs/brokers.md)"
            )
        if settings.broker_hook_secret is None:
            raise MosquittoError(f"{HOOK_SECRET_VARIABLE} is needed by Mosquitto's plugin")
        self.host, self.port = settings.mqtt_host, settings.mqtt_port
        self._settings = settings
        self._home = settings.data_dir / "mosquitto"
        self._process = MosquittoProcess(settings.mosquitto_binary, self._home / "mosquitto.conf")

    @property
    def urls(self) -> str:
        return f"mqtt://{self.host}:{self.port} (Mosquitto, MQTT 5 and 3.1.1)"

    def start(self) -> None:
        settings = self._settings
        secret = settings.broker_hook_secret
        assert secret is not None  # checked in __init__
        config = MosquittoConfig(
            host=self.host,
            port=self.port,
            plugin=plugin_path(self._home),
            lineside_url=lineside_url(settings),
            secret=secret.get_secret_value(),
            recheck_seconds=settings.mqtt_recheck_seconds,
            pid_file=self._home / PID_FILE,
            own_check=mosquitto_own_check(settings),
        )
        config.write(self._home / "mosquitto.conf")
        self._process.start(self.host, self.port)

    def stop(self, timeout: float | None = None) -> None:
        self._process.stop(timeout or self._settings.shutdown_seconds)
