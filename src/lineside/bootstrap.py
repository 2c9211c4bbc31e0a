"""The one composition root: settings in, a ready ServiceContext out.

Every entrypoint (API, CLI, later the worker) calls ``bootstrap``; nothing is built at
import time, so tests build as many independent applications as they like.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.idempotency import SqlIdempotencyStore
from lineside.adapters.db.migrate import upgrade_database
from lineside.adapters.db.rate_limits import SqlRateLimiter
from lineside.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from lineside.adapters.firmware_store import FileFirmwareStore
from lineside.adapters.passwords import Argon2PasswordHasher
from lineside.adapters.sealing import AesGcmSecretBox
from lineside.adapters.webhooks import HttpxWebhookSender
from lineside.adapters.x509_ca import FileCertificateAuthority
from lineside.domain.secret_tokens import SecretHasher
from lineside.domain.webhooks import DEFAULT_RETRY_SCHEDULE
from lineside.services.context import ServiceConfig, ServiceContext
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

    def database_is_reachable(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def close(self) -> None:
        self.engine.dispose()


def utc_now() -> datetime:
    return datetime.now(UTC)


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


def bootstrap(settings: Settings | None = None, *, migrate: bool = False) -> Application:
    settings = settings or Settings()
    engine = create_database_engine(settings.database_url)
    if migrate:
        upgrade_database(engine)
    hasher = SecretHasher(load_or_create_server_key(settings.data_dir))
    services = ServiceContext(
        unit_of_work=SqlUnitOfWorkFactory(engine),
        hasher=hasher,
        certificate_authority=FileCertificateAuthority(settings.data_dir / "ca"),
        clock=utc_now,
        passwords=Argon2PasswordHasher(),
        rate_limiter=SqlRateLimiter(engine, utc_now),
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
    return Application(
        settings=settings,
        engine=engine,
        services=services,
        idempotency=SqlIdempotencyStore(engine, hasher),
    )
