"""A small Python client for device firmware and gateways (see docs/device-sdk.md).

It talks to a Lineside server over HTTP and MQTT only, and keeps what it learns in a
credentials file (its "flash")::

    from lineside.device import DeviceClient, Flash

    with DeviceClient(Flash("creds.json"), server_url="http://127.0.0.1:8080") as device:
        device.connect()
        device.publish_telemetry({"temperature": 21.5})

Every error it raises is a ``DeviceError``.
"""

from lineside.device.client import DeviceClient, certificate_device_id
from lineside.device.errors import (
    CertificateFilesError,
    ConnectionRefused,
    DeviceError,
    FirmwareMismatch,
    FlashError,
    NotConnected,
    NotProvisioned,
    ProvisioningFailed,
    Refused,
    ServerUnreachable,
    TimedOut,
    UnexpectedAnswer,
)
from lineside.device.flash import Flash, FlashContents
from lineside.device.http import Activation, FirmwareStatus, Release
from lineside.device.mqtt import Message
from lineside.device.provisioning import CredentialsType, Provisioned, provision

__all__ = [
    "Activation",
    "CertificateFilesError",
    "ConnectionRefused",
    "CredentialsType",
    "DeviceClient",
    "DeviceError",
    "FirmwareMismatch",
    "FirmwareStatus",
    "Flash",
    "FlashContents",
    "FlashError",
    "Message",
    "NotConnected",
    "NotProvisioned",
    "Provisioned",
    "ProvisioningFailed",
    "Refused",
    "Release",
    "ServerUnreachable",
    "TimedOut",
    "UnexpectedAnswer",
    "certificate_device_id",
    "provision",
]
