"""The one composition root: settings in, a ready ServiceContext out.

Every entrypoint (API, CLI, later the worker) calls ``bootstrap``; nothing is built at
import time, so tests build as many independent applications as they like.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, event, text

from lineside.adapters.db.device_repository import SqlDeviceTokenLookup
from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.idempotency import SqlIdempotencyStore
from lineside.adapters.db.migrate import HEAD_REVISION, current_revision, upgrade_database
from lineside.adapters.db.plugin_queries import plugin_database
from lineside.adapters.db.rate_limits import SqlRateLimiter
from lineside.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from lineside.adapters.factory_pki import X509Inspector
from lineside.adapters.firmware_store import FileFirmwareStore
from lineside.adapters.metrics import PrometheusMetrics, Reading
from lineside.adapters.mqtt.mosquitto import OwnPasswordCheck
from lineside.adapters.passwords import Argon2PasswordHasher
from lineside.adapters.sealing import AesGcmSecretBox
from lineside.adapters.station_keys import Ed25519StationKeys
from lineside.adapters.webhooks import HttpxWebhookSender
from lineside.adapters.x509_ca import FileCertificateAuthority
from lineside.domain.clock import utc_now
from lineside.domain.secret_tokens import SecretHasher
from lineside.domain.webhooks import DEFAULT_RETRY_SCHEDULE
from lineside.services.context import ServiceConfig, ServiceContext
from lineside.services.operations import fleet_figures
from lineside.services.ports import WebhookAdapters
from lineside.settings import Settings

SERVER_KEY_FILE = "server.key"
SERVER_KEY_BYTES = 32


@dataclass(frozen=True)
class Application:
    settings: Settings
    engine: Engine
    services: ServiceContext
    idempotency: SqlIdempotencyStore
    metrics: PrometheusMetrics

    def database_is_reachable(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def readiness(self) -> dict[str, str | None]:
        """Each check of /readyz: None when it passes, else why it does not."""
        return {
            "database": None if self.database_is_reachable() else "the database does not answer",
            "migrations": self._schema_problem(),
            "data_dir": self._data_dir_problem(),
            "mqtt": self._broker_problem(),
        }

    def schema_revision(self) -> str | None:
        return current_revision(self.engine)

    def _schema_problem(self) -> str | None:
        try:
            revision = self.schema_revision()
        except Exception:
            return "the schema revision cannot be read"
        if revision != HEAD_REVISION:
            return f"the schema is at {revision or 'nothing'}, not {HEAD_REVISION}: run `lineside db upgrade`"
        return None

    def _data_dir_problem(self) -> str | None:
        key = self.settings.data_dir / SERVER_KEY_FILE
        if not os.access(key, os.R_OK):
            return f"{key} cannot be read"
        return None

    def _broker_problem(self) -> str | None:
        settings = self.settings
        if not settings.mqtt_enabled:
            return None
        try:
            socket.create_connection((settings.mqtt_host, settings.mqtt_port), timeout=1.0).close()
        except OSError as error:
            return f"nothing listens for MQTT on {settings.mqtt_host}:{settings.mqtt_port} ({error.strerror})"
        return None

    def close(self) -> None:
        self.engine.dispose()


def load_or_create_server_key(data_dir: Path) -> bytes:
    """The HMAC key of every stored secret hash: made on first start, kept in the data dir.

    Losing it invalidates every API key and device token, so it is created exclusively
    (never overwritten) with owner-only permissions.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SERVER_KEY_FILE
    if not path.exists():
        # Written whole to a private file, then linked into place: two processes starting
        # together agree on one key, and nobody ever reads a half-written one.
        staging = data_dir / f".{SERVER_KEY_FILE}.{secrets.token_hex(8)}"
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_bytes(SERVER_KEY_BYTES).hex())
        try:
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    return bytes.fromhex(path.read_text().strip())


def mosquitto_own_check(settings: Settings) -> OwnPasswordCheck | None:
    """What Lineside's Mosquitto plugin needs to accept devices' passwords itself: the server
    key's file and the database with the plugin's queries; None when the plugin cannot open the
    database (in memory), and then Lineside answers every CONNECT."""
    database = plugin_database(settings.database_url)
    if database is None:
        return None
    return OwnPasswordCheck(
        key_file=(settings.data_dir / SERVER_KEY_FILE).resolve(),
        database_kind=database.kind,
        database=database.target,
        token_query=database.token_query,
        password_query=database.password_query,
    )


def webhook_adapters(settings: Settings, hasher: SecretHasher) -> WebhookAdapters:
    sender = HttpxWebhookSender(
        allow_private=settings.webhook_allow_private,
        timeout_seconds=settings.webhook_timeout_seconds,
        clock=utc_now,
    )
    return WebhookAdapters(sender, AesGcmSecretBox.derived(hasher, "webhook-signing-secrets"))


def webhook_lease(settings: Settings) -> timedelta:
    # Longer than an attempt can take (its timeout covers it all), with room for recording
    # it and for clocks of different hosts that disagree a little.
    return timedelta(seconds=2 * settings.webhook_timeout_seconds + 5)


def observed(engine: Engine, metrics: PrometheusMetrics) -> Engine:
    """Count the engine's connections in use."""
    event.listen(engine.pool, "checkout", lambda *_: metrics.db_connection_checked_out())
    event.listen(engine.pool, "checkin", lambda *_: metrics.db_connection_checked_in())
    return engine


def fleet_readings(services: ServiceContext) -> list[Reading]:
    """The gauges read from the database when /metrics is scraped."""
    figures = fleet_figures(services)
    oldest = figures.oldest_pending_delivery_at
    age = (services.clock() - oldest).total_seconds() if oldest is not None else 0.0
    return [
        Reading("lineside_devices", "Devices, by lifecycle state.", "state", dict(figures.devices_by_state)),
        Reading(
            "lineside_webhook_queue_depth",
            "Webhook deliveries still to send.",
            None,
            {"": figures.webhook_backlog},
        ),
        Reading(
            "lineside_webhook_queue_oldest_age_seconds",
            "Age of the oldest webhook delivery still to send (0 when none).",
            None,
            {"": max(age, 0.0)},
        ),
    ]


def bootstrap(settings: Settings | None = None, *, migrate: bool = False) -> Application:
    settings = settings or Settings()
    metrics = PrometheusMetrics()
    engine = observed(create_database_engine(settings.database_url), metrics)
    if migrate:
        upgrade_database(engine)
    hasher = SecretHasher(load_or_create_server_key(settings.data_dir))
    services = ServiceContext(
        unit_of_work=SqlUnitOfWorkFactory(engine, on_commit=metrics.events_committed),
        device_tokens=SqlDeviceTokenLookup(engine),
        hasher=hasher,
        certificate_authority=FileCertificateAuthority(settings.data_dir / "ca", clock=utc_now),
        clock=utc_now,
        passwords=Argon2PasswordHasher(),
        rate_limiter=SqlRateLimiter(engine, utc_now),
        x509=X509Inspector(),
        station_keys=Ed25519StationKeys(),
        config=ServiceConfig(
            public_url=settings.effective_public_url,
            default_device_quota=settings.default_device_quota,
            session_lifetime=timedelta(days=settings.session_days),
            claim_attempts_per_window=settings.claim_attempts_per_window,
            claim_address_attempts_per_window=settings.claim_address_attempts_per_window,
            claim_grace_per_window=settings.claim_grace_per_window,
            claim_window=timedelta(seconds=settings.claim_window_seconds),
            sign_in_attempts_per_window=settings.sign_in_attempts_per_window,
            sign_in_address_attempts_per_window=settings.sign_in_address_attempts_per_window,
            sign_ups_per_address_per_window=settings.sign_ups_per_address_per_window,
            sign_in_window=timedelta(seconds=settings.sign_in_window_seconds),
            production_token_lifetime=timedelta(minutes=settings.production_token_minutes),
            webhook_retry=DEFAULT_RETRY_SCHEDULE.scaled(settings.webhook_retry_scale),
            webhook_lease=webhook_lease(settings),
            webhook_batch_size=settings.webhook_batch_size,
        ),
        firmware_store=FileFirmwareStore(settings.data_dir / "firmware"),
        webhooks=webhook_adapters(settings, hasher),
    )
    metrics.read_at_scrape(lambda: fleet_readings(services))
    return Application(
        settings=settings,
        engine=engine,
        services=services,
        idempotency=SqlIdempotencyStore(engine, hasher, clock=utc_now),
        metrics=metrics,
    )
