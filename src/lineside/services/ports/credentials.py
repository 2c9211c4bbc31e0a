"""API keys, device certificates and the certificate authority that signs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lineside.domain.models import (
    ApiKey,
    Certificate,
    Organization,
)


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey, key_hash: str) -> None: ...
    def find_active_by_hash(self, key_hash: str) -> tuple[ApiKey, Organization] | None: ...
    def get(self, key_id: str, *, within: str) -> ApiKey | None: ...
    def list(self, *, within: str) -> list[ApiKey]: ...
    def revoke(self, key_id: str, at: datetime) -> None: ...


class CertificateRepository(Protocol):
    def add(self, certificate: Certificate) -> None: ...
    def list_for_device(self, device_id: str) -> list[Certificate]: ...
    def revoke_active(self, device_id: str, at: datetime) -> list[Certificate]: ...
    def list_revoked(self, product_id: str) -> list[Certificate]: ...


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
