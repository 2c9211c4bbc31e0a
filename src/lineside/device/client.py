"""``DeviceClient``: what a device's firmware (or a gateway acting for it) does with Lineside.

    flash = Flash("/var/lib/thing/lineside.json")
    device = DeviceClient(flash)
    device.activate(plan_id, token_id)          # once: a blessed unit spends its token
    device.connect()                            # MQTT: client id = username = device id
    device.publish_telemetry({"temperature": 21.5})
    status = device.check_firmware()
    if status.update_available and status.release:
        image = device.download_firmware(status.release)
        ...install...
        device.report_firmware(status.release.version)

Everything it learns (device id, token, firmware version) goes to the flash at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from lineside.device.errors import NotConnected
from lineside.device.flash import Flash, FlashContents
from lineside.device.http import Activation, DeviceHttp, FirmwareStatus, Release
from lineside.device.mqtt import (
    DEFAULT_TIMEOUT_SECONDS,
    Message,
    MessageHandler,
    MqttEndpoint,
    MqttLink,
    tls_context,
)
from lineside.domain.factory_pki import registered_device_id
from lineside.domain.mqtt import device_topic, firmware_notice_topic

TELEMETRY = "telemetry"
STATE = "state"
COMMANDS = "commands"


def certificate_device_id(product_id: str, name: str) -> str:
    """The id a device registering with a certificate gets: uuid5(product id, its name, the
    certificate's CN or SAN URI), so it knows its MQTT client id before it ever connects."""
    return registered_device_id(product_id, name)


class DeviceClient:
    """One device, its credentials in ``flash``; HTTP and MQTT endpoints come from the flash
    unless given here (and then are written to it)."""

    def __init__(
        self,
        flash: Flash,
        *,
        server_url: str | None = None,
        mqtt_host: str | None = None,
        mqtt_port: int | None = None,
        on_message: MessageHandler | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.flash = flash
        changes: dict[str, Any] = {}
        if server_url is not None:
            changes["server_url"] = server_url.rstrip("/")
        if mqtt_host is not None:
            changes["mqtt_host"] = mqtt_host
        if mqtt_port is not None:
            changes["mqtt_port"] = mqtt_port
        if changes:
            flash.update(**changes)
        self.timeout = timeout
        self._on_message = on_message
        self._http: DeviceHttp | None = None
        self._link: MqttLink | None = None

    def __repr__(self) -> str:
        return f"DeviceClient({self.flash.read().device_id!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def credentials(self) -> FlashContents:
        return self.flash.read()

    @property
    def device_id(self) -> str:
        return self.flash.read().require_device_id()

    # -- HTTP ---------------------------------------------------------------------------------

    def activate(self, plan_id: str, token_id: str, device_id: str | None = None) -> Activation:
        """Activate with a production enrollment token; the token it answers goes to flash."""
        device_id = device_id or self.device_id
        done = self.http.activate(plan_id=plan_id, token_id=token_id, device_id=device_id)
        self.flash.update(device_id=done.device_id, token=done.token)
        return done

    def whoami(self) -> dict[str, Any]:
        """The server's view of this device: id, product_id, serial_number, state."""
        return self.http.me(self.flash.read().require_token())

    def check_firmware(self) -> FirmwareStatus:
        return self.http.firmware_status(self.flash.read().require_token())

    def download_firmware(self, release: Release, destination: Path | None = None) -> bytes:
        """The image, verified against the release's SHA-256 (``FirmwareMismatch`` if not)."""
        return self.http.download(self.flash.read().require_token(), release, destination)

    def report_firmware(self, version: str) -> FirmwareStatus:
        """Tell the server which version now runs (and remember it in flash)."""
        status = self.http.report_version(self.flash.read().require_token(), version)
        self.flash.update(firmware_version=version)
        return status

    @property
    def http(self) -> DeviceHttp:
        if self._http is None:
            self._http = DeviceHttp(self.flash.read().require_server_url(), timeout=self.timeout)
        return self._http

    # -- MQTT ---------------------------------------------------------------------------------

    def connect(self, *, subscribe: bool = True) -> None:
        """Connect to the broker as the device and (by default) subscribe to its commands
        and firmware notices. A refusal raises ``ConnectionRefused``.

        With a client certificate in the flash (``certificate_file``, ``key_file``) the
        connection is TLS and the certificate is the credential: a device whose certificate
        a product's registered CA signed is registered by its first connection."""
        contents = self.flash.read()
        device_id = contents.require_device_id()
        tls = (
            tls_context(contents.server_ca_file, contents.certificate_file, contents.key_file)
            if contents.mqtt_tls or contents.key_file
            else None
        )
        password = contents.mqtt_secret
        self.disconnect()
        link = MqttLink(
            MqttEndpoint(contents.mqtt_host, contents.mqtt_port, tls),
            client_id=device_id,
            username=device_id,
            password=password,
            on_message=self._on_message,
        )
        link.connect(self.timeout)
        self._link = link
        if subscribe:
            self.subscribe_to_commands()

    def subscribe_to_commands(self) -> None:
        """Subscribe to ``devices/{id}/commands/#`` and ``devices/{id}/firmware``."""
        device_id = self.device_id
        self.link.subscribe(
            [device_topic(device_id, COMMANDS, "#"), firmware_notice_topic(device_id)], timeout=self.timeout
        )

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    def publish_telemetry(self, values: Mapping[str, Any], qos: int = 1) -> None:
        """Publish ``values`` as JSON to ``devices/{id}/telemetry``."""
        self.publish(TELEMETRY, values, qos)

    def publish_state(self, values: Mapping[str, Any], qos: int = 1) -> None:
        self.publish(STATE, values, qos)

    def publish(self, suffix: str, values: Mapping[str, Any] | bytes, qos: int = 1) -> None:
        """Publish under the device's own prefix: ``devices/{id}/{suffix}``."""
        payload = values if isinstance(values, bytes) else json.dumps(dict(values)).encode()
        self.link.publish(device_topic(self.device_id, *suffix.split("/")), payload, qos, self.timeout)

    def next_message(self, timeout: float | None = None) -> Message:
        """The next command or firmware notice (``TimedOut`` if none arrives in time)."""
        return self.link.next_message(self.timeout if timeout is None else timeout)

    @property
    def link(self) -> MqttLink:
        if self._link is None:
            raise NotConnected("Call connect() first.")
        return self._link

    def disconnect(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def close(self) -> None:
        self.disconnect()
        if self._http is not None:
            self._http.close()
            self._http = None
