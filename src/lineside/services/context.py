"""What every use case receives: how to open a unit of work, and the shared adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from lineside.domain.errors import NotFound, PermissionDenied
from lineside.domain.models import Principal, Scope
from lineside.domain.secret_tokens import SecretHasher
from lineside.domain.webhooks import DEFAULT_RETRY_SCHEDULE, RetrySchedule
from lineside.services.ports import (
    CertificateAuthority,
    CertificateInspector,
    Clock,
    DeviceTokenLookup,
    FirmwareStore,
    PasswordHasher,
    RateLimiter,
    StationKeys,
    UnitOfWorkFactory,
    WebhookAdapters,
)

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ServiceConfig:
    """Installation-wide settings the use cases need (from Settings, via bootstrap)."""

    public_url: str = "http://127.0.0.1:8080"
    default_device_quota: int = 1_000_000
    session_lifetime: timedelta = timedelta(days=30)
    invitation_lifetime: timedelta = timedelta(days=7)
    claim_attempts_per_window: int = 10  # wrong codes an account may try
    claim_address_attempts_per_window: int = 20  # wrong codes one client address may try
    claim_grace_per_window: int = 10  # first tries of accounts at a spent address
    claim_window: timedelta = timedelta(minutes=15)
    sign_in_attempts_per_window: int = 10  # wrong passwords for one account
    sign_in_address_attempts_per_window: int = 50  # wrong passwords from one address
    sign_ups_per_address_per_window: int = 10
    sign_in_window: timedelta = timedelta(minutes=15)
    production_token_lifetime: timedelta = timedelta(minutes=10)
    webhook_retry: RetrySchedule = DEFAULT_RETRY_SCHEDULE
    # How long a worker holds a delivery it is sending: longer than a whole attempt can take.
    webhook_lease: timedelta = timedelta(seconds=25)
    webhook_batch_size: int = 100


@dataclass(frozen=True)
class ServiceContext:
    unit_of_work: UnitOfWorkFactory
    device_tokens: DeviceTokenLookup
    hasher: SecretHasher
    certificate_authority: CertificateAuthority
    clock: Clock
    passwords: PasswordHasher
    rate_limiter: RateLimiter
    firmware_store: FirmwareStore  # image bytes
    webhooks: WebhookAdapters  # sender and secret box
    x509: CertificateInspector  # makers' own CAs and their devices' certificates
    station_keys: StationKeys  # offline factory stations' ledger keys and CAs
    config: ServiceConfig = field(default_factory=ServiceConfig)


# The least role that holds each scope, to name in a refusal.
_ROLE_FOR_SCOPE = {Scope.READ: "a viewer", Scope.FACTORY: "an operator", Scope.ADMIN: "an admin"}


def require(principal: Principal, scope: Scope) -> None:
    if principal.can(scope):
        return
    if principal.role is not None:
        raise PermissionDenied(
            f"Your role here ({principal.role.value}) cannot do this: it takes {_ROLE_FOR_SCOPE[scope]}"
            " or more."
        )
    raise PermissionDenied(f"This API key lacks the '{scope.value}' scope.")


def page_size(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE_SIZE))


def not_found(kind: str, identifier: str) -> NotFound:
    # Worded for every door (the API, the CLI on the database, pages): none of them may tell
    # "exists elsewhere" from "does not exist".
    return NotFound(f"No {kind} with id '{identifier}' was found.")
