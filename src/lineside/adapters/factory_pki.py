"""X.509 for the factory PKI (makers' own CAs): reading a CA certificate, checking a proof of
possession, reading a CRL, and verifying a device's chain to a registered CA.

Path validation is cryptography's RFC 5280 verifier (signatures, validity periods, CA flags,
path lengths, key usage, clientAuth when an extended key usage is given), with one relaxation:
a device certificate may name itself in its subject's CN alone (IoT devices rarely carry a
subjectAltName). The registered CA is the trust anchor even when it is an intermediate: the
maker proved they hold its key, which is what the anchor stands for.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from lineside.domain.errors import CertificateRefused
from lineside.services.ports import AuthorityFacts, DeviceCertificateFacts

MAX_PEM_CHARACTERS = 64 * 1024  # a CA certificate, a proof, a CRL's serials: far less
MAX_CHAIN = 4  # intermediates a device may present
_END_ENTITY_POLICY = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
)


class X509Inspector:
    def read_authority(self, certificate_pem: str) -> AuthorityFacts:
        certificate = _one_pem_certificate(certificate_pem, "The CA certificate")
        constraints = _extension(certificate, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            raise CertificateRefused(
                "The certificate is not a CA's: its basicConstraints do not say CA:TRUE."
            )
        usage = _extension(certificate, x509.KeyUsage)
        if usage is not None and not usage.key_cert_sign:
            raise CertificateRefused("The CA certificate's key usage does not allow signing certificates.")
        return AuthorityFacts(
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            subject=_subject(certificate),
            key_id=_subject_key_id(certificate),
            fingerprint_sha256=_fingerprint(certificate),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )

    def possession_answer(self, authority_pem: str, answer_pem: str) -> str:
        """The answer is a certificate whose subject CN is the challenge, signed by the CA's
        key (``openssl x509 -req -CA ca.pem -CAkey ca.key``): only the key's holder makes it.
        Its CN, once the signature holds (the caller compares it with the challenge)."""
        authority = _one_pem_certificate(authority_pem, "The CA certificate")
        answer = _one_pem_certificate(answer_pem, "The verification certificate")
        try:
            answer.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateRefused(
                "The verification certificate was not signed by this CA's key (or names another issuer)."
            ) from None
        name = _common_name(answer)
        if name is None:
            raise CertificateRefused(
                "The verification certificate's subject has no CN (it must be the challenge)."
            )
        return name

    def read_revocation_list(self, authority_pem: str, crl_pem: str) -> list[str]:
        authority = _one_pem_certificate(authority_pem, "The CA certificate")
        if len(crl_pem) > MAX_PEM_CHARACTERS * 16:
            raise CertificateRefused("The CRL is too large (at most 1 MiB of PEM).")
        try:
            crl = x509.load_pem_x509_crl(crl_pem.encode())
        except ValueError:
            raise CertificateRefused("The CRL is not a PEM certificate revocation list.") from None
        if crl.issuer != authority.subject or not crl.is_signature_valid(authority.public_key()):  # type: ignore[arg-type]
            raise CertificateRefused("The CRL was not signed by this CA.")
        return sorted({f"{entry.serial_number:x}" for entry in crl})

    def read_device_certificate(self, certificate: bytes, chain: Sequence[bytes]) -> DeviceCertificateFacts:
        leaf = _device_certificate(certificate)
        presented = [_device_certificate(link) for link in chain[:MAX_CHAIN]]
        key_ids = tuple(key_id for c in (leaf, *presented) if (key_id := _authority_key_id(c)) is not None)
        san = _extension(leaf, x509.SubjectAlternativeName)
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier)) if san is not None else ()
        return DeviceCertificateFacts(
            fingerprint_sha256=_fingerprint(leaf),
            serial_hex=f"{leaf.serial_number:x}",
            subject=_subject(leaf),
            common_name=_common_name(leaf),
            san_uris=uris,
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            issuer_key_ids=key_ids,
            subject_serial_number=_subject_serial_number(leaf),
        )

    def verify_device_chain(
        self, certificate: bytes, chain: Sequence[bytes], anchor_pem: str, at: datetime
    ) -> None:
        leaf = _device_certificate(certificate)
        intermediates = [_device_certificate(link) for link in chain[:MAX_CHAIN]]
        anchor = _one_pem_certificate(anchor_pem, "The CA certificate")
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store([anchor]))
            .time(at)
            .max_chain_depth(MAX_CHAIN)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=_END_ENTITY_POLICY
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, intermediates)
        except verification.VerificationError as error:
            raise CertificateRefused(
                f"The device certificate does not chain to the CA: {_reason(error)}"
            ) from None


def _one_pem_certificate(text: str, what: str) -> x509.Certificate:
    if len(text) > MAX_PEM_CHARACTERS:
        raise CertificateRefused(f"{what} is too large.")
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise CertificateRefused(f"{what} is not a PEM certificate.") from None
    if len(certificates) != 1:
        raise CertificateRefused(f"{what} must be one PEM certificate, not {len(certificates)}.")
    return certificates[0]


def _device_certificate(data: bytes) -> x509.Certificate:
    """A device certificate as DER (what a TLS stack hands over) or PEM (a proxy header)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertificateRefused("The device certificate cannot be read (neither DER nor PEM).") from None


E = TypeVar("E", bound=x509.ExtensionType)


def _extension(certificate: x509.Certificate, kind: type[E]) -> E | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension
        raise CertificateRefused("The certificate has a malformed extension.") from None


def _subject_key_id(certificate: x509.Certificate) -> str:
    found = _extension(certificate, x509.SubjectKeyIdentifier)
    if found is not None:
        return found.digest.hex()
    return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest.hex()


def _authority_key_id(certificate: x509.Certificate) -> str | None:
    found = _extension(certificate, x509.AuthorityKeyIdentifier)
    return found.key_identifier.hex() if found is not None and found.key_identifier else None


def _common_name(certificate: x509.Certificate) -> str | None:
    with _odd_names_allowed():
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def _subject_serial_number(certificate: x509.Certificate) -> str | None:
    with _odd_names_allowed():
        names = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def _subject(certificate: x509.Certificate) -> str:
    with _odd_names_allowed():
        return certificate.subject.rfc4514_string()[:500]


@contextlib.contextmanager
def _odd_names_allowed() -> Iterator[None]:
    """cryptography warns of a name past X.509's lengths as it reads one; such a name is
    refused with a reason by the caller (domain.factory_pki), so the warning is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _reason(error: Exception) -> str:
    """The verifier's reason without its Python object dump."""
    text = str(error).removeprefix("validation failed: ")
    return text.split(" (encountered processing", 1)[0][:300]
