"""What every use case receives: how to open a unit of work, and the shared adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from lineside.domain.errors import NotFound, PermissionDenied
from lineside.domain.models import Principal, Scope
from lineside.domain.secret_tokens import SecretHasher
from lineside.services.ports import (
    CertificateAuthority,
    Clock,
    PasswordHasher,
    RateLimiter,
    UnitOfWorkFactory,
)

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ServiceConfig:
    """Installation-wide settings the use cases need (from Settings, via bootstrap)."""

    public_url: str = "http://127.0.0.1:8080"
    default_device_quota: int = 1_000_000
    session_lifetime: timedelta = timedelta(days=30)
    invitation_lifetime: timedelta = timedelta(days=7)
    claim_attempts_per_window: int = 10
    claim_window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class ServiceContext:
    unit_of_work: UnitOfWorkFactory
    hasher: SecretHasher
    certificate_authority: CertificateAuthority
    clock: Clock
    passwords: PasswordHasher
    rate_limiter: RateLimiter
    config: ServiceConfig = field(default_factory=ServiceConfig)


def require(principal: Principal, scope: Scope) -> None:
    if not principal.can(scope):
        raise PermissionDenied(f"This API key lacks the '{scope.value}' scope.")


def page_size(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE_SIZE))


def not_found(kind: str, identifier: str) -> NotFound:
    return NotFound(f"No {kind} with id '{identifier}' exists in your organization.")
