"""The device's side of the HTTP API (``/device/v1``): activation, identity, firmware.

Wire format only: answers become the small dataclasses below, never server types. The
device token goes in the Authorization header and nowhere else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

from lineside.device.errors import (
    FirmwareMismatch,
    Refused,
    ServerUnreachable,
    UnexpectedAnswer,
)

DEFAULT_TIMEOUT_SECONDS = 30.0
_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Release:
    """A firmware release the server tells the device to run."""

    id: str
    kind: str
    version: str
    sha256: str
    size_bytes: int
    url: str

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Release:
        try:
            return cls(
                id=str(row["id"]),
                kind=str(row["kind"]),
                version=str(row["version"]),
                sha256=str(row["sha256"]).lower(),
                size_bytes=int(row["size_bytes"]),
                url=str(row["url"]),
            )
        except (KeyError, TypeError, ValueError):
            raise UnexpectedAnswer("A firmware release lacks id, version, sha256 or url.") from None


@dataclass(frozen=True)
class FirmwareStatus:
    """What the device should run, and whether it differs from what it last reported."""

    release: Release | None
    installed_version: str | None
    update_available: bool

    @classmethod
    def from_json(cls, answer: dict[str, Any]) -> FirmwareStatus:
        release = answer.get("release")
        return cls(
            release=Release.from_json(release) if isinstance(release, dict) else None,
            installed_version=answer.get("installed_version"),
            update_available=bool(answer.get("update_available")),
        )


@dataclass(frozen=True)
class Activation:
    """The answer to activation: the device's identity, its token and its configuration."""

    device_id: str
    state: str
    token: str = field(repr=False)
    api_url: str | None
    firmware: Release | None
    body: dict[str, Any] = field(repr=False)


class DeviceHttp:
    """HTTP calls to ``server_url`` (the server's root, e.g. ``http://127.0.0.1:8080``).

    The CLI's FactoryClient (entrypoints/cli/factory_client.py) wraps httpx the same way, on
    purpose: the SDK stands alone (it ships to devices and imports nothing of the server, an
    import-linter contract), and its errors are the device's own family (DeviceError)."""

    def __init__(
        self,
        server_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server_url,
            timeout=timeout,
            transport=transport,
            headers={"accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"DeviceHttp({self.server_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def activate(self, *, plan_id: str, token_id: str, device_id: str) -> Activation:
        """Spend a production enrollment token: a blessed device becomes activated."""
        body = {"plan_id": plan_id, "token_id": token_id, "device_id": device_id}
        answer = _object(self._json("POST", "/device/v1/activate", None, json=body))
        device = _object(answer.get("device"))
        credentials = _object(answer.get("credentials"))
        configuration = answer.get("configuration") or {}
        firmware = configuration.get("firmware") if isinstance(configuration, dict) else None
        return Activation(
            device_id=_text(device, "id"),
            state=_text(device, "state"),
            token=_text(credentials, "token"),
            api_url=configuration.get("api_url") if isinstance(configuration, dict) else None,
            firmware=Release.from_json(firmware) if isinstance(firmware, dict) else None,
            body=answer,
        )

    def me(self, token: str) -> dict[str, Any]:
        """``GET /device/v1/me``: id, product_id, serial_number, state."""
        return _object(self._json("GET", "/device/v1/me", token))

    def firmware_status(self, token: str) -> FirmwareStatus:
        return FirmwareStatus.from_json(_object(self._json("GET", "/device/v1/firmware", token)))

    def report_version(self, token: str, version: str) -> FirmwareStatus:
        answer = self._json("POST", "/device/v1/firmware", token, json={"version": version})
        return FirmwareStatus.from_json(_object(answer))

    def download(self, token: str, release: Release, destination: Path | None = None) -> bytes:
        """The release's image, checked against its SHA-256 and size before it is returned
        (and, with ``destination``, written there only once it checks out)."""
        path = f"/device/v1/firmware/{quote(release.id, safe='')}/image"
        digest, chunks, size = hashlib.sha256(), [], 0
        try:
            with self._http.stream("GET", path, headers=_bearer(token)) as response:
                if response.status_code != 200:
                    response.read()
                    raise _refusal(response)
                for chunk in response.iter_bytes(_CHUNK_BYTES):
                    digest.update(chunk)
                    chunks.append(chunk)
                    size += len(chunk)
        except httpx.HTTPError as error:
            raise _unreachable(self.server_url, error) from None
        if digest.hexdigest() != release.sha256 or size != release.size_bytes:
            raise FirmwareMismatch(
                f"The image of {release.version} does not match: got {size} bytes with SHA-256 "
                f"{digest.hexdigest()}, expected {release.size_bytes} bytes with {release.sha256}."
            )
        image = b"".join(chunks)
        if destination is not None:
            destination.write_bytes(image)
        return image

    def _json(self, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
        headers = _bearer(token) if token else {}
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            raise _unreachable(self.server_url, error) from None
        if response.status_code not in (200, 201):
            raise _refusal(response)
        try:
            return response.json()
        except ValueError:
            raise UnexpectedAnswer(f"{path} answered {response.status_code} without JSON.") from None


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _unreachable(server_url: str, error: httpx.HTTPError) -> ServerUnreachable:
    if isinstance(error, httpx.TimeoutException):
        return ServerUnreachable(f"{server_url} did not answer in time.")
    if isinstance(error, httpx.ConnectError):
        return ServerUnreachable(f"Cannot connect to {server_url}.")
    return ServerUnreachable(f"Talking to {server_url} failed: {error.__class__.__name__}.")


def _refusal(response: httpx.Response) -> Refused:
    detail = ""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        detail = str(problem.get("detail") or problem.get("title") or "")
    return Refused(response.status_code, detail or (response.reason_phrase or ""))


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedAnswer("The server answered with something other than a JSON object.")
    return value


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        raise UnexpectedAnswer(f"The server's answer has no {key!r}.")
    return str(value)
