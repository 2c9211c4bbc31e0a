"""One family of errors for everything the SDK does: catch ``DeviceError`` to catch them all.

Messages never carry a secret (token, MQTT password, provision secret): they may end up in
a device's log.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Anything that kept the SDK from doing what it was asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FlashError(DeviceError):
    """The credentials file cannot be read or written, or does not hold what is needed."""


class NotProvisioned(FlashError):
    """The flash lacks a credential the call needs (no device id, or no token yet)."""


class CertificateFilesError(FlashError):
    """A certificate, key or CA file the flash names cannot be read, or they do not match."""


class ServerUnreachable(DeviceError):
    """No answer at all: connection refused, timeout, DNS or TLS failure (HTTP or MQTT)."""


class UnexpectedAnswer(DeviceError):
    """An answer that is not what a Lineside server sends (another server, another version)."""


class Refused(DeviceError):
    """The server answered with an error (problem+json over HTTP)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{detail} ({status})" if detail else f"the server answered {status}")
        self.status = status
        self.detail = detail


class ConnectionRefused(DeviceError):
    """The MQTT broker refused the connection (CONNACK with a failure reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the MQTT broker refused the connection: {reason}")
        self.reason = reason


class NotConnected(DeviceError):
    """An MQTT call needs a live connection, and there is none (or it was lost)."""


class TimedOut(DeviceError):
    """The broker or the server did not answer in time."""


class FirmwareMismatch(DeviceError):
    """A downloaded image does not have the SHA-256 (or size) the server announced."""


class ProvisioningFailed(DeviceError):
    """The provisioning answer was a failure (its ``errorMsg`` is the message)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"provisioning failed ({status}): {message}")
        self.status = status
