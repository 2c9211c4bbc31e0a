"""API keys, device certificates and the certificate authority that signs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lineside.domain.models import (
    ApiKey,
    AuthorityStatus,
    Certificate,
    CertificateAuthorityRecord,
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
    def add_many(self, certificates: Sequence[Certificate]) -> None: ...
    def list_for_device(self, device_id: str) -> list[Certificate]: ...
    def revoke_active(self, device_id: str, at: datetime) -> list[Certificate]: ...
    def list_revoked(self, product_id: str) -> list[Certificate]: ...
    # Revoke the certificates ``authority_id`` signed with these serials; their devices.
    def revoke_issued(self, authority_id: str, serials: Sequence[str], at: datetime) -> list[str]: ...


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


# -- factory PKI: makers' own certificate authorities -----------------------------------------


@dataclass(frozen=True)
class AuthorityFacts:
    """What a CA certificate a maker registers says of itself."""

    certificate_pem: str  # as parsed and written back: one certificate, PEM
    subject: str
    key_id: str  # subject key identifier, hex
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class DeviceCertificateFacts:
    """What a device's certificate (and the chain it presented) says, before any trust."""

    fingerprint_sha256: str
    serial_hex: str
    subject: str
    common_name: str | None
    san_uris: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    issuer_key_ids: tuple[str, ...]  # authority key identifiers along the chain, leaf first
    subject_serial_number: str | None = None  # X.520 serialNumber (how a station names a unit)


class CertificateInspector(Protocol):
    """X.509 for the factory PKI: parsing, proof of possession, chains. Each refusal is a
    CertificateRefused whose detail says why in a sentence."""

    def read_authority(self, certificate_pem: str) -> AuthorityFacts: ...
    # The answer's subject CN, once its signature shows the CA's key made it.
    def possession_answer(self, authority_pem: str, answer_pem: str) -> str: ...
    def read_revocation_list(self, authority_pem: str, crl_pem: str) -> list[str]: ...
    def read_device_certificate(
        self, certificate: bytes, chain: Sequence[bytes]
    ) -> DeviceCertificateFacts: ...
    def verify_device_chain(
        self, certificate: bytes, chain: Sequence[bytes], anchor_pem: str, at: datetime
    ) -> None: ...


class AuthorityRepository(Protocol):
    def add(
        self, authority: CertificateAuthorityRecord, challenge_hash: str, challenge_expires_at: datetime
    ) -> None: ...
    def get(self, authority_id: str, *, within: str) -> CertificateAuthorityRecord | None: ...
    def list_for_product(self, product_id: str) -> list[CertificateAuthorityRecord]: ...
    def challenge_of(self, authority_id: str) -> tuple[str, datetime] | None: ...
    def set_status(self, authority_id: str, status: AuthorityStatus, at: datetime) -> None: ...
    def close_registration(self, authority_id: str, at: datetime) -> None: ...
    def verified_with_fingerprint(self, fingerprint_sha256: str) -> CertificateAuthorityRecord | None: ...
    def with_key_ids(self, key_ids: Sequence[str]) -> list[CertificateAuthorityRecord]: ...
    def delete(self, authority_id: str) -> None: ...
    def replace_revoked_serials(self, authority_id: str, serials: Sequence[str], at: datetime) -> None: ...
    def is_revoked(self, authority_id: str, serial_hex: str) -> bool: ...
    # Which of ``serials`` the CA's CRL lists (a batch of registrations asks once).
    def revoked_among(self, authority_id: str, serials: Sequence[str]) -> set[str]: ...
    # Verified CAs expiring before ``before`` whose expiry was not announced yet.
    def expiring_unwarned(self, before: datetime) -> list[CertificateAuthorityRecord]: ...
    def mark_warned(self, authority_id: str, at: datetime) -> None: ...
    # Every CA a TLS listener should accept chains to (verified or disabled: the registration
    # refuses a disabled one with its reason, which a failed handshake could not say).
    def certificates_to_trust(self) -> list[str]: ...
