"""A file-backed X.509 certificate authority for device certificates.

Why this exists: every product gets its own small CA, so a device can prove
which product it belongs to with nothing more than a TLS client certificate,
and a leaked or retired product CA never affects another product. Keeping the
CA as two PEM files on disk needs no HSM or external service, which suits a
single-site provisioning service; the key is the one secret, so it is written
0o600 inside a 0o700 directory and never logged.

Why creation looks the way it does: several worker processes (and threads)
may ask for the same product's CA at once. Each builds a complete CA in a
private staging directory and then renames that directory to
``<directory>/<product_id>``. A directory rename is atomic and refuses to
replace a non-empty directory, so exactly one CA ever becomes visible, the key
and certificate always appear together, and a loser simply adopts the
winner's files. A lock keeps threads of one process from doing the same work
twice, and loaded CAs are cached per product.

Why device certificates ignore the CSR's subject: the CA, not the device,
decides what a device is called. Only the CSR's public key is used; the
subject is always the device id and serial number the service vouches for.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lineside.adapters.disk import sync_directory
from lineside.domain.clock import utc_now
from lineside.domain.errors import InvalidInput
from lineside.services.ports import RevokedSerial

__all__ = [
    "FileCertificateAuthority",
    "InvalidCsr",
    "IssuedCertificate",
]

_ORGANIZATION = "Lineside"
_CA_NAME_PREFIX = "Lineside device CA "
_KEY_FILE = "ca.key.pem"
_CERT_FILE = "ca.cert.pem"
_BACKDATE = timedelta(minutes=5)
_CRL_LIFETIME = timedelta(days=1)
_MAX_NAME_LENGTH = 64  # RFC 5280 upper bound for commonName and serialNumber
_MIN_RSA_BITS = 2048
_ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_PRODUCT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_DEVICE_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")  # also safe inside a URN
_SERIAL_NUMBER = re.compile(r"[A-Za-z0-9 '()+,./:=?-]{1,64}")  # PrintableString

_DevicePublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class IssuedCertificate:
    """A device certificate as handed back to the caller."""

    certificate_pem: str
    serial_hex: str
    fingerprint_sha256: str
    subject: str
    not_before: datetime
    not_after: datetime
    private_key_pem: str | None = None


class InvalidCsr(InvalidInput, ValueError):
    """Raised with a human readable message when a CSR cannot be parsed, its
    signature does not verify, or its key is too weak / unsupported."""


@dataclass(frozen=True)
class _Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    certificate_pem: str


class FileCertificateAuthority:
    """One ECDSA P-256 CA per product, stored under ``directory/<product_id>``."""

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        certificate_days: int = 3650,
        ca_days: int = 7300,
    ) -> None:
        if certificate_days < 1 or ca_days < 1:
            raise ValueError("certificate_days and ca_days must be at least 1")
        self._directory = Path(directory)
        self._clock = clock
        self._certificate_days = certificate_days
        self._ca_days = ca_days
        self._lock = threading.Lock()
        self._authorities: dict[str, _Authority] = {}

    def ca_certificate_pem(self, product_id: str, product_name: str) -> str:
        """Return the product's CA certificate, creating the CA on first use."""
        return self._authority(product_id, product_name).certificate_pem

    def sign_csr(
        self,
        product_id: str,
        product_name: str,
        csr_pem: str,
        *,
        device_id: str,
        serial_number: str,
    ) -> IssuedCertificate:
        """Issue a device certificate for the public key in ``csr_pem``."""
        public_key = _csr_public_key(csr_pem)
        subject = _device_subject(device_id, serial_number)
        authority = self._authority(product_id, product_name)
        return _describe(self._issue(authority, public_key, subject, device_id))

    def issue_with_new_key(
        self, product_id: str, product_name: str, *, device_id: str, serial_number: str
    ) -> IssuedCertificate:
        """Generate a P-256 key for the device and issue a certificate for it."""
        subject = _device_subject(device_id, serial_number)
        authority = self._authority(product_id, product_name)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._issue(authority, key.public_key(), subject, device_id)
        return _describe(certificate, private_key_pem=_private_key_pem(key).decode("ascii"))

    def crl_pem(self, product_id: str, product_name: str, revoked: Sequence[RevokedSerial]) -> str:
        """Return a CRL, signed by the product's CA, listing ``revoked``."""
        authority = self._authority(product_id, product_name)
        now = self._clock()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(authority.certificate.subject)
            .last_update(now)
            .next_update(now + _CRL_LIFETIME)
            .add_extension(x509.CRLNumber(_crl_number(now)), critical=False)
            .add_extension(_authority_key_identifier(authority.certificate), critical=False)
        )
        for entry in _unique_by_serial(revoked):
            builder = builder.add_revoked_certificate(_revoked_entry(entry))
        crl = builder.sign(authority.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")

    # -- CA lifecycle ---------------------------------------------------------

    def _authority(self, product_id: str, product_name: str) -> _Authority:
        _check_product_id(product_id)
        with self._lock:
            authority = self._authorities.get(product_id)
            if authority is None:
                authority = self._load(product_id) or self._create(product_id, product_name)
                self._authorities[product_id] = authority
            return authority

    def _load(self, product_id: str) -> _Authority | None:
        product_dir = self._directory / product_id
        try:
            key_pem = (product_dir / _KEY_FILE).read_bytes()
        except FileNotFoundError:
            return None
        cert_pem = (product_dir / _CERT_FILE).read_bytes()
        return _parse_authority(key_pem, cert_pem, product_dir)

    def _create(self, product_id: str, product_name: str) -> _Authority:
        authority = self._new_authority(product_id, product_name)
        self._directory.mkdir(parents=True, exist_ok=True)
        staging = _stage(self._directory, product_id, authority)
        try:
            os.rename(staging, self._directory / product_id)
        except OSError:
            # Another process published this product's CA first: adopt it.
            shutil.rmtree(staging, ignore_errors=True)
            return self._adopt(product_id)
        sync_directory(self._directory)
        return authority

    def _adopt(self, product_id: str) -> _Authority:
        winner = self._load(product_id)
        if winner is None:
            raise RuntimeError(f"CA storage for product {product_id!r} exists but holds no {_KEY_FILE}")
        return winner

    def _new_authority(self, product_id: str, product_name: str) -> _Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _ca_subject(product_id, product_name)
        now = self._clock()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + timedelta(days=self._ca_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return _Authority(key, certificate, _certificate_pem(certificate))

    # -- device certificates -----------------------------------------------------

    def _issue(
        self,
        authority: _Authority,
        public_key: _DevicePublicKey,
        subject: x509.Name,
        device_id: str,
    ) -> x509.Certificate:
        now = self._clock()
        not_after = min(
            now + timedelta(days=self._certificate_days),
            authority.certificate.not_valid_after_utc,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(authority.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
        )
        for extension, critical in _device_extensions(authority, public_key, device_id):
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(authority.key, hashes.SHA256())


# -- names and extensions ---------------------------------------------------------


def _check_product_id(product_id: str) -> None:
    if not _PRODUCT_ID.fullmatch(product_id):
        raise ValueError(f"product_id must be 1-64 characters of A-Z, a-z, 0-9 or '-', got {product_id!r}")


def _ca_subject(product_id: str, product_name: str) -> x509.Name:
    room = _MAX_NAME_LENGTH - len(_CA_NAME_PREFIX)
    common_name = (_CA_NAME_PREFIX + product_name.strip()[:room]).strip()
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, product_id),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _device_subject(device_id: str, serial_number: str) -> x509.Name:
    if not _DEVICE_ID.fullmatch(device_id):
        raise ValueError(
            f"device_id must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '~' or '-', got {device_id!r}"
        )
    attributes = [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, device_id),
    ]
    # X.520 serialNumber is a PrintableString: a serial that does not fit is left out
    # rather than refused, since the common name (the device id) already names the device.
    if _SERIAL_NUMBER.fullmatch(serial_number):
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
    return x509.Name(attributes)


def _device_extensions(
    authority: _Authority, public_key: _DevicePublicKey, device_id: str
) -> list[tuple[x509.ExtensionType, bool]]:
    is_ec = isinstance(public_key, ec.EllipticCurvePublicKey)
    uri = x509.UniformResourceIdentifier(f"urn:lineside:device:{device_id}")
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(key_agreement=is_ec), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (_authority_key_identifier(authority.certificate), False),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
        (x509.SubjectAlternativeName([uri]), False),
    ]


def _key_usage(*, cert_sign: bool = False, key_agreement: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_identifier(ca_certificate: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


# -- CSR checks ----------------------------------------------------------------------


def _csr_public_key(csr_pem: str) -> _DevicePublicKey:
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("utf-8"))
        public_key = csr.public_key()
        signature_ok = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidCsr(f"could not parse the certificate signing request: {exc}") from exc
    if not signature_ok:
        raise InvalidCsr("the certificate signing request's signature does not verify")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, _ACCEPTED_CURVES):
            raise InvalidCsr(f"EC curve {public_key.curve.name} is not accepted; use P-256, P-384 or P-521")
        return public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < _MIN_RSA_BITS:
            raise InvalidCsr(
                f"RSA key of {public_key.key_size} bits is too weak; "
                f"at least {_MIN_RSA_BITS} bits are required"
            )
        return public_key
    raise InvalidCsr(
        f"{type(public_key).__name__} keys are not accepted; use an EC (P-256, P-384, "
        "P-521) or RSA (2048 bits or more) key"
    )


# -- CRL helpers ---------------------------------------------------------------------


def _crl_number(now: datetime) -> int:
    # Microseconds since the epoch: increases with every CRL without stored state.
    return int(now.timestamp() * 1_000_000)


def _unique_by_serial(revoked: Sequence[RevokedSerial]) -> list[RevokedSerial]:
    seen: dict[int, RevokedSerial] = {}
    for entry in revoked:
        seen.setdefault(_parse_serial(entry.serial_hex), entry)
    return list(seen.values())


def _parse_serial(serial_hex: str) -> int:
    try:
        return int(serial_hex, 16)
    except ValueError:
        raise ValueError(f"serial_hex must be hexadecimal, got {serial_hex!r}") from None


def _revoked_entry(entry: RevokedSerial) -> x509.RevokedCertificate:
    return (
        x509.RevokedCertificateBuilder()
        .serial_number(_parse_serial(entry.serial_hex))
        .revocation_date(entry.revoked_at)
        .build()
    )


# -- encoding and storage ------------------------------------------------------------


def _describe(certificate: x509.Certificate, private_key_pem: str | None = None) -> IssuedCertificate:
    return IssuedCertificate(
        certificate_pem=_certificate_pem(certificate),
        serial_hex=format(certificate.serial_number, "x"),
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        private_key_pem=private_key_pem,
    )


def _certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _parse_authority(key_pem: bytes, cert_pem: bytes, product_dir: Path) -> _Authority:
    key = serialization.load_pem_private_key(key_pem, password=None)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or (key.public_key() != certificate.public_key()):
        raise RuntimeError(f"CA key and certificate in {product_dir} do not belong together")
    return _Authority(key, certificate, _certificate_pem(certificate))


def _stage(directory: Path, product_id: str, authority: _Authority) -> Path:
    """Write a complete CA into a fresh private directory next to its final place."""
    staging = directory / f".staging-{product_id}-{secrets.token_hex(8)}"
    os.mkdir(staging, 0o700)
    try:
        os.chmod(staging, 0o700)  # mkdir's mode is filtered through the umask
        _write_new_file(staging / _KEY_FILE, _private_key_pem(authority.key), 0o600)
        _write_new_file(staging / _CERT_FILE, authority.certificate_pem.encode("ascii"), 0o644)
        sync_directory(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
