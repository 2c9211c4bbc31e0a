"""Request and response bodies of the factory PKI: makers' CAs, their proofs, their CRLs, a
product's registration policy, a device's registration."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictBool

from lineside.domain.models import (
    AuthorityStatus,
    CertificateAuthorityRecord,
    RegistrationIdentity,
    RegistrationPolicy,
)
from lineside.entrypoints.api.schemas import Request

MAX_PEM = 64 * 1024
MAX_CRL = 1024 * 1024
Pem = str


class AuthorityIn(Request):
    certificate: Pem = Field(
        max_length=MAX_PEM, description="The CA's certificate (a root or an intermediate), PEM."
    )


class AuthorityOut(BaseModel):
    id: str
    organization_id: str
    product_id: str
    subject: str
    key_id: str = Field(description="Its subject key identifier, hex.")
    fingerprint_sha256: str
    not_after: datetime
    status: AuthorityStatus
    created_at: datetime
    verified_at: datetime | None
    crl_updated_at: datetime | None

    @classmethod
    def of(cls, authority: CertificateAuthorityRecord) -> AuthorityOut:
        return cls(**{name: getattr(authority, name) for name in cls.model_fields})


class RegisteredAuthorityOut(AuthorityOut):
    challenge: str = Field(
        description="Shown once: sign a certificate whose subject CN is this with the CA's key, and "
        "send it to .../verify (docs/factory-pki.md has the openssl commands)."
    )
    challenge_expires_at: datetime


class VerificationIn(Request):
    verification_certificate: Pem = Field(
        max_length=MAX_PEM,
        description="A certificate with subject CN = the challenge, signed by the CA's key, PEM.",
    )


class CrlIn(Request):
    crl: Pem = Field(
        max_length=MAX_CRL, description="The CA's certificate revocation list, PEM, signed by it."
    )


class CrlOut(BaseModel):
    serials: int = Field(description="Serials the CRL lists (refused from now on).")
    certificates_revoked: int = Field(description="Registered devices' certificates it revoked now.")


class RegistrationSettingsIn(Request):
    policy: RegistrationPolicy = Field(
        description="open: any device the CA signed; allow_list: only serials defined beforehand; "
        "approval: held as pending_approval until approved."
    )
    identity: RegistrationIdentity = Field(
        default=RegistrationIdentity.COMMON_NAME,
        description="Where the certificate names the device: its subject CN, or the first URI of its SAN.",
    )
    reregistration: StrictBool = Field(
        default=False, description="Whether a device may come back with a different certificate."
    )


class RegistrationSettingsOut(BaseModel):
    product_id: str
    policy: RegistrationPolicy
    identity: RegistrationIdentity
    reregistration: bool


class ChainIn(Request):
    chain: list[Pem] = Field(
        default_factory=list,
        max_length=4,
        description="Intermediate certificates between the device certificate and the registered CA, PEM.",
    )


class RegisteredDeviceOut(BaseModel):
    device_id: str
    product_id: str
    serial_number: str
    state: str
    created: bool = Field(description="Registered now (false: it was known already).")
