"""What every use case receives: how to open a unit of work, and the shared adapters."""

from __future__ import annotations

from dataclasses import dataclass

from lineside.domain.errors import NotFound, PermissionDenied
from lineside.domain.models import Principal, Scope
from lineside.domain.secret_tokens import SecretHasher
from lineside.services.ports import CertificateAuthority, Clock, UnitOfWorkFactory

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ServiceContext:
    unit_of_work: UnitOfWorkFactory
    hasher: SecretHasher
    certificate_authority: CertificateAuthority
    clock: Clock


def require(principal: Principal, scope: Scope) -> None:
    if not principal.can(scope):
        raise PermissionDenied(f"This API key lacks the '{scope.value}' scope.")


def page_size(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE_SIZE))


def not_found(kind: str, identifier: str) -> NotFound:
    return NotFound(f"No {kind} with id '{identifier}' exists in your organization.")
