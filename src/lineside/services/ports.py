"""Ports: what the services need from the outside world, as Protocols.

Adapters implement these by technology (SqlUnitOfWork, FileCertificateAuthority, ...).
``within`` is always an organization path: a query sees that organization and its
sub-organizations, never a parent or a sibling.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from lineside.domain.events import DomainEvent
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import (
    ApiKey,
    Certificate,
    Device,
    DeviceGroup,
    Organization,
    Product,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class DeviceFilter:
    product_id: str | None = None
    state: DeviceState | None = None
    serial_number: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True)
class EventFilter:
    type: str | None = None
    subject_id: str | None = None


@dataclass(frozen=True)
class NewDevice:
    """A device to insert, with the keyed hash of its token if one was issued."""

    device: Device
    token_hash: str | None = None


class OrganizationRepository(Protocol):
    def add(self, organization: Organization) -> None: ...
    def get(self, organization_id: str, *, within: str) -> Organization | None: ...
    def list(self, *, within: str) -> list[Organization]: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey, key_hash: str) -> None: ...
    def find_active_by_hash(self, key_hash: str) -> tuple[ApiKey, Organization] | None: ...
    def get(self, key_id: str, *, within: str) -> ApiKey | None: ...
    def list(self, *, within: str) -> list[ApiKey]: ...
    def revoke(self, key_id: str, at: datetime) -> None: ...


class ProductRepository(Protocol):
    def add(self, product: Product) -> None: ...
    def get(self, product_id: str, *, within: str) -> Product | None: ...
    def list(self, *, within: str, cursor: str | None, limit: int) -> Page[Product]: ...
    def name_taken(self, organization_id: str, name: str) -> bool: ...


class DeviceGroupRepository(Protocol):
    def add(self, group: DeviceGroup) -> None: ...
    def list_for_product(self, product_id: str) -> list[DeviceGroup]: ...
    def name_taken(self, product_id: str, name: str) -> bool: ...


class DeviceRepository(Protocol):
    def add_many(self, devices: Sequence[NewDevice]) -> None: ...
    def get(self, device_id: str, *, within: str) -> Device | None: ...
    def list(self, *, within: str, filters: DeviceFilter, cursor: str | None, limit: int) -> Page[Device]: ...
    def existing_serial_numbers(self, product_id: str, serials: Iterable[str]) -> set[str]: ...
    def save_state(self, device: Device) -> None: ...
    def set_token(self, device_id: str, token_hash: str, at: datetime) -> None: ...
    def clear_token(self, device_id: str) -> None: ...
    def find_by_token_hash(self, token_hash: str) -> Device | None: ...


class CertificateRepository(Protocol):
    def add(self, certificate: Certificate) -> None: ...
    def list_for_device(self, device_id: str) -> list[Certificate]: ...
    def revoke_active(self, device_id: str, at: datetime) -> list[Certificate]: ...
    def list_revoked(self, product_id: str) -> list[Certificate]: ...


class EventOutbox(Protocol):
    def add(self, event: DomainEvent) -> None: ...
    def list(
        self, *, within: str, filters: EventFilter, cursor: str | None, limit: int
    ) -> Page[DomainEvent]: ...


class UnitOfWork(Protocol):
    """One transaction. Leaving the ``with`` block without ``commit()`` rolls back."""

    @property
    def organizations(self) -> OrganizationRepository: ...
    @property
    def api_keys(self) -> ApiKeyRepository: ...
    @property
    def products(self) -> ProductRepository: ...
    @property
    def groups(self) -> DeviceGroupRepository: ...
    @property
    def devices(self) -> DeviceRepository: ...
    @property
    def certificates(self) -> CertificateRepository: ...
    @property
    def events(self) -> EventOutbox: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> UnitOfWork: ...


class IssuedCertificateLike(Protocol):
    @property
    def certificate_pem(self) -> str: ...
    @property
    def serial_hex(self) -> str: ...
    @property
    def fingerprint_sha256(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def not_before(self) -> datetime: ...
    @property
    def not_after(self) -> datetime: ...
    @property
    def private_key_pem(self) -> str | None: ...


@dataclass(frozen=True)
class RevokedSerial:
    serial_hex: str
    revoked_at: datetime


class CertificateAuthority(Protocol):
    def ca_certificate_pem(self, product_id: str, product_name: str) -> str: ...
    def sign_csr(
        self,
        product_id: str,
        product_name: str,
        csr_pem: str,
        *,
        device_id: str,
        serial_number: str,
    ) -> IssuedCertificateLike: ...
    def issue_with_new_key(
        self, product_id: str, product_name: str, *, device_id: str, serial_number: str
    ) -> IssuedCertificateLike: ...
    def crl_pem(self, product_id: str, product_name: str, revoked: Sequence[RevokedSerial]) -> str: ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...
