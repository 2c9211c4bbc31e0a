"""A maker's own PKI for tests, made as a factory would (docs/factory-pki.md does the same with
openssl): a root, an intermediate that signs device certificates, the proof of possession of
a CA's key, device certificates (good ones and each kind of bad one), and a CRL."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

API = "/api/v1"
Key = ec.EllipticCurvePrivateKey


def new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: Key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _name(common_name: str) -> x509.Name:
    # Unvalidated: the tests make names a careful CA would refuse (10 kB, control characters),
    # which cryptography warns of.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Maker"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name, _validate=False),
            ]
        )


def certificate(
    subject: str,
    key: Key,
    issuer: tuple[x509.Name, Key] | None = None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    days: int = 365,
    starts_in: timedelta = timedelta(0),
    extra: Callable[[x509.CertificateBuilder], x509.CertificateBuilder] | None = None,
    client_auth: bool = True,
    key_usage: bool = True,
) -> x509.Certificate:
    """A certificate of ``subject`` for ``key``, signed by ``issuer`` (self-signed if none)."""
    now = datetime.now(UTC) + starts_in
    issuer_name, signer = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(_usage(cert_sign=True), critical=True)
    else:
        if key_usage:
            builder = builder.add_extension(_usage(cert_sign=False), critical=True)
        if client_auth:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
    if extra is not None:
        builder = extra(builder)
    return builder.sign(signer, hashes.SHA256())


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class Maker:
    """A maker's root and the intermediate its line signs device certificates with."""

    root_key: Key
    root: x509.Certificate
    intermediate_key: Key
    intermediate: x509.Certificate

    @property
    def signer(self) -> tuple[x509.Name, Key]:
        return self.intermediate.subject, self.intermediate_key

    def device(self, name: str, **options: Any) -> tuple[x509.Certificate, Key]:
        key = new_key()
        return certificate(name, key, self.signer, **options), key

    def proof(self, challenge: str, key: Key | None = None, authority: x509.Certificate | None = None) -> str:
        """The verification certificate: CN = the challenge, signed by the CA's key."""
        signer = authority or self.intermediate
        return pem(
            certificate(
                challenge, new_key(), (signer.subject, key or self.intermediate_key), client_auth=False
            )
        )

    def crl(self, *revoked: x509.Certificate) -> str:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.intermediate.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(days=7))
        )
        for entry in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial_number)
                .revocation_date(now)
                .build()
            )
        return (
            builder.sign(self.intermediate_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )


def new_maker(root_path_length: int | None = 1) -> Maker:
    root_key, intermediate_key = new_key(), new_key()
    root = certificate("Maker Root CA", root_key, ca=True, path_length=root_path_length, days=3650)
    intermediate = certificate(
        "Maker Line CA", intermediate_key, (root.subject, root_key), ca=True, path_length=0, days=1825
    )
    return Maker(root_key, root, intermediate_key, intermediate)


def proven_ca(tenant: Any, product_id: str, maker: Maker) -> dict[str, Any]:
    """The maker's line CA registered for the product through the API, and proven."""
    made: dict[str, Any] = tenant.created(
        f"{API}/products/{product_id}/certificate-authorities", {"certificate": pem(maker.intermediate)}
    )
    body = {"verification_certificate": maker.proof(made["challenge"])}
    answer = tenant.post(f"{API}/certificate-authorities/{made['id']}/verify", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def device_files(
    directory: Path, certificate: x509.Certificate, key: Key, chain: Sequence[x509.Certificate]
) -> tuple[Path, Path]:
    """What the line writes into a device: its certificate followed by the intermediates, and
    its key: (device-chain.pem, device.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate_file, key_file = directory / "device-chain.pem", directory / "device.key"
    certificate_file.write_text(pem(certificate) + "".join(pem(link) for link in chain))
    key_file.write_text(key_pem(key))
    return certificate_file, key_file
