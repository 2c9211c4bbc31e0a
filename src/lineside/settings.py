"""Settings, read from ``LINESIDE_*`` environment variables (and an optional .env file)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINESIDE_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./lineside.db",
        description="Any SQLAlchemy URL; postgresql+psycopg://user@host/db at scale.",
    )
    host: str = Field(default="127.0.0.1", description="Interface the HTTP server listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port of the HTTP server.")
    public_url: str = Field(
        default="",
        description="How devices and people reach this server; defaults to http://HOST:PORT.",
    )
    data_dir: Path = Field(
        default=Path("./data"),
        description="The server key, per-product CA keys, firmware images (back it up).",
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Request body cap; 413 above it."
    )
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes of `lineside serve`.")
    default_device_quota: int = Field(
        default=1_000_000, ge=0, description="Devices an organization may define unless set per organization."
    )
    claim_attempts_per_window: int = Field(
        default=10, ge=1, description="Wrong claim codes one account may try per window."
    )
    claim_address_attempts_per_window: int = Field(
        default=20,
        ge=1,
        description="Wrong claim codes one client address may try per window (API and page).",
    )
    claim_grace_per_window: int = Field(
        default=10,
        ge=0,
        description=(
            "Lookups past the address limit for signed-in accounts making their first attempt "
            "of the window (the owner behind a shared address)."
        ),
    )
    claim_window_seconds: int = Field(default=900, ge=1, description="The window of the claim limits.")
    sign_in_attempts_per_window: int = Field(
        default=10, ge=1, description="Wrong passwords for one account per window."
    )
    sign_in_address_attempts_per_window: int = Field(
        default=50, ge=1, description="Wrong passwords from one client address per window."
    )
    sign_ups_per_address_per_window: int = Field(
        default=10, ge=1, description="Accounts one client address may create per window."
    )
    sign_in_window_seconds: int = Field(default=900, ge=1, description="The window of the sign-in limits.")
    session_days: int = Field(default=30, ge=1, description="Lifetime of a signed-in person's token.")
    production_token_minutes: int = Field(
        default=10, ge=1, description="Lifetime of a production enrollment token (plan id + token id)."
    )
    webhook_worker: bool = Field(
        default=True, description="Deliver webhooks inside `lineside serve`; 0: only `lineside worker` does."
    )
    webhook_allow_private: bool = Field(
        default=False, description="Let webhooks go to private, loopback and link-local addresses."
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="One attempt, all in.")
    webhook_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="A worker's pause between rounds that did not fill a batch."
    )
    webhook_batch_size: int = Field(default=100, ge=1, le=1000, description="Deliveries sent at once.")
    webhook_retry_scale: float = Field(
        default=1.0, gt=0, le=1, description="Shrinks the retry schedule (5 s ... 3 days); for tests."
    )
    mqtt_enabled: bool = Field(
        default=True, description="Run an MQTT broker inside `lineside serve`; 0 turns it off."
    )
    mqtt_broker: Literal["auto", "embedded", "mosquitto"] = Field(
        default="auto",
        description=(
            "The broker `lineside serve` runs: 'mosquitto' (Mosquitto 2 as a child process with "
            "Lineside's plugin: MQTT 5 and 3.1.1; docs/mqtt.md), 'embedded' (in-process, MQTT 3.1.1, "
            "nothing to install) or 'auto': Mosquitto when it and its plugin's build packages are "
            "installed and no TLS port is set, else embedded."
        ),
    )
    mosquitto_binary: str = Field(
        default="mosquitto", description="The Mosquitto executable LINESIDE_MQTT_BROKER=mosquitto runs."
    )
    mqtt_host: str = Field(default="127.0.0.1", description="Interface the MQTT broker listens on.")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="Plain MQTT port of the broker.")
    mqtt_tls_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="MQTT over TLS port (e.g. 8883; off when unset). Certificate in DATA_DIR/mqtt/.",
    )
    mqtt_public_url: str = Field(
        default="",
        description=(
            "Where devices reach MQTT (mqtt://host:1883 or mqtts://host:8883), told to them by "
            "GET /device/v1/me; default: the embedded broker's address, none when it is off."
        ),
    )
    mqtt_recheck_seconds: float = Field(
        default=2.0, gt=0, le=300, description="How often connected devices' credentials are checked again."
    )
    presence_flush_seconds: float = Field(
        default=0.2, gt=0, le=60, description="How often online status and activations are written."
    )
    broker_hook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Shared secret of production brokers' event hooks (connected/disconnected), sent as "
            "'Authorization: Bearer <secret>' or '?secret='; unset: those hooks are refused."
        ),
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated addresses or networks (10.0.0.0/8) of reverse proxies whose "
            "X-Forwarded-For and X-Forwarded-Proto are believed; empty: nobody's."
        ),
    )
    client_certificate_header: str = Field(
        default="",
        max_length=100,
        description=(
            "The header in which a TLS-terminating proxy in LINESIDE_TRUSTED_PROXIES passes the "
            "client's certificate (nginx: $ssl_client_escaped_cert; Caddy: "
            "{http.request.tls.client.certificate_der_base64}); empty: POST /device/v1/register is off."
        ),
    )
    shutdown_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="On SIGTERM: how long in-flight requests and webhook deliveries get to finish.",
    )
    metrics_enabled: bool = Field(default=True, description="Serve GET /metrics (Prometheus text format).")
    metrics_token: SecretStr | None = Field(
        default=None, description="When set, /metrics answers only 'Authorization: Bearer <token>'."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Least severe log level written (secrets are always redacted)."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: one readable line per record; json: one JSON object per line."
    )

    @classmethod
    def documentation_table(cls) -> str:
        """The README's configuration table, made from the fields themselves (a test keeps
        the README's copy equal to it; ``python -m lineside.settings`` prints it)."""
        lines = ["| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            default = field.default
            shown = "unset" if default in (None, "") else f"`{_shown_default(default)}`"
            lines.append(f"| `LINESIDE_{name.upper()}` | {shown} | {field.description or ''} |")
        return "\n".join(lines)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return ",".join(entries)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [entry for entry in self.trusted_proxies.split(",") if entry]

    @property
    def effective_mqtt_url(self) -> str | None:
        if self.mqtt_public_url:
            return self.mqtt_public_url.rstrip("/")
        return f"mqtt://{self.mqtt_host}:{self.mqtt_port}" if self.mqtt_enabled else None

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def _shown_default(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Path):
        return f"./{value}"
    return str(value)


if __name__ == "__main__":
    print(Settings.documentation_table())
