"""The device's "flash": where its identity and credentials survive a reboot.

A JSON file written atomically (a temporary file in the same directory, flushed to disk,
then renamed over the old one) with owner-only permissions, so a power cut mid-write leaves
either the old credentials or the new ones, never half of each. ``Flash(None)`` keeps the
same contents in memory only, for simulators that run thousands of devices.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from lineside.device.errors import FlashError, NotProvisioned

DEFAULT_MQTT_HOST = "127.0.0.1"
DEFAULT_MQTT_PORT = 1883
FILE_MODE = 0o600


@dataclass(frozen=True)
class FlashContents:
    """What a device keeps between boots. Secrets are excluded from ``repr``."""

    device_id: str | None = None
    token: str | None = field(default=None, repr=False)
    mqtt_password: str | None = field(default=None, repr=False)
    server_url: str | None = None
    mqtt_host: str = DEFAULT_MQTT_HOST
    mqtt_port: int = DEFAULT_MQTT_PORT
    firmware_version: str | None = None
    # MQTT over TLS: the server's CA (None: the system's), and a client certificate (with the
    # intermediates after it) and its key, e.g. signed on the line by the maker's own CA.
    server_ca_file: str | None = None
    certificate_file: str | None = None
    key_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mqtt_tls(self) -> bool:
        return bool(self.server_ca_file or self.certificate_file)

    @property
    def mqtt_secret(self) -> str | None:
        """The MQTT password: the dedicated one if the device has it, else its device token;
        none when a client certificate is the credential."""
        secret = self.mqtt_password or self.token
        if not secret and not self.certificate_file:
            raise NotProvisioned(
                "The flash holds no token, MQTT password or client certificate: activate or provision first."
            )
        return secret or None

    def require_device_id(self) -> str:
        if not self.device_id:
            raise NotProvisioned("The flash holds no device id.")
        return self.device_id

    def require_token(self) -> str:
        if not self.token:
            raise NotProvisioned("The flash holds no device token: activate or provision first.")
        return self.token

    def require_server_url(self) -> str:
        if not self.server_url:
            raise NotProvisioned("The flash holds no server URL.")
        return self.server_url.rstrip("/")

    @classmethod
    def from_json(cls, data: Any) -> FlashContents:
        if not isinstance(data, dict):
            raise FlashError("The flash does not hold a JSON object.")
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        # Keys a newer SDK wrote survive a round trip through this one.
        unknown = {key: value for key, value in data.items() if key not in known}
        values["extra"] = {**unknown, **(values.get("extra") or {})}
        try:
            contents = cls(**values)
        except TypeError as error:
            raise FlashError(f"The flash is malformed: {error}") from None
        if not isinstance(contents.mqtt_port, int):
            raise FlashError("The flash's mqtt_port is not a number.")
        return contents


class Flash:
    """Credentials kept in ``path`` (JSON, mode 0600), or in memory when ``path`` is None.

    ``initial``, when given, is written at once (replacing what the file held). Thread-safe
    within one process: ``update`` reads, changes and writes under a lock.
    """

    def __init__(self, path: Path | str | None = None, initial: FlashContents | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._memory = initial or FlashContents()
        if self.path is not None and initial is not None:
            self.write(initial)

    def __repr__(self) -> str:
        return f"Flash({str(self.path) if self.path else 'in memory'!r})"

    def read(self) -> FlashContents:
        """The stored contents; an empty ``FlashContents`` when the file does not exist yet."""
        if self.path is None:
            return self._memory
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return FlashContents()
        except OSError as error:
            raise FlashError(f"Cannot read {self.path}: {error.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise FlashError(f"{self.path} is not JSON.") from None
        return FlashContents.from_json(data)

    def write(self, contents: FlashContents) -> None:
        """Replace the contents, atomically."""
        if self.path is None:
            self._memory = contents
            return
        _write_atomically(self.path, json.dumps(asdict(contents), indent=2, sort_keys=True) + "\n")

    def update(self, **changes: Any) -> FlashContents:
        """Change some fields (e.g. ``token=...``) and write the result; returns it."""
        with self._lock:
            try:
                contents = replace(self.read(), **changes)
            except TypeError as error:
                raise FlashError(f"Not a flash field: {error}") from None
            self.write(contents)
            return contents


def _write_atomically(path: Path, text: str) -> None:
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600: the secret is never readable by others, not even
        # between creation and rename.
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as error:
        raise FlashError(f"Cannot write in {directory}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise FlashError(f"Cannot write {path}: {error.strerror}") from None
